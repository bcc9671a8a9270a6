"""Cluster runs as a user starts them: real `dask scheduler` + `dask worker` processes in another cwd.

Relative paths are resolved before they reach the workers, a path the workers cannot see is named
in one line, and `geoslide patches` and `geoslide run` on the cluster (`--scheduler`,
`$DASK_SCHEDULER_ADDRESS`, `--workers`) write what the single-process commands write.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
import zarr
from dask_processes import GEOSLIDE, dask_cluster, in_private_folder, private_mounts_work, transitions
from synthetic import synthetic_store

from geoslide.data.store import PatchStore

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = ROOT / "catalogs" / "demo" / "demo-quake" / "demo-quake-inventory" / "inventory.parquet"
POST = {"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}
SMALL = json.dumps({"base_filters": 4, "depth": 2})
TINY_POST = {"collections": ["tiny-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}
TINY = {  # tests/pipeline's tiny protocol: one 1 km event, 64 px patches, 2 epochs, one whole scene mapped
    "name": "tiny",
    "demo": [{"out": "events", "seed": 5, "events": ["tiny"], "sensors": ["planetscope"]}],
    "patches": {"patch_size": 64, "stride": 64, "empty": "keep", "split": "random", "bands": ["red", "green", "nir"],
                "sources": [{"catalog": "events", "stac_query": TINY_POST,
                             "labels": {"collections": ["tiny-inventory"]}}]},
    "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "loss": "bce+dice", "patience": None},
    "models": [{"name": "small", "model": "unet", "model_params": {"base_filters": 4, "depth": 2}}],
    "evaluate": {"split": "test", "by": ["event"], "chunk": 128,
                 "scenes": [{"name": "tiny", "catalog": "events", "stac_query": TINY_POST,
                             "labels": {"collections": ["tiny-inventory"]}}]},
}


@pytest.fixture(scope="module")
def dask(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("dask")) as processes:
        yield processes


@pytest.fixture
def scheduler(dask):
    """The scheduler's address; afterwards, nothing was written in the workers' own working directory."""
    yield dask.address
    assert list(dask.worker_cwd.iterdir()) == []


def geoslide(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(GEOSLIDE), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def run_private(private: Path, script: str, cwd: Path, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess:
    """The shell ``script`` in ``cwd`` with ``private`` mounted for it alone."""
    return subprocess.run(in_private_folder(private, script), capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def assert_same_store(got: Path, want: Path) -> None:
    """Equal patch stores: images (NaN where NaN), masks, every metadata column and the group attributes."""
    a, b = PatchStore.open(got), PatchStore.open(want)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a.images().compute(), b.images().compute())
    np.testing.assert_array_equal(a.masks().compute(), b.masks().compute())
    pd.testing.assert_frame_equal(a.meta(), b.meta())
    assert dict(zarr.open_group(str(got), mode="r").attrs) == dict(zarr.open_group(str(want), mode="r").attrs)


# ---------------------------------------------------------------- training


@pytest.mark.heavy
def test_train_with_relative_paths_on_scheduler_and_worker_processes(scheduler, tmp_path):
    synthetic_store(tmp_path / "rel.zarr", n=40, size=32)
    done = geoslide(tmp_path, "train", "--patches", "rel.zarr", "--out", "rel-model", "--scheduler", scheduler,
                    "--model", "unet", "--model-params", SMALL, "--epochs", "1", "--batch-size", "8")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["world"] == 2 and summary["steps"] == 3  # 24 training patches, batches of 8
    assert (tmp_path / "rel-model" / "model.safetensors").is_file()
    assert (tmp_path / "rel-model" / "last" / "state.json").is_file()


def test_a_store_that_cannot_fill_a_batch_is_refused_on_a_cluster_too(scheduler, tmp_path):
    synthetic_store(tmp_path / "small.zarr", n=10, size=32)
    line = one_error_line(geoslide(tmp_path, "train", "--patches", "small.zarr", "--out", "m", "--model", "unet",
                                   "--scheduler", scheduler))
    assert "6 training patches" in line and "--batch-size" in line
    assert not (tmp_path / "m").exists()


@pytest.fixture
def private(tmp_path):
    """A folder only the command under test sees (a private tmpfs), like the Helm Job's own /tmp."""
    folder = tmp_path / "job-tmp"
    if not private_mounts_work(folder):
        pytest.skip("unshare --mount is not permitted here (needs root or user namespaces)")
    return folder


def test_a_store_the_workers_cannot_see_is_named(scheduler, tmp_path, private):
    store = synthetic_store(tmp_path / "s.zarr", n=40, size=32)
    train = shlex.join([str(GEOSLIDE), "train", "--patches", f"{private}/s.zarr", "--out", f"{private}/m",
                        "--model", "unet", "--scheduler", scheduler, "--batch-size", "8"])
    copy = f'cp -r {shlex.quote(store.path)} "{private}/s.zarr"'
    script = f'{copy} && {train}; rc=$?; test ! -e "{private}/m" && exit $rc'
    line = one_error_line(run_private(private, script, tmp_path))
    assert f"a worker cannot see {private}/s.zarr: use a shared volume or object storage" in line


