"""Whether items make one scene to mosaic: one event phase, dates close together.

A mosaic keeps the latest valid pixel, so a pre-event scene silently fills the gaps of a
post-event one when a search returns both. :func:`mixed_scenes` says what such a set of items
mixes: different ``geoslide:phase`` values, or datetimes more than :data:`MAX_DAYS_APART` days
apart (30 by default: a month covers the several acquisitions an event mosaic is made of, and
stays well short of the pre-event scenes' season).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pystac

from geoslide.raster.items import as_dicts

#: Items whose datetimes are further apart than this many days are not one scene.
MAX_DAYS_APART = 30
PHASE = "geoslide:phase"


def mixed_scenes(items: Iterable[pystac.Item | dict], max_days: float = MAX_DAYS_APART) -> str | None:
    """What ``items`` mix (phases, or dates more than ``max_days`` apart) and how to filter them; None if nothing.

    Items without a ``geoslide:phase`` or a date are not compared on it.
    """
    dicts = as_dicts(items)
    return _phases(dicts) or _dates(dicts, max_days)


def _phases(items: Sequence[dict[str, Any]]) -> str | None:
    first: dict[str, str] = {}
    for item in items:
        phase = item.get("properties", {}).get(PHASE)
        if phase is not None:
            first.setdefault(str(phase), str(item.get("id")))
    if len(first) < 2:
        return None
    listed = " and ".join(f"{phase} ({first[phase]})" for phase in sorted(first))
    return (f"mix phases {listed}; filter them by phase, e.g. "
            f'"query": {{"{PHASE}": {{"eq": "{sorted(first)[0]}"}}}}')


def _dates(items: Sequence[dict[str, Any]], max_days: float) -> str | None:
    dated = sorted((when, str(item.get("id"))) for item in items if (when := _when(item)) is not None)
    if len(dated) < 2:
        return None
    (start, first), (end, last) = dated[0], dated[-1]
    days = (end - start).total_seconds() / 86400
    if days <= max_days:
        return None
    return (f"were taken {days:.0f} days apart, {start:%Y-%m-%d} ({first}) to {end:%Y-%m-%d} ({last}), more than "
            f'{max_days:g}; filter them by date, e.g. "datetime": "{end:%Y-%m-%d}/.."')


def _when(item: dict[str, Any]) -> datetime | None:
    """The item's ``datetime``, else its ``start_datetime``."""
    props = item.get("properties", {})
    text = props.get("datetime") or props.get("start_datetime")
    if not text:
        return None
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)
