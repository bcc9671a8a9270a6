"""stac-geoparquet files as a catalog: the same answers as the JSON catalog they were written from."""

from __future__ import annotations

import json

import pytest
import rustac

from geoslide.catalog.search import search
from geoslide.cli import main
from geoslide.errors import CatalogError
from geoslide.raster.items import as_dicts

QUERIES = [
    None,
    {"collections": ["demo-quake-planetscope"]},
    {"collections": ["demo-quake-sentinel2", "demo-storm-sentinel2"], "query": {"geoslide:phase": {"eq": "post"}}},
    {"bbox": [85.0, 27.0, 86.0, 28.5]},
    {"ids": ["does-not-exist"]},
]


@pytest.fixture(autouse=True)
def trust_the_bundled_rasters(monkeypatch):
    """These index files list the bundled catalog's rasters, outside the files' own folder: trusted explicitly."""
    from geoslide.catalog.bundled import demo_catalog_path

    monkeypatch.setenv("GEOSLIDE_ALLOW_ASSETS", str(demo_catalog_path().parent))


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    items = search(None)
    path = tmp_path_factory.mktemp("pq") / "items.parquet"
    rustac.write_sync(str(path), as_dicts(items))  # absolute asset hrefs
    return path


@pytest.mark.parametrize("query", QUERIES)
def test_same_items_as_the_json_catalog(parquet, query):
    expected = search(query, allow_empty=True)
    found = search(query, str(parquet), allow_empty=True)
    assert [i.id for i in found] == [i.id for i in expected]
    for ours, theirs in zip(found, expected, strict=True):
        assert {k: a.get_absolute_href() for k, a in ours.assets.items()} == \
               {k: a.get_absolute_href() for k, a in theirs.assets.items()}
        assert ours.datetime == theirs.datetime and ours.properties.get("proj:code") == \
               theirs.properties.get("proj:code")


def test_relative_hrefs_resolve_against_the_file(tmp_path):
    item = search({"collections": ["demo-quake-planetscope"]})[0].to_dict(include_self_link=False)
    for asset in item["assets"].values():
        asset["href"] = "images/" + asset["href"].rsplit("/", 1)[-1]
    rustac.write_sync(str(tmp_path / "items.parquet"), [item])
    found = search(None, str(tmp_path / "items.parquet"))  # inside the file's folder: trusted by default
    assert all(a.href.startswith(str(tmp_path / "images") + "/") for a in found[0].assets.values())


def test_an_index_listing_rasters_elsewhere_needs_them_allowed(parquet, monkeypatch):
    monkeypatch.delenv("GEOSLIDE_ALLOW_ASSETS")
    with pytest.raises(CatalogError, match="outside the catalog's folder"):
        search({"collections": ["demo-quake-planetscope"]}, str(parquet))


def test_cli_search_and_a_broken_file(parquet, tmp_path, capsys):
    assert main(["search", "--catalog", str(parquet), "--stac-query",
                 json.dumps({"collections": ["demo-storm-uav"]})]) == 0
    assert capsys.readouterr().out.split() == [i.id for i in search({"collections": ["demo-storm-uav"]})]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(CatalogError, match="stac-geoparquet"):
        search(None, str(tmp_path / "bad.parquet"))
