"""geoslide map and evaluate on the bundled catalog and model, against rasterio/numpy references."""

from __future__ import annotations

import json
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.features import rasterize

from geoslide import grid_of, open_cube, search
from geoslide.cli import main
from geoslide.errors import ModelError, OutputError
from geoslide.evaluation.score import evaluate_map
from geoslide.inventory.read import read_inventory
from geoslide.inventory.vectorize import vectorize
from geoslide.mapping.job import MapSpec, map_min_area, run_map
from geoslide.mapping.spec import InferenceSpec
from geoslide.mapping.store import map_status, open_map
from geoslide.models.card import bundled_model_path, read_card

QUAKE_POST = {"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}


def _inventory(event):
    return search({"collections": [f"{event}-inventory"]})[0].assets["labels-parquet"].get_absolute_href()


@pytest.fixture(scope="module")
def quake_map(tmp_path_factory):
    out = tmp_path_factory.mktemp("map") / "quake.zarr"
    result = run_map(QUAKE_POST, MapSpec(out=str(out), vectors=str(out.with_suffix(".parquet")), cog=True,
                                         inference=InferenceSpec(chunk=256)))
    return result


def test_bundled_model_maps_the_unseen_demo_quake_with_f1_at_least_085(quake_map):
    scores = evaluate_map(quake_map.out, _inventory("demo-quake"))
    assert scores["f1"] >= 0.85, scores
    assert scores["precision"] > 0.8 and scores["recall"] > 0.7


def test_evaluation_counts_equal_a_rasterio_reference(quake_map):
    scores = evaluate_map(quake_map.out, _inventory("demo-quake"))
    with rasterio.open(quake_map.out.with_suffix(".mask.tif")) as src:
        pred, transform, shape = src.read(1), src.transform, src.shape
    truth = rasterize(((g, 1) for g in read_inventory(_inventory("demo-quake")).geometry), out_shape=shape,
                      transform=transform, dtype="uint8")
    valid = pred != 255
    tp, fp = int(((pred == 1) & (truth == 1)).sum()), int(((pred == 1) & (truth == 0)).sum())
    fn = int(((pred == 0) & (truth == 1) & valid).sum())
    assert (scores["tp"], scores["fp"], scores["fn"]) == (tp, fp, fn)
    assert scores["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert 0 < scores["n_detected"] <= scores["n_inventory"] and scores["n_false"] <= scores["n_mapped"]


def test_map_is_on_the_input_grid_for_rioxarray_and_rasterio(quake_map):
    items = search(QUAKE_POST)
    href = items[0].assets["image"].get_absolute_href().removeprefix("file://")
    with rasterio.open(href) as src:
        crs, transform, shape = src.crs, src.transform, src.shape
    stored = xr.open_zarr(quake_map.out, decode_coords="all", consolidated=False)
    assert stored.rio.crs == crs and stored.rio.transform().almost_equals(transform)
    assert stored["mask"].shape == shape
    for variable in ("mask", "probability"):
        with rasterio.open(quake_map.out.with_suffix(f".{variable}.tif")) as cog:
            assert cog.crs == crs and cog.transform.almost_equals(transform)
    nodata = np.isnan(open_cube(items, ["red"], rescale=True).isel(time=0, band=0).values)
    np.testing.assert_array_equal(open_map(quake_map.out)["mask"].values == 255, nodata)


def test_outputs_beside_the_store_describe_the_run(quake_map):
    item = json.loads(quake_map.item.read_text())
    assert item["properties"]["proj:code"] == "EPSG:32645"
    assert {"derived_from"} <= {link["rel"] for link in item["links"]}
    assert quake_map.quicklook.read_bytes()[:4] == b"\x89PNG"
    assert quake_map.summary["count"] > 10 and quake_map.summary["total_km2"] > 0.05
    assert quake_map.vectors.with_suffix(".geojson").is_file()


def test_polygons_carry_their_context_and_the_model_cards_minimum_mapping_unit(quake_map):
    polygons = gpd.read_parquet(quake_map.vectors)
    post = search(QUAKE_POST)
    assert set(polygons.event) == {post[0].properties["geoslide:event"]} and set(polygons.model) == {"demo"}
    assert set(polygons.date) == {post[0].datetime.date()} and set(polygons.source) == {",".join(i.id for i in post)}
    card = read_card(bundled_model_path())
    assert card.min_area == 4 * card.resolution**2  # a 2 x 2 block at the model's resolution, stated in the card
    assert polygons.pixel_count.min() >= 4 and polygons.area_m2.min() >= card.min_area
    every = vectorize(open_map(quake_map.out)["mask"])  # min_area 0 keeps the small ones the default dropped
    assert (every.area_m2 < card.min_area).sum() == len(every) - len(polygons) > 0
    item = json.loads(quake_map.item.read_text())
    assert item["properties"]["geoslide:params"]["min_area_m2"] == card.min_area


def test_a_rerun_computes_nothing_and_another_model_is_refused(quake_map, tmp_path):
    spec = MapSpec(out=str(quake_map.out), inference=InferenceSpec(chunk=256), quicklook=False)
    before = (quake_map.out / "mask").stat().st_mtime_ns
    run_map(QUAKE_POST, spec)
    assert map_status(quake_map.out).complete
    with pytest.raises(OutputError, match="new --out"):
        run_map(QUAKE_POST, MapSpec(out=str(quake_map.out), inference=InferenceSpec(chunk=512)))
    assert (quake_map.out / "mask").stat().st_mtime_ns == before


def test_several_scenes_are_mosaicked_onto_one_grid(tmp_path):
    both = {"collections": ["demo-quake-planetscope"]}  # pre and post: the pre scene fills the post's nodata corner
    result = run_map(both, MapSpec(out=str(tmp_path / "both.zarr"), inference=InferenceSpec(chunk=384),
                                   quicklook=False, allow_mixed_dates=True))
    cube = open_cube(search(both), list(read_card(bundled_model_path()).bands), rescale=True)
    mask = open_map(result.out)["mask"]
    assert grid_of(mask) == grid_of(cube)
    nowhere = np.isnan(cube.values).any(axis=1).all(axis=0)
    np.testing.assert_array_equal(mask.values == 255, nowhere)
    assert (mask.values == 255).sum() < 0.5 * (np.isnan(cube.isel(time=-1).values).any(axis=0)).sum()


def test_cli_map_and_evaluate(tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    query = json.dumps({"collections": ["demo-storm-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}})
    assert main(["map", "--stac-query", query, "--out", str(out), "--chunk", "384"]) == 0
    assert "map store" in capsys.readouterr().out
    assert main(["evaluate", "--pred", str(out), "--labels", _inventory("demo-storm")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"precision", "recall", "f1", "iou"} <= set(scores) and 0 <= scores["f1"] <= 1


@pytest.mark.parametrize(("args", "match"), [
    (["map", "--stac-query", '{"collections": ["nope"]}', "--out", "x.zarr"], "no item"),
    (["map", "--stac-query", "{}", "--out", "x.tif"], "should end in .zarr"),
    (["map", "--stac-query", "{}", "--model", "/nonexistent", "--out", "x.zarr"], "not a model directory"),
    (["evaluate"], "give --pred"),
])
def test_cli_errors_are_one_line_exit_2(args, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and match in err
    assert not (tmp_path / "x.zarr").exists()


def test_minimum_mapping_unit_comes_from_the_option_the_card_or_the_pixels():
    card = read_card(bundled_model_path())
    spec = MapSpec(out="x.zarr")
    assert map_min_area(spec, card, 10.0) == card.min_area == 36.0
    assert map_min_area(MapSpec(out="x.zarr", min_area=0), card, 10.0) == 0.0
    older = replace(card, min_area=None)  # cards written before min_area: 4 pixels at the model's resolution
    assert map_min_area(spec, older, 10.0) == 4 * card.resolution**2
    mixed = replace(older, resolution=None)  # trained on mixed resolutions: 4 pixels of the map
    assert map_min_area(spec, mixed, 10.0) == 400.0
    with pytest.raises(ModelError, match="min_area"):
        replace(card, min_area=-1.0)
