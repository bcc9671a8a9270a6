"""The bundled demo catalog: the default of every command, valid STAC, reproducible from its recipe."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from stac_schemas import OfflineValidator, fetch_schemas

from geoslide import open_cube, search
from geoslide.catalog.bundled import DEMO_RECIPE, demo_catalog_path
from geoslide.demo.catalog import write_demo

LABEL_EXT = "https://stac-extensions.github.io/label/v1.0.1/schema.json"


def test_search_defaults_to_the_bundled_catalog():
    done = subprocess.run([sys.executable, "-m", "geoslide.cli", "search", "--stac-query",
                           '{"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["demo-quake-planetscope-post"]


def test_bundled_catalog_has_both_triggers_and_all_sensors():
    items = search({})
    assert {i.properties["geoslide:trigger"] for i in items} == {"earthquake", "rainfall"}
    assert {i.collection_id for i in items} == {f"{e}-{s}" for e in DEMO_RECIPE["events"]
                                                for s in ("uav", "planetscope", "sentinel2", "inventory")}


def test_bundled_catalog_validates_offline():
    validator = OfflineValidator(fetch_schemas())
    files = sorted(demo_catalog_path().parent.rglob("*.json"))
    assert len(files) == 1 + 2 * (1 + 4 + 7)
    for path in files:
        validator.check(json.loads(path.read_text()), skip=(LABEL_EXT,))


def test_bundled_post_scene_loads_as_a_cube():
    item = search({"ids": ["demo-storm-planetscope-post"]})[0]
    cube = open_cube([item], ["red", "nir"])
    assert cube.rio.crs.to_epsg() == 32718 and cube.dtype == np.uint16
    with rasterio.open(item.assets["image"].get_absolute_href()) as ds:
        np.testing.assert_array_equal(cube.values[0, 1], ds.read(4))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("regen") / "demo", **DEMO_RECIPE)


def test_recipe_reproduces_the_inventories(regenerated):
    for event in DEMO_RECIPE["events"]:
        rel = f"{event}/{event}-inventory/inventory.parquet"
        shipped = gpd.read_parquet(demo_catalog_path().parent / rel)
        fresh = gpd.read_parquet(regenerated.parent / rel)
        assert len(shipped) == len(fresh)
        assert shipped.geometry.geom_equals_exact(fresh.geometry, tolerance=1e-6).all()


def test_recipe_reproduces_the_rasters(regenerated):
    for rel in ("demo-quake/demo-quake-planetscope/demo-quake-planetscope-post.tif",
                "demo-storm/demo-storm-sentinel2/demo-storm-sentinel2-post_B11.tif"):
        with rasterio.open(demo_catalog_path().parent / rel) as a, rasterio.open(regenerated.parent / rel) as b:
            x, y = a.read().astype(int), b.read().astype(int)
            assert a.transform == b.transform and x.shape == y.shape
            # floating-point paths may differ by one count on another CPU, nothing more
            assert np.abs(x - y).max() <= 1 and (x != y).mean() < 1e-3
