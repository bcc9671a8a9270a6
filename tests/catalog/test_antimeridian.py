"""A bbox with west > east crosses the antimeridian (STAC API spec): it is neither refused nor its complement."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pystac
import pytest
import shapely.geometry

from geoslide.catalog.query import StacQuery
from geoslide.catalog.search import InMemorySource
from geoslide.cli import main

CENTRES = {"fiji-east": 179.5, "samoa-west": -179.5, "greenwich": 0.0, "dateline-far": 170.0}


def _items():
    when = datetime(2025, 1, 1, tzinfo=UTC)
    return tuple(pystac.Item(name, shapely.geometry.mapping(shapely.geometry.box(lon - 0.2, -0.2, lon + 0.2, 0.2)),
                             [lon - 0.2, -0.2, lon + 0.2, 0.2], when, {}) for name, lon in CENTRES.items())


@pytest.mark.parametrize("bbox, expected", [
    ([179, -1, -179, 1], {"fiji-east", "samoa-west"}),
    ([179, -1, 0, 1], {"fiji-east", "samoa-west", "greenwich"}),  # 179 -> 180 -> -180 -> 0
    ([-179, -1, 179, 1], {"greenwich", "dateline-far"}),  # the ordinary box: the complement of the first
    ([179, -1, 0, -179, 1, 10], {"fiji-east", "samoa-west"}),  # 3D: west, south, min z, east, north, max z
])
def test_west_greater_than_east_crosses_the_antimeridian(bbox, expected):
    source = InMemorySource(_items())
    assert {i.id for i in source.search(StacQuery.parse({"bbox": bbox}))} == expected


def test_the_cli_reads_it_the_same_way(tmp_path, capsys):
    features = [i.to_dict(include_self_link=False) for i in _items()]
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    code = main(["search", "--catalog", str(tmp_path / "items.json"), "--stac-query", '{"bbox": [179, -1, -179, 1]}'])
    assert code == 0
    assert sorted(capsys.readouterr().out.split()) == ["fiji-east", "samoa-west"]
