"""Lazy cubes: grid and values against a plain rasterio read of the same files."""

from __future__ import annotations

import dask.array
import numpy as np
import pytest
import rasterio
from conftest import DEM, L7, L8, S2
from rasterio.warp import Resampling, reproject
from rasterio.windows import from_bounds
from rasters import _assert_grid, _read

from geoslide import GridSpec, grid_of, open_cube, search
from geoslide.errors import BandError, CRSError, GridError


@pytest.fixture(params=["static", "api"])
def items(request, real_catalog):
    """The same items from the static catalog and from the real STAC API (proj:code only, file:// hrefs)."""
    where = real_catalog["catalog"] if request.param == "static" else request.getfixturevalue("stac_api")
    return {i.id: i for i in search({}, where)}


def test_multiband_asset_equals_rasterio(items):
    arr, transform, epsg = _read(S2)
    cube = open_cube([items["s2-pre"]], ["nir", "red", "green"], chunksize=128)
    assert isinstance(cube.data, dask.array.Array)
    assert cube.dims == ("time", "band", "y", "x") and list(cube.band.values) == ["nir", "red", "green"]
    assert cube.dtype == np.uint16
    _assert_grid(cube, transform, arr.shape[1:], epsg)
    np.testing.assert_array_equal(cube.values[0], arr[[3, 0, 1]])


def test_one_cog_per_band_equals_multiband(items):
    both = open_cube([items["s2-pre"], items["s2-post"]], ["red", "nir"])
    assert [str(t)[:10] for t in both.time.values] == ["2023-01-10", "2023-03-02"]
    np.testing.assert_array_equal(both.values[0], both.values[1])


def test_odd_resolution_grid_is_not_shifted(items):
    """28.5 m pixels whose origin is not a multiple of the resolution (stackstac's snap_bounds trap)."""
    arr, transform, epsg = _read(L7)
    cube = open_cube([items["l7-olinda"]], ["swir22", "blue"])
    _assert_grid(cube, transform, arr.shape[1:], epsg)
    assert cube.dtype == np.uint8
    np.testing.assert_array_equal(cube.values[0], arr[[5, 0]])


def test_bands_from_two_assets_and_nodata(items):
    rgbn, transform, epsg = _read(L8)
    dem, dem_transform, _ = _read(DEM, 1)
    assert dem_transform == transform
    cube = open_cube([items["l8-alps"]], ["elevation"])
    assert cube.rio.nodata == -32768 and cube.dtype == np.int16
    np.testing.assert_array_equal(cube.values[0, 0], dem)
    mixed = open_cube([items["l8-alps"]], ["nir", "elevation"], dtype="float32", nodata=np.nan)
    np.testing.assert_allclose(mixed.values[0, 0], rgbn[3])
    expected_dem = np.where(dem == -32768, np.nan, dem).astype("float32")
    np.testing.assert_array_equal(mixed.values[0, 1], expected_dem)


def test_bounds_subset_equals_rasterio_window(items):
    arr, transform, epsg = _read(S2)
    bounds = (600_500.0, 4_698_100.0, 601_000.0, 4_699_010.0)  # inside the data (bottom edge 4_698_020)
    cube = open_cube([items["s2-pre"]], ["green"], bounds=bounds)
    window = from_bounds(*bounds, transform=transform).round_offsets().round_lengths()
    with rasterio.open(S2) as ds:
        expected = ds.read(2, window=window)
        win_transform = ds.window_transform(window)
    _assert_grid(cube, win_transform, expected.shape, epsg)
    np.testing.assert_array_equal(cube.values[0, 0], expected)


def test_bounds_are_snapped_outward_onto_the_native_grid(items):
    _, transform, _ = _read(S2)
    cube = open_cube([items["s2-pre"]], ["red"], bounds=(600_503.0, 4_698_004.0, 600_997.0, 4_699_006.0))
    g = grid_of(cube)
    assert g.bounds == (600_500.0, 4_698_000.0, 601_000.0, 4_699_010.0)
    assert (g.bounds[0] - transform.c) % 10 == 0


