"""Raster masks as labels: reprojected onto any grid (against rasterio's reproject), scored and counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject
from scipy import ndimage

from geoslide.cli import main
from geoslide.errors import LabelError
from geoslide.evaluation.score import evaluate_map
from geoslide.inventory.codes import MASK_NODATA
from geoslide.inventory.maskvalues import parse_mask_values
from geoslide.inventory.rastermask import labels_on_grid
from geoslide.mapping.store import open_map, write_map
from geoslide.raster.grid import GridSpec

GRID = GridSpec(32645, (351_000.0, 3_071_000.0, 351_000.0 + 3 * 210, 3_071_000.0 + 3 * 150), 3.0)


def _blobs(shape, seed):
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 6)
    return (noise > np.quantile(noise, 0.85)).astype(np.uint8)


def _write_mask(path, crs, transform, values, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype="uint8", crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(values, 1)


@pytest.fixture
def lonlat_mask(tmp_path):
    """A 0/1 mask with 85 for clouds in EPSG:4326 at ~1.9 m, covering the grid and a margin but not its east end."""
    values = _blobs((300, 330), 1)
    values[:40, :60] = 85
    path = tmp_path / "mask_4326.tif"
    _write_mask(path, "EPSG:4326", from_origin(85.4878, 27.7595, 2e-5, 1.7e-5), values)
    return path, values


def _reference(path, grid, mapping):
    with rasterio.open(path) as src:
        raw, transform, crs = src.read(1).astype(np.float32), src.transform, src.crs
    out = np.full(grid.shape, np.nan, np.float32)
    reproject(raw, out, src_transform=transform, src_crs=crs, dst_transform=grid.transform,
              dst_crs=grid.crs.to_wkt(), dst_nodata=np.nan, resampling=Resampling.nearest)
    return parse_mask_values(mapping).apply(out, "ref")


@pytest.mark.parametrize("chunks", [64, (50, 97), 1024])
def test_a_mask_in_another_crs_equals_rasterio_reproject_nearest(lonlat_mask, chunks):
    path, _ = lonlat_mask
    expected = _reference(path, GRID, "0,1,85")
    got = labels_on_grid(path, GRID, chunks=chunks, mask_values="0,1,85").values
    assert {0, 1, MASK_NODATA} <= set(np.unique(expected).tolist())  # clouds and the uncovered part are nodata
    mismatch = (got != expected).mean()
    assert mismatch == 0, f"{mismatch:.4%} of pixels differ from the whole-grid reproject"


def test_mask_value_checks(lonlat_mask):
    path, _ = lonlat_mask
    with pytest.raises(LabelError, match=r"values \['0', '1', '85'\]"):
        labels_on_grid(path, GRID)  # auto cannot guess what 85 means
    with pytest.raises(LabelError, match=r"mask values \['85'\] are not in --mask-values 0,1"):
        labels_on_grid(path, GRID, mask_values="0,1")


def _map_store(tmp_path, seed=3):
    prob = np.random.default_rng(seed).random(GRID.shape).astype(np.float32)
    prob = ndimage.gaussian_filter(prob, 3)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    prob[:10, :10] = np.nan
    da = xr.DataArray(prob, dims=("y", "x"), coords={"y": GRID.y_coords(), "x": GRID.x_coords()}).chunk(64)
    out = tmp_path / "map.zarr"
    write_map(da.rio.write_crs(GRID.epsg), out, 0.5, {"model": "test"})
    return out


def test_evaluate_a_map_against_a_raster_mask_equals_a_numpy_confusion_matrix(tmp_path, lonlat_mask, capsys):
    path, _ = lonlat_mask
    out = _map_store(tmp_path)
    pred = open_map(out)["mask"].values
    truth = _reference(path, GRID, "0,1,85")
    valid = (pred != MASK_NODATA) & (truth != MASK_NODATA)
    p, t = (pred == 1) & valid, (truth == 1) & valid
    tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
    tn = int(valid.sum()) - tp - fp - fn
    scores = evaluate_map(out, path, mask_values="0,1,85")
    assert (scores["tn"], scores["fp"], scores["fn"], scores["tp"]) == (tn, fp, fn, tp)
    assert scores["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn)) and tp > 0 and fp > 0
    assert main(["evaluate", "--pred", str(out), "--labels", str(path), "--mask-values", "0,1,85"]) == 0
    assert json.loads(capsys.readouterr().out)["tp"] == tp


def test_stats_counts_the_landslides_of_a_raster_mask(tmp_path):
    values = _blobs((150, 210), 5) * 255
    path = tmp_path / "mask.tif"
    _write_mask(path, "EPSG:32645", GRID.transform, values)
    from geoslide.data.stats import inventory_areas

    areas = inventory_areas(path)["areas"]["all"]
    labelled, count = ndimage.label(values == 255, structure=np.ones((3, 3)))
    assert areas["count"] == count and areas["total_m2"] == pytest.approx((values == 255).sum() * 9.0)
    coded = np.where(values == 255, 7, 3).astype(np.uint8)  # an odd coding: 3 background, 7 landslide
    _write_mask(path, "EPSG:32645", GRID.transform, coded)
    assert inventory_areas(path, "3,7")["areas"]["all"] == areas
