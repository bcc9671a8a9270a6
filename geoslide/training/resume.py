"""Resumable training state: model and optimiser tensors in safetensors, the rest in JSON.

``DIR/state-<step>.safetensors`` holds ``model.<name>`` and ``optim.<param>.<key>`` tensors;
``DIR/state.json`` names that file and holds the optimiser's param groups, the scheduler state and
the loop counters. The tensors are written first under a new name and the JSON is renamed into
place last, so a process killed at any moment leaves a consistent state (the old or the new).
``DIR`` is a folder or an ``s3://`` prefix (each file is then one uploaded object).
Nothing is pickled, so a state from an untrusted place cannot run code when loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch import nn

from geoslide.errors import ModelError, OutputError
from geoslide.fileio import (
    check_not_link,
    check_writable,
    is_file,
    join,
    list_names,
    makedirs,
    parent,
    read_bytes,
    read_text,
    remove,
    write_atomic,
    write_text,
)
from geoslide.models.card import cpu_state, unwrap

INFO = "state.json"
LAST = "last"
#: The only tensor file names a state may name: a file of its own folder, never a path.
TENSORS = re.compile(r"state-[0-9]{1,12}\.safetensors")
#: What a training run writes into its folder (besides ``last/``).
RUN_FILES = ("model.json", "model.safetensors", "metrics.csv", "training.png")


def check_run_folder(out: str | Path) -> None:
    """An OutputError, before training, if ``out`` holds files that no geoslide run wrote there.

    A folder is a run's when it is empty or missing, holds a saved state (``last/state.json``), or
    holds nothing but ``last/`` (a run killed before its first state was complete). Outputs that are
    symbolic links are refused too: geoslide neither replaces nor writes through them.
    """
    check_writable(out)
    names = [n for n in list_names(out) if not n.startswith(".")]
    if names and not is_file(join(out, LAST, INFO)) and set(names) != {LAST}:
        raise OutputError(f"{out} holds files geoslide did not write there ({', '.join(names[:3])}); train into an "
                          "empty or new --out")
    for name in (*RUN_FILES, LAST):
        check_not_link(join(out, name))


def save_state(out: str | Path, model: nn.Module, optimiser: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, info: dict[str, Any]) -> None:
    """Write the full training state into ``out`` (tensors first, the JSON that validates them last)."""
    makedirs(out)
    tensors = {f"model.{k}": v for k, v in cpu_state(model).items()}
    optim = optimiser.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for param, state in optim["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{param}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param), {})[key] = value
    name = f"state-{info.get('step', 0)}.safetensors"
    write_atomic(join(out, name), lambda p: save_file(tensors, p))
    meta = {"info": info, "tensors": name, "param_groups": optim["param_groups"], "optim_scalars": scalars,
            "scheduler": _plain(scheduler.state_dict())}
    write_text(join(out, INFO), json.dumps(meta))
    for old in list_names(out):
        if old.startswith("state-") and old.endswith(".safetensors") and old != name:
            remove(join(out, old))


def load_state(out: str | Path, model: nn.Module, optimiser: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, expect_spec: dict[str, Any]
               ) -> dict[str, Any] | None:
    """Restore a state written by :func:`save_state`; None if there is none.

    A state written for another training spec is an error (resuming it would mix two runs).
    """
    try:
        text = read_text(join(out, INFO))
    except (FileNotFoundError, NotADirectoryError):
        return None
    meta = _checked_meta(text, out)
    if meta["info"].get("spec") != expect_spec:
        raise ModelError(f"{parent(out)} holds a run with other training options; pick a new --out or delete it")
    tensors = load_safetensors(read_bytes(join(out, meta["tensors"])))
    unwrap(model).load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, param, key = name.split(".", 2)
            state.setdefault(int(param), {})[key] = value
    for param, values in meta["optim_scalars"].items():
        state.setdefault(int(param), {}).update(values)
    optimiser.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    return meta["info"]


def _checked_meta(text: str, out: str | Path) -> dict[str, Any]:
    """The parsed ``state.json``, its tensor file confined to ``out``; a ModelError if it is not one of ours."""
    hint = f"delete {out} to restart the run from its last checkpoint, or pick a new --out"
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{join(out, INFO)} is not valid JSON ({exc.msg}); {hint}") from None
    kinds = {"info": dict, "tensors": str, "param_groups": list, "optim_scalars": dict, "scheduler": dict}
    if not isinstance(meta, dict) or any(not isinstance(meta.get(k), t) for k, t in kinds.items()):
        raise ModelError(f"{join(out, INFO)} is not a geoslide training state; {hint}")
    if not TENSORS.fullmatch(meta["tensors"]):
        raise ModelError(f"{join(out, INFO)} names tensor file {meta['tensors']!r}, not a state-STEP.safetensors "
                         f"of its own folder; it was not written by geoslide: {hint}")
    return meta


def _plain(value: Any) -> Any:
    """JSON-able copy of a scheduler state (tensors become lists, callables are dropped)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if torch.is_tensor(value):
        return value.tolist()
    return value
