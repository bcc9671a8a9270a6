"""Assets opened before any work: a missing, truncated, corrupt or non-raster asset is one line, not a task traceback.

Dask tasks read the imagery long after the command started, on workers, inside a graph; an asset
that cannot be read there is a long traceback and a half-made output. :func:`check_readable` opens
the first asset each item contributes, on the client, and reads its last block (a truncated
file loses its end, and tiles are stored in order), in a few threads.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pystac
import rasterio
from rasterio.windows import Window

from geoslide.errors import AssetError, GeoslideWarning
from geoslide.raster.assets import band_href
from geoslide.raster.items import BandRef, ItemRecord, parse_items

THREADS = 8


def check_readable(items: Sequence[pystac.Item], bands: Sequence[str] = (), allow_missing: bool = False
                   ) -> list[pystac.Item]:
    """The items whose first asset (of ``bands``, where they name assets) opens and decodes.

    Parameters
    ----------
    items
        The items to read.
    bands
        Bands the job reads; the first of them that an item offers is checked (else its first asset).
    allow_missing
        Leave unreadable items out with a warning that counts them, instead of an AssetError.

    Raises
    ------
    AssetError
        An asset is missing, truncated, corrupt, not a raster, or its server refuses it (HTTP 404...).
    """
    records = parse_items(items)
    with ThreadPoolExecutor(THREADS) as pool:
        problems = list(pool.map(lambda r: _problem(_first(r, bands)), records))
    bad = [(item, p) for item, p in zip(items, problems, strict=True) if p]
    if not bad:
        return list(items)
    first = bad[0][1]
    if not allow_missing:
        raise AssetError(f"{len(bad)} of {len(items)} items have an asset that cannot be read, e.g. {first}; fix "
                         "the catalog, or pass --allow-missing-assets to map without them")
    if len(bad) == len(items):
        raise AssetError(f"no item has a readable asset, e.g. {first}; check the catalog and the network")
    warnings.warn(f"{len(bad)} of {len(items)} items left out: an asset cannot be read (e.g. {first})",
                  GeoslideWarning, stacklevel=2)
    dropped = {id(item) for item, _ in bad}
    return [item for item in items if id(item) not in dropped]


def _first(record: ItemRecord, bands: Sequence[str]) -> BandRef | None:
    if not record.bands:
        return None
    for name in bands:
        if name.lower() in record.bands:
            return record.bands[name.lower()]
    return next(iter(record.bands.values()))


def _problem(ref: BandRef | None) -> str | None:
    """None if the asset opens and its last block decodes (or there is none); else what is wrong, in a few words."""
    if ref is None:
        return None
    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(band_href(ref)) as ds:
            bh, bw = ds.block_shapes[0]
            row, col = (ds.height - 1) // bh * bh, (ds.width - 1) // bw * bw
            ds.read(1, window=Window(col, row, min(bw, ds.width - col), min(bh, ds.height - row)))
    except (rasterio.errors.RasterioError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{ref.href}: {reason}"
    return None