def test_a_model_dir_the_workers_cannot_see_is_named_and_not_left_behind(scheduler, tmp_path, private):
    synthetic_store(tmp_path / "s.zarr", n=40, size=32)
    train = shlex.join([str(GEOSLIDE), "train", "--patches", "s.zarr", "--out", f"{private}/run/m", "--model", "unet",
                        "--scheduler", scheduler, "--batch-size", "8"])
    script = f'{train}; rc=$?; test -z "$(ls -A {private})" && exit $rc'
    line = one_error_line(run_private(private, script, tmp_path))
    assert f"a worker cannot see {private}/run/m: use a shared volume or object storage" in line


# ---------------------------------------------------------------- patches


@pytest.fixture(scope="module")
def single_patches(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("single")
    done = geoslide(cwd, *_patches_args("quake.zarr"))
    assert done.returncode == 0, done.stderr
    return cwd / "quake.zarr"


def _patches_args(out: str) -> list[str]:
    return ["patches", "--stac-query", json.dumps(POST), "--labels", str(INVENTORY), "--out", out,
            "--patch-size", "128", "--derived", "ndvi", "--empty", "fraction", "--keep-fraction", "0.5"]


@pytest.mark.heavy
@pytest.mark.parametrize("how", ["--scheduler", "DASK_SCHEDULER_ADDRESS", "--workers"])
def test_patches_on_a_cluster_equal_the_single_process_store(scheduler, single_patches, tmp_path, how):
    options = {"--scheduler": (["--scheduler", scheduler], None), "--workers": (["--workers", "2"], None),
               "DASK_SCHEDULER_ADDRESS": ([], {"DASK_SCHEDULER_ADDRESS": scheduler})}
    extra, env = options[how]
    before = transitions(scheduler)
    done = geoslide(tmp_path, *_patches_args("quake.zarr"), *extra, env=env)
    assert done.returncode == 0, done.stderr
    assert (transitions(scheduler) > before) == (how != "--workers")  # ran on the scheduler's workers
    assert_same_store(tmp_path / "quake.zarr", single_patches)


def test_patches_into_a_folder_the_workers_cannot_see_are_refused(scheduler, tmp_path, private):
    patches = shlex.join([str(GEOSLIDE), *_patches_args(f"{private}/out/quake.zarr"), "--scheduler", scheduler])
    script = f'{patches}; rc=$?; test -z "$(ls -A {private})" && exit $rc'
    line = one_error_line(run_private(private, script, tmp_path))
    assert f"a worker cannot see {private}/out: use a shared volume or object storage" in line


# ---------------------------------------------------------------- map


def test_a_model_the_workers_cannot_see_is_named(scheduler, tmp_path, private):
    model = ROOT / "geoslide" / "_models" / "demo"
    run = shlex.join([str(GEOSLIDE), "map", "--stac-query", json.dumps(POST), "--model", f"{private}/model",
                      "--out", "map.zarr", "--scheduler", scheduler])
    script = f'cp -r {shlex.quote(str(model))} "{private}/model" && {run}'
    line = one_error_line(run_private(private, script, tmp_path))
    assert f"a worker cannot see {private}/model: use a shared volume or object storage" in line


# ---------------------------------------------------------------- pipelines


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def single_run(tiny_yaml, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("single-run")
    done = geoslide(cwd, "run", str(tiny_yaml), "--work", "work")
    assert done.returncode == 0, done.stderr
    return cwd / "work"


@pytest.mark.heavy
def test_run_on_a_cluster_writes_what_the_single_process_run_writes(scheduler, tiny_yaml, single_run, tmp_path):
    """Same patch store; a trained model and a report with the same tables (2 ranks train other weights)."""
    before = transitions(scheduler)
    done = geoslide(tmp_path, "run", str(tiny_yaml), "--work", "work", "--scheduler", scheduler)
    assert done.returncode == 0, done.stderr
    assert transitions(scheduler) > before + 100  # patches, ranks and map chunks ran there
    work = tmp_path / "work"
    assert_same_store(work / "patches.zarr", single_run / "patches.zarr")
    assert (work / "models" / "small" / "model.safetensors").is_file()
    got, want = (pd.read_csv(w / "report.csv") for w in (work, single_run))
    assert list(got["table"]) == list(want["table"]) and list(got["value"]) == list(want["value"])
    assert (work / "maps" / "tiny--small.zarr").is_dir()


def test_run_with_a_work_folder_the_workers_cannot_see_is_refused_first(scheduler, tiny_yaml, tmp_path, private):
    """The chart's old training Job: `geoslide run --work` on the Job's own /tmp."""
    run = shlex.join([str(GEOSLIDE), "run", str(tiny_yaml), "--work", f"{private}/geoslide/run"])
    script = f'{run}; rc=$?; test -z "$(ls -A {private})" && exit $rc'
    line = one_error_line(run_private(private, script, tmp_path, env={"DASK_SCHEDULER_ADDRESS": scheduler}))
    assert f"a worker cannot see {private}/geoslide/run: use a shared volume or object storage" in line
