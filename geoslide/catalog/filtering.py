"""STAC item-search semantics evaluated in memory, for catalogs that have no API."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pystac
import shapely.geometry

from geoslide.catalog.query import StacQuery
from geoslide.errors import QueryError

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "startsWith": lambda a, b: isinstance(a, str) and a.startswith(b),
    "endsWith": lambda a, b: isinstance(a, str) and a.endswith(b),
    "contains": lambda a, b: isinstance(a, str) and b in a,
    "in": lambda a, b: a in b,
}


def filter_items(items: Iterable[pystac.Item], query: StacQuery) -> list[pystac.Item]:
    """Items that match ``query``, in input order, at most ``query.max_items``."""
    test = _compile(query)
    out = [item for item in items if test(item)]
    return out[: query.max_items] if query.max_items else out


def _compile(query: StacQuery) -> Callable[[pystac.Item], bool]:
    tests: list[Callable[[pystac.Item], bool]] = []
    if query.collections is not None:
        wanted = set(query.collections)
        tests.append(lambda it: it.collection_id in wanted)
    if query.ids is not None:
        ids = set(query.ids)
        tests.append(lambda it: it.id in ids)
    if query.bbox is not None:
        box = bbox_geometry(query.bbox)
        tests.append(lambda it: _footprint(it).intersects(box))
    if query.intersects is not None:
        geom = shapely.geometry.shape(query.intersects)
        tests.append(lambda it: _footprint(it).intersects(geom))
    if query.datetime is not None:
        start, end = _interval(query.datetime)
        tests.append(lambda it: _overlaps(it, start, end))
    if query.query:
        tests.extend(_property_test(name, cond) for name, cond in query.query.items())
    if query.filter is not None:
        tests.append(_cql2_test(query.filter))
    return lambda item: all(t(item) for t in tests)


def _footprint(item: pystac.Item) -> shapely.geometry.base.BaseGeometry:
    if item.geometry is not None:
        return shapely.geometry.shape(item.geometry)
    if item.bbox is not None:
        return bbox_geometry(item.bbox)
    return shapely.geometry.GeometryCollection()


def bbox_geometry(bbox: tuple[float, ...] | list[float]) -> shapely.geometry.base.BaseGeometry:
    """A STAC bbox (2D or 3D) as a lon/lat geometry; west > east crosses the antimeridian (two boxes).

    ``shapely.geometry.box`` would swap west and east, giving the complement: the rest of the world.
    """
    west, south, east, north = (bbox[0], bbox[1], bbox[2], bbox[3]) if len(bbox) == 4 else (
        bbox[0], bbox[1], bbox[3], bbox[4])
    if west <= east:
        return shapely.geometry.box(west, south, east, north)
    return shapely.geometry.MultiPolygon([shapely.geometry.box(west, south, 180.0, north),
                                          shapely.geometry.box(-180.0, south, east, north)])


def _parse_instant(text: str, end: bool) -> datetime | None:
    if text in ("", ".."):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"'datetime' part {text!r} is not RFC 3339; use e.g. 2024-05-01T00:00:00Z or 2024-05-01/2024-06-01"
        ) from None
    if len(text) == 10 and end:  # a bare date as interval end includes that day
        value = value.replace(hour=23, minute=59, second=59, microsecond=999999)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _interval(text: str) -> tuple[datetime | None, datetime | None]:
    if "/" in text:
        a, b = text.split("/", 1)
        return _parse_instant(a, end=False), _parse_instant(b, end=True)
    return _parse_instant(text, end=False), _parse_instant(text, end=len(text) == 10)


def _overlaps(item: pystac.Item, start: datetime | None, end: datetime | None) -> bool:
    lo = item.common_metadata.start_datetime or item.datetime
    hi = item.common_metadata.end_datetime or item.datetime
    if lo is None or hi is None:
        return False
    return (start is None or hi >= start) and (end is None or lo <= end)


def _property_test(name: str, cond: Any) -> Callable[[pystac.Item], bool]:
    if not isinstance(cond, dict) or not cond:
        raise QueryError(f"query on {name!r} must be an object like {{\"lt\": 10}}, got {cond!r}")
    bad = sorted(set(cond) - set(_OPS))
    if bad:
        raise QueryError(f"query operator(s) {bad} on {name!r} unknown; use one of {sorted(_OPS)}")

    def test(item: pystac.Item) -> bool:
        value = _property(item, name)
        if value is None:
            return False
        try:
            return all(_OPS[op](value, ref) for op, ref in cond.items())
        except TypeError:
            return False

    return test


def _property(item: pystac.Item, name: str) -> Any:
    if name in ("id", "collection"):
        return item.id if name == "id" else item.collection_id
    value = item.properties.get(name)
    if name == "datetime" and value is not None:
        return str(value)
    return value


def _cql2_test(expr: dict | str) -> Callable[[pystac.Item], bool]:
    import cql2

    try:
        compiled = cql2.Expr(expr)
        compiled.validate()
    except Exception as exc:  # cql2 raises its own ValidationError / ParseError types
        raise QueryError(f"'filter' is not valid CQL2: {str(exc).splitlines()[0]}") from None
    return lambda item: bool(compiled.matches(item.to_dict(include_self_link=False, transform_hrefs=False)))
