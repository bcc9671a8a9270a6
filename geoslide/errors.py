"""The exception tree of geoslide.

Every error a user can cause derives from :class:`GeoslideError`. Messages are one
line saying what is wrong and how to fix it; the CLI prints that line and exits 2.
"""

from __future__ import annotations


class GeoslideError(Exception):
    """Root of every error geoslide raises on bad input or unusable data."""


class QueryError(GeoslideError, ValueError):
    """A STAC query (``--stac-query``) is malformed."""


class CatalogError(GeoslideError):
    """A STAC catalog or API cannot be opened or reached."""


class EmptySearchError(GeoslideError):
    """A search matched no item."""


class BandError(GeoslideError, KeyError):
    """A requested band is not offered by the items."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CRSError(GeoslideError):
    """An item, asset or label layer has no usable coordinate reference system."""


class GridError(GeoslideError, ValueError):
    """A target grid (bounds, resolution, CRS) is invalid or misses the data."""


class ConfigError(GeoslideError, ValueError):
    """A configuration file or option is invalid."""


class MixedDatesError(GeoslideError, ValueError):
    """The items to mosaic mix event phases or dates far apart."""


class LabelError(GeoslideError, ValueError):
    """A label layer (landslide inventory) is empty, lacks a CRS or misses the imagery."""


class PatchStoreError(GeoslideError):
    """A patch store is missing, of another kind, or does not fit what is appended."""


class GeoslideWarning(UserWarning):
    """Something was repaired or skipped; the message says what and how often."""


class ModelError(GeoslideError):
    """A model name, checkpoint or its metadata is unknown, missing or does not fit the input."""


class OutputError(GeoslideError):
    """An output (map store, vectors, report) exists in another form or cannot be written."""


class ClusterError(GeoslideError):
    """A Dask scheduler cannot be reached, or the cluster lacks the workers a job needs."""


class StorageError(GeoslideError):
    """A path or URL cannot be used: unknown scheme, no bucket, missing credentials, refused or read-only."""


class BusyError(GeoslideError):
    """Another geoslide process is writing to the same output (it holds the output's lock)."""


class AssetError(GeoslideError):
    """An item's asset cannot be read: missing, truncated, corrupt, not a raster, or refused by its server."""
