"""Mask -> landslide polygons, checked against whole-image rasterio/scipy references."""

from __future__ import annotations

import json
import time

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio.features
import rioxarray  # noqa: F401  (registers .rio)
import shapely
import xarray as xr
from affine import Affine
from dask.callbacks import Callback
from pyproj import Transformer
from scipy import ndimage

from geoslide.errors import ConfigError, CRSError, GridError, OutputError
from geoslide.inventory.summary import inventory_summary, summary_markdown, summary_table
from geoslide.inventory.vectorize import pixel_transform, vectorize
from geoslide.inventory.write import write_vectors

EPSG = 32645
RES = 3.0
ORIGIN = (412345.37, 3051234.81)  # non-integer, not a multiple of the resolution
STRUCTURE = {4: ndimage.generate_binary_structure(2, 1), 8: ndimage.generate_binary_structure(2, 2)}


def blobs(shape, seed, threshold=0.53, nodata_share=0.02):
    """Blobby random landslides (smoothed noise), with scattered nodata pixels."""
    rng = np.random.default_rng(seed)
    mask = (ndimage.gaussian_filter(rng.random(shape), 2.5) > threshold).astype(np.uint8)
    mask[rng.random(shape) < nodata_share] = 255
    return mask


def as_mask(array, chunks, origin=ORIGIN, res=RES, epsg=EPSG):
    h, w = array.shape
    x = origin[0] + (np.arange(w) + 0.5) * res
    y = origin[1] - (np.arange(h) + 0.5) * res
    data = da.from_array(array, chunks=chunks) if chunks else array
    return xr.DataArray(data, dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(epsg)


def reference(array, transform, connectivity):
    """Whole-image rasterio shapes, dissolved per scipy.ndimage component (label k = k-th in raster order)."""
    land = array == 1
    labels, n = ndimage.label(land, structure=STRUCTURE[connectivity])
    parts = [[] for _ in range(n)]
    for geom, _ in rasterio.features.shapes(land.astype(np.uint8), mask=land, connectivity=connectivity,
                                            transform=transform):
        inside = rasterio.features.rasterize([geom], out_shape=array.shape, transform=transform).astype(bool)
        found = np.unique(labels[inside])
        assert found.size == 1 and found[0] > 0
        parts[found[0] - 1].append(shapely.geometry.shape(geom))
    geoms = [shapely.union_all(p) for p in parts]
    return geoms, labels, np.bincount(labels.ravel(), minlength=n + 1)[1:]


def transform_of(origin=ORIGIN, res=RES):
    return Affine(res, 0.0, origin[0], 0.0, -res, origin[1])


@pytest.mark.parametrize("connectivity", [8, 4])
@pytest.mark.parametrize("chunks", [64, (50, 97)])
def test_equals_whole_image_vectorisation(connectivity, chunks):
    array = blobs((300, 420), seed=1)
    got = vectorize(as_mask(array, chunks, origin=(500000.0, 3000000.0)), connectivity=connectivity)
    geoms, _, pixels = reference(array, transform_of((500000.0, 3000000.0)), connectivity)
    assert len(got) == len(geoms) > 30
    assert got.landslide_id.tolist() == list(range(1, len(geoms) + 1))
    sym = shapely.area(shapely.symmetric_difference(got.geometry.to_numpy(), np.array(geoms, dtype=object)))
    assert sym.max() == 0.0
    assert shapely.is_valid(got.geometry.to_numpy()).all()
    np.testing.assert_array_equal(got.pixel_count.to_numpy(), pixels)
    np.testing.assert_allclose(got.area_m2.to_numpy(), pixels * RES**2, rtol=1e-12)
    if connectivity == 4:
        assert set(got.geom_type) == {"Polygon"}


def test_chunking_does_not_change_result():
    array = blobs((300, 420), seed=2)
    one = vectorize(as_mask(array, None))
    many = vectorize(as_mask(array, 33))
    assert len(one) == len(many)
    assert (shapely.area(shapely.symmetric_difference(one.geometry.to_numpy(), many.geometry.to_numpy())) == 0).all()
    np.testing.assert_array_equal(one.pixel_count, many.pixel_count)


def test_crs_and_coordinates_match_rasterio_transform():
    array = blobs((200, 260), seed=3)
    mask = as_mask(array, 64)
    assert pixel_transform(mask).almost_equals(transform_of(), precision=1e-9)
    got = vectorize(mask)
    assert got.crs.to_epsg() == EPSG
    geoms, _, pixels = reference(array, transform_of(), 8)
    sym = shapely.area(shapely.symmetric_difference(got.geometry.to_numpy(), np.array(geoms, dtype=object)))
    assert sym.max() == 0.0
    ours, theirs = got.geometry.total_bounds, shapely.total_bounds(np.array(geoms, dtype=object))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.area_m2, pixels * RES**2, rtol=1e-9)


