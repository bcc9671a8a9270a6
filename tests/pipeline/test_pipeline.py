"""Pipelines: the shipped YAML files parse, and a tiny protocol runs end to end and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from geoslide.cli import main
from geoslide.errors import ConfigError
from geoslide.evaluation import evaluate_map
from geoslide.pipeline import load_pipeline, run_pipeline
from geoslide.pipeline.config import parse_pipeline

PIPELINES = sorted((Path(__file__).parents[2] / "pipelines").glob("*.yaml"))
POST = {"collections": ["tiny-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}
TINY = {
    "name": "tiny",
    "demo": [{"out": "events", "seed": 5, "events": ["tiny"], "sensors": ["planetscope"]}],
    "patches": {"patch_size": 64, "stride": 64, "empty": "keep", "split": "random", "bands": ["red", "green", "nir"],
                "sources": [{"catalog": "events", "stac_query": POST, "labels": {"collections": ["tiny-inventory"]}}]},
    "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "loss": "bce+dice", "patience": None},
    "models": [{"name": "small", "model": "unet", "model_params": {"base_filters": 4, "depth": 2}}],
    "evaluate": {"split": "test", "by": ["event"], "chunk": 128,
                 "scenes": [{"name": "tiny", "catalog": "events", "stac_query": POST,
                             "labels": {"collections": ["tiny-inventory"]}}]},
}


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.stem)
def test_shipped_pipelines_parse(path):
    pipeline = load_pipeline(path)
    assert pipeline.name == path.stem and pipeline.models


def test_a_tiny_pipeline_runs_end_to_end_and_resumes(tmp_path):
    report = run_pipeline(parse_pipeline(TINY), work=tmp_path)
    rows = pd.read_csv(tmp_path / "report.csv")
    assert set(rows["table"]) == {"test patches, mixed", "per event", "whole scene"}
    scene = rows[rows["table"] == "whole scene"].iloc[0]
    assert 0 <= scene["f1"] <= 1 and scene["tp"] + scene["fp"] + scene["fn"] + scene["tn"] == scene["pixels_valid"]
    assert "## whole scene" in report and (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report.md").read_text() == report
    card = (tmp_path / "models" / "small" / "MODEL_CARD.md").read_text()
    assert "bands, in order: red, green, nir" in card and "### whole scene" in card
    assert f"{scene['f1']:.3f}"[:4] in card  # the measured scene F1, as in the report
    weights = tmp_path / "models" / "small" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    run_pipeline(parse_pipeline(TINY), work=tmp_path)  # every step is done: nothing is retrained
    assert weights.stat().st_mtime_ns == stamp


FIXTURE = Path(__file__).parents[1] / "fixtures" / "xrspatial_S2_RGBN_10m_epsg32719.tif"
IMPLANT = {
    "name": "tiny-real",
    "implant": [{"out": "train", "name": "tr", "seed": 1, "bands": ["blue", "green", "red", "nir"],
                 "units": "reflectance", "resolution": [5.0, 10.0], "variants": 2, "cover": 0.06,
                 "backgrounds": [{"path": str(FIXTURE), "bands": ["red", "green", "blue", "nir"], "scale": 1e-4}]},
                {"out": "free", "name": "fr", "seed": 2, "bands": ["blue", "green", "red", "nir"],
                 "units": "reflectance", "resolution": [10.0, 10.0], "cover": 0.0,
                 "backgrounds": [{"path": str(FIXTURE), "bands": ["red", "green", "blue", "nir"], "scale": 1e-4,
                                  "name": "scene"}]}],
    "patches": {"patch_size": 64, "stride": 64, "empty": "keep", "split": "random",
                "bands": ["blue", "green", "red", "nir"],
                "sources": [{"catalog": "train", "stac_query": {"collections": ["tr-imagery"]},
                             "labels": {"collections": ["tr-inventory"]}}]},
    "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "loss": "bce+dice", "patience": None},
    "models": [{"name": "small", "model": "unet", "model_params": {"base_filters": 4, "depth": 2}}],
    "evaluate": {"split": "test", "by": ["event"], "chunk": 128,
                 "scenes": [{"name": "no landslides", "catalog": "free", "stac_query": {"ids": ["fr-scene-0"]},
                             "labels": {"collections": ["fr-inventory"]}}]},
}


def test_a_pipeline_on_real_backgrounds_with_implanted_scars_reports_false_alarms(tmp_path):
    run_pipeline(parse_pipeline(IMPLANT), work=tmp_path)
    rows = pd.read_csv(tmp_path / "report.csv")
    scene = rows[rows["table"] == "whole scene"].iloc[0]
    assert scene["tp"] == scene["fn"] == 0  # a landslide-free real scene: only false alarms can be counted
    assert scene["false_alarm_share"] == pytest.approx(scene["fp"] / (scene["fp"] + scene["tn"]))
    scores = evaluate_map(next((tmp_path / "maps").glob("*.zarr")), tmp_path / "free/fr/fr-inventory/inventory.parquet")
    assert json.loads(json.dumps(scores, allow_nan=False))["detected_share"] is None  # strict JSON, no NaN
    events = set(rows.loc[rows["table"] == "per event", "value"])
    assert events <= {"tr-xrspatial_S2_RGBN_10m_epsg32719-0", "tr-xrspatial_S2_RGBN_10m_epsg32719-1"}


def test_a_tiny_pipeline_with_its_work_folder_on_s3_runs_and_resumes(s3_bucket, tmp_path, monkeypatch):
    from geoslide.fileio import exists, list_names, read_text, version

    monkeypatch.chdir(tmp_path)
    work = f"{s3_bucket}/runs/tiny"
    report = run_pipeline(parse_pipeline(TINY), work=work)
    assert read_text(f"{work}/report.md") == report and "## whole scene" in report
    assert {"events", "maps", "models", "report.csv", "report.md", "report.png"} <= set(list_names(work))
    assert exists(f"{work}/models/small.done") and exists(f"{work}/patches.zarr/zarr.json")
    weights = f"{work}/models/small/model.safetensors"
    stamp = version(weights)
    assert run_pipeline(parse_pipeline(TINY), work=work) == report  # resumed from S3: nothing is redone
    assert version(weights) == stamp and list(tmp_path.iterdir()) == []


IMPLANT_STEP = {"out": "scenes", "name": "s", "bands": ["red", "green", "blue"],
           "backgrounds": [{"path": "bg.tif", "bands": ["red", "green", "blue"], "scale": 1.0}]}


def test_implant_radiometry_and_scar_colours_are_read_from_the_pipeline():
    step = parse_pipeline({**TINY, "implant": [{**IMPLANT_STEP, "tone": [0.7, 1.1], "hue": 0.05,
                                                "radiometry": {"sensor_noise": [0, 0.01], "sharpen": [0, 1]}}]})
    spec = step.implant[0].spec
    assert spec.implant.tone == (0.7, 1.1) and spec.implant.hue == 0.05
    assert spec.radiometry.sensor_noise == (0, 0.01) and spec.radiometry.sharpen == (0, 1)
    assert spec.radiometry.gain == (0.75, 1.3)  # the others keep their defaults


@pytest.mark.parametrize(("change", "match"), [
    ({"epochs": 1}, "unknown key"),
    ({"models": []}, "no models"),
    ({"train": {"optimizer": "adam"}}, "unknown training option"),
    ({"patches": {"sources": []}}, "at least one entry"),
    ({"models": [{"name": "a", "model": "unet", "dataset": "nope"}]}, "not under datasets"),
    ({"models": [{"name": "a", "model": "unet"}, {"name": "a", "model": "resunet"}]}, "share a name"),
    ({"models": [{"name": "rf", "model": "random-forest", "leaves": 3}]}, "unknown random-forest option"),
    ({"models": [{"name": "a", "model": "unet", "sensors": "uav"}]}, "sensors must be"),
    ({"evaluate": {"tables": ["bogus"]}}, "unknown table"),
    ({"datasets": [{"name": "x"}]}, "has no data"),
    ({"implant": [{**IMPLANT_STEP, "radiometry": {"sensor_noise": [0.02, 0.01]}}]}, "implant.radiometry: sensor_noise"),
    ({"implant": [{**IMPLANT_STEP, "radiometry": {"blur": [0, 1]}}]}, "unknown"),
    ({"implant": [{**IMPLANT_STEP, "hue": 2}]}, "implant: hue 2 must be between 0 and 1"),
])
def test_bad_pipelines_are_refused_with_the_fix(change, match):
    with pytest.raises(ConfigError, match=match):
        parse_pipeline({**TINY, **change})


def test_cli_run_reports_a_missing_file_in_one_line(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no pipeline file" in err


def test_cli_run_refuses_invalid_yaml(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(TINY) + "\n  - : [\n")
    assert main(["run", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


SICHUAN = Path(__file__).parents[2] / "pipelines" / "data" / "sichuan-aerial"


@pytest.mark.heavy
def test_a_pipeline_imports_a_folder_of_tiles_beside_implanted_scenes(tmp_path, monkeypatch):
    """``imports: [{kind: tiles, ...}]`` puts real labelled tiles (the bundled Sichuan set) in the store, as
    ``geoslide import tiles`` would, with their folders' splits; a relative src starts where you run."""
    from geoslide.data.importers.tiles import TileImportSpec, import_tiles
    from geoslide.data.store import PatchStore

    monkeypatch.chdir(SICHUAN.parent)
    tiles = {"kind": "tiles", "src": SICHUAN.name, "resolution": 1.0, "size": 256, "stride": 256,
             "event": "sichuan-aerial", "sensor": "aerial"}
    rgb = ["red", "green", "blue"]
    config = {**IMPLANT, "imports": [tiles],
              "implant": [{**IMPLANT["implant"][0], "bands": rgb, "units": "dn8", "resolution": [5.0, 5.0],
                           "variants": 1}],
              "patches": {**IMPLANT["patches"], "patch_size": 256, "stride": 256, "bands": rgb},
              "train": {**IMPLANT["train"], "epochs": 1}, "evaluate": None}
    run_pipeline(parse_pipeline({k: v for k, v in config.items() if v is not None}), work=tmp_path / "work")
    meta = PatchStore.open(tmp_path / "work" / "patches.zarr").meta()
    reference, _ = import_tiles(SICHUAN, tmp_path / "ref.zarr", TileImportSpec(
        size=256, stride=256, resolution=1.0, event="sichuan-aerial", sensor="aerial"))
    ref = reference.meta()
    mine = meta[meta["event"] == "sichuan-aerial"].reset_index(drop=True)
    assert len(mine) == len(ref) == 36 * 4 and (mine["split"] == ref["split"]).all()
    assert set(ref["split"]) == {"train", "val", "test"}
    assert (meta["event"] != "sichuan-aerial").sum() > 0  # the implanted scenes' patches follow
