"""Each seed pipeline's miniature run produces every table of its paper.

The miniature of a shipped pipeline (pipelines/<name>.yaml) keeps its train, models and evaluate
options and changes only what a CPU minute needs: demo scenes cut into patches instead of the
released dataset, small variants of the same architectures, one epoch. Table numbers are checked
against recomputations from the patch store with numpy (band means, landslide shares, patch counts,
study areas from an occupancy grid, F1 of a model from its own predictions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from geoslide.data.store import PatchStore
from geoslide.demo.catalog import write_demo
from geoslide.models.card import load_checkpoint
from geoslide.pipeline import run_pipeline
from geoslide.pipeline.config import parse_pipeline

PIPELINES = Path(__file__).parents[2] / "pipelines"
SMALL = {
    "unet": {"base_filters": 4, "depth": 2}, "resunet": {"base_filters": 4, "depth": 2},
    "attention-unet": {"base_filters": 4, "depth": 2}, "attention-resunet": {"base_filters": 4, "depth": 2},
    "adsms-unet": {"base_filters": 4, "depth": 2},
    "resunet50": {"encoder": "resnet18", "decoder_channels": [16, 16, 8, 8, 8]},
    "deeplabv3": {"encoder": "resnet18"}, "deeplabv3plus": {"encoder": "resnet18"}, "pspnet": {"encoder": "resnet18"},
    "upernet": {"encoder": "resnet18", "channels": 16}, "hrnet": {"width": 4, "modules": [1, 1, 1], "blocks": 1},
    "swinunet": {"dim": 12, "heads": [1, 2, 3, 6], "window": 4}, "fcn8s": {"base_filters": 4, "fc_width": 16},
    "linknet": {}, "segformer-b0": {},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Scenes of two events (uav, planetscope, sentinel2) and a third event for another dataset."""
    root = tmp_path_factory.mktemp("seed-demo")
    write_demo(root / "events", seed=5, events=["tiny", "demo-storm"], sensors=["uav", "planetscope", "sentinel2"],
               size_m=640)
    write_demo(root / "other", seed=6, events=["demo-quake"], sensors=["planetscope"], size_m=640)
    return root


def _source(catalog: Path, event: str, sensor: str) -> dict:
    return {"catalog": str(catalog), "labels": {"collections": [f"{event}-inventory"]},
            "stac_query": {"collections": [f"{event}-{sensor}"], "query": {"geoslide:phase": {"eq": "post"}}}}


def _shrink(config: dict, sensors: set[str]) -> dict:
    """The shipped options with small models, a few steps, and single-source models of the demo's sensors only."""
    config["train"].update(epochs=1, batch_size=4, max_steps=4)
    models = []
    for entry in config["models"]:
        if entry["model"] == "random-forest":
            models.append({**entry, "trees": 5, "pixels": 3000})
            continue
        if set(entry.get("sensors") or ()) - sensors:
            continue
        name = "segformer-b0" if entry["model"].startswith("segformer") else entry["model"]
        models.append({**entry, "model": name, "model_params": {**entry.get("model_params", {}), **SMALL[name]}})
    config["models"] = models
    return config


def _tables(work: Path) -> dict[str, pd.DataFrame]:
    rows = pd.read_csv(work / "report.csv")
    return {name: frame for name, frame in rows.groupby("table")}


def _occupied_km2(meta: pd.DataFrame, resolution: float) -> float:
    """Area covered by patch footprints, counted on a grid of ``resolution`` cells (independent of shapely)."""
    x0, y0 = meta["xmin"].min(), meta["ymin"].min()
    cols = np.rint((meta[["xmin", "xmax"]].to_numpy() - x0) / resolution).astype(int)
    rows = np.rint((meta[["ymin", "ymax"]].to_numpy() - y0) / resolution).astype(int)
    grid = np.zeros((rows.max() + 1, cols.max() + 1), dtype=bool)
    for (c0, c1), (r0, r1) in zip(cols, rows, strict=True):
        grid[r0:r1, c0:c1] = True
    return grid.sum() * resolution**2 / 1e6


