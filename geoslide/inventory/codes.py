"""The values of a landslide mask, shared by patch stores, losses, metrics and map stores."""

BACKGROUND = 0
LANDSLIDE = 1
#: Pixels without valid imagery or labels; ignored by losses and metrics.
MASK_NODATA = 255
