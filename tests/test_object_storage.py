"""Object storage end to end: maps, catalogs, patch stores and training on a real S3 API and over HTTP.

Every run here is compared with the same run on local files: the arrays, polygons and weights must
be identical. The S3 API is moto_server and the web server nginx (with range requests), both
started on loopback by the tests (see ``servers.py``); the CLI runs as the installed ``geoslide``
script in a subprocess whose environment alone names the endpoint and the credentials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from geopandas.testing import assert_geodataframe_equal
from safetensors.torch import load as load_safetensors
from servers import running_nginx, s3_environment

from geoslide.catalog.bundled import demo_catalog_path
from geoslide.catalog.search import search
from geoslide.data.store import PatchStore
from geoslide.fileio import exists, fetched, filesystem, gdal_path, is_file, join, read_bytes, read_text, write_text
from geoslide.mapping import modelcache
from geoslide.mapping.job import MapSpec, run_map
from geoslide.mapping.spec import InferenceSpec
from geoslide.mapping.store import stored_array
from geoslide.models.card import bundled_model_path

QUAKE_POST = {"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}
MAP = ["map", "--stac-query", json.dumps(QUAKE_POST), "--chunk", "256", "--cog"]
CATALOG = demo_catalog_path().parent
SMALL_UNET = json.dumps({"base_filters": 4, "depth": 2})


def _command() -> list[str]:
    """The installed CLI: the venv's ``geoslide`` script (``-m geoslide.cli`` where there is none)."""
    script = Path(sys.executable).with_name("geoslide")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "geoslide.cli"]


