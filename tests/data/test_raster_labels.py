"""`geoslide patches --labels MASK.tif` and `--resolution`: a raster mask labels patches as its polygons do."""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from geoslide import grid_of, open_cube, search
from geoslide.data.patches import PatchSpec
from geoslide.data.store import PatchStore
from geoslide.data.trainingset import TrainingSetSpec, build_patches
from geoslide.inventory.codes import MASK_NODATA


def _post():
    return search({"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}})


def _inventory():
    return search({"collections": ["demo-quake-inventory"]})[0].assets["labels-parquet"].get_absolute_href()


@pytest.fixture(scope="module")
def polygons_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("poly") / "p.zarr"
    spec = TrainingSetSpec(bands=("red", "green", "blue", "nir"), patch=PatchSpec(size=64), split="none")
    return build_patches(_post(), _inventory(), out, spec), spec


@pytest.mark.parametrize("factor", [1, 3])
def test_a_raster_mask_at_the_same_or_a_finer_pixel_size_gives_the_polygons_patches(polygons_store, tmp_path,
                                                                                   factor):
    store, spec = polygons_store
    grid = grid_of(open_cube(_post(), ["red"]))
    inv = gpd.read_parquet(_inventory())
    truth = rasterize(((g, 1) for g in inv.geometry), out_shape=grid.shape, transform=grid.transform, dtype="uint8")
    fine = np.kron(truth, np.ones((factor, factor), np.uint8)) * 255  # coded 0/255, each pixel factor x factor
    path = tmp_path / "mask.tif"
    transform = grid.transform * grid.transform.scale(1 / factor)
    with rasterio.open(path, "w", driver="GTiff", width=fine.shape[1], height=fine.shape[0], count=1, dtype="uint8",
                       crs=f"EPSG:{grid.epsg}", transform=transform, nodata=0) as ds:  # nodata 0 as GDAL tools write
        ds.write(fine, 1)
    raster = build_patches(_post(), str(path), tmp_path / "r.zarr", spec)
    assert len(raster) == len(store) > 5
    np.testing.assert_array_equal(raster.masks().compute(), store.masks().compute())
    np.testing.assert_array_equal(raster.meta()[["row", "col"]].to_numpy(), store.meta()[["row", "col"]].to_numpy())
    assert not (raster.masks().compute() == MASK_NODATA).any()


def test_cli_patches_with_a_raster_mask_and_a_resolution(tmp_path):
    grid = grid_of(open_cube(_post(), ["red"]))
    inv = gpd.read_parquet(_inventory())
    truth = rasterize(((g, 1) for g in inv.geometry), out_shape=grid.shape, transform=grid.transform, dtype="uint8")
    path = tmp_path / "mask.tif"
    with rasterio.open(path, "w", driver="GTiff", width=grid.shape[1], height=grid.shape[0], count=1, dtype="uint8",
                       crs=f"EPSG:{grid.epsg}", transform=grid.transform) as ds:
        ds.write(truth, 1)
    query = '{"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}'
    done = subprocess.run([sys.executable, "-m", "geoslide.cli", "patches", "--stac-query", query, "--labels",
                           str(path), "--mask-values", "0,1", "--out", str(tmp_path / "s.zarr"), "--patch-size", "32",
                           "--resolution", str(2 * grid.resolution), "--bands", "red", "--split", "none"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    meta = PatchStore.open(tmp_path / "s.zarr").meta()
    assert len(meta) > 0 and (meta.resolution == 2 * grid.resolution).all()
    assert np.allclose(meta.xmax - meta.xmin, 32 * 2 * grid.resolution)
