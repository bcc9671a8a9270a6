"""Data-parallel training on a real 2-process LocalCluster: one-process equality, a killed worker, connecting."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from synthetic import blob_patches

from geoslide.cluster import SCHEDULER_ENV, ClusterError, ClusterSpec, cluster_client, connect, worker_info
from geoslide.data.store import COLUMNS, PatchStore
from geoslide.errors import ConfigError, ModelError, PatchStoreError
from geoslide.models import build_model
from geoslide.training import TrainSpec
from geoslide.training.distributed import eligible_workers, free_port, plan_group, train_distributed
from geoslide.training.loop import fit

# No batch norm (per-rank statistics on CPU) and no nodata (per-rank valid-pixel means): with
# these, 2 ranks of 4 compute the same mean gradient as 1 process with the global batch of 8.
SPEC = TrainSpec(model="unet", model_params={"base_filters": 4, "depth": 2, "norm": "none"}, loss="bce",
                 epochs=5, batch_size=8, lr=3e-3, patience=None, augment=True)



def clean_store(path, n: int = 40, size: int = 32) -> PatchStore:
    """The synthetic blobs without nodata, 60/20/20 train/val/test in row order."""
    images, masks = blob_patches(n, size, 2, seed=0)
    images = np.where(np.isnan(images), np.float32(0.2), images)
    masks = np.where(masks == 1, 1, 0).astype(np.uint8)
    store = PatchStore.create(path, ["b0", "b1"], size)
    meta = pd.DataFrame({c: np.zeros(n, dtype=object if t == "str" else t) for c, t in COLUMNS.items()})
    meta["event"], meta["sensor"], meta["item_id"], meta["trigger"] = "ev", "sat", "x", "x"
    meta["crs"], meta["resolution"] = "EPSG:32645", 3.0
    meta["landslide_fraction"] = masks.mean(axis=(1, 2))
    meta["split"] = np.where(np.arange(n) < 0.6 * n, "train", np.where(np.arange(n) < 0.8 * n, "val", "test"))
    store.append(images, masks, meta)
    return store


@pytest.fixture(scope="module")
def local():
    client, cluster = connect(ClusterSpec(n_workers=2, threads_per_worker=1))
    yield client, cluster
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return clean_store(tmp_path_factory.mktemp("ddp") / "s.zarr")


@pytest.fixture(scope="module")
def reference(store, tmp_path_factory):
    """One process, global batch 8, same seed."""
    out = tmp_path_factory.mktemp("single")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(store.path, SPEC, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _model(out):
    return {k: v for k, v in load_file(str(_state_file(out))).items() if k.startswith("model.")}


def _sha(weights: dict[str, torch.Tensor]) -> str:
    sha = hashlib.sha256()
    for name in sorted(weights):
        sha.update(name.removeprefix("model.").encode())
        sha.update(weights[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def _assert_same_training(out, reference):
    ours, theirs = _model(out), _model(reference)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-5, atol=1e-5, msg=name)
    log, ref = (pd.read_csv(p / "metrics.csv").drop(columns="seconds") for p in (out, reference))
    pd.testing.assert_frame_equal(log, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.heavy
def test_two_ranks_train_like_one_process_via_the_environment(local, store, reference, tmp_path, monkeypatch):
    client, cluster = local
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    summary = train_distributed(store.path, SPEC, tmp_path)  # no client: connects to $DASK_SCHEDULER_ADDRESS
    assert (summary["world"], summary["backend"], summary["restarts"]) == (2, "gloo", 0)
    assert sorted(summary["workers"]) == sorted(worker_info(client))
    rank0, rank1 = summary["rank_weights_sha256"]
    assert rank0 == rank1 == _sha(_model(tmp_path))  # both ranks end with the weights rank 0 wrote
    _assert_same_training(tmp_path, reference)
    assert summary["epochs"] == SPEC.epochs and (tmp_path / "model.json").is_file()


def test_a_rank_error_from_bad_input_is_raised_without_restarts(local, store, tmp_path, caplog):
    client, _ = local
    bad = replace(SPEC, train_split="nope")
    with pytest.raises(PatchStoreError, match="no patches with split 'nope'"):
        train_distributed(store.path, bad, tmp_path, client=client)
    assert "restarting" not in caplog.text


def test_group_size_divides_the_global_batch(local):
    client, _ = local
    group = plan_group(client, SPEC, None, "GPU", wait=1, strict=True)
    assert group.world == 2 and group.backend == "gloo" and group.init_method.startswith("tcp://127.0.0.1:")
    odd = replace(SPEC, batch_size=5)
    assert plan_group(client, odd, None, "GPU", wait=1, strict=False).world == 1  # a restart goes on with 1 rank
    with pytest.raises(ConfigError, match="does not split over 2 workers"):
        plan_group(client, odd, 2, "GPU", wait=1, strict=True)
    with pytest.raises(ClusterError, match="asked for 3 workers"):
        plan_group(client, SPEC, 3, "GPU", wait=0.5, strict=True)


def test_workers_with_a_gpu_resource_are_chosen_with_nccl(local):
    client, _ = local
    workers = sorted(worker_info(client))

    async def offer(amount, dask_worker):
        await dask_worker.set_resources(GPU=amount)

    assert eligible_workers(client, "GPU") == (workers, "gloo")
    client.run(offer, 1, workers=[workers[1]])
    try:
        assert eligible_workers(client, "GPU") == ([workers[1]], "nccl")
        assert eligible_workers(client, None) == (workers, "gloo")
    finally:
        client.run(offer, 0, workers=[workers[1]])
    assert eligible_workers(client, "GPU") == (workers, "gloo")


def test_connect_by_address_and_by_environment(local, monkeypatch):
    _, cluster = local
    address = cluster.scheduler_address
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    with cluster_client() as client:
        assert client is None  # nothing asked: compute in this process
    with cluster_client(scheduler=address) as client:
        assert client.scheduler.address == address
        assert client.submit(os.getpid, pure=False).result() != os.getpid()
    monkeypatch.setenv(SCHEDULER_ENV, address)
    with cluster_client() as client:
        assert client.scheduler.address == address
        assert len(worker_info(client)) == 2
    assert cluster.status.name == "running"  # a cluster we only connected to stays up


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(SCHEDULER_ENV, f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler .*DASK_SCHEDULER_ADDRESS"):
        connect(ClusterSpec(timeout=1))


def test_a_killed_worker_ends_in_a_resumed_finished_training(local, store, reference, tmp_path, caplog):
    client, _ = local
    victim = sorted(worker_info(client))[0]  # rank 0: rendezvous host and writer
    pid = client.run(os.getpid, workers=[victim])[victim]
    box: dict = {}

    def train() -> None:
        try:
            box["summary"] = train_distributed(store.path, SPEC, tmp_path, client=client, timeout=30)
        except BaseException as exc:  # re-raised below
            box["error"] = exc

    thread = threading.Thread(target=train)
    thread.start()
    metrics, deadline = tmp_path / "metrics.csv", time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline and not (
            metrics.is_file() and len(pd.read_csv(metrics)) >= 2):
        time.sleep(0.02)
    assert thread.is_alive(), box  # killed mid-run, after epoch 1
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=180)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    summary = box["summary"]
    assert summary["restarts"] == 1 and summary["world"] == 2 and victim not in summary["workers"]
    assert "restarting the group" in caplog.text and "rank 0" in caplog.text
    assert list(pd.read_csv(metrics)["epoch"]) == list(range(SPEC.epochs))
    assert (tmp_path / "model.json").is_file()
    _assert_same_training(tmp_path, reference)  # resuming at the last epoch boundary is exact


@pytest.mark.parametrize(("norm", "kind"), [("batch", torch.nn.BatchNorm2d), ("group", torch.nn.GroupNorm),
                                            ("none", None)])
def test_unet_norm_options_for_data_parallel_training(norm, kind):
    model = build_model("unet", 2, base_filters=4, depth=2, norm=norm)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d | torch.nn.GroupNorm)]
    assert {type(m) for m in norms} == ({kind} if kind else set())
    convs = [m for m in model.down.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all((m.bias is None) == (kind is not None) for m in convs)  # a bias only where no norm follows
    x = torch.randn(3, 2, 32, 32)
    with torch.no_grad():
        alone = model.eval()(x[:1])
        together = model(x)[:1]
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-5)  # eval: per-sample in every case
    with torch.no_grad():  # training mode: only batch norm lets a sample see its batch mates
        same = torch.allclose(model.train()(x[:1]), model(x)[:1], rtol=1e-5, atol=1e-5)
    assert same is (kind is not torch.nn.BatchNorm2d)
    with pytest.raises(ModelError, match="norm 'layer' unknown"):
        build_model("unet", 2, norm="layer")


def _state_file(out):
    """The tensors file that ``OUT/last/state.json`` names."""
    return out / "last" / json.loads((out / "last" / "state.json").read_text())["tensors"]
