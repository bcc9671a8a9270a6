"""Stage 3, inventory: landslide polygons to masks and masks back to polygons.

``read`` reads and checks an inventory (``geometry`` repairs invalid polygons), ``rasterize`` burns
it onto a grid chunk by chunk; ``vectorize`` turns a chunked landslide mask into polygons merged
across chunk edges; ``summary`` gives polygon areas and the HR-GLDD Table 1 figures of an inventory.
"""
