"""Choosing the training and validation splits from the command line, and the resolution a model records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from inprocess import run_cli
from synthetic import synthetic_store

from geoslide.errors import ConfigError
from geoslide.models.card import read_card
from geoslide.training import TrainSpec
from geoslide.training.loop import _resolution, held_out

SMALL = {"base_filters": 4, "depth": 2}


def _cli_train(store_path, out, *extra):
    return run_cli("train", "--patches", store_path, "--model", "unet", "--model-params", json.dumps(SMALL),
                   "--epochs", "1", "--batch-size", "4", "--out", out, *extra)


@pytest.mark.heavy
def test_a_store_without_validation_trains_with_val_fraction_and_the_error_names_real_options(tmp_path):
    store = synthetic_store(tmp_path / "s.zarr", n=20, size=32)
    store.set_column("split", np.where(np.arange(20) < 15, "train", "test"))
    store.set_column("item_id", [f"tile{i // 2}" for i in range(20)])  # two patches per source tile
    refused = _cli_train(store.path, tmp_path / "m0")
    assert refused.returncode == 2 and "--val-fraction" in refused.stderr and "--val-split" in refused.stderr
    done = _cli_train(store.path, tmp_path / "m1", "--val-fraction", "0.25", "--seed", "1")
    assert done.returncode == 0, done.stderr
    card = read_card(tmp_path / "m1")
    assert card.training["n_train"] in (15 - 4, 15 - 3)  # two of the 8 training tiles (one has 1 patch) validate
    assert card.training["spec"]["val_fraction"] == 0.25
    swapped = _cli_train(store.path, tmp_path / "m2", "--train-split", "test", "--val-split", "train")
    assert swapped.returncode == 0, swapped.stderr
    assert read_card(tmp_path / "m2").training["n_train"] == 5


def test_held_out_draws_whole_tiles_when_there_are_enough():
    meta = pd.DataFrame({"item_id": [f"t{i // 4}" for i in range(40)]})
    rows = np.arange(40)
    train, val = held_out(meta, rows, 0.2, seed=0)
    assert len(val) == 8 and not set(meta.item_id[train]) & set(meta.item_id[val])
    assert sorted([*train, *val]) == rows.tolist()
    few = pd.DataFrame({"item_id": ["scene"] * 10})
    train, val = held_out(few, np.arange(10), 0.3, seed=0)
    assert len(val) == 3 and len(train) == 7  # one source: patches are drawn


def test_resolutions_within_the_tolerance_are_one():
    assert _resolution(pd.DataFrame({"resolution": [0.5, 0.50004, 0.49998]})) == pytest.approx(0.5)
    assert _resolution(pd.DataFrame({"resolution": [0.5, 0.6]})) is None
    assert _resolution(pd.DataFrame({"resolution": [0.5, np.nan]})) is None


def test_val_fraction_must_be_a_share():
    with pytest.raises(ConfigError, match="val_fraction"):
        TrainSpec(val_fraction=1.5)
