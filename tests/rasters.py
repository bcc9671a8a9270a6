"""Assertions on rasters shared by the cube and STAC API tests: rasterio is the reference."""

import numpy as np
import rasterio


def _read(path, indexes=None):
    with rasterio.open(path) as ds:
        return ds.read(indexes), ds.transform, ds.crs.to_epsg()


def _assert_grid(cube, transform, shape, epsg):
    assert cube.rio.crs.to_epsg() == epsg
    assert cube.rio.transform().almost_equals(transform)
    assert cube.shape[-2:] == shape
    # pixel-centre coordinates, as rasterio computes them
    assert np.allclose(cube.x.values, [(transform @ (c + 0.5, 0.5))[0] for c in range(shape[1])])
    assert np.allclose(cube.y.values, [(transform @ (0.5, r + 0.5))[1] for r in range(shape[0])])
