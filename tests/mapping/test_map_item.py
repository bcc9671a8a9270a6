"""`geoslide map --zarr-format 2 --cog --vectors`: a portable, valid STAC item of every file written, linking the model.

The map item must validate against the official core, projection, raster, processing, label,
classification and file schemas; list every file the run wrote, each with its size and checksum;
link the inputs and the model's MLM item by relative hrefs; and the v2 map store must open in
rasterio's GDAL (3.10) on the same grid as the mask COG.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from stac_schemas import OfflineValidator, fetch_schemas

from geoslide.cli import main
from geoslide.models.card import bundled_model_path
from geoslide.models.mlm import ITEM

QUAKE_POST = {"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}


@pytest.fixture(scope="module")
def cli_map(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-map")
    out = folder / "quake.zarr"
    assert main(["map", "--stac-query", json.dumps(QUAKE_POST), "--out", str(out), "--chunk", "512", "--cog",
                 "--vectors", str(folder / "quake.parquet"), "--zarr-format", "2"]) == 0
    return out


def test_item_validates_against_every_extension_it_declares(cli_map):
    d = json.loads(cli_map.with_suffix(".json").read_text())
    used = OfflineValidator(fetch_schemas()).check(d)
    assert {u.split("/")[3] for u in used[1:]} == {"projection", "raster", "processing", "label", "classification",
                                                    "file"}
    assert d["properties"]["processing:level"] == "L4" and d["properties"]["label:methods"] == ["automated"]


def test_every_file_written_is_an_asset_with_size_and_checksum(cli_map):
    item = cli_map.with_suffix(".json")
    d = json.loads(item.read_text())
    written = {p.name for p in cli_map.parent.iterdir()} - {item.name}
    assert {Path(a["href"]).name for a in d["assets"].values()} == written
    assert all(a["href"].startswith("./") for a in d["assets"].values())
    for asset in d["assets"].values():
        path = item.parent / asset["href"]
        if path.is_file():
            assert asset["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
            assert asset["file:size"] == path.stat().st_size
    assert d["assets"]["zarr"]["type"] == "application/vnd+zarr"  # v2, for QGIS: the one Zarr type it streams
    assert d["assets"]["vectors"]["type"] == "application/vnd.apache.parquet"
    assert d["assets"]["vectors-geojson"]["type"] == "application/geo+json"


def test_links_are_relative_and_reach_the_inputs_and_the_model(cli_map):
    item = cli_map.with_suffix(".json")
    d = json.loads(item.read_text())
    assert "self" not in {link["rel"] for link in d["links"]}
    derived = [link for link in d["links"] if link["rel"] == "derived_from"]
    sources = [link for link in d["links"] if link["rel"] == "source"]
    assert sources and all(not Path(link["href"]).is_absolute() for link in d["links"])
    for link in sources:
        target = json.loads((item.parent / link["href"]).read_text())
        assert target["id"] in d["properties"]["geoslide:inputs"]
    [model] = [link for link in derived if "mlm:name" in link]
    assert (item.parent / model["href"]).resolve() == (bundled_model_path() / ITEM).resolve()
    mlm = json.loads((item.parent / model["href"]).read_text())
    assert mlm["properties"]["mlm:name"] == model["mlm:name"]


def test_the_outputs_stay_valid_when_copied_elsewhere(cli_map, tmp_path):
    copy = tmp_path / "published"
    shutil.copytree(cli_map.parent, copy)
    d = json.loads((copy / "quake.json").read_text())
    for asset in d["assets"].values():
        assert (copy / asset["href"]).exists()


def test_gdal_3_10_of_rasterio_opens_the_v2_map_on_the_cogs_grid(cli_map):
    with rasterio.open(f'ZARR:"{cli_map}":/mask') as zarr, rasterio.open(cli_map.with_suffix(".mask.tif")) as cog:
        assert zarr.crs == cog.crs and zarr.transform.almost_equals(cog.transform, precision=1e-9)
        assert zarr.nodata == cog.nodata == 255
        np.testing.assert_array_equal(zarr.read(1), cog.read(1))
