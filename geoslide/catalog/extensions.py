"""The STAC vocabulary geoslide writes: extension schema URLs and asset media types.

Item builders (:mod:`geoslide.catalog.build` for input scenes, :mod:`geoslide.mapping.item` for
maps) name extensions and media types from here, so both declare the same versions.
"""

from __future__ import annotations

PROJECTION_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
EO_EXT = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
PROCESSING_EXT = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
LABEL_EXT = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
CLASSIFICATION_EXT = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
MLM_EXT = "https://stac-extensions.github.io/mlm/v1.5.2/schema.json"

COG_MEDIA = "image/tiff; application=geotiff; profile=cloud-optimized"
PARQUET_MEDIA = "application/vnd.apache.parquet"
GEOJSON_MEDIA = "application/geo+json"
GEOPACKAGE_MEDIA = "application/geopackage+sqlite3"
FLATGEOBUF_MEDIA = "application/vnd.flatgeobuf"
SAFETENSORS_MEDIA = "application/octet-stream; application=safetensors"

# Zarr: `application/vnd.zarr` is the IANA-registered type and the STAC Zarr best practice, with a
# `version` parameter; `application/vnd+zarr` is its deprecated predecessor. A Zarr v3 store is
# labelled `application/vnd.zarr; version=3`. A v2 store (`--zarr-format 2`, written for GDAL
# 3.6-3.10 and QGIS) keeps the old `application/vnd+zarr`: the QGIS releases on those GDALs know only
# that one, and a tool that knows the new type reads the old one too.
ZARR_MEDIA = {3: "application/vnd.zarr; version=3", 2: "application/vnd+zarr"}

# media types of the files geoslide writes, by suffix (the map item lists whatever was written)
MEDIA_BY_SUFFIX = {".tif": COG_MEDIA, ".parquet": PARQUET_MEDIA, ".geojson": GEOJSON_MEDIA,
                   ".gpkg": GEOPACKAGE_MEDIA, ".fgb": FLATGEOBUF_MEDIA, ".png": "image/png",
                   ".json": "application/json", ".qml": "text/xml", ".csv": "text/csv",
                   ".safetensors": SAFETENSORS_MEDIA}