def test_padding_outside_footprint_is_nodata(items):
    arr, transform, _ = _read(S2)
    left, top = transform.c, transform.f
    cube = open_cube([items["s2-pre"]], ["red"], bounds=(left - 100, top - 1000, left + 100, top - 900))
    values = cube.values[0, 0]
    assert values.shape == (10, 20)
    assert (values[:, :10] == 0).all()
    np.testing.assert_array_equal(values[:, 10:], arr[0][90:100, :10])


def test_reprojection_matches_rasterio_warp(items):
    """Target CRS and resolution: same as rasterio.warp.reproject onto the same grid."""
    cube = open_cube([items["l8-alps"]], ["red"], epsg=3035, resolution=60.0, resampling="bilinear",
                     dtype="float32", nodata=np.nan)
    g = grid_of(cube)
    src, src_transform, src_epsg = _read(L8, 1)
    expected = np.full(g.shape, np.nan, dtype="float32")
    reproject(src.astype("float32"), expected, src_transform=src_transform, src_crs=f"EPSG:{src_epsg}",
              dst_transform=g.transform, dst_crs="EPSG:3035", resampling=Resampling.bilinear, dst_nodata=np.nan)
    got = cube.values[0, 0]
    both = ~np.isnan(got) & ~np.isnan(expected)
    assert both.sum() > 0.5 * got.size
    assert np.nanmax(np.abs(got[both] - expected[both])) < 1.0


def test_an_exact_grid_off_the_native_one_is_kept_and_matches_rasterio_warp(items):
    """grid=: pixels a third of a native pixel off, 25 m instead of 10 m, as a DEM is put on another sensor's grid."""
    _, transform, epsg = _read(S2)
    grid = GridSpec(epsg, (transform.c + 3.3, transform.f - 1003.3, transform.c + 503.3, transform.f - 3.3), 25.0)
    cube = open_cube([items["s2-pre"]], ["red"], grid=grid, resampling="bilinear", rescale=True)
    assert grid_of(cube) == grid
    src, src_transform, _ = _read(S2, 1)
    expected = np.full(grid.shape, np.nan, dtype="float32")
    reproject(src.astype("float32"), expected, src_transform=src_transform, src_crs=f"EPSG:{epsg}", src_nodata=0,
              dst_transform=grid.transform, dst_crs=f"EPSG:{epsg}", resampling=Resampling.bilinear, dst_nodata=np.nan)
    # GDAL warps in the asset's data type (uint16 here): the bilinear values come rounded
    np.testing.assert_allclose(cube.values[0, 0], expected, atol=0.5 + 1e-3)
    with pytest.raises(GridError, match="either grid= or epsg"):
        open_cube([items["s2-pre"]], ["red"], grid=grid, epsg=epsg)
    away = GridSpec(epsg, (grid.bounds[0] + 1e5, grid.bounds[1], grid.bounds[2] + 1e5, grid.bounds[3]), 25.0)
    with pytest.raises(GridError, match="outside the target grid"):
        open_cube([items["s2-pre"]], ["red"], grid=away)


def test_chunks_follow_chunksize(items):
    cube = open_cube([items["s2-pre"]], ["red", "nir"], chunksize=64)
    assert cube.chunks[2][0] == 64 and cube.chunks[3][0] == 64


def test_missing_band_lists_what_is_offered(items):
    with pytest.raises(BandError, match=r"band 'swir16' is not in item 's2-pre'; it offers: blue, green, nir, red"):
        open_cube([items["s2-pre"]], ["red", "swir16"])


def test_bounds_outside_data(items):
    with pytest.raises(GridError, match="miss the data"):
        open_cube([items["s2-pre"]], ["red"], bounds_latlon=(10.0, 45.0, 10.1, 45.1))


def test_several_crs_need_a_target(items):
    with pytest.raises(GridError, match="several CRSs.*pass epsg="):
        open_cube([items["s2-pre"], items["l7-olinda"]], ["red"])


def test_item_without_crs(items):
    d = items["s2-pre"].to_dict()
    for key in [k for k in d["properties"] if k.startswith("proj:")]:
        del d["properties"][key]
    with pytest.raises(CRSError, match="has no CRS.*proj:code"):
        open_cube([d], ["red"])
