"""Where landslide polygons came from, as columns: event, acquisition date, model, source items.

With these columns the inventories of several events (or of one event mapped by several models)
can be concatenated into one table and still be told apart and traced back to the imagery.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import pandas as pd
import pyarrow as pa

CONTEXT_COLUMNS = ("event", "date", "model", "source")
DATE = pd.ArrowDtype(pa.date32())


@dataclass(frozen=True)
class Provenance:
    """What a map's polygons were made from.

    Parameters
    ----------
    event
        Event name (e.g. the items' ``geoslide:event``).
    date
        Acquisition date of the imagery the landslides were mapped on (the latest item's, when a
        mosaic spans several days); None when the items carry no date.
    model
        The model's name or id.
    source
        Ids of the STAC items mapped, written comma-separated in the ``source`` column.
    """

    event: str
    date: dt.date | None
    model: str
    source: Sequence[str] = ()


def with_provenance(polygons: gpd.GeoDataFrame, provenance: Provenance) -> gpd.GeoDataFrame:
    """``polygons`` with ``event``, ``date``, ``model`` and ``source`` columns after ``landslide_id``.

    The same values go on every row; ``date`` is a calendar date (Parquet ``date32``, an ISO
    ``YYYY-MM-DD`` string in GeoJSON, GeoPackage and FlatGeobuf).
    """
    out = polygons.drop(columns=[c for c in CONTEXT_COLUMNS if c in polygons.columns])
    at = list(out.columns).index("landslide_id") + 1 if "landslide_id" in out.columns else 0
    n, index = len(out), out.index
    columns = {  # typed, so that an empty inventory has the same schema as any other
        "event": pd.Series([provenance.event] * n, index=index, dtype="string"),
        "date": pd.Series([provenance.date] * n, index=index, dtype=DATE),
        "model": pd.Series([provenance.model] * n, index=index, dtype="string"),
        "source": pd.Series([",".join(provenance.source)] * n, index=index, dtype="string"),
    }
    for offset, column in enumerate(CONTEXT_COLUMNS):
        out.insert(at + offset, column, columns[column])
    return out


def acquisition_date(datetimes: Sequence[dt.datetime | None]) -> dt.date | None:
    """The latest of the items' dates (UTC calendar date), or None when none has one."""
    known = [d.astimezone(dt.UTC) if d.tzinfo else d for d in datetimes if d is not None]
    return max(known).date() if known else None