def test_landslide_over_a_chunk_corner_is_one_polygon():
    array = np.zeros((128, 128), np.uint8)
    array[50:80, 40:90] = 1
    got = vectorize(as_mask(array, 64))
    assert len(got) == 1
    t = transform_of()
    box = shapely.box(*(t * (40, 80)), *(t * (90, 50)))
    assert shapely.area(shapely.symmetric_difference(got.geometry.iloc[0], box)) <= 1e-6
    assert got.pixel_count.iloc[0] == 30 * 50
    assert got.perimeter_m.iloc[0] == pytest.approx(2 * (30 + 50) * RES)


def test_corner_contact_across_chunks_follows_connectivity():
    array = np.zeros((128, 128), np.uint8)
    array[60:64, 60:64] = 1
    array[64:66, 64:66] = 1  # touches the first square only at the shared corner of four chunks
    assert len(vectorize(as_mask(array, 64), connectivity=8)) == 1
    four = vectorize(as_mask(array, 64), connectivity=4)
    assert four.pixel_count.tolist() == [16, 4]


def test_nodata_and_background_are_not_vectorised():
    array = np.full((90, 90), 255, np.uint8)
    array[:, :30] = 0
    assert vectorize(as_mask(array, 32)).empty
    array[10:20, 10:20] = 1
    got = vectorize(as_mask(array, 32))
    assert len(got) == 1 and got.pixel_count.iloc[0] == 100
    assert list(got.columns) == ["landslide_id", "area_m2", "perimeter_m", "pixel_count", "geometry"]


def test_min_area_drops_small_landslides():
    array = blobs((300, 420), seed=4)
    _, _, pixels = reference(array, transform_of(), 8)
    min_area = float(np.median(pixels)) * RES**2
    got = vectorize(as_mask(array, 64), min_area=min_area)
    assert len(got) == int((pixels * RES**2 >= min_area).sum()) < len(pixels)
    assert got.landslide_id.tolist() == list(range(1, len(got) + 1))
    np.testing.assert_array_equal(got.pixel_count, pixels[pixels * RES**2 >= min_area])


