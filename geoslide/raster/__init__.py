"""Stage 2, raster: items to lazy, chunked pixel cubes.

- ``grid``: the target grid (CRS, bounds, resolution) and what follows from it.
- ``items``: STAC items parsed once into records of their bands, CRS and pixel layout.
- ``assets``: item records rewritten as single-band assets in the form stackstac reads.
- ``cube``: items loaded as ``(time, band, y, x)`` cubes, and mosaics of them.
- ``derived``: bands computed from others (NDVI, slope, post - pre differences).
- ``inputs``: a patch store's or a model's band list built from items, derived bands included.
- ``scenes``: whether items make one scene to mosaic (one phase, dates close together).
"""
