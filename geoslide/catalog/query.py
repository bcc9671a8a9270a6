"""The STAC item-search body geoslide accepts (``--stac-query``), parsed and validated."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from geoslide.errors import QueryError

_KEYS = {
    "collections": "collections",
    "bbox": "bbox",
    "datetime": "datetime",
    "ids": "ids",
    "intersects": "intersects",
    "query": "query",
    "filter": "filter",
    "filter-lang": "filter_lang",
    "filter_lang": "filter_lang",
    "limit": "limit",
    "max_items": "max_items",
    "sortby": "sortby",
}


@dataclass(frozen=True)
class StacQuery:
    """An item search, as in the STAC API item-search body.

    Parameters
    ----------
    collections, ids
        Restrict to these collection ids / item ids.
    bbox
        ``(west, south, east, north)`` in WGS84 longitude/latitude.
    datetime
        A RFC 3339 instant or an interval ``start/end`` (either end may be ``..``).
    intersects
        A GeoJSON geometry in WGS84.
    query
        The query extension: ``{"property": {"op": value}}`` with ops eq, neq, lt, lte, gt, gte,
        startsWith, endsWith, contains, in.
    filter, filter_lang
        A CQL2 filter (``cql2-json`` dict or ``cql2-text`` string).
    limit, max_items
        Page size and maximum number of items returned.
    sortby
        Sort fields as the API's sort extension takes them.
    """

    collections: tuple[str, ...] | None = None
    bbox: tuple[float, ...] | None = None
    datetime: str | None = None
    ids: tuple[str, ...] | None = None
    intersects: dict | None = None
    query: dict | None = None
    filter: dict | str | None = None
    filter_lang: str | None = None
    limit: int | None = None
    max_items: int | None = None
    sortby: Any = None

    def __post_init__(self) -> None:
        _check_types(self)
        if self.bbox is not None:
            _check_bbox(self.bbox)
        if self.intersects is not None:
            _check_geometry(self.intersects)
        if self.max_items is not None and self.max_items < 1:
            raise QueryError(f"'max_items' must be at least 1, got {self.max_items}")
        if self.limit is not None and self.limit < 1:
            raise QueryError(f"'limit' must be at least 1, got {self.limit}")

    @classmethod
    def parse(cls, body: str | dict | None) -> StacQuery:
        """Build a query from a JSON text or dict; unknown keys are rejected."""
        if body is None or body == "":
            return cls()
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except json.JSONDecodeError as exc:
                raise QueryError(
                    f"--stac-query is not valid JSON ({exc.msg} at char {exc.pos}); "
                    'write it like \'{"collections": ["demo-quake"], "bbox": [85.4, 27.7, 85.5, 27.8]}\''
                ) from None
        if not isinstance(body, dict):
            raise QueryError("--stac-query must be a JSON object (a STAC item-search body)")
        unknown = sorted(set(body) - set(_KEYS))
        if unknown:
            raise QueryError(f"unknown --stac-query key(s) {unknown}; allowed: {sorted(_KEYS)}")
        kwargs = {_KEYS[k]: v for k, v in body.items()}
        for name in ("collections", "ids"):
            kwargs[name] = _as_str_tuple(name, kwargs.get(name))
        if kwargs.get("bbox") is not None:
            kwargs["bbox"] = tuple(kwargs["bbox"]) if isinstance(kwargs["bbox"], list) else kwargs["bbox"]
        return cls(**kwargs)

    def to_body(self) -> dict[str, Any]:
        """The query as a STAC API item-search body (``None`` fields left out)."""
        body: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            body["filter-lang" if f.name == "filter_lang" else f.name] = (
                list(value) if isinstance(value, tuple) else value
            )
        return body

    def describe(self) -> str:
        """A compact one-line rendering for error messages."""
        return json.dumps(self.to_body(), separators=(",", ":"))


def _as_str_tuple(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise QueryError(f"'{name}' must be a string or a list of strings, got {value!r}")


#: The JSON types each field takes (besides null); checked before anything reads the query.
_TYPES: dict[str, tuple[type, ...]] = {"datetime": (str,), "query": (dict,), "filter": (dict, str),
                                       "filter_lang": (str,), "limit": (int,), "max_items": (int,),
                                       "sortby": (str, list)}
_GEOMETRIES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
               "GeometryCollection")


def _check_types(query: StacQuery) -> None:
    for name, types in _TYPES.items():
        value = getattr(query, name)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            wanted = " or ".join({"str": "a string", "dict": "an object", "int": "an integer",
                                  "list": "a list"}[t.__name__] for t in types)
            raise QueryError(f"--stac-query '{name.replace('_', '-') if name == 'filter_lang' else name}' must be "
                             f"{wanted}, got {json.dumps(value)}")
    for prop, cond in (query.query or {}).items():
        if not isinstance(cond, dict) or not cond:
            raise QueryError(f"--stac-query 'query' on {prop!r} must be an object like {{\"lt\": 10}}, "
                             f"got {json.dumps(cond)}")


def _check_geometry(geometry: Any) -> None:
    import shapely.geometry

    if not isinstance(geometry, dict) or geometry.get("type") not in _GEOMETRIES:
        raise QueryError("'intersects' must be a GeoJSON geometry object, e.g. "
                         '{"type": "Point", "coordinates": [85.4, 27.7]}')
    try:
        shape = shapely.geometry.shape(geometry)
    except Exception as exc:  # shapely raises several kinds on malformed coordinates
        raise QueryError(f"'intersects' is not a valid GeoJSON {geometry['type']}: {str(exc)[:120]}") from None
    if shape.is_empty:
        raise QueryError(f"'intersects' is an empty {geometry['type']}; give it coordinates")


def _check_bbox(bbox: Any) -> None:
    if not isinstance(bbox, tuple | list) or len(bbox) not in (4, 6):
        raise QueryError(f"'bbox' must be [west, south, east, north] in degrees, got {bbox!r}")
    if not all(isinstance(v, int | float) for v in bbox):
        raise QueryError(f"'bbox' values must be numbers, got {bbox!r}")
    west, south, east, north = (bbox[0], bbox[1], bbox[2], bbox[3]) if len(bbox) == 4 else (
        bbox[0], bbox[1], bbox[3], bbox[4])
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise QueryError(
            f"'bbox' {list(bbox)} is not WGS84 longitude/latitude [west, south, east, north]; "
            "STAC searches take degrees, not projected metres"
        )
