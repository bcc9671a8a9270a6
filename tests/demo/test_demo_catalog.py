"""`geoslide demo`: a synthetic event written as COGs + valid STAC + inventory, loadable as cubes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
from rasterio.features import rasterize
from stac_schemas import OfflineValidator, fetch_schemas

from geoslide import grid_of, open_cube, search
from geoslide.demo import catalog as demo_catalog
from geoslide.demo.catalog import write_demo
from geoslide.errors import GeoslideError

LABEL_EXT = "https://stac-extensions.github.io/label/v1.0.1/schema.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "tiny"
    t0 = time.perf_counter()
    root = write_demo(out, seed=3, events=["tiny"])
    return {"root": root, "seconds": time.perf_counter() - t0, "out": out}


def _file(item, key):
    return item.assets[key].get_absolute_href()


def test_small_event_is_fast(tiny):
    assert tiny["seconds"] < 20, f"a tiny event took {tiny['seconds']:.1f} s"


def test_catalog_layout(tiny):
    items = search({}, tiny["root"])
    by_collection = {}
    for item in items:
        by_collection.setdefault(item.collection_id, []).append(item.id)
    assert sorted(by_collection) == ["tiny-inventory", "tiny-planetscope", "tiny-sentinel2", "tiny-uav"]
    assert sorted(by_collection["tiny-planetscope"]) == ["tiny-planetscope-post", "tiny-planetscope-pre"]
    post = search({"query": {"geoslide:phase": {"eq": "post"}}, "collections": ["tiny-sentinel2"]}, tiny["root"])
    assert [i.id for i in post] == ["tiny-sentinel2-post"]
    pre = search({"ids": ["tiny-sentinel2-pre"]}, tiny["root"])[0]
    assert pre.datetime < post[0].datetime


def test_every_stac_file_validates_offline(tiny):
    validator = OfflineValidator(fetch_schemas())
    checked = 0
    for path in sorted(tiny["out"].rglob("*.json")):
        d = json.loads(path.read_text())
        used = validator.check(d, skip=(LABEL_EXT,))  # no offline copy of the label schema
        if d["type"] == "Feature" and "label:type" not in d["properties"]:
            assert len(used) == 4, f"{path.name} skipped an extension: {used}"
        checked += 1
    assert checked == 1 + 1 + 4 + 7  # root, event, 4 collections, 3 sensors x (pre, post) + inventory


def test_validator_rejects_a_broken_item(tiny):
    item = search({"ids": ["tiny-planetscope-post"]}, tiny["root"])[0].to_dict()
    item["assets"]["image"]["bands"][0]["eo:common_name"] = "ultraviolet"
    with pytest.raises(pystac.STACValidationError, match="ultraviolet"):
        OfflineValidator(fetch_schemas()).check(item)


@pytest.mark.parametrize(("item_id", "bands", "asset_keys"), [
    ("tiny-planetscope-post", ["blue", "green", "red", "nir"], ["image"] * 4),
    ("tiny-uav-pre", ["red", "green", "blue"], ["image"] * 3),
    ("tiny-sentinel2-post", ["B12", "nir", "elevation", "slope"], ["B12", "B08", "dem", "slope"]),
])
def test_cube_equals_rasterio(tiny, item_id, bands, asset_keys):
    item = search({"ids": [item_id]}, tiny["root"])[0]
    cube = open_cube([item], bands, dtype="float32", nodata=np.nan)
    for i, key in enumerate(asset_keys):
        with rasterio.open(_file(item, key)) as ds:
            band_index = [b["name"] for b in item.assets[key].extra_fields["bands"]].index(
                bands[i] if key == "image" else ds.descriptions[0])
            expected = ds.read(band_index + 1, masked=True).astype("float32").filled(np.nan)
            assert cube.rio.transform().almost_equals(ds.transform)
            assert cube.rio.crs == ds.crs
        np.testing.assert_array_equal(cube.values[0, i], expected)


def test_grids_have_odd_origins_and_native_resolutions(tiny):
    for sensor, res in (("uav", 0.5), ("planetscope", 3.0), ("sentinel2", 10.0)):
        item = search({"collections": [f"tiny-{sensor}"]}, tiny["root"])[0]
        grid = grid_of(open_cube([item], ["red"]))
        assert grid.resolution == res
        assert grid.bounds[0] % res != 0  # exercises stackstac's snap_bounds trap


def test_post_planetscope_has_a_nodata_corner(tiny):
    item = search({"ids": ["tiny-planetscope-post"]}, tiny["root"])[0]
    cube = open_cube([item], ["nir"])
    assert cube.rio.nodata == 0
    values = cube.values[0, 0]
    assert values[0, -1] == 0 and values[-1, 0] > 0
    assert abs((values == 0).mean() - 1 / 8) < 0.01  # the cut corner is a right triangle with legs of half a side


def test_inventory_matches_imagery(tiny):
    """Landslide pixels of the post-event scene are bare (low NDVI); before the event they were vegetated."""
    inv_item = search({"collections": ["tiny-inventory"]}, tiny["root"])[0]
    native = gpd.read_parquet(_file(inv_item, "labels-parquet"))
    latlon = gpd.read_file(_file(inv_item, "labels"))
    assert len(native) == len(latlon) >= 5 and latlon.crs.to_epsg() == 4326
    assert f"EPSG:{native.crs.to_epsg()}" == inv_item.properties["proj:code"]
    ps = search({"collections": ["tiny-planetscope"]}, tiny["root"])
    cube = open_cube(ps, ["red", "nir"], dtype="float32", nodata=np.nan).compute()
    grid = grid_of(cube)
    mask = rasterize(native.geometry, out_shape=grid.shape, transform=grid.transform).astype(bool)
    ndvi = (cube.sel(band="nir") - cube.sel(band="red")) / (cube.sel(band="nir") + cube.sel(band="red"))
    pre, post = ndvi.values
    assert np.nanmedian(post[mask]) < 0.3 < np.nanmedian(pre[mask])
    assert abs(mask.sum() * 9.0 / native.union_all().area - 1) < 0.05  # cluster members overlap


def test_same_seed_same_event_other_seed_other_event(tiny, tmp_path):
    again = write_demo(tmp_path / "again", seed=3, events=["tiny"], sensors=["planetscope"])
    other = write_demo(tmp_path / "other", seed=4, events=["tiny"], sensors=["planetscope"])
    arrays = []
    for root in (tiny["root"], again, other):
        item = search({"ids": ["tiny-planetscope-post"]}, root)[0]
        with rasterio.open(_file(item, "image")) as ds:
            arrays.append(ds.read())
    np.testing.assert_array_equal(arrays[0], arrays[1])
    assert not np.array_equal(arrays[0], arrays[2])


def test_refuses_a_non_empty_folder_and_touches_nothing(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(GeoslideError, match="not empty"):
        write_demo(out, events=["tiny"])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_failure_midway_leaves_no_partial_output(tmp_path, monkeypatch):
    calls = []

    def failing_render(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    original = demo_catalog.render_scene
    monkeypatch.setattr(demo_catalog, "render_scene", failing_render)
    with pytest.raises(RuntimeError, match="disk full"):
        write_demo(tmp_path / "out", events=["tiny"])
    assert list(tmp_path.iterdir()) == []


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "geoslide.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_cli_demo_writes_a_catalog(tmp_path):
    done = _cli("demo", "--out", "cat", "--seed", "1", "--events", "tiny", "--sensors", "sentinel2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == tmp_path / "cat" / "catalog.json"
    assert [p.name for p in tmp_path.iterdir()] == ["cat"]  # a relative --out writes nothing beside it
    listed = _cli("search", "--catalog", str(tmp_path / "cat"))
    assert listed.stdout.split() == ["tiny-sentinel2-pre", "tiny-sentinel2-post", "tiny-inventory"]


@pytest.mark.parametrize(("args", "message"), [
    (["--events", "atlantis"], "unknown demo event 'atlantis'"),
    (["--sensors", "hubble"], "unknown sensor"),
])
def test_cli_demo_bad_input_exit_2(tmp_path, args, message):
    done = _cli("demo", "--out", str(tmp_path / "x"), *args)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()
