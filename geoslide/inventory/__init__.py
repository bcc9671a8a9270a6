"""Stage 3, inventory: landslide polygons to masks and masks back to polygons.

- ``codes``: the values of a landslide mask (background, landslide, nodata).
- ``geometry``: repair of invalid polygons, keeping their polygon parts.
- ``read``: inventories read from files, checked and placed on a grid.
- ``rasterize``: an inventory burnt onto a grid, chunk by chunk.
- ``pieces``: polygons and pixel statistics traced from labelled pixels.
- ``vectorize``: a chunked landslide mask to polygons merged across chunk edges.
- ``amalgamated``: amalgamated landslides split at narrow necks.
- ``summary``: polygon areas and the HR-GLDD Table 1 figures of an inventory.
- ``context``: event, acquisition date, model and source items as columns of the polygons.
- ``write``: polygons written as GeoParquet, GeoPackage or FlatGeobuf, and WGS 84 GeoJSON, together.
"""
