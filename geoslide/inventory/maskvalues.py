"""What the values of a user's raster mask mean: background, landslide and, optionally, nodata.

Released masks code landslides as 1 or 255, some add a value for "no data" or "other"
(HR-GLDD-like 0/1, GDCLD 0/255, CAS 0/1 with 85 for clouds). ``--mask-values`` names the
values in a fixed order, comma-separated: ``BACKGROUND,LANDSLIDE[,NODATA]``; each position may
list several values joined by ``+``::

    0,255        0 background, 255 landslide
    0,1,85       0 background, 1 landslide, 85 nodata (ignored in training and scoring)
    0+2,1,255    0 and 2 background, 1 landslide, 255 nodata

A value not named is an error (a mask with unexpected values is more often a wrong mapping
than noise). Without ``--mask-values`` (``auto``), masks whose values all lie in 0/1/255 read
as 0 background, 1 landslide, 255 nodata, and masks whose values all lie in 0/255 (but none is
1) as 0 background, 255 landslide; :func:`choose_mask_values` decides once for all masks of a
source, so a tile without landslides cannot flip the coding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from geoslide.errors import LabelError
from geoslide.inventory.codes import BACKGROUND, LANDSLIDE, MASK_NODATA

AUTO = "auto"


@dataclass(frozen=True)
class MaskValues:
    """The raw values of each class of a raster mask.

    Parameters
    ----------
    background, landslide, nodata
        Raw values of each class; ``nodata`` may be empty.
    """

    background: tuple[float, ...] = (0,)
    landslide: tuple[float, ...] = (1,)
    nodata: tuple[float, ...] = (MASK_NODATA,)

    def __post_init__(self) -> None:
        named = [*self.background, *self.landslide, *self.nodata]
        if not self.background or not self.landslide:
            raise LabelError("mask values need at least a background and a landslide value, e.g. --mask-values 0,255")
        if len(set(named)) != len(named):
            raise LabelError(f"mask values {self.text()} name a value twice; give each value one meaning")

    def text(self) -> str:
        """The ``BACKGROUND,LANDSLIDE[,NODATA]`` form of these values."""
        parts = [self.background, self.landslide] + ([self.nodata] if self.nodata else [])
        return ",".join("+".join(_fmt(v) for v in part) for part in parts)

    def apply(self, values: np.ndarray, where: str) -> np.ndarray:
        """Recode raw mask values to uint8 0 (background), 1 (landslide), 255 (nodata).

        NaN in a float mask reads as nodata. Raises :class:`~geoslide.errors.LabelError` naming
        ``where`` for any value not mapped.
        """
        values = np.asarray(values)
        out = np.full(values.shape, MASK_NODATA, dtype=np.uint8)
        known = np.isnan(values) if values.dtype.kind == "f" else np.zeros(values.shape, dtype=bool)
        for code, raw in ((BACKGROUND, self.background), (LANDSLIDE, self.landslide), (MASK_NODATA, self.nodata)):
            hit = np.isin(values, raw)
            out[hit] = code
            known |= hit
        if not known.all():
            found = np.unique(values[~known])
            raise LabelError(f"{where}: mask values {[_fmt(v) for v in found[:8]]} are not in --mask-values "
                             f"{self.text()} (background,landslide[,nodata]); add them or fix the mask")
        return out


def parse_mask_values(text: str | MaskValues | None) -> MaskValues | None:
    """``"0,255"`` / ``"0,1,85"`` / ``"0+2,1,255"`` as :class:`MaskValues`; None or ``"auto"`` give None."""
    if text is None or isinstance(text, MaskValues):
        return text
    if text.strip().lower() == AUTO:
        return None
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise LabelError(f"--mask-values {text!r} needs BACKGROUND,LANDSLIDE[,NODATA], e.g. 0,255 or 0,1,85")
    try:
        classes = [tuple(float(v) for v in part.split("+") if v.strip()) for part in parts]
    except ValueError:
        raise LabelError(f"--mask-values {text!r} has a value that is not a number; e.g. 0,255 or 0,1,85") from None
    return MaskValues(classes[0], classes[1], classes[2] if len(classes) == 3 else ())


def choose_mask_values(found: Iterable[float], given: MaskValues | None, source: str) -> MaskValues:
    """The mapping for masks holding the values ``found`` (all masks of one source together).

    ``given`` wins; otherwise 0/1(/255) or 0/255 as described in the module docstring.
    """
    if given is not None:
        return given
    values = {float(v) for v in found if not np.isnan(v)}
    if values <= {0.0, 1.0, 255.0} and 1.0 in values:
        return MaskValues((0,), (1,), (MASK_NODATA,))
    if values <= {0.0, 255.0}:
        return MaskValues((0,), (255,), ())
    if values <= {0.0}:
        return MaskValues((0,), (1,), (MASK_NODATA,))
    raise LabelError(f"masks in {source} hold values {[_fmt(v) for v in sorted(values)[:8]]}, not 0/1 or 0/255; "
                     "say what they mean with --mask-values BACKGROUND,LANDSLIDE[,NODATA], e.g. 0,1,85")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