def _geoslide(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*_command(), *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


def _new_bucket(env: dict[str, str]) -> str:
    """A new bucket on the S3 API that ``env`` names."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        fs, _ = filesystem(f"s3://{name}")
        fs.mkdir(name)
    return f"s3://{name}"


def _upload(local: Path, url: str) -> None:
    fs, path = filesystem(url)
    fs.put(str(local), path, recursive=True)


def _inventory() -> str:
    return search({"collections": ["demo-quake-inventory"]})[0].assets["labels-parquet"].get_absolute_href()


@pytest.fixture(scope="module")
def local_map(tmp_path_factory) -> Path:
    """The reference: the demo quake mapped with local files only."""
    folder = tmp_path_factory.mktemp("local-map")
    done = _geoslide(*MAP, "--out", str(folder / "quake.zarr"), "--vectors", str(folder / "quake.parquet"),
                     "--model", str(bundled_model_path()))
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def s3_map(s3_endpoint, tmp_path_factory) -> SimpleNamespace:
    """The same map with --out, --vectors and --model on S3, run in an empty working folder."""
    env = {**os.environ, **s3_environment(s3_endpoint)}
    bucket = _new_bucket(env)
    cwd = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as patch:  # module scope: no monkeypatch fixture
        for key, value in s3_environment(s3_endpoint).items():
            patch.setenv(key, value)
        _upload(bundled_model_path(), f"{bucket}/models/demo")
    done = _geoslide(*MAP, "--out", f"{bucket}/maps/quake.zarr", "--vectors", f"{bucket}/maps/quake.parquet",
                     "--model", f"{bucket}/models/demo", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return SimpleNamespace(bucket=bucket, maps=f"{bucket}/maps", cwd=cwd, stdout=done.stdout)


def _assert_same_map(got: str | Path, want: str | Path) -> None:
    for variable in ("probability", "mask"):
        np.testing.assert_array_equal(stored_array(got, variable)[...], stored_array(want, variable)[...])


def test_map_written_to_s3_equals_the_local_map(local_map, s3_map, s3_env):
    _assert_same_map(f"{s3_map.maps}/quake.zarr", local_map / "quake.zarr")
    for variable in ("probability", "mask"):
        with rasterio.open(gdal_path(f"{s3_map.maps}/quake.{variable}.tif")) as got, \
                rasterio.open(local_map / f"quake.{variable}.tif") as want:
            assert got.profile == want.profile and got.overviews(1) == want.overviews(1)
            np.testing.assert_array_equal(got.read(), want.read())
    assert read_bytes(f"{s3_map.maps}/quake.png") == (local_map / "quake.png").read_bytes()
    assert f"{s3_map.maps}/quake.zarr: map store; STAC item {s3_map.maps}/quake.json" in s3_map.stdout


def test_vectors_written_to_s3_equal_the_local_ones(local_map, s3_map, s3_env):
    for suffix, read in ((".parquet", gpd.read_parquet), (".geojson", gpd.read_file)):
        with fetched(f"{s3_map.maps}/quake{suffix}") as got:
            remote, local = read(got), read(local_map / f"quake{suffix}")
        assert len(local) > 10
        assert_geodataframe_equal(remote, local)


def test_the_map_item_on_s3_points_at_its_neighbours(local_map, s3_map, s3_env):
    got = json.loads(read_text(f"{s3_map.maps}/quake.json"))
    want = json.loads((local_map / "quake.json").read_text())
    assert {k: a["href"] for k, a in got["assets"].items()} == {k: a["href"] for k, a in want["assets"].items()}
    assert got["assets"]["zarr"]["href"] == "./quake.zarr"
    assert got["properties"]["geoslide:model"]["path"] == f"{s3_map.bucket}/models/demo"


def test_evaluating_a_map_and_labels_on_s3_gives_the_local_scores(local_map, s3_map, s3_env):
    from geoslide.evaluation.score import evaluate_map

    labels = f"{s3_map.bucket}/labels/quake.parquet"
    _upload(Path(_inventory().removeprefix("file://")), labels)
    assert evaluate_map(f"{s3_map.maps}/quake.zarr", labels) == evaluate_map(local_map / "quake.zarr", _inventory())


def test_outputs_on_s3_leave_nothing_in_the_working_folder(s3_map):
    assert list(s3_map.cwd.iterdir()) == []  # no folder named 's3:' (or anything else)


def test_vectors_to_s3_never_create_a_local_folder(s3_bucket, tmp_path, monkeypatch):
    from geoslide.inventory.read import read_inventory
    from geoslide.inventory.write import write_vectors

    monkeypatch.chdir(tmp_path)
    polygons = read_inventory(_inventory())
    parquet, geojson = write_vectors(polygons, f"{s3_bucket}/deep/er/v.parquet")
    assert (parquet, geojson) == (f"{s3_bucket}/deep/er/v.parquet", f"{s3_bucket}/deep/er/v.geojson")
    assert is_file(parquet) and is_file(geojson) and list(tmp_path.iterdir()) == []


def test_map_reads_its_cogs_from_a_catalog_served_over_http(local_map, tmp_path):
    with running_nginx(CATALOG) as base:
        href = search(QUAKE_POST, f"{base}/catalog.json")[0].assets["image"].get_absolute_href()
        assert href.startswith(f"{base}/demo-quake/")  # read with /vsicurl/ range requests
        result = run_map(QUAKE_POST, MapSpec(out=str(tmp_path / "http.zarr"), inference=InferenceSpec(chunk=256),
                                             quicklook=False), catalog=f"{base}/catalog.json")
    _assert_same_map(result.out, local_map / "quake.zarr")


def test_map_reads_its_cogs_from_a_catalog_on_s3(local_map, s3_bucket, tmp_path):
    _upload(CATALOG, f"{s3_bucket}/demo")
    href = search(QUAKE_POST, f"{s3_bucket}/demo")[0].assets["image"].get_absolute_href()
    assert href.startswith(f"{s3_bucket}/demo/demo-quake/")  # read with /vsis3/
    result = run_map(QUAKE_POST, MapSpec(out=str(tmp_path / "s3cat.zarr"), inference=InferenceSpec(chunk=256),
                                         quicklook=False), catalog=f"{s3_bucket}/demo/catalog.json")
    _assert_same_map(result.out, local_map / "quake.zarr")


def _in_parallel(*runs: list[str]) -> None:
    """Run CLI commands side by side (the local and the S3 variant); each must succeed."""
    procs = [subprocess.Popen([*_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in runs]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err


def _patches(where: str, labels: str) -> list[str]:
    return ["patches", "--stac-query", json.dumps(QUAKE_POST), "--labels", labels, "--out", f"{where}/p.zarr",
            "--patch-size", "64", "--empty", "keep", "--bands", "red", "green", "nir"]


def _train(where: str) -> list[str]:
    return ["train", "--patches", f"{where}/p.zarr", "--model", "unet", "--model-params", SMALL_UNET, "--out",
            f"{where}/model", "--epochs", "2", "--max-steps", "6", "--batch-size", "4", "--loss", "bce+dice",
            "--seed", "3"]


@pytest.mark.heavy
def test_training_with_patch_store_and_model_on_s3_equals_the_local_run(s3_bucket, tmp_path):
    labels = f"{s3_bucket}/labels/quake.parquet"
    _upload(Path(_inventory().removeprefix("file://")), labels)
    _in_parallel(_patches(str(tmp_path), _inventory()), _patches(s3_bucket, labels))
    _in_parallel(_train(str(tmp_path)), _train(s3_bucket))
    remote, local = PatchStore.open(f"{s3_bucket}/p.zarr"), PatchStore.open(tmp_path / "p.zarr")
    assert len(remote) == len(local) > 20
    np.testing.assert_array_equal(remote.images().compute(), local.images().compute())
    np.testing.assert_array_equal(remote.masks().compute(), local.masks().compute())
    pd.testing.assert_frame_equal(remote.meta(), local.meta())
    got = load_safetensors(read_bytes(f"{s3_bucket}/model/model.safetensors"))
    want = load_safetensors((tmp_path / "model" / "model.safetensors").read_bytes())
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    got, want = (json.loads(text) for text in (read_text(f"{s3_bucket}/model/model.json"),
                                                (tmp_path / "model" / "model.json").read_text()))
    assert got["training"].pop("store") == f"{s3_bucket}/p.zarr"
    assert got == {**want, "training": {k: v for k, v in want["training"].items() if k != "store"}}
    with fetched(f"{s3_bucket}/model/metrics.csv") as csv:
        pd.testing.assert_frame_equal(pd.read_csv(csv).drop(columns="seconds"),
                                      pd.read_csv(tmp_path / "model" / "metrics.csv").drop(columns="seconds"))
    assert read_bytes(f"{s3_bucket}/model/training.png")[:4] == b"\x89PNG"
    got, want = (json.loads(text) for text in (read_text(f"{s3_bucket}/model/item.json"),
                                                (tmp_path / "model" / "item.json").read_text()))
    assert got["assets"]["weights"]["file:checksum"] == want["assets"]["weights"]["file:checksum"]
    assert got["assets"]["weights"]["href"] == "./model.safetensors"
    state = json.loads(read_text(f"{s3_bucket}/model/last/state.json"))
    assert is_file(f"{s3_bucket}/model/last/{state['tensors']}") and state["info"]["step"] == 6
    again = _geoslide(*_train(s3_bucket), env=dict(os.environ))
    assert again.returncode == 0 and json.loads(again.stdout)["steps"] == 6  # resumed from last/ on S3: done


def test_the_model_cache_reloads_a_model_rewritten_on_s3(s3_bucket):
    url = f"{s3_bucket}/models/demo"
    _upload(bundled_model_path(), url)
    first = modelcache.load_model(url, "cpu")
    loads = modelcache.model_loads()
    assert modelcache.load_model(url + "/", "cpu") is first and modelcache.model_loads() == loads
    write_text(join(url, "model.json"), read_text(join(url, "model.json")) + " ")  # a new ETag
    again = modelcache.load_model(url, "cpu")
    assert again is not first and modelcache.model_loads() == loads + 1
    local, _ = modelcache.load_model(bundled_model_path(), "cpu")
    assert all(torch.equal(a, b) for a, b in zip(again[0].state_dict().values(), local.state_dict().values(),
                                                  strict=True))


def test_a_demo_catalog_written_to_s3_equals_the_local_one_and_is_searchable(s3_bucket, tmp_path):
    local = tmp_path / "demo"
    done = [_geoslide("demo", "--out", out, "--seed", "3", "--events", "tiny", "--sensors", "planetscope",
                      env=dict(os.environ), cwd=tmp_path) for out in (f"{s3_bucket}/demo", str(local))]
    assert [d.returncode for d in done] == [0, 0], done[0].stderr + done[1].stderr
    assert done[0].stdout.strip() == f"{s3_bucket}/demo/catalog.json" and list(tmp_path.iterdir()) == [local]
    fs, root = filesystem(f"{s3_bucket}/demo")
    remote = {p[len(root) + 1:] for p in fs.find(root)}
    assert remote == {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    for rel in (r for r in remote if r.endswith(".tif")):
        assert read_bytes(f"{s3_bucket}/demo/{rel}") == (local / rel).read_bytes()
    item = search({"ids": ["tiny-planetscope-post"]}, f"{s3_bucket}/demo")[0]
    assert item.assets["image"].get_absolute_href().startswith(f"{s3_bucket}/demo/tiny/")


def test_a_model_served_over_http_loads_like_the_local_one():
    with running_nginx(bundled_model_path()) as base:
        (model, card), (local, local_card) = (modelcache.load_model(m, "cpu") for m in (base, bundled_model_path()))
    assert card == local_card
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), local.state_dict().values(),
                                                  strict=True))


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "foo://bucket/x.zarr"], "unknown URL scheme 'foo'"),
    (["--out", "s3:///x.zarr"], "names no bucket"),
    (["--out", "s3://no-such-bucket/x.zarr"], "bucket 'no-such-bucket' does not exist"),
    (["--out", "https://127.0.0.1:9/x.zarr"], "read-only"),
    (["--out", "{bucket}/x.zarr", "--vectors", "s3://no-such-bucket/v.parquet"], "does not exist"),
    (["--out", "{bucket}/x.zarr", "--model", "{bucket}/no-model"], "is not a model directory"),
    (["--out", "{tmp}/x.zarr", "--catalog", "{bucket}/no-catalog"], "no STAC catalog at"),
])
def test_bad_urls_are_one_line_errors(s3_bucket, tmp_path, args, message):
    args = [a.format(bucket=s3_bucket, tmp=tmp_path) for a in args]
    done = _geoslide("map", "--stac-query", json.dumps(QUAKE_POST), *args, env=dict(os.environ), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not exists(f"{s3_bucket}/x.zarr") and not (tmp_path / "x.zarr").exists()


def test_missing_credentials_are_a_one_line_error(s3_bucket, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    for command in (["map", "--stac-query", json.dumps(QUAKE_POST), "--out", f"{s3_bucket}/x.zarr"],
                    ["train", "--patches", f"{s3_bucket}/p.zarr", "--model", "unet", "--out", str(tmp_path / "m")]):
        done = _geoslide(*command, env=env, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "no usable credentials" in done.stderr and done.stderr.count("\n") == 1
