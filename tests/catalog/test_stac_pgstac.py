"""STAC search against a second real STAC API that implements the query and filter extensions.

stac-fastapi-pgstac on a throwaway PostgreSQL + PostGIS cluster (see ``pgstac_server.py``; installed
by ``.ci/pgstac.sh``). rustac's API (``stac_api``) lacks query/filter, so geoslide evaluates those
parts itself there; here it must send them to the API and get the same answers.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import S2
from pgstac_server import missing_requirements, running_pgstac
from pystac_client import Client
from rasters import _assert_grid, _read
from test_stac import CASES, LOCAL_ONLY_CASES

import geoslide.catalog.search
from geoslide import open_cube, search
from geoslide.catalog.query import StacQuery
from geoslide.catalog.search import ApiSource, _split_unsupported


@pytest.fixture(scope="session")
def pgstac_api(real_catalog):
    """URL of a stac-fastapi-pgstac API on loopback serving conftest's real items."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    *collection_files, items_file = real_catalog["api_files"]
    collections = [json.loads(p.read_text()) for p in collection_files]
    items = json.loads(items_file.read_text())["features"]
    t0 = time.monotonic()
    with running_pgstac(collections, items) as server:
        server.timings["total start"] = time.monotonic() - t0
        print(f"pgstac API at {server.url}; start timings (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in server.timings.items()))
        yield server.url


def test_api_conforms_to_query_and_filter(pgstac_api):
    client = Client.open(pgstac_api)
    assert client.conforms_to("ITEM_SEARCH")
    assert client.conforms_to("QUERY")
    assert client.conforms_to("FILTER")


@pytest.mark.parametrize(("body", "expected"), CASES + LOCAL_ONLY_CASES)
def test_api_search(pgstac_api, body, expected):
    assert {i.id for i in search(body, pgstac_api)} == expected


ALL_IDS = {"s2-pre", "s2-post", "l8-alps", "l7-olinda"}
CORE_QUERY_OPS = {"eq", "neq", "lt", "lte", "gt", "gte"}  # the query extension's required operators


@pytest.mark.parametrize(("body", "expected"), LOCAL_ONLY_CASES)
def test_query_and_filter_are_sent_to_the_api(pgstac_api, monkeypatch, body, expected):
    """Whatever this API supports is sent to it, not evaluated by geoslide after the fact."""
    source = geoslide.catalog.search.open_source(pgstac_api)
    assert isinstance(source, ApiSource)
    query = StacQuery.parse(body)
    remote, local = _split_unsupported(query, source.client)
    if query.filter is not None:
        assert remote.filter is not None, "the API supports FILTER but geoslide did not send the filter"
    if local is not None:  # at most the query extension's optional operators (startsWith, in, ...) stay local
        assert local.filter is None, f"geoslide keeps a filter local that the API supports: {local.filter}"
        kept = {op for ops in (local.query or {}).values() for op in ops}
        assert not kept & CORE_QUERY_OPS, f"geoslide keeps core query operators local: {local.query}"
    # The API's own answer to the body geoslide sends, before any geoslide filtering:
    raw = {i.id for i in source.client.search(**geoslide.catalog.search._api_kwargs(remote)).items()}
    if local is None:
        assert raw == expected

        def no_local_filtering(items, q):
            raise AssertionError(f"geoslide filtered locally ({q}) although the API supports query/filter")

        monkeypatch.setattr(geoslide.catalog.search, "filter_items", no_local_filtering)
    else:
        assert expected <= raw < ALL_IDS, "the API did not apply the part of the search it was sent"
    assert {i.id for i in source.search(query)} == expected


def test_max_items_is_applied_by_the_api(pgstac_api):
    items = search({"query": {"eo:cloud_cover": {"gte": 0}}, "max_items": 2}, pgstac_api)
    assert len(items) == 2


def test_cube_from_pgstac_items_equals_rasterio(pgstac_api):
    arr, transform, epsg = _read(S2)
    items = {i.id: i for i in search({"ids": ["s2-pre"]}, pgstac_api)}
    cube = open_cube([items["s2-pre"]], ["nir", "red", "green"], chunksize=128)
    assert list(cube.band.values) == ["nir", "red", "green"]
    assert cube.dtype == np.uint16
    _assert_grid(cube, transform, arr.shape[1:], epsg)
    np.testing.assert_array_equal(cube.values[0], arr[[3, 0, 1]])
