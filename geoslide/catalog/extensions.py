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

# Zarr, decided knowingly: the STAC Zarr best practices (radiantearth/stac-best-practices #37)
# replaced the deprecated `application/vnd+zarr` with `application/vnd.zarr` and a `version`
# parameter (no Zarr type is registered with IANA). A Zarr v3 store is labelled
# `application/vnd.zarr; version=3`. But QGIS's STAC browser (through 4.2 at least, qgis/QGIS
# #67460) streams a Zarr asset only when it is typed exactly `application/vnd+zarr`, so a v2 store
# (`--zarr-format 2`, written for GDAL 3.6-3.10 and QGIS) keeps the old type; it would otherwise be
# `application/vnd.zarr; version=2`.
ZARR_MEDIA = {3: "application/vnd.zarr; version=3", 2: "application/vnd+zarr"}

# media types of the files geoslide writes, by suffix (the map item lists whatever was written)
MEDIA_BY_SUFFIX = {".tif": COG_MEDIA, ".parquet": PARQUET_MEDIA, ".geojson": GEOJSON_MEDIA,
                   ".gpkg": GEOPACKAGE_MEDIA, ".fgb": FLATGEOBUF_MEDIA, ".png": "image/png",
                   ".json": "application/json", ".qml": "text/xml", ".csv": "text/csv",
                   ".md": "text/markdown", ".safetensors": SAFETENSORS_MEDIA}
