"""The per-chunk mosaic across UTM zones against rasterio + numpy, and the items each chunk reads."""

from __future__ import annotations

import numpy as np
import pytest

from geoslide.raster.chunkread import open_mosaic, window_bounds
from geoslide.raster.cube import open_cube
from geoslide.raster.grid import grid_of, transform_bounds, transform_many
from geoslide.raster.sources import plan_mosaic
from tests.zones import BANDS, TARGET, reference_item, reference_mosaic, zone_catalog


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    return zone_catalog(tmp_path_factory.mktemp("zones"))


def test_mosaic_across_zones_equals_rasterio_warp_and_numpy(items):
    mosaic = open_mosaic(items, BANDS, chunksize=48, epsg=TARGET, resolution=10.0)
    grid = grid_of(mosaic)
    assert grid == grid_of(open_cube(items, list(BANDS), epsg=TARGET, resolution=10.0))  # the cube path's grid
    expected = reference_mosaic(items, grid)
    assert np.isnan(expected).all(axis=0).mean() > 0.3  # the gap before the lone tile
    np.testing.assert_array_equal(mosaic.values, expected)


def test_one_task_per_chunk_reading_only_the_items_with_data_there(items):
    mosaic = open_mosaic(items, BANDS, chunksize=48, epsg=TARGET, resolution=10.0)
    graph = dict(mosaic.data.__dask_graph__())
    assert len(graph) == np.prod(mosaic.data.numblocks)
    grid, cy, cx = grid_of(mosaic), 48, 48
    covered = {i.id: ~np.isnan(reference_item(i, grid)).any(axis=0) for i in items}
    for (_, _, i, j), task in graph.items():
        sources = {s.id for s in task[2]}
        rows, cols = slice(i * cy, (i + 1) * cy), slice(j * cx, (j + 1) * cx)
        with_data = {k for k, mask in covered.items() if mask[rows, cols].any()}
        assert with_data <= sources
        assert len(sources) <= len(with_data) + 4  # footprint boxes touching the chunk, never the whole catalog


def test_a_plan_queries_footprints_newest_first(items):
    plan = plan_mosaic(items, BANDS, epsg=TARGET, resolution=10.0)
    found = plan.query(plan.grid.bounds)
    assert len(found) == len(items)
    when = {i.id: i.datetime for i in items}
    assert [when[s.id] for s in found] == sorted(when.values(), reverse=True)
    empty = window_bounds(plan.grid, (0, plan.grid.shape[1] - 60, 5, 5))
    assert plan.query(empty) == ()


def test_vectorised_bounds_cover_pyproj_transform_bounds():
    boxes = np.array([[700_000.0, 4_980_000.0, 700_400.0, 4_980_400.0], [736_000.0, 4_990_000.0, 740_000.0,
                                                                          4_994_000.0]])
    many = transform_many(boxes, 32631, 32632)
    for box, got in zip(boxes, many, strict=True):
        np.testing.assert_allclose(got, transform_bounds(tuple(box), 32631, 32632), atol=1e-6)
