"""Stage 1, catalog: find the imagery of an event.

``query`` validates a STAC item-search body, ``search`` runs it against a STAC API or a static
catalog (``filtering`` evaluates what an API cannot), ``bundled`` locates the catalogs shipped
with geoslide, and ``build`` writes STAC items for rasters geoslide creates.
"""