def test_probability_zonal_statistics():
    array = blobs((200, 260), seed=5)
    rng = np.random.default_rng(6)
    prob = rng.random(array.shape).astype(np.float32)
    prob[rng.random(array.shape) < 0.05] = np.nan
    mask = as_mask(array, 48)
    got = vectorize(mask, probability=mask.copy(data=da.from_array(prob, chunks=100)))
    _, labels, _ = reference(array, transform_of(), 8)
    for row in got.itertuples():
        values = prob[labels == row.landslide_id].astype(np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            assert row.mean_probability == pytest.approx(values.mean(), rel=1e-9)
            assert row.max_probability == pytest.approx(values.max(), rel=1e-9)
        else:
            assert np.isnan(row.mean_probability) and np.isnan(row.max_probability)


def disks(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return [(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2 for cy, cx in centres]


@pytest.mark.parametrize("second", [(50, 85), (52, 82)], ids=["touching", "overlapping"])
def test_split_separates_two_touching_disks(second):
    one, two = disks((100, 140), [(50, 45), second], 20)
    assert ndimage.label(one | two)[1] == 1  # amalgamated: one 4-connected blob
    array = (one | two).astype(np.uint8)
    prob = np.where(one, 0.9, 0.4).astype(np.float32)
    mask = as_mask(array, 32)
    whole = vectorize(mask)
    parts = vectorize(mask, split=True, probability=mask.copy(data=da.from_array(prob, chunks=32)))
    assert len(whole) == 1 and len(parts) == 2
    assert shapely.area(shapely.symmetric_difference(shapely.union_all(parts.geometry), whole.geometry[0])) <= 1e-6
    assert shapely.is_valid(parts.geometry.to_numpy()).all()
    assert parts.pixel_count.sum() == array.sum()
    for disk, row in zip((one, two), parts.itertuples(), strict=True):
        assert abs(row.pixel_count - disk.sum()) <= 0.05 * disk.sum()
    left, right = parts.itertuples()
    assert left.mean_probability > 0.85 and right.mean_probability < 0.5
    assert right.max_probability == pytest.approx(0.9, rel=1e-6)  # the cut leaves a few pixels of disk one


def test_split_leaves_single_landslides_whole():
    array = np.zeros((120, 160), np.uint8)
    array[20:40, 10:150] = 1  # long, even-width scar
    array |= disks(array.shape, [(85, 60)], 25)[0]
    got = vectorize(as_mask(array, 50), split=True)
    plain = vectorize(as_mask(array, 50))
    assert len(got) == len(plain) == 2
    np.testing.assert_array_equal(got.pixel_count, plain.pixel_count)


def test_geographic_mask_areas_are_metres():
    array = np.zeros((60, 60), np.uint8)
    array[10:40, 20:50] = 1
    res = 1e-4
    got = vectorize(as_mask(array, 32, origin=(86.5, 28.1), res=res, epsg=4326))
    utm = got.to_crs(EPSG)
    assert got.area_m2.iloc[0] == pytest.approx(utm.area.iloc[0], rel=2e-3)
    assert got.perimeter_m.iloc[0] == pytest.approx(utm.length.iloc[0], rel=2e-3)


def test_write_vectors_geoparquet_and_wgs84_geojson(tmp_path):
    got = vectorize(as_mask(blobs((120, 150), seed=7), 64))
    parquet, geojson = write_vectors(got, tmp_path / "out" / "landslides.parquet")
    back = gpd.read_parquet(parquet)
    assert back.crs.to_epsg() == EPSG and back.geometry.geom_equals(got.geometry).all()
    doc = json.loads(geojson.read_text())
    assert "crs" not in doc and len(doc["features"]) == len(got)  # RFC 7946: WGS84 lon/lat, no crs member
    lonlat = gpd.read_file(geojson)
    assert lonlat.crs.to_epsg() == 4326
    to_ll = Transformer.from_crs(EPSG, 4326, always_xy=True)
    x, y = shapely.get_coordinates(got.geometry.iloc[0]).T
    lon, lat = to_ll.transform(x, y)
    first = np.array(doc["features"][0]["geometry"]["coordinates"][0]) if doc["features"][0]["geometry"][
        "type"] == "Polygon" else np.array(doc["features"][0]["geometry"]["coordinates"][0][0])
    assert set(map(tuple, np.round(first, 6))) <= set(zip(np.round(lon, 6), np.round(lat, 6), strict=True))
    assert sorted(p.name for p in parquet.parent.iterdir()) == ["landslides.geojson", "landslides.parquet"]


def test_failed_write_leaves_previous_files(tmp_path):
    got = vectorize(as_mask(blobs((120, 150), seed=8), 64))
    parquet, geojson = write_vectors(got, tmp_path / "v.parquet")
    before = parquet.read_bytes(), geojson.read_bytes()
    # Parquet stores durations but GeoJSON cannot: fails after the GeoParquet temp file is written
    late = got.assign(age=pd.to_timedelta(np.arange(len(got)), unit="s"))
    early = got.assign(bad=[object()] * len(got))  # fails in the GeoParquet step
    for broken in (late, early):
        with pytest.raises(OutputError, match="cannot write vectors"):
            write_vectors(broken, parquet)
        assert (parquet.read_bytes(), geojson.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.geojson", "v.parquet"]
    with pytest.raises(OutputError, match=r"\.parquet, \.gpkg, \.fgb"):
        write_vectors(got, tmp_path / "v.shp")


def test_inventory_summary_matches_numpy():
    array = blobs((200, 260), seed=9)
    got = vectorize(as_mask(array, 64))
    _, _, pixels = reference(array, transform_of(), 8)
    areas = pixels * RES**2
    summary = inventory_summary(got, event="nepal")
    assert summary["event"] == "nepal" and summary["count"] == areas.size
    for key, value in (("min_m2", areas.min()), ("max_m2", areas.max()), ("mean_m2", areas.mean()),
                       ("total_m2", areas.sum()), ("total_km2", areas.sum() / 1e6)):
        assert summary[key] == pytest.approx(value, rel=1e-9)
    from_geometry = inventory_summary(got[["geometry"]])  # areas from the geometries (UTM zone of the mask)
    assert from_geometry["total_m2"] == pytest.approx(areas.sum(), rel=1e-9)
    empty = inventory_summary(got.iloc[:0], event="none")
    assert empty["count"] == 0 and empty["min_m2"] is None and empty["total_km2"] == 0
    table = summary_table([summary, empty])
    assert table.event.tolist() == ["nepal", "none"] and table["count"].tolist() == [areas.size, 0]
    text = summary_markdown([summary, empty]).splitlines()
    assert len(text) == 4 and text[2].startswith(f"| nepal | {areas.size} |") and "n/a" in text[3]


def test_bad_inputs_raise_one_line_errors():
    array = np.zeros((40, 40), np.uint8)
    mask = as_mask(array, 16)
    with pytest.raises(CRSError, match="write_crs"):
        vectorize(xr.DataArray(array, dims=("y", "x"), coords={"y": mask.y, "x": mask.x}))
    with pytest.raises(GridError, match="2-D"):
        vectorize(mask.expand_dims(band=[1]))
    with pytest.raises(GridError, match="grid"):
        vectorize(mask, probability=mask[:20].astype(np.float32))
    with pytest.raises(ConfigError, match="connectivity"):
        vectorize(mask, connectivity=6)


class _LargestResult(Callback):
    """Records the largest array any task of a (local-scheduler) computation returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        if isinstance(result, np.ndarray):
            self.largest = max(self.largest, result.size)


def test_large_lazy_mask_is_vectorised_chunk_by_chunk():
    size, chunk = 4000, 500
    squares = [(100, 120, 30), (480, 490, 40), (1990, 2480, 25), (3970, 3970, 30)]  # row, col, side

    def draw(block, block_info=None):
        block = block.copy()
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        for r, c, s in squares:
            block[max(r, r0) - r0: max(min(r + s, r1) - r0, 0), max(c, c0) - c0: max(min(c + s, c1) - c0, 0)] = 1
        return block

    mask = da.zeros((size, size), dtype=np.uint8, chunks=chunk).map_blocks(draw, dtype=np.uint8)
    x = 600000.0 + (np.arange(size) + 0.5) * RES
    y = 3100000.0 - (np.arange(size) + 0.5) * RES
    lazy = xr.DataArray(mask, dims=("y", "x"), coords={"y": y, "x": x}).rio.write_crs(EPSG)
    start = time.perf_counter()
    with _LargestResult() as seen:
        got = vectorize(lazy)
    assert time.perf_counter() - start < 10
    assert 0 < seen.largest <= chunk * chunk
    sides = [min(s, size - r, size - c) for r, c, s in squares]
    assert got.pixel_count.tolist() == [s * s for s in sides]
    assert (got.geom_type == "Polygon").all()
