"""STAC search over a static catalog on disk and a real STAC API on loopback."""

from __future__ import annotations

import json

import pytest
from inprocess import run_cli

from geoslide import search
from geoslide.catalog.query import StacQuery
from geoslide.catalog.search import InMemorySource
from geoslide.errors import CatalogError, EmptySearchError, QueryError

# (query, expected ids) -- expected ids worked out by hand from conftest's items.
CASES = [
    ({"collections": ["s2-patagonia"]}, {"s2-pre", "s2-post"}),
    ({"ids": ["l8-alps", "l7-olinda"]}, {"l8-alps", "l7-olinda"}),
    ({"bbox": [-68.0, -48.0, -67.0, -47.0]}, {"s2-pre", "s2-post"}),  # Patagonia only
    ({"bbox": [-35.0, -8.1, -34.8, -7.9]}, {"l7-olinda"}),  # Olinda, Brazil
    ({"datetime": "2023-02-01T00:00:00Z/.."}, {"s2-post"}),
    ({"datetime": "2010-01-01T00:00:00Z/2014-01-01T00:00:00Z"}, {"l8-alps"}),
    ({"intersects": {"type": "Point", "coordinates": [-67.64, -47.85]}}, {"s2-pre", "s2-post"}),
]
LOCAL_ONLY_CASES = [  # query/filter: rustac's API lacks them, geoslide applies them itself
    ({"query": {"eo:cloud_cover": {"lt": 5}}}, {"s2-pre", "l8-alps"}),
    ({"query": {"platform": {"startsWith": "landsat"}, "eo:cloud_cover": {"gte": 5}}}, {"l7-olinda"}),
    ({"filter": {"op": "and", "args": [{"op": ">", "args": [{"property": "eo:cloud_cover"}, 5]},
                                       {"op": "=", "args": [{"property": "collection"}, "s2-patagonia"]}]},
      "filter-lang": "cql2-json"}, {"s2-post"}),
    ({"filter": "platform = 'landsat-8'", "filter-lang": "cql2-text"}, {"l8-alps"}),
]


@pytest.mark.parametrize(("body", "expected"), CASES + LOCAL_ONLY_CASES)
def test_static_catalog_search(real_catalog, body, expected):
    assert {i.id for i in search(body, real_catalog["catalog"])} == expected


@pytest.mark.parametrize(("body", "expected"), CASES + LOCAL_ONLY_CASES)
def test_api_search(stac_api, body, expected):
    assert {i.id for i in search(body, stac_api)} == expected


def test_api_and_static_return_the_same_items(real_catalog, stac_api):
    static = {i.id: i for i in search({}, real_catalog["catalog"])}
    api = {i.id: i for i in search({}, stac_api)}
    assert static.keys() == api.keys() == {"s2-pre", "s2-post", "l8-alps", "l7-olinda"}
    for key in static:
        assert api[key].properties["proj:code"] == static[key].properties["proj:code"]
        assert api[key].properties["proj:transform"] == static[key].properties["proj:transform"]


def test_max_items_applies_after_local_filtering(stac_api):
    items = search({"query": {"eo:cloud_cover": {"gte": 0}}, "max_items": 2}, stac_api)
    assert len(items) == 2


def test_in_memory_source_is_the_fake_of_a_catalog(real_catalog):
    source = InMemorySource(tuple(real_catalog["items"]))
    assert [i.id for i in source.search(StacQuery(collections=("l8-alps",)))] == ["l8-alps"]


def test_empty_search_says_what_to_change(real_catalog):
    with pytest.raises(EmptySearchError, match=r"widen bbox/datetime.*available: l7-olinda, l8-alps, s2-patagonia"):
        search({"collections": ["nope"]}, real_catalog["catalog"])
    assert search({"collections": ["nope"]}, real_catalog["catalog"], allow_empty=True) == []


@pytest.mark.parametrize(("body", "match"), [
    ('{"bbox": [500000, 3000000, 510000, 3010000]}', "not WGS84"),
    ('{"colections": ["x"]}', "unknown --stac-query key"),
    ("[1, 2]", "must be a JSON object"),
    ('{"datetime": "yesterday"}', "not RFC 3339"),
    ('{"query": {"eo:cloud_cover": {"less": 3}}}', "operator"),
    ('{"filter": "cloud_cover <<< 3", "filter-lang": "cql2-text"}', "not valid CQL2"),
])
def test_bad_queries_are_rejected(real_catalog, body, match):
    with pytest.raises(QueryError, match=match):
        search(body, real_catalog["catalog"])


def test_unreachable_api_is_a_catalog_error():
    with pytest.raises(CatalogError, match=r"cannot reach STAC catalog at http://127.0.0.1:9/ \(connection refused\)"):
        search({}, "http://127.0.0.1:9/")


def test_missing_path_is_a_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="no STAC catalog at"):
        search({}, tmp_path / "nothing-here")


def _cli(*args):
    return run_cli(*args)


def test_cli_search_prints_ids_from_api(stac_api):
    done = _cli("search", "--stac-query", '{"collections": ["s2-patagonia"]}', "--catalog", stac_api)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["s2-pre", "s2-post"]


def test_cli_search_json(real_catalog):
    done = _cli("search", "--stac-query", '{"ids": ["l8-alps"]}', "--catalog", str(real_catalog["catalog"]), "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert [f["id"] for f in body["features"]] == ["l8-alps"]
    assert set(body["features"][0]["assets"]) == {"rgbn", "dem"}


@pytest.mark.parametrize("args", [
    ("--stac-query", '{"collections": ["nope"]}'),
    ("--catalog", "http://127.0.0.1:9/"),
    ("--stac-query", "{not json"),
])
def test_cli_errors_are_one_line_and_exit_2(real_catalog, args):
    argv = ["search", *args] + ([] if "--catalog" in args else ["--catalog", str(real_catalog["catalog"])])
    done = _cli(*argv)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("geoslide search: error: ")
    assert "Traceback" not in done.stderr
