"""geoslide: cloud-native, scalable landslide mapping on Dask and xarray.

The public verbs follow the data flow: :func:`search` STAC items, :func:`open_cube` to load
them lazily, and (in ``geoslide.demo``) synthetic events to try it all on.

The names below are imported on first use, so that the command line (``geoslide --help``, an
option refused in one line) does not wait for rasterio, xarray and torch before it needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoslide._lazy import lazy_exports
from geoslide._version import version
from geoslide.errors import GeoslideError

if TYPE_CHECKING:
    from geoslide.catalog.query import StacQuery
    from geoslide.catalog.search import open_source, search
    from geoslide.raster.cube import CubeSpec, open_cube
    from geoslide.raster.grid import GridSpec, grid_of

__version__ = version()

__all__ = [
    "CubeSpec",
    "GeoslideError",
    "GridSpec",
    "StacQuery",
    "__version__",
    "grid_of",
    "open_cube",
    "open_source",
    "search",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "StacQuery": "geoslide.catalog.query",
    "open_source": "geoslide.catalog.search",
    "search": "geoslide.catalog.search",
    "CubeSpec": "geoslide.raster.cube",
    "open_cube": "geoslide.raster.cube",
    "GridSpec": "geoslide.raster.grid",
    "grid_of": "geoslide.raster.grid",
})
