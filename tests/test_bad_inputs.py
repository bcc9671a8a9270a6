"""The bad-input matrix: every command, given what a careless or hostile user gives it.

Each case runs the CLI in-process (``geoslide.cli.main``) in its own working folder next to a shared
folder of inputs (catalogs, inventories, stores, model folders, pipelines, good and broken) and
asserts what the README promises: exit status 2, exactly one line on stderr, no traceback, and no
file created, changed or removed anywhere (both trees hashed before and after). A sample runs
through the installed ``geoslide`` entry point to show it behaves the same.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import LineString, Point, box
from synthetic import synthetic_store

from geoslide.catalog.bundled import demo_catalog_path
from geoslide.cli import main
from geoslide.models.card import bundled_model_path

GEOSLIDE = Path(sys.executable).with_name("geoslide")
POST = json.dumps({"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}})
INVENTORY = demo_catalog_path().parent / "demo-quake" / "demo-quake-inventory" / "inventory.parquet"


def _q(**body) -> str:
    return json.dumps(body)


def _model_variant(root: Path, name: str, change) -> None:
    folder = root / name
    shutil.copytree(bundled_model_path(), folder)
    card = json.loads((folder / "model.json").read_text())
    change(card, folder)
    if (folder / "model.json").exists():
        (folder / "model.json").write_text(json.dumps(card))


def _set(key, value):
    def change(card, folder):
        card[key] = value
    return change


def _write_inputs(d: Path) -> None:
    """Every input the cases name, good ones and broken ones, under ``d``."""
    (d / "empty.json").write_text("")
    (d / "empty.yaml").write_text("")
    (d / "empty.geojson").write_text("")
    (d / "garbage.json").write_text("{not json")
    (d / "list.json").write_text("[1, 2]")
    (d / "notes.txt").write_text("a user's notes\n")
    (d / "labels.csv").write_text("x,y\n1,2\n")
    (d / "folder").mkdir()
    (d / "emptydir").mkdir()
    (d / "userdir").mkdir()
    (d / "userdir" / "thesis.docx").write_text("a user's file")
    crs = "EPSG:32645"
    gpd.GeoDataFrame(geometry=[Point(0, 0), Point(5, 5)], crs=crs).to_file(d / "points.geojson")
    gpd.GeoDataFrame(geometry=[LineString([(0, 0), (5, 5)])], crs=crs).to_file(d / "lines.geojson")
    gpd.GeoDataFrame(geometry=[], crs=crs).to_file(d / "nofeatures.geojson")
    gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs="EPSG:4326").to_file(d / "faraway.geojson")
    (d / "nocrs.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
            [[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}).replace('"FeatureCollection"', '"FeatureCollection", "crs": 5'))
    synthetic_store(d / "store.zarr", n=8, size=32)
    (d / "plain.zarr").mkdir()
    (d / "plain.zarr" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    _model_variant(d, "model-garbage", lambda c, f: None)
    (d / "model-garbage" / "model.json").write_text("{not json")
    (d / "model-nocard").mkdir()
    (d / "model-nocard" / "model.safetensors").write_bytes(b"")
    _model_variant(d, "model-bands-str", _set("bands", "red"))
    _model_variant(d, "model-bands-int", _set("bands", [1, 2, 3, 4]))
    _model_variant(d, "model-arch", _set("architecture", "nosuch-net"))
    _model_variant(d, "model-threshold", _set("threshold", "high"))
    _model_variant(d, "model-threshold-range", _set("threshold", 7))
    _model_variant(d, "model-params", _set("params", "big"))
    _model_variant(d, "model-mean", _set("mean", [0.1]))
    _model_variant(d, "model-patch", _set("patch_size", -128))
    _model_variant(d, "model-resolution", _set("resolution", "3 m"))
    _model_variant(d, "model-format", _set("format", "other-model/9"))
    _model_variant(d, "model-list", lambda c, f: (c.clear(), (f / "model.json").write_text("[1]")))
    _model_variant(d, "model-noweights", lambda c, f: (f / "model.safetensors").unlink())
    pipelines = {
        "list": "- a\n- b\n",
        "scalar": "just words\n",
        "tabs": "name: x\n\tdemo: [\n",
        "unknown-key": "name: x\nfrobnicate: 1\n",
        "name-list": "name: [1, 2]\n",
        "no-name": "demo:\n  - {out: e, seed: 1}\n",
        "demo-str": "name: x\ndemo: events\n",
        "demo-seed": "name: x\ndemo:\n  - {out: e, seed: one}\n",
        "demo-unknown": "name: x\ndemo:\n  - {out: e, seed: 1, colour: red}\n",
        "patch-size": "name: x\npatches: {patch_size: big, sources: []}\nmodels:\n  - {name: a, model: unet}\n",
        "epochs": "name: x\ntrain: {epochs: -1}\nmodels:\n  - {name: a, model: unet}\n",
        "models-dict": "name: x\nmodels: {unet: 1}\n",
        "model-unknown": "name: x\nmodels:\n  - {name: a, model: nosuch-net}\n",
        "loss": "name: x\ntrain: {loss: nosuch}\nmodels:\n  - {name: a, model: unet}\n",
        "stac-query": "name: x\npatches:\n  sources:\n    - {stac_query: [1], labels: a.parquet}\n",
        "batch": "name: x\ntrain: {batch_size: 0}\nmodels:\n  - {name: a, model: unet}\n",
        "lr": "name: x\ntrain: {lr: fast}\nmodels:\n  - {name: a, model: unet}\n",
    }
    for name, text in pipelines.items():
        (d / f"pipe-{name}.yaml").write_text(text)
    demo = (Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml").read_text()
    for name, (old, new) in DEMO_PIPELINE_EDITS.items():
        assert old in demo, old
        (d / f"pipe-{name}.yaml").write_text(demo.replace(old, new, 1))


#: Wrong types in an otherwise complete pipeline (pipelines/demo.yaml): (text, replacement).
DEMO_PIPELINE_EDITS = {
    "demo-epochs-word": ("epochs: 40", "epochs: forty"),
    "demo-patch-size-list": ("patch_size: 128", "patch_size: [128]"),
    "demo-seed-word": ("seed: 1, sensors", "seed: one, sensors"),
    "demo-keep-fraction-word": ("keep_fraction: 0.3", "keep_fraction: lots"),
    "demo-split-int": ("split: test", "split: 5"),
    "demo-name-list": ("name: demo", "name: [1]"),
    "demo-loss-int": ("loss: bce+dice", "loss: 5"),
    "demo-lr-negative": ("lr: 0.003", "lr: -1"),
    "demo-batch-zero": ("batch_size: 16", "batch_size: 0"),
    "demo-bands-str": ("bands: [blue, green, red, nir]", "bands: 7"),
    "demo-stride-word": ("stride: 64", "stride: wide"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    _write_inputs(d)
    return d


S = ["search"]
STORE = "{d}/store.zarr"
PATCHES = ["patches", "--stac-query", POST, "--labels", str(INVENTORY), "--out", "p.zarr"]
TRAIN = ["train", "--patches", STORE, "--model", "unet", "--out", "m"]
MAP = ["map", "--stac-query", POST, "--out", "m.zarr"]

CASES: dict[str, list[str]] = {
    # -- the command line itself
    "no-command": [],
    "unknown-command": ["frobnicate"],
    "unknown-option": ["search", "--frobnicate"],
    # -- search: --stac-query
    "query-not-json": [*S, "--stac-query", "not json"],
    "query-list": [*S, "--stac-query", "[]"],
    "query-string": [*S, "--stac-query", '"demo"'],
    "query-collections-str": [*S, "--stac-query", _q(collections="demo")],
    "query-collections-int": [*S, "--stac-query", _q(collections=[1])],
    "query-bbox-3": [*S, "--stac-query", _q(bbox=[1, 2, 3])],
    "query-bbox-str": [*S, "--stac-query", _q(bbox="1,2,3,4")],
    "query-bbox-strs": [*S, "--stac-query", _q(bbox=["a", "b", "c", "d"])],
    "query-bbox-south-north": [*S, "--stac-query", _q(bbox=[0, 10, 1, 5])],
    "query-bbox-lat-range": [*S, "--stac-query", _q(bbox=[0, -100, 1, 5])],
    "query-bbox-lon-range": [*S, "--stac-query", _q(bbox=[-200, 0, 1, 5])],
    "query-datetime-int": [*S, "--stac-query", _q(datetime=5)],
    "query-datetime-word": [*S, "--stac-query", _q(datetime="yesterday")],
    "query-datetime-reversed": [*S, "--stac-query", _q(datetime="2025-02-01/2025-01-01")],
    "query-ids-str": [*S, "--stac-query", _q(ids="abc")],
    "query-ids-int": [*S, "--stac-query", _q(ids=[1])],
    "query-max-items-neg": [*S, "--stac-query", _q(max_items=-1)],
    "query-max-items-str": [*S, "--stac-query", _q(max_items="ten")],
    "query-max-items-zero": [*S, "--stac-query", _q(max_items=0)],
    "query-max-items-float": [*S, "--stac-query", _q(max_items=2.5)],
    "query-unknown-key": [*S, "--stac-query", _q(colections=["demo"])],
    "query-query-list": [*S, "--stac-query", _q(query=[])],
    "query-query-scalar": [*S, "--stac-query", _q(query={"eo:cloud_cover": 5})],
    "query-query-op": [*S, "--stac-query", _q(query={"eo:cloud_cover": {"less": 5}})],
    "query-filter-int": [*S, "--stac-query", _q(filter=5)],
    "query-filter-cql2": [*S, "--stac-query", _q(filter="cloud_cover <<< 5")],
    "query-intersects-str": [*S, "--stac-query", _q(intersects="POLYGON")],
    "query-intersects-empty": [*S, "--stac-query", _q(intersects={"type": "Polygon", "coordinates": []})],
    "query-intersects-type": [*S, "--stac-query", _q(intersects={"type": "Blob", "coordinates": [1, 2]})],
    "query-no-match": [*S, "--stac-query", _q(collections=["nope"])],
    # -- search: --catalog and --allow-assets
    "catalog-missing": [*S, "--catalog", "{d}/missing.json"],
    "catalog-empty": [*S, "--catalog", "{d}/empty.json"],
    "catalog-garbage": [*S, "--catalog", "{d}/garbage.json"],
    "catalog-list": [*S, "--catalog", "{d}/list.json"],
    "catalog-text": [*S, "--catalog", "{d}/notes.txt"],
    "catalog-empty-folder": [*S, "--catalog", "{d}/emptydir"],
    "catalog-ftp": [*S, "--catalog", "ftp://example.org/catalog.json"],
    "catalog-refused": [*S, "--catalog", "http://127.0.0.1:9/catalog.json"],
    "catalog-s3-no-bucket": [*S, "--catalog", "s3:///catalog.json"],
    "catalog-geojson": [*S, "--catalog", "{d}/points.geojson"],
    "allow-assets-empty": [*S, "--allow-assets", ""],
    "allow-assets-ftp": [*S, "--allow-assets", "ftp://example.org"],
    "allow-assets-metadata": [*S, "--allow-assets", "http://169.254.169.254"],
    # -- demo
    "demo-out-user-folder": ["demo", "--out", "{d}/userdir"],
    "demo-out-file": ["demo", "--out", "{d}/notes.txt"],
    "demo-out-empty": ["demo", "--out", ""],
    "demo-out-http": ["demo", "--out", "http://example.org/demo"],
    "demo-out-ftp": ["demo", "--out", "ftp://example.org/demo"],
    "demo-seed-word": ["demo", "--out", "d", "--seed", "abc"],
    "demo-event-unknown": ["demo", "--out", "d", "--events", "no-such-event"],
    "demo-events-none": ["demo", "--out", "d", "--events"],
    "demo-sensor-unknown": ["demo", "--out", "d", "--sensors", "hubble"],
    "demo-size-negative": ["demo", "--out", "d", "--size-m", "-5"],
    "demo-size-zero": ["demo", "--out", "d", "--size-m", "0"],
    "demo-size-nan": ["demo", "--out", "d", "--size-m", "nan"],
    "demo-size-inf": ["demo", "--out", "d", "--size-m", "inf"],
    "demo-size-tiny": ["demo", "--out", "d", "--size-m", "1"],
    # -- patches
    "patches-labels-missing": [*PATCHES[:3], "--labels", "{d}/missing.parquet", "--out", "p.zarr"],
    "patches-labels-empty": [*PATCHES[:3], "--labels", "{d}/empty.geojson", "--out", "p.zarr"],
    "patches-labels-garbage": [*PATCHES[:3], "--labels", "{d}/garbage.json", "--out", "p.zarr"],
    "patches-labels-points": [*PATCHES[:3], "--labels", "{d}/points.geojson", "--out", "p.zarr"],
    "patches-labels-lines": [*PATCHES[:3], "--labels", "{d}/lines.geojson", "--out", "p.zarr"],
    "patches-labels-folder": [*PATCHES[:3], "--labels", "{d}/folder", "--out", "p.zarr"],
    "patches-labels-nofeatures": [*PATCHES[:3], "--labels", "{d}/nofeatures.geojson", "--out", "p.zarr"],
    "patches-labels-faraway": [*PATCHES[:3], "--labels", "{d}/faraway.geojson", "--out", "p.zarr"],
    "patches-labels-csv": [*PATCHES[:3], "--labels", "{d}/labels.csv", "--out", "p.zarr"],
    "patches-labels-text": [*PATCHES[:3], "--labels", "{d}/notes.txt", "--out", "p.zarr"],
    "patches-size-zero": [*PATCHES, "--patch-size", "0"],
    "patches-size-negative": [*PATCHES, "--patch-size", "-1"],
    "patches-size-word": [*PATCHES, "--patch-size", "big"],
    "patches-size-huge": [*PATCHES, "--patch-size", "100000"],
    "patches-stride-zero": [*PATCHES, "--stride", "0"],
    "patches-stride-negative": [*PATCHES, "--stride", "-4"],
    "patches-keep-fraction-high": [*PATCHES, "--empty", "fraction", "--keep-fraction", "1.5"],
    "patches-keep-fraction-negative": [*PATCHES, "--empty", "fraction", "--keep-fraction", "-0.1"],
    "patches-max-nodata-high": [*PATCHES, "--max-nodata", "2"],
    "patches-max-nodata-negative": [*PATCHES, "--max-nodata", "-1"],
    "patches-empty-enum": [*PATCHES, "--empty", "bogus"],
    "patches-split-enum": [*PATCHES, "--split", "bogus"],
    "patches-derived-enum": [*PATCHES, "--derived", "bogus"],
    "patches-band-unknown": [*PATCHES, "--bands", "ultraviolet"],
    "patches-split-events-none": [*PATCHES, "--split", "events"],
    "patches-out-file": [*PATCHES[:5], "--out", "{d}/notes.txt"],
    "patches-out-user-folder": [*PATCHES[:5], "--out", "{d}/userdir"],
    "patches-out-plain-zarr": [*PATCHES[:5], "--out", "{d}/plain.zarr"],
    "patches-out-s3-no-bucket": [*PATCHES[:5], "--out", "s3:///p.zarr"],
    "patches-out-http": [*PATCHES[:5], "--out", "http://example.org/p.zarr"],
    "patches-pre-query-garbage": [*PATCHES, "--pre-stac-query", "not json"],
    "patches-dem-query-list": [*PATCHES, "--dem-stac-query", "[]"],
    "patches-negatives-missing": [*PATCHES, "--negatives", "{d}/missing.geojson"],
    "patches-workers-zero": [*PATCHES, "--workers", "0"],
    "patches-workers-negative": [*PATCHES, "--workers", "-2"],
    "patches-scheduler-word": [*PATCHES, "--scheduler", "not-an-address"],
    "patches-scheduler-no-port": [*PATCHES, "--scheduler", "tcp://127.0.0.1"],
    "patches-seed-word": [*PATCHES, "--seed", "x"],
    "patches-query-no-match": ["patches", "--stac-query", _q(collections=["nope"]), "--labels", str(INVENTORY),
                               "--out", "p.zarr"],
    "patches-query-types": ["patches", "--stac-query", _q(bbox="x"), "--labels", str(INVENTORY), "--out", "p.zarr"],
    # -- import
    "import-kind-unknown": ["import", "bogus", "{d}/folder", "--out", "i.zarr"],
    "import-src-missing": ["import", "landslide4sense", "{d}/missing", "--out", "i.zarr"],
    "import-src-file": ["import", "landslide4sense", "{d}/notes.txt", "--out", "i.zarr"],
    "import-src-empty": ["import", "landslide4sense", "{d}/emptydir", "--out", "i.zarr"],
    "import-src-junk": ["import", "hr-gldd", "{d}/userdir", "--out", "i.zarr"],
    "import-gdcld-empty": ["import", "gdcld", "{d}/emptydir", "--out", "i.zarr"],
    "import-out-file": ["import", "landslide4sense", "{d}/emptydir", "--out", "{d}/notes.txt"],
    "import-no-out": ["import", "landslide4sense", "{d}/emptydir"],
    # -- stats
    "stats-missing": ["stats", "{d}/missing.zarr"],
    "stats-file": ["stats", "{d}/notes.txt"],
    "stats-empty-folder": ["stats", "{d}/emptydir"],
    "stats-plain-zarr": ["stats", "{d}/plain.zarr"],
    "stats-json": ["stats", "{d}/list.json"],
    "stats-inventory-missing": ["stats", STORE, "--inventory", "{d}/missing.parquet"],
    "stats-inventory-points": ["stats", STORE, "--inventory", "{d}/points.geojson"],
    "stats-inventory-garbage": ["stats", STORE, "--inventory", "{d}/garbage.json"],
    # -- train
    "train-patches-missing": ["train", "--patches", "{d}/missing.zarr", "--model", "unet", "--out", "m"],
    "train-patches-file": ["train", "--patches", "{d}/notes.txt", "--model", "unet", "--out", "m"],
    "train-patches-empty-folder": ["train", "--patches", "{d}/emptydir", "--model", "unet", "--out", "m"],
    "train-patches-plain-zarr": ["train", "--patches", "{d}/plain.zarr", "--model", "unet", "--out", "m"],
    "train-model-unknown": ["train", "--patches", STORE, "--model", "nosuch-net", "--out", "m"],
    "train-params-garbage": [*TRAIN, "--model-params", "not json"],
    "train-params-list": [*TRAIN, "--model-params", "[]"],
    "train-params-type": [*TRAIN, "--model-params", _q(base_filters="x")],
    "train-params-unknown": [*TRAIN, "--model-params", _q(nope=1)],
    "train-params-negative": [*TRAIN, "--model-params", _q(base_filters=-4)],
    "train-params-depth-zero": [*TRAIN, "--model-params", _q(depth=0)],
    "train-loss-unknown": [*TRAIN, "--loss", "nosuch"],
    "train-loss-dangling": [*TRAIN, "--loss", "dice+"],
    "train-optimiser-enum": [*TRAIN, "--optimiser", "bogus"],
    "train-schedule-enum": [*TRAIN, "--schedule", "bogus"],
    "train-lr-zero": [*TRAIN, "--lr", "0"],
    "train-lr-negative": [*TRAIN, "--lr", "-1"],
    "train-lr-nan": [*TRAIN, "--lr", "nan"],
    "train-lr-word": [*TRAIN, "--lr", "fast"],
    "train-weight-decay-negative": [*TRAIN, "--weight-decay", "-1"],
    "train-epochs-zero": [*TRAIN, "--epochs", "0"],
    "train-epochs-negative": [*TRAIN, "--epochs", "-1"],
    "train-epochs-float": [*TRAIN, "--epochs", "1.5"],
    "train-max-steps-negative": [*TRAIN, "--max-steps", "-1"],
    "train-max-steps-zero": [*TRAIN, "--max-steps", "0"],
    "train-batch-zero": [*TRAIN, "--batch-size", "0"],
    "train-batch-negative": [*TRAIN, "--batch-size", "-8"],
    "train-patience-negative": [*TRAIN, "--patience", "-1"],
    "train-patience-zero": [*TRAIN, "--patience", "0"],
    "train-workers-zero": [*TRAIN, "--workers", "0"],
    "train-scheduler-word": [*TRAIN, "--scheduler", "not-an-address"],
    "train-out-file": ["train", "--patches", STORE, "--model", "unet", "--out", "{d}/notes.txt"],
    "train-out-user-folder": ["train", "--patches", STORE, "--model", "unet", "--out", "{d}/userdir"],
    "train-out-http": ["train", "--patches", STORE, "--model", "unet", "--out", "http://example.org/m"],
    "train-seed-word": [*TRAIN, "--seed", "abc"],
    # -- map: model folders and model cards
    "map-model-missing": [*MAP, "--model", "{d}/missing-model"],
    "map-model-file": [*MAP, "--model", "{d}/notes.txt"],
    "map-model-empty-folder": [*MAP, "--model", "{d}/emptydir"],
    "map-model-no-card": [*MAP, "--model", "{d}/model-nocard"],
    "map-card-garbage": [*MAP, "--model", "{d}/model-garbage"],
    "map-card-list": [*MAP, "--model", "{d}/model-list"],
    "map-card-bands-str": [*MAP, "--model", "{d}/model-bands-str"],
    "map-card-bands-int": [*MAP, "--model", "{d}/model-bands-int"],
    "map-card-architecture": [*MAP, "--model", "{d}/model-arch"],
    "map-card-threshold-str": [*MAP, "--model", "{d}/model-threshold"],
    "map-card-threshold-range": [*MAP, "--model", "{d}/model-threshold-range"],
    "map-card-params": [*MAP, "--model", "{d}/model-params"],
    "map-card-mean": [*MAP, "--model", "{d}/model-mean"],
    "map-card-patch-size": [*MAP, "--model", "{d}/model-patch"],
    "map-card-resolution": [*MAP, "--model", "{d}/model-resolution"],
    "map-card-format": [*MAP, "--model", "{d}/model-format"],
    # -- map: options
    "map-chunk-zero": [*MAP, "--chunk", "0"],
    "map-chunk-negative": [*MAP, "--chunk", "-5"],
    "map-chunk-word": [*MAP, "--chunk", "abc"],
    "map-overlap-negative": [*MAP, "--overlap", "-1"],
    "map-batch-zero": [*MAP, "--batch-size", "0"],
    "map-device-unknown": [*MAP, "--device", "quantum"],
    "map-device-missing-gpu": [*MAP, "--device", "cuda:7"],
    "map-resolution-zero": [*MAP, "--resolution", "0"],
    "map-resolution-negative": [*MAP, "--resolution", "-3"],
    "map-resolution-nan": [*MAP, "--resolution", "nan"],
    "map-epsg-zero": [*MAP, "--epsg", "0"],
    "map-epsg-unknown": [*MAP, "--epsg", "999999"],
    "map-min-area-negative": [*MAP, "--min-area", "-5"],
    "map-min-area-nan": [*MAP, "--min-area", "nan"],
    "map-out-file": ["map", "--stac-query", POST, "--out", "{d}/notes.txt"],
    "map-out-user-folder": ["map", "--stac-query", POST, "--out", "{d}/userdir"],
    "map-out-plain-zarr": ["map", "--stac-query", POST, "--out", "{d}/plain.zarr"],
    "map-out-patch-store": ["map", "--stac-query", POST, "--out", STORE],
    "map-out-ftp": ["map", "--stac-query", POST, "--out", "ftp://example.org/m.zarr"],
    "map-out-http": ["map", "--stac-query", POST, "--out", "http://example.org/m.zarr"],
    "map-vectors-user-file": [*MAP, "--vectors", "{d}/notes.txt"],
    "map-vectors-folder": [*MAP, "--vectors", "{d}/folder"],
    "map-vectors-extension": [*MAP, "--vectors", "v.txt"],
    "map-scheduler-word": [*MAP, "--scheduler", "not-an-address"],
    "map-workers-zero": [*MAP, "--workers", "0"],
    "map-pre-query-garbage": [*MAP, "--pre-stac-query", "x"],
    "map-dem-query-list": [*MAP, "--dem-stac-query", "[1]"],
    "map-query-no-match": ["map", "--stac-query", _q(collections=["nope"]), "--out", "m.zarr"],
    "map-query-types": ["map", "--stac-query", _q(datetime=["a"]), "--out", "m.zarr"],
    "map-catalog-missing": [*MAP, "--catalog", "{d}/missing.json"],
    # -- evaluate
    "evaluate-nothing": ["evaluate"],
    "evaluate-pred-only": ["evaluate", "--pred", "{d}/missing.zarr"],
    "evaluate-pred-missing": ["evaluate", "--pred", "{d}/missing.zarr", "--labels", str(INVENTORY)],
    "evaluate-pred-file": ["evaluate", "--pred", "{d}/notes.txt", "--labels", str(INVENTORY)],
    "evaluate-pred-empty-folder": ["evaluate", "--pred", "{d}/emptydir", "--labels", str(INVENTORY)],
    "evaluate-pred-patch-store": ["evaluate", "--pred", STORE, "--labels", str(INVENTORY)],
    "evaluate-min-area-negative": ["evaluate", "--pred", STORE, "--labels", str(INVENTORY), "--min-area", "-1"],
    "evaluate-model-missing": ["evaluate", "--model", "{d}/missing-model", "--patches", STORE],
    "evaluate-patches-file": ["evaluate", "--model", "{d}/model-garbage", "--patches", "{d}/notes.txt"],
    "evaluate-patches-missing": ["evaluate", "--model", str(bundled_model_path()), "--patches", "{d}/missing.zarr"],
    "evaluate-split-unknown": ["evaluate", "--model", str(bundled_model_path()), "--patches", STORE,
                               "--split", "nosuch"],
    "evaluate-card-garbage": ["evaluate", "--model", "{d}/model-garbage", "--patches", STORE],
    # -- run: pipeline files
    "run-missing": ["run", "{d}/missing.yaml"],
    "run-empty": ["run", "{d}/empty.yaml"],
    "run-folder": ["run", "{d}/folder"],
    "run-json-garbage": ["run", "{d}/garbage.json"],
    "run-text": ["run", "{d}/notes.txt"],
    **{f"run-pipe-{name}": ["run", f"{{d}}/pipe-{name}.yaml", "--work", "w"] for name in (
        "list", "scalar", "tabs", "unknown-key", "name-list", "no-name", "demo-str", "demo-seed", "demo-unknown",
        "patch-size", "epochs", "models-dict", "model-unknown", "loss", "stac-query", "batch", "lr")},
    **{f"run-{name}": ["run", f"{{d}}/pipe-{name}.yaml", "--work", "w"] for name in DEMO_PIPELINE_EDITS},
    "run-work-file": ["run", "pipelines/demo.yaml", "--work", "{d}/notes.txt"],
    "run-work-user-folder": ["run", "pipelines/demo.yaml", "--work", "{d}/userdir"],
    "run-workers-zero": ["run", "pipelines/demo.yaml", "--work", "w", "--workers", "0"],
    "run-scheduler-word": ["run", "pipelines/demo.yaml", "--work", "w", "--scheduler", "not-an-address"],
}


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a hash of its content (folders and links marked)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _argv(case: str, inputs: Path) -> list[str]:
    repo = Path(__file__).resolve().parents[1]
    return [a.replace("{d}", str(inputs)).replace("pipelines/", f"{repo}/pipelines/") for a in CASES[case]]


def _check(code: int, err: str, before: tuple, after: tuple) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("geoslide") and "error" in lines[0], lines
    assert after == before, "files changed"


def test_the_matrix_is_large_and_distinct():
    assert len(CASES) >= 150
    assert len({json.dumps(v) for v in CASES.values()}) == len(CASES)
    commands = {argv[0] for argv in CASES.values() if argv}
    assert commands >= {"search", "demo", "patches", "import", "stats", "train", "map", "evaluate", "run"}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_one_line_exit_2_and_touches_nothing(case, inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    before = (_tree(inputs), _tree(tmp_path))
    try:
        code = main(_argv(case, inputs))
    except SystemExit as exc:  # argparse
        code = exc.code
    after = (_tree(inputs), _tree(tmp_path))
    _check(code, capsys.readouterr().err, before, after)


SAMPLE = ["no-command", "query-bbox-str", "demo-out-user-folder", "patches-labels-points", "stats-file",
          "train-max-steps-negative", "map-card-bands-str", "map-scheduler-word", "evaluate-nothing",
          "run-pipe-patch-size", "import-src-missing"]


@pytest.mark.parametrize("case", SAMPLE)
def test_the_entry_point_behaves_the_same(case, inputs, tmp_path):
    before = (_tree(inputs), _tree(tmp_path))
    done = subprocess.run([str(GEOSLIDE), *_argv(case, inputs)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in __import__("os").environ.items()
                                            if k != "DASK_SCHEDULER_ADDRESS"})
    _check(done.returncode, done.stderr, before, (_tree(inputs), _tree(tmp_path)))
