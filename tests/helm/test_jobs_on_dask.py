"""The chart's map and training Jobs as rendered, run against real `dask scheduler` + `dask worker` processes.

helm renders the chart; the map Job's and the training Job's container command, args and env are
taken from the manifests and run as they are, with local stand-ins only for what Kubernetes provides:

- ``DASK_SCHEDULER_ADDRESS``: a scheduler with two worker processes whose cwd is not the Job's;
- the mounted paths (the shared volume, the Job's ``/tmp`` emptyDir, the pipeline ConfigMap at
  ``/etc/geoslide``): each mount path is replaced by a local folder where an argument or an env
  value starts with it, and the ConfigMap's ``pipeline.yaml`` is written into its folder. Where
  ``unshare --mount`` is permitted the Job's ``/tmp`` is a private tmpfs the workers cannot see, as
  in the cluster; the shared volume's folder is seen by the workers, as the PVC is;
- ``geoslide`` is the command beside this interpreter, and env taken from Secrets (``secretKeyRef``:
  the object-store credentials) is left out, as neither variant below uses the object store.

Value sets:

- ``default``: values.yaml plus what enabling the Jobs takes (a shared volume claim, ``trainJob.enabled``,
  ``mapJob.enabled`` with outputs on the shared volume) and a map query for the bundled demo catalog
  that the default ``mapJob.catalog`` (empty) searches; the default training pipeline runs as it is;
- ``example``: ci/example-values.yaml with ``shared-folder-values.yaml`` over it, which changes only
  the map Job's catalog, STAC query, model and output paths (the bundled demo catalog and model
  and the shared volume, since earth-search and the example's s3:// paths cannot be reached
  offline) and the pipeline's sources the same way, plus the pipeline's patch size, stride,
  epochs and model width, so that the bundled 2 km scene gives a training batch and a CPU finishes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import xarray as xr
import yaml
from dask_processes import dask_cluster, in_private_folder, private_mounts_work, transitions
from test_helm import EXAMPLE, by_kind, component, helm, one, render  # noqa: F401 (helm is a fixture)

HERE = Path(__file__).parent
DEMO_POST = ('{"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}, '
             '"bbox": null, "datetime": null}')  # null drops the default query's keys
VALUES = {
    "default": ("--set", "sharedVolume.existingClaim=geoslide-shared,trainJob.enabled=true,mapJob.enabled=true",
                "--set", "mapJob.out=/shared/maps/demo-quake.zarr,mapJob.vectors=/shared/maps/demo-quake.parquet",
                "--set-json", f"mapJob.stacQuery={DEMO_POST}"),
    "example": ("-f", str(EXAMPLE), "-f", str(HERE / "shared-folder-values.yaml")),
}


@pytest.fixture(scope="module")
def dask(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("dask")) as processes:
        yield processes


class Pod:
    """One Job's container as Kubernetes would start it, with local folders for its mounts."""

    def __init__(self, job: dict, configmaps: dict[str, dict], shared: Path, root: Path) -> None:
        spec = job["spec"]["template"]["spec"]
        (self.container,) = spec["containers"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        self.folders: dict[str, Path] = {}
        self.private: Path | None = None
        self.isolated = False
        for mount in self.container["volumeMounts"]:
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                folder = shared
            else:
                folder = root / mount["name"]
                folder.mkdir(parents=True)
            if "configMap" in volume:
                data = configmaps[volume["configMap"]["name"]]["data"]
                for item in volume["configMap"]["items"]:
                    (folder / item["path"]).write_text(data[item["key"]])
            if "emptyDir" in volume and mount["mountPath"] == "/tmp":
                self.private = folder
            self.folders[mount["mountPath"]] = folder

    def local(self, text: str) -> str:
        """``text`` with a leading mount path replaced by its local folder."""
        for mount_path, folder in self.folders.items():
            if text == mount_path or text.startswith(mount_path + "/"):
                return str(folder) + text[len(mount_path):]
        return text

    def command(self) -> list[str]:
        program, *rest = self.container["command"]
        assert program == "geoslide"
        return [str(Path(sys.executable).with_name("geoslide")), *map(self.local, rest + self.container["args"])]

    def env(self, scheduler: str) -> dict[str, str]:
        env = {e["name"]: self.local(e["value"]) for e in self.container["env"] if "value" in e}
        assert env["DASK_SCHEDULER_ADDRESS"].startswith("tcp://")
        return {**os.environ, **env, "DASK_SCHEDULER_ADDRESS": scheduler}

    def run(self, scheduler: str, cwd: Path) -> subprocess.CompletedProcess:
        cmd = self.command()
        self.isolated = self.private is not None and private_mounts_work(self.private.parent / "probe")
        if self.isolated:
            cmd = in_private_folder(self.private, shlex.join(cmd))
        return subprocess.run(cmd, cwd=cwd, env=self.env(scheduler), capture_output=True, text=True, timeout=900)


def _pods(helm_path: str, values: str, tmp_path: Path) -> tuple[dict[str, Pod], Path]:
    docs = render(helm_path, *VALUES[values])
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    shared = tmp_path / "shared-volume"
    shared.mkdir()
    pods = {name: Pod(one(component(docs, "Job", name)), configmaps, shared, tmp_path / f"{name}-pod")
            for name in ("map", "train")}
    return pods, shared


@pytest.mark.heavy
@pytest.mark.parametrize("values", list(VALUES))
def test_the_jobs_command_lines_run_on_dask_processes(helm, dask, tmp_path, values):  # noqa: F811
    pods, shared = _pods(helm, values, tmp_path)
    cwd = tmp_path / "job-cwd"  # the image's WORKDIR; not the workers' cwd
    cwd.mkdir()
    before = transitions(dask.address)

    done = pods["map"].run(dask.address, cwd)
    assert done.returncode == 0, done.stderr
    out = Path(pods["map"].local(_flag(pods["map"].container["args"], "--out")))
    assert out.parent.parent == shared
    landslides = xr.open_zarr(out, consolidated=False)["mask"].values == 1
    assert 0.005 < landslides.mean() < 0.2
    assert len(gpd.read_parquet(out.with_suffix(".parquet"))) > 10
    assert out.with_suffix(".json").is_file()

    done = pods["train"].run(dask.address, cwd)
    assert done.returncode == 0, done.stderr
    work = Path(pods["train"].local(_flag(pods["train"].container["args"], "--work")))
    assert shared in work.parents
    config = yaml.safe_load((pods["train"].folders["/etc/geoslide"] / "pipeline.yaml").read_text())
    for model in config["models"]:
        assert (work / "models" / model["name"] / "model.safetensors").is_file()
    assert (work / "patches.zarr.done").is_file() and "## test patches" in (work / "report.md").read_text()
    f1 = pd.read_csv(work / "report.csv")["f1"]
    assert f1.between(0, 1).all()
    if values == "default":  # 20 epochs: the default pipeline's model learns
        assert f1.max() > 0.5, f"the default pipeline's model did not learn: test F1 {f1.max()}"

    assert transitions(dask.address) > before + 100  # the work ran on the workers
    assert list(dask.worker_cwd.iterdir()) == []
    for pod in pods.values():  # a private /tmp leaves its folder empty out here: the workers never saw it
        if pod.isolated:
            assert list(pod.private.iterdir()) == []


def _flag(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]
