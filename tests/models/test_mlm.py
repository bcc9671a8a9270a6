"""STAC MLM items of model directories: the bundled one and what training writes, against the official schemas."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from stac_schemas import OfflineValidator, fetch_schemas
from synthetic import synthetic_store

from geoslide.models import build_model
from geoslide.models.card import bundled_model_path, bundled_names, load_checkpoint, read_card
from geoslide.models.mlm import ITEM, mlm_item, write_mlm_item
from geoslide.training import TrainSpec
from geoslide.training.loop import fit

MLM = "https://stac-extensions.github.io/mlm/v1.5.2/schema.json"


def check_mlm_dir(model_dir: Path) -> dict:
    """The directory's item.json validated, and its facts checked against the files it describes."""
    d = json.loads((model_dir / ITEM).read_text())
    used = OfflineValidator(fetch_schemas()).check(d)
    assert MLM in used and any("/file/" in u for u in used) and any("/classification/" in u for u in used)
    for asset in d["assets"].values():  # every asset: a file of the directory, its size and sha2-256 multihash
        data = (model_dir / asset["href"]).read_bytes()
        assert asset["file:size"] == len(data)
        assert asset["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()
    listed = {Path(a["href"]).name for a in d["assets"].values()}
    assert listed == {p.name for p in model_dir.iterdir() if p.is_file() and p.name != ITEM}
    card = read_card(model_dir)
    props = d["properties"]
    [inp], [out] = props["mlm:input"], props["mlm:output"]
    assert inp["bands"] == list(card.bands) and inp["input"]["shape"][1] == len(card.bands)
    if card.normalise == "fixed":
        assert [s["mean"] for s in inp["value_scaling"]] == pytest.approx(card.mean)
        assert [s["stddev"] for s in inp["value_scaling"]] == pytest.approx(card.std)
    else:  # scaled per scene: no fixed z-score to state, the pre-processing says how
        assert inp["value_scaling"] is None
        assert ("brightness" if card.normalise == "brightness" else "median") in inp["pre_processing_function"][
            "description"]
    assert props["mlm:framework"] == "PyTorch" and props["mlm:hyperparameters"]["threshold"] == card.threshold
    assert {c["value"]: c["name"] for c in out["classification:classes"]} == {0: "background", 1: "landslide"}
    weights = next(a for a in d["assets"].values() if "mlm:model" in a["roles"])
    assert [b["name"] for b in weights["raster:bands"]] == list(card.bands)
    model, _ = load_checkpoint(model_dir)
    assert props["mlm:total_parameters"] == sum(t.numel() for t in model.state_dict().values())
    return d


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_model_has_a_valid_mlm_item_that_the_code_reproduces(name):
    d = check_mlm_dir(bundled_model_path(name))
    again = mlm_item(bundled_model_path(name), datetime.fromisoformat(d["properties"]["datetime"])).to_dict()
    for item in (d, again):
        item["properties"].pop("mlm:framework_version")
        item["properties"].pop("processing:software")
        item["links"] = []
    assert again == d, f"regenerate it: python -m geoslide.models.mlm geoslide/_models/{name}"


def test_the_mlm_item_alone_rebuilds_the_model(tmp_path):
    """Architecture options, bands and normalisation from the item give the card's model outputs."""
    d = json.loads((bundled_model_path() / ITEM).read_text())
    props, card = d["properties"], read_card(bundled_model_path())
    hyper = props["mlm:hyperparameters"]
    model = build_model(card.architecture, props["mlm:input"][0]["input"]["shape"][1],
                        **{k: hyper[k] for k in card.params})
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(bundled_model_path() / d["assets"]["weights"]["href"])))
    x = torch.from_numpy(np.random.default_rng(0).random((1, len(card.bands), 64, 64), dtype=np.float32))
    scaling = props["mlm:input"][0]["value_scaling"]
    mean = torch.tensor([s["mean"] for s in scaling]).view(1, -1, 1, 1)
    std = torch.tensor([s["stddev"] for s in scaling]).view(1, -1, 1, 1)
    reference, _ = load_checkpoint(bundled_model_path())
    with torch.no_grad():
        torch.testing.assert_close(model.eval()((x - mean) / std), reference((x - mean) / std))


def test_training_writes_a_valid_mlm_item(tmp_path):
    store = synthetic_store(tmp_path / "s.zarr", n=24, size=32)
    out = tmp_path / "model"
    spec = TrainSpec(model="unet", model_params={"base_filters": 4, "depth": 2}, epochs=2, batch_size=8, lr=1e-2,
                     patience=None)
    fit(store.path, spec, out)
    d = check_mlm_dir(out)
    assert d["properties"]["mlm:hyperparameters"]["base_filters"] == 4
    assert {"card", "metrics", "training", "weights"} <= set(d["assets"])


def test_an_older_model_directory_gets_its_item(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(bundled_model_path(), old)
    (old / ITEM).unlink()
    write_mlm_item(old)
    check_mlm_dir(old)