def test_hr_gldd_miniature_has_table_1_and_the_three_collections(demo, tmp_path):
    config = _shrink(yaml.safe_load((PIPELINES / "hr-gldd.yaml").read_text()), {"planetscope"})
    config.pop("imports")
    config["patches"] = {"patch_size": 64, "stride": 64, "empty": "keep", "split": "random",
                         "bands": ["red", "green", "blue", "nir"],
                         "sources": [_source(demo / "events", e, "planetscope") for e in ("tiny", "demo-storm")]
                         + [_source(demo / "other", "demo-quake", "planetscope")]}
    config["evaluate"]["unseen_events"] = ["demo-quake"]
    report = run_pipeline(parse_pipeline(config), work=tmp_path)
    tables = _tables(tmp_path)
    names = {m["name"] for m in config["models"]}
    assert names == {"unet", "resunet", "attention-unet", "attention-resunet", "adsms-unet", "random-forest"}
    assert set(tables) == {"test patches, all events", "per event", "unseen event", "unseen events, together",
                           "seen events, mixed"}
    assert set(tables["per event"]["value"]) == {"tiny", "demo-storm"}
    assert set(tables["unseen event"]["value"]) == {"demo-quake"}
    for frame in tables.values():
        # every model has a row per group value (scores of a group without landslides or predictions are undefined)
        assert set(frame["model"]) == names and len(frame) == len(names) * frame["value"].nunique()
        assert {"precision", "recall", "f1", "iou", "patches"} <= set(frame.columns)
    store = PatchStore.open(tmp_path / "patches.zarr")
    meta, masks = store.meta(), store.masks().compute()
    dataset = pd.read_csv(tmp_path / "report-dataset.csv").set_index("event")
    assert list(dataset.columns) == ["patches", "study_area_km2", "landslides", "min_landslide_m2",
                                     "max_landslide_m2", "landslide_area_km2", "landslide_pct"]
    for event, group in meta.groupby("event"):
        row = dataset.loc[event]
        assert row["patches"] == len(group)
        assert row["study_area_km2"] == pytest.approx(_occupied_km2(group, 3.0), rel=1e-6)
        m = masks[group.index.to_numpy()]
        assert row["landslide_pct"] == pytest.approx(100 * (m == 1).sum() / (m != 255).sum(), rel=1e-6)
        assert row["landslide_area_km2"] == pytest.approx((m == 1).sum() * 9 / 1e6, rel=1e-6)
    assert dataset.loc["all", "patches"] == len(meta)
    assert "## dataset" in report and "## unseen event" in report


