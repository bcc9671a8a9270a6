"""How a landslide mask looks in a desktop GIS: a GeoTIFF colour table and a QGIS style file.

The mask's values are :mod:`geoslide.inventory.codes`: 0 background, 1 landslide, 255 nodata.
The colour table travels inside the GeoTIFF (TIFF palettes have no alpha, so background is light
grey there); the QGIS style (``.qml``, loaded by QGIS for the raster of the same name) draws
background and nodata transparent, so the landslides lie in red over any base map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from geoslide.fileio import Location, with_suffix, write_text
from geoslide.inventory.codes import BACKGROUND, LANDSLIDE, MASK_NODATA


@dataclass(frozen=True)
class MaskClass:
    """One value of the mask: its label, colour (RGB) and opacity in the QGIS style (0-255)."""

    value: int
    label: str
    rgb: tuple[int, int, int]
    alpha: int


MASK_CLASSES = (
    MaskClass(BACKGROUND, "background", (200, 200, 200), 0),
    MaskClass(LANDSLIDE, "landslide", (230, 25, 25), 255),
    MaskClass(MASK_NODATA, "no data", (0, 0, 0), 0),
)


def mask_colormap() -> dict[int, tuple[int, int, int, int]]:
    """The mask's GeoTIFF colour table, ``{value: (r, g, b, 255)}`` as rasterio's ``write_colormap`` takes it."""
    return {c.value: (*c.rgb, 255) for c in MASK_CLASSES}


def mask_qml() -> str:
    """A QGIS layer style for the mask: a paletted renderer, background and nodata transparent."""
    entries = "\n".join(
        f"        <paletteEntry value=\"{c.value}\" color=\"#{c.rgb[0]:02x}{c.rgb[1]:02x}{c.rgb[2]:02x}\" "
        f"alpha=\"{c.alpha}\" label={quoteattr(c.label)}/>" for c in MASK_CLASSES)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="Symbology">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128"
                   colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def write_mask_style(raster: str | Path) -> Location:
    """Write :func:`mask_qml` beside ``raster`` (``OUT.mask.tif`` -> ``OUT.mask.qml``), where QGIS finds it."""
    path = with_suffix(raster, ".qml")
    write_text(path, mask_qml())
    return path
