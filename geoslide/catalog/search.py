"""STAC search over a STAC API (pystac-client) or a static catalog on disk.

``search(query, catalog)`` is the one entry point. ``catalog`` is an ``http(s)://`` URL of a
STAC API (or of a static catalog served over HTTP), an ``s3://`` URL of a static catalog, or a
path to a static catalog, collection or item collection on disk, or a stac-geoparquet file
(``.parquet``, :mod:`geoslide.catalog.geoparquet`). Without a catalog the bundled
demo catalog is searched. Static catalogs are read through :mod:`geoslide.fileio` (see
:mod:`geoslide.catalog.stacio`), so their relative asset hrefs resolve to URLs of the same store.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pystac
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.warnings import NoConformsTo

from geoslide.catalog.bundled import demo_catalog_path
from geoslide.catalog.filtering import filter_items
from geoslide.catalog.geoparquet import SUFFIXES, ParquetSource
from geoslide.catalog.query import StacQuery
from geoslide.catalog.stacio import stac_io
from geoslide.catalog.trust import check_assets, policy_for
from geoslide.errors import CatalogError, EmptySearchError, QueryError
from geoslide.fileio import is_file, is_url, join, local_path


class ItemSource(Protocol):
    """Anything that answers an item search."""

    def search(self, query: StacQuery) -> list[pystac.Item]:
        """Items matching ``query``."""
        ...


@dataclass(frozen=True)
class InMemorySource:
    """Items already in memory; applies item-search semantics locally (also the test fake)."""

    items: tuple[pystac.Item, ...]

    def search(self, query: StacQuery) -> list[pystac.Item]:
        """Items matching ``query``."""
        return filter_items(self.items, query)


@dataclass(frozen=True)
class StaticSource:
    """A static catalog, collection or item collection (JSON on disk, on S3 or over HTTP)."""

    href: str

    def search(self, query: StacQuery) -> list[pystac.Item]:
        """Items matching ``query``."""
        return filter_items(_read_static_items(self.href), query)


@dataclass(frozen=True)
class ApiSource:
    """A STAC API answering ``/search`` (pystac-client)."""

    url: str
    client: Client

    def search(self, query: StacQuery) -> list[pystac.Item]:
        """Items matching ``query``, all pages up to ``max_items``."""
        remote, local = _split_unsupported(query, self.client)
        try:
            items = list(self.client.search(**_api_kwargs(remote)).items())
        except APIError as exc:
            raise QueryError(f"STAC API at {self.url} refused the search: {_first_line(exc)}") from None
        except OSError as exc:
            raise CatalogError(f"lost the STAC API at {self.url} during the search ({_first_line(exc)})") from None
        return filter_items(items, local) if local is not None else items


def open_source(catalog: str | Path | None = None) -> ItemSource:
    """Open the catalog a search should run against.

    Parameters
    ----------
    catalog
        URL of a STAC API, URL (``http(s)://``, ``s3://``) or path of a static catalog, or None for
        the bundled demo catalog.
    """
    if catalog is None:
        return StaticSource(str(demo_catalog_path()))
    text = str(catalog)
    if text.startswith(("http://", "https://")):
        return _open_remote(text)
    if is_url(text):
        return StaticSource(_catalog_object(text))
    path = (local_path(text) or Path(text)).expanduser()
    if path.is_dir():
        path = _catalog_file_in(path)
    if not path.is_file():
        raise CatalogError(
            f"no STAC catalog at {text}; pass the path of a catalog.json/collection.json/items.json "
            "or the URL of a STAC API"
        )
    if path.suffix.lower() in SUFFIXES:
        return ParquetSource(str(path.resolve()))
    return StaticSource(str(path.resolve()))


def search(query: StacQuery | str | dict | None = None, catalog: str | Path | None = None,
           *, allow_empty: bool = False) -> list[pystac.Item]:
    """Search a STAC catalog for items.

    Parameters
    ----------
    query
        A :class:`StacQuery`, or an item-search body as JSON text or dict.
    catalog
        See :func:`open_source`.
    allow_empty
        Return an empty list instead of raising :class:`EmptySearchError`.

    Raises
    ------
    CatalogError
        Also when an asset href of a matching item lies outside the catalog's trusted places
        (see :mod:`geoslide.catalog.trust`; ``--allow-assets`` or ``$GEOSLIDE_ALLOW_ASSETS`` widen them).

    Returns
    -------
    list of pystac.Item
        Matching items, in the catalog's order (``file://`` and relative asset hrefs are resolved
        when the items are loaded, see :func:`geoslide.open_cube`).
    """
    q = query if isinstance(query, StacQuery) else StacQuery.parse(query)
    source = open_source(catalog)
    items = source.search(q)
    check_assets(_asset_hrefs(items), policy_for(_source_href(source)))
    if not items and not allow_empty:
        where = "the bundled demo catalog" if catalog is None else str(catalog)
        raise EmptySearchError(
            f"no item in {where} matches {q.describe()}; widen bbox/datetime or check collection names "
            f"(available: {', '.join(list_collections(catalog)) or 'none'})"
        )
    return items


def _source_href(source: ItemSource) -> str:
    """Where a source's catalog lives (a file or URL), which the trust policy's own root derives from."""
    if isinstance(source, StaticSource):
        return source.href
    if isinstance(source, ApiSource):
        return source.url
    if isinstance(source, ParquetSource):
        return source.path  # a stac-geoparquet file: its folder, as for a catalog.json
    return "."


def _asset_hrefs(items: list[pystac.Item]) -> list[str]:
    """Each asset's absolute href, as the cube builder will resolve it."""
    return sorted({a.get_absolute_href() or a.href for item in items for a in item.assets.values()})


