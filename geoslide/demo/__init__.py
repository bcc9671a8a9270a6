"""Synthetic landslide events: terrain, land cover, landslides, sensors, and a STAC catalog writer.

``write_demo`` (in :mod:`geoslide.demo.catalog`) is the entry point behind ``geoslide demo``.
"""