@pytest.mark.heavy
def test_landslide4sense_miniature_has_band_means_per_split_and_the_baselines(demo, tmp_path):
    config = _shrink(yaml.safe_load((PIPELINES / "landslide4sense.yaml").read_text()), set())
    config.pop("imports")
    config["patches"] = {"patch_size": 32, "stride": 32, "empty": "keep", "split": "random",
                         "sources": [_source(demo / "events", e, "sentinel2") for e in ("tiny", "demo-storm")]}
    run_pipeline(parse_pipeline(config), work=tmp_path)
    tables = _tables(tmp_path)
    assert set(tables) == {"test patches, mixed", "per event"}
    assert set(tables["test patches, mixed"]["model"]) == {"resunet", "unet", "pspnet", "deeplabv3plus", "fcn8s",
                                                           "linknet", "random-forest"}
    store = PatchStore.open(tmp_path / "patches.zarr")
    meta, images, masks = store.meta(), store.images().compute(), store.masks().compute()
    means = pd.read_csv(tmp_path / "report-band-means.csv")
    assert list(means.columns[:4]) == ["split", "class", "patches", "landslide_pct"]
    assert list(means.columns[4:]) == store.bands and set(means["split"]) == {"train", "val", "test"}
    for (split, cls), row in means.set_index(["split", "class"]).iterrows():
        rows = meta.index[meta["split"] == split].to_numpy()
        m, x = masks[rows], images[rows]
        assert row["patches"] == len(rows)
        assert row["landslide_pct"] == pytest.approx(100 * (m == 1).sum() / (m != 255).sum(), rel=1e-6)
        chosen = m == (1 if cls == "landslide" else 0)
        for b, band in enumerate(store.bands):
            assert row[band] == pytest.approx(x[:, b][chosen].mean(), rel=1e-5)
    # F1 of one network on the test split, from its own predictions at its 0.5 threshold
    model, card = load_checkpoint(tmp_path / "models" / "unet")
    assert card.threshold == 0.5  # tune_threshold: false, as the paper
    rows = meta.index[meta["split"] == "test"].to_numpy()
    x = (images[rows] - np.array(card.mean)[:, None, None]) / np.array(card.std)[:, None, None]
    with torch.no_grad():
        pred = torch.sigmoid(model(torch.from_numpy(x.astype("float32")))).numpy()[:, 0] >= 0.5
    truth = masks[rows]
    tp, fp, fn = (pred & (truth == 1)).sum(), (pred & (truth == 0)).sum(), (~pred & (truth == 1)).sum()
    mixed = tables["test patches, mixed"].set_index("model").loc["unet"]
    assert mixed["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0, abs=1e-9)


@pytest.mark.heavy
@pytest.mark.timeout(1800)  # 13 models: about two CPU minutes, much longer on a shared machine
def test_gdcld_miniature_has_tables_4_to_10(demo, tmp_path):
    # two sources of the demo (PlanetScope 3 m, Sentinel-2 10 m RGB) stand in for GDCLD's four
    config = _shrink(yaml.safe_load((PIPELINES / "gdcld.yaml").read_text()), {"planetscope"})
    config.pop("imports")
    config["train"]["batch_size"] = 2
    config["patches"] = {"patch_size": 32, "stride": 32, "empty": "keep", "split": "events",
                         "test_events": ["demo-storm"], "bands": ["red", "green", "blue"],
                         "sources": [_source(demo / "events", e, s) for e in ("tiny", "demo-storm")
                                     for s in ("planetscope", "sentinel2")]}
    config["datasets"] = [{"name": "hr-gldd", "patches": {
        "patch_size": 32, "stride": 32, "empty": "keep", "split": "random", "bands": ["red", "green", "blue"],
        "sources": [_source(demo / "other", "demo-quake", "planetscope")]}}]
    report = run_pipeline(parse_pipeline(config), work=tmp_path)
    tables = _tables(tmp_path)
    assert set(tables) == {
        "test patches, mixed", "per event", "per sensor", "per event x sensor",                       # Tables 5, 6
        "validation patches, mixed", "validation per event", "validation per sensor",                 # Table 4
        "validation per event x sensor",
        "single- vs multi-source, validation", "single- vs multi-source, unseen events",              # Tables 7, 8
        "cross-dataset: tested on hr-gldd", "cross-dataset: tested on gdcld",                         # Tables 9, 10
    }
    names = {m["name"] for m in config["models"]}
    assert {"segformer-b4", "unet", "resunet", "deeplabv3", "hrnet", "upernet", "swinunet"} < names
    assert set(tables["per event x sensor"]["value"]) == {"demo-storm / sentinel-2", "demo-storm / planetscope"}
    sources = tables["single- vs multi-source, validation"]
    assert sorted(zip(sources["source"], sources["value"], sources["model"], strict=True)) == [
        ("multiple source", "planetscope", "segformer-b4"),
        ("single source", "planetscope", "segformer-b4-planetscope")]
    per_sensor = tables["validation per sensor"].set_index(["model", "value"])
    for _, row in sources.iterrows():  # the comparison repeats the per-sensor scores of each model
        assert row["tp"] == per_sensor.loc[(row["model"], row["value"]), "tp"]
    assert len(tables["single- vs multi-source, unseen events"]) == 2
    cross = tables["cross-dataset: tested on hr-gldd"]
    assert set(cross["tested_on"]) == {"hr-gldd"} and set(cross["model"]) == names
    trained = tables["cross-dataset: tested on gdcld"].drop_duplicates("model").set_index("model")["trained_on"]
    assert trained["hr-gldd-s"] == "hr-gldd" and trained["segformer-b4"] == "gdcld"
    meta = PatchStore.open(tmp_path / "patches.zarr").meta()
    test = meta[meta["split"] == "test"]
    assert (tables["test patches, mixed"]["patches"] == len(test)).all()
    crossed = tables["per event x sensor"].drop_duplicates("value").set_index("value")["patches"]
    assert crossed.to_dict() == {f"{e} / {s}": n for (e, s), n in test.groupby(["event", "sensor"]).size().items()}
    assert "## cross-dataset: tested on hr-gldd" in report and "trained_on" in report
    dataset = pd.read_csv(tmp_path / "report-dataset.csv")
    assert set(dataset["event"]) == {"tiny", "demo-storm", "all"}
