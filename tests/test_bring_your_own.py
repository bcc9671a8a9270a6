"""A user's own tiles end to end through the CLI: two folders -> import -> train -> evaluate -> map --tiles.

The two folders differ as two published datasets do: GeoTIFF 547 x 512 with nodata corners and
0/255 masks in images/ + masks/ under train/ and test/, and PNG/JPEG 300 x 260 without
georeferencing with 0/1/85 masks named NAME_mask.png. The tile masks `map --tiles` writes are
checked against the model run once on each whole tile with torch, and its scores against a numpy
confusion matrix of those masks and the truth.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from inprocess import run_cli
from usertiles import write_georef, write_plain

from geoslide.data.store import PatchStore
from geoslide.inventory.codes import MASK_NODATA
from geoslide.models.card import load_checkpoint
from geoslide.models.normalise import Normalisation
from geoslide.models.outputs import final_logits

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # reading PNG masks


def _cli(*args):
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    geo, plain = write_georef(root / "a"), write_plain(root / "b")
    store = root / "mine.zarr"
    _cli("import", "tiles", root / "a", "--out", store, "--patch-size", "64", "--stride", "128")
    _cli("import", "tiles", root / "b", "--out", store, "--mask-values", "0,1,85", "--resolution", "0.5")
    _cli("train", "--patches", store, "--model", "unet", "--model-params", '{"base_filters": 4, "depth": 2}',
         "--out", root / "model", "--max-steps", "4", "--epochs", "2", "--batch-size", "8", "--lr", "0.01",
         "--val-fraction", "0.2")
    return root, geo, plain, store


@pytest.mark.heavy
def test_two_folders_import_into_one_store_train_and_evaluate(trained):
    root, geo, plain, store = trained
    meta = PatchStore.open(store).meta()
    assert set(meta.event) == {"valley", "hills"} and PatchStore.open(store).patch_size == 64
    assert set(meta[meta.event == "valley"].split) == {"train", "test"}
    assert json.loads((root / "model" / "model.json").read_text())["resolution"] == 0.5
    table = _cli("evaluate", "--model", root / "model", "--patches", store, "--split", "test", "--csv")
    rows = list(csv.DictReader(table.splitlines()))
    assert rows[0]["group"] == "mixed" and int(rows[0]["patches"]) == int((meta.split == "test").sum())
    assert {r["value"] for r in rows if r["group"] == "event"} <= {"valley", "hills"}


def _whole_tile_mask(model_dir, rgb, invalid):
    model, card = load_checkpoint(model_dir)
    image = rgb.astype(np.float32)
    image[:, invalid] = np.nan
    x = torch.from_numpy(Normalisation(card.mean, card.std).apply(image)[None])
    with torch.inference_mode():
        prob = torch.sigmoid(final_logits(model(x)))[0, 0].numpy()
    return prob, card.threshold


def test_map_tiles_writes_the_models_mask_per_tile_and_scores_them(trained):
    root, geo, plain, _ = trained
    out = root / "maps"
    printed = _cli("map", "--tiles", root / "b", "--model", root / "model", "--out", out, "--mask-values", "0,1,85")
    assert "4 tile masks" in printed
    with open(out / "summary.csv") as f:
        table = {r["tile"]: r for r in csv.DictReader(f)}
    pooled = np.zeros(4, np.int64)
    for record in plain:
        name = record["image"].relative_to(root / "b").with_suffix("").as_posix()
        with rasterio.open(out / f"{name}.png") as ds:
            mask = ds.read(1)
            assert ds.colormap(1)[1][:3] == (230, 30, 30)
        prob, threshold = _whole_tile_mask(root / "model", record["rgb"], np.zeros(mask.shape, bool))
        decided = np.abs(prob - threshold) > 1e-4  # tiled and whole-image inference agree up to float rounding
        np.testing.assert_array_equal(mask[decided], (prob >= threshold)[decided])
        truth = np.where(record["cloud"], MASK_NODATA, record["labels"])
        valid = truth != MASK_NODATA
        p, t = (mask == 1) & valid, (truth == 1) & valid
        counts = [int((~p & ~t & valid).sum()), int((p & ~t).sum()), int((~p & t).sum()), int((p & t).sum())]
        row = table[name]
        assert [int(row[k]) for k in ("tn", "fp", "fn", "tp")] == counts
        assert int(row["landslide_pixels"]) == int((mask == 1).sum())
        assert float(row["landslide_m2"]) == pytest.approx(0.25 * (mask == 1).sum())  # trained at 0.5 m
        pooled += counts
    scores = json.loads((out / "scores.json").read_text())
    assert [scores[k] for k in ("tn", "fp", "fn", "tp")] == pooled.tolist()
    tn, fp, fn, tp = pooled
    if tp:
        assert scores["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_map_tiles_keeps_georeferencing_and_refuses_a_used_folder(trained, tmp_path):
    root, geo, _, _ = trained
    out = tmp_path / "maps"
    _cli("map", "--tiles", root / "a" / "valley" / "test" / "images", "--model", root / "model", "--out", out)
    written = sorted(out.glob("*.tif"))
    assert [p.name for p in written] == ["tile_0.tif", "tile_1.tif"]
    with rasterio.open(written[0]) as ds, rasterio.open(geo[2]["image"]) as src:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
        assert (ds.read(1)[geo[2]["nodata"]] == MASK_NODATA).all()  # the nodata corner is nodata in the map
    done = subprocess.run([sys.executable, "-m", "geoslide.cli", "map", "--tiles", str(root / "b"), "--model",
                           str(root / "model"), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "not an empty folder" in done.stderr
