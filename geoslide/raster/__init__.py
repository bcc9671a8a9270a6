"""Stage 2, raster: items to lazy, chunked pixel cubes.

``grid`` is the target grid (CRS, bounds, resolution), ``assets`` reads band metadata from items,
``cube`` loads items as ``(time, band, y, x)`` and mosaics them, ``derived`` adds bands computed
from others (NDVI, slope, post - pre differences).
"""
