"""geoslide: cloud-native, scalable landslide mapping on Dask and xarray.

The public verbs follow the data flow: :func:`search` STAC items, :func:`open_cube` to load
them lazily, and (in ``geoslide.demo``) synthetic events to try it all on.
"""

from geoslide._version import version
from geoslide.catalog.query import StacQuery
from geoslide.catalog.search import open_source, search
from geoslide.errors import GeoslideError
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
