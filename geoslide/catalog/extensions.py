"""The STAC vocabulary geoslide writes: extension schema URLs and asset media types.

Item builders (:mod:`geoslide.catalog.build` for input scenes, :mod:`geoslide.mapping.item` for
maps) name extensions and media types from here, so both declare the same versions.
"""

from __future__ import annotations

PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
EO_EXT = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
PROCESSING_EXT = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"

COG_MEDIA = "image/tiff; application=geotiff; profile=cloud-optimized"
ZARR_MEDIA = "application/vnd+zarr"
PARQUET_MEDIA = "application/vnd.apache.parquet"