def list_collections(catalog: str | Path | None = None) -> list[str]:
    """Collection ids of a catalog (empty if it cannot tell)."""
    try:
        source = open_source(catalog)
        if isinstance(source, ApiSource):
            return sorted(c.id for c in source.client.get_collections())
        return sorted({i.collection_id for i in source.search(StacQuery()) if i.collection_id})
    except Exception:  # only used to enrich an error message
        return []


def _open_remote(url: str) -> ItemSource:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoConformsTo)  # a static catalog over HTTP advertises none
            client = Client.open(url)
    except (APIError, OSError, ValueError) as exc:
        reason = _connection_reason(exc)
        if reason is None and isinstance(exc, APIError):
            raise CatalogError(f"STAC catalog at {url} answered with an error: {_first_line(exc)}") from None
        raise CatalogError(
            f"cannot reach STAC catalog at {url} ({reason or _first_line(exc)}); check the URL and network, "
            "or pass --catalog PATH for a catalog on disk"
        ) from None
    if client.conforms_to("ITEM_SEARCH"):
        return ApiSource(url, client)
    return StaticSource(url)


def _catalog_object(url: str) -> str:
    """The catalog JSON an object-store URL names: the object itself, or a catalog file under the prefix."""
    candidates = [url] if url.endswith(".json") else [str(join(url, n)) for n in CATALOG_FILES]
    for candidate in candidates:
        if is_file(candidate):
            return candidate
    raise CatalogError(f"no STAC catalog at {url}; pass the URL of a catalog.json/collection.json/items.json")


CATALOG_FILES = ("catalog.json", "collection.json", "items.json")


def _catalog_file_in(folder: Path) -> Path:
    for name in CATALOG_FILES:
        if (folder / name).is_file():
            return folder / name
    return folder / "catalog.json"


def _read_static_items(href: str) -> list[pystac.Item]:
    try:
        data = json.loads(stac_io().read_text(href))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"cannot read STAC catalog {href}: {_first_line(exc)}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{href} is JSON but not a STAC catalog, collection or items.json (a {type(data).__name__})")
    try:
        if data.get("type") == "FeatureCollection":  # relative asset hrefs are relative to the file, as in a catalog
            return [pystac.Item.from_dict(f, href=href, preserve_dict=False) for f in data.get("features") or []]
        if data.get("type") == "Feature":
            return [pystac.Item.from_dict(data, href=href)]
        root = pystac.read_file(href, stac_io=stac_io())
    except (pystac.STACError, pystac.errors.STACTypeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CatalogError(f"{href} is not a STAC catalog, collection or items.json: {_first_line(exc)}") from None
    if not isinstance(root, pystac.Catalog):
        raise CatalogError(f"{href} is a STAC {type(root).__name__}, not a catalog, collection or items.json")
    return list(root.get_items(recursive=True))


#: Query-extension operators every API that conforms to QUERY evaluates; others may be refused.
CORE_QUERY_OPS = frozenset({"eq", "neq", "lt", "lte", "gt", "gte"})


def _split_unsupported(query: StacQuery, client: Client) -> tuple[StacQuery, StacQuery | None]:
    """Split a query into what the API evaluates and what geoslide evaluates locally afterwards.

    Query terms are ANDed, so terms the API cannot take (no QUERY conformance, or an optional
    operator such as startsWith) move to a local pass; a CQL2 filter goes to an API that conforms
    to FILTER as cql2-json (POST search accepts no cql2-text), else it is evaluated locally.
    """
    remote_terms, local_terms = _split_terms(query.query, client.conforms_to("QUERY"))
    remote_filter, local_filter = query.filter, None
    filter_lang = query.filter_lang
    if query.filter is not None and not client.conforms_to("FILTER"):
        remote_filter, local_filter, filter_lang = None, query.filter, None
    elif isinstance(query.filter, str):
        remote_filter, filter_lang = _cql2_json(query.filter), "cql2-json"
    remote = dataclasses.replace(query, query=remote_terms or None, filter=remote_filter, filter_lang=filter_lang)
    if not local_terms and local_filter is None:
        return remote, None
    local = StacQuery(query=local_terms or None, filter=local_filter, max_items=query.max_items)
    return dataclasses.replace(remote, max_items=None), local


def _split_terms(terms: dict | None, api_has_query: bool) -> tuple[dict, dict]:
    remote: dict = {}
    local: dict = {}
    for name, cond in (terms or {}).items():
        ops = cond if isinstance(cond, dict) else {}
        for op, value in ops.items():
            side = remote if api_has_query and op in CORE_QUERY_OPS else local
            side.setdefault(name, {})[op] = value
        if not ops:
            local[name] = cond  # malformed: the local pass raises a QueryError naming it
    return remote, local


def _cql2_json(text: str) -> dict:
    import cql2

    try:
        return cql2.Expr(text).to_json()
    except Exception as exc:  # cql2 raises its own parse errors
        raise QueryError(f"'filter' is not valid CQL2: {str(exc).splitlines()[0]}") from None


def _api_kwargs(query: StacQuery) -> dict:
    body = query.to_body()
    if "filter-lang" in body:
        body["filter_lang"] = body.pop("filter-lang")
    return body


def _connection_reason(exc: BaseException) -> str | None:
    """A short reason if ``exc`` is a failure to connect (pystac-client hides these in APIError)."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Temporary failure in name resolution", "Connection reset"):
        if marker in text:
            return marker.lower()
    if "Max retries exceeded" in text or "NewConnectionError" in text:
        return "connection failed"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]

