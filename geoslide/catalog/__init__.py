"""Stage 1, catalog: find the imagery of an event.

- ``query``: a validated STAC item-search body.
- ``search``: a query run against a STAC API or a static catalog.
- ``filtering``: item-search semantics evaluated locally, where an API or a static catalog cannot.
- ``bundled``: where the catalogs shipped with geoslide are.
- ``build``: STAC items for the rasters geoslide creates, read from their file headers.
- ``extensions``: the STAC extension schema URLs and media types geoslide writes.
- ``files``: STAC file extension fields (size, sha2-256 multihash) of a written output.
- ``footprint``: the WGS84 geometry of a box in any CRS, for item geometries.
"""
