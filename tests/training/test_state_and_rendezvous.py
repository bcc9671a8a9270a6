"""Training state and rendezvous trust: a tampered state.json opens no file; rank 0 listens on its own address."""

from __future__ import annotations

import json
import shutil
import socket
from datetime import timedelta

import pytest
import torch.distributed as dist
from synthetic import synthetic_store

from geoslide.errors import ModelError
from geoslide.training import TrainSpec
from geoslide.training.distributed import free_port, rendezvous_store
from geoslide.training.loop import fit

SPEC = TrainSpec(model="unet", model_params={"base_filters": 4, "depth": 2}, epochs=1, batch_size=8, patience=None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("state")
    store = synthetic_store(root / "s.zarr", n=16, size=32)
    fit(store.path, SPEC, root / "model")
    return store, root / "model"


@pytest.mark.parametrize("name", ["../../outside/state-1.safetensors", "{outside}/state-1.safetensors",
                                  "state-1.safetensors/../../../outside/state-1.safetensors", "/etc/passwd",
                                  "state-1.safetensors\n", 7, None])
def test_a_state_naming_a_file_outside_its_folder_is_refused(trained, tmp_path, name):
    store, model = trained
    run = tmp_path / "run" / "model"
    shutil.copytree(model, run)
    outside = tmp_path / "outside"
    outside.mkdir()
    tensors = json.loads((run / "last" / "state.json").read_text())["tensors"]
    shutil.copy(run / "last" / tensors, outside / "state-1.safetensors")  # a valid file: loading it would work
    state = json.loads((run / "last" / "state.json").read_text())
    state["tensors"] = name.format(outside=outside) if isinstance(name, str) else name
    (run / "last" / "state.json").write_text(json.dumps(state))
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    with pytest.raises(ModelError, match="not written by geoslide|not a geoslide training state"):
        fit(store.path, SPEC, run)
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_a_state_json_that_is_not_json_is_a_one_line_error(trained, tmp_path):
    store, model = trained
    shutil.copytree(model, tmp_path / "m")
    (tmp_path / "m" / "last" / "state.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON") as info:
        fit(store.path, SPEC, tmp_path / "m")
    assert "\n" not in str(info.value)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_rank_zero_listens_on_its_own_address_only():
    """127.0.0.2 reaches this machine's loopback too: torch's own store answers there, geoslide's does not."""
    default = dist.TCPStore("127.0.0.1", 0, 1, True, timedelta(seconds=5))
    assert _accepts("127.0.0.2", default.port)  # the reference: torch binds every interface
    port = free_port("127.0.0.1")
    store = rendezvous_store(f"tcp://127.0.0.1:{port}", 0, 1, 5)
    store.set("k", "v")
    client = rendezvous_store(f"tcp://127.0.0.1:{port}", 1, 1, 5)
    assert client.get("k") == b"v"
    assert not _accepts("127.0.0.2", port)
