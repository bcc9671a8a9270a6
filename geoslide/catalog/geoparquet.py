"""stac-geoparquet item files as a catalog: ``geoslide search/map --catalog items.parquet``.

One Parquet file holds 10^5 items in a few MB and reads in about a second (through rustac), where
the same items as JSON files take minutes to walk. Items whose ``bbox``, ``collection`` or ``id``
cannot match are dropped on the plain dicts before any ``pystac.Item`` is built; the query is then
evaluated exactly as for a static JSON catalog (:func:`geoslide.catalog.filtering.filter_items`).
Items are taken as written, not migrated to pystac's STAC version (migration deep-copies every item
and was 70 % of the search time; geoslide reads both ``proj:epsg`` and ``proj:code``).
Relative asset hrefs resolve against the file's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac

from geoslide.catalog.filtering import filter_items
from geoslide.catalog.query import StacQuery
from geoslide.errors import CatalogError

SUFFIXES = (".parquet", ".geoparquet")


@dataclass(frozen=True)
class ParquetSource:
    """A local stac-geoparquet file of items."""

    path: str

    def search(self, query: StacQuery) -> list[pystac.Item]:
        """Items matching ``query``."""
        kept = [d for d in read_item_dicts(self.path) if _may_match(d, query)]
        return filter_items([pystac.Item.from_dict(d, preserve_dict=False, migrate=False) for d in kept], query)


def read_item_dicts(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every item of a stac-geoparquet file as a STAC dict, asset hrefs made absolute."""
    import rustac

    try:
        data = rustac.read_sync(str(path))
    except (OSError, rustac.RustacError) as exc:
        raise CatalogError(f"cannot read stac-geoparquet {path}: {str(exc).splitlines()[0]}; write one with "
                           "rustac (rustac.write_sync('items.parquet', items))") from None
    folder = Path(path).resolve().parent
    items = data.get("features", []) if isinstance(data, dict) else []
    for item in items:
        for asset in item.get("assets", {}).values():
            href = asset.get("href", "")
            if href and "://" not in href and not os.path.isabs(href):
                asset["href"] = str(folder / href)
    return items


def _may_match(item: dict[str, Any], query: StacQuery) -> bool:
    """Cheap tests on the dict that only drop items the full query would drop too."""
    if query.collections is not None and item.get("collection") not in query.collections:
        return False
    if query.ids is not None and item.get("id") not in query.ids:
        return False
    if query.bbox is not None and item.get("bbox"):
        b, box = query.bbox, item["bbox"]
        west, south, east, north = (b if len(b) == 4 else (b[0], b[1], b[3], b[4]))
        x0, y0, x1, y1 = (box if len(box) == 4 else (box[0], box[1], box[3], box[4]))
        if x1 < west or x0 > east or y1 < south or y0 > north:
            return False
    return True
