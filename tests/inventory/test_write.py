"""Vector outputs read back by independent readers: pyarrow, the GeoParquet validator, GDAL (pyogrio)."""

from __future__ import annotations

import datetime as dt
import json
import math

import geopandas as gpd
import geoparquet_validator
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from test_vectorize import EPSG, as_mask, blobs

import geoslide.inventory.write as write
from geoslide.inventory.context import Provenance, acquisition_date, with_provenance
from geoslide.inventory.vectorize import vectorize
from geoslide.inventory.write import write_vectors

PROVENANCE = Provenance("demo-quake", dt.date(2025, 4, 26), "demo", ("quake-post-a", "quake-post-b"))


@pytest.fixture(scope="module")
def polygons():
    got = with_provenance(vectorize(as_mask(blobs((200, 240), seed=11), 64)), PROVENANCE)
    assert len(got) > 25
    return got


def test_geoparquet_1_1_with_a_bbox_covering_zstd_and_row_groups(polygons, tmp_path, monkeypatch):
    monkeypatch.setattr(write, "ROW_GROUP_ROWS", 8)
    path, _ = write_vectors(polygons, tmp_path / "quake.parquet")
    report = geoparquet_validator.check(str(path))
    outcomes = {o["id"]: o["status"] for o in report["outcomes"]}
    assert geoparquet_validator.failed(report) == [], report
    assert {k: v for k, v in outcomes.items() if k.startswith("/conf/covering/")} and all(
        v == "pass" for k, v in outcomes.items() if k.startswith("/conf/covering/")), outcomes
    meta = pq.ParquetFile(path).metadata
    geo = json.loads(meta.metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["columns"]["geometry"]["covering"] == {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax",
                                                                                         "ymax")}}
    assert meta.num_row_groups == math.ceil(len(polygons) / 8)
    chunks = [meta.row_group(r).column(c) for r in range(meta.num_row_groups) for c in range(meta.num_columns)]
    assert {c.compression for c in chunks} == {"ZSTD"}
    table = pq.read_table(path)
    bounds = shapely.bounds(shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False)))
    bbox = np.column_stack([table["bbox"].combine_chunks().field(k).to_numpy() for k in ("xmin", "ymin", "xmax",
                                                                                         "ymax")])
    np.testing.assert_array_equal(bbox, bounds)
    # Row-group statistics of the covering let a reader skip row groups: raster order puts the top rows first
    ymax = [meta.row_group(r).column(table.schema.get_field_index("bbox") + 3).statistics.max
            for r in range(meta.num_row_groups)]
    assert ymax == sorted(ymax, reverse=True)
    top = bounds[:, 3].max()
    kept = ds.dataset(path).to_table(filter=pc.field("bbox", "ymin") > top - 30)
    np.testing.assert_array_equal(np.sort(kept["landslide_id"].to_numpy()),
                                  polygons.landslide_id[bounds[:, 1] > top - 30].to_numpy())


@pytest.mark.parametrize("suffix,driver", [(".gpkg", "GPKG"), (".fgb", "FlatGeobuf"), (".parquet", None)])
def test_layers_are_named_after_the_file_in_the_map_crs_and_wgs84(polygons, tmp_path, suffix, driver):
    path, geojson = write_vectors(polygons, tmp_path / f"quake-landslides{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "quake-landslides.geojson"])
    assert json.loads(geojson.read_text())["name"] == "quake-landslides"
    info = pyogrio.read_info(geojson)
    assert info["layer_name"] == "quake-landslides" and info["crs"] == "EPSG:4326"
    if driver:
        assert pyogrio.list_layers(path)[:, 0].tolist() == ["quake-landslides"]
        info = pyogrio.read_info(path)
        assert info["driver"] == driver and info["crs"] == f"EPSG:{EPSG}" and info["features"] == len(polygons)
        back = gpd.read_file(path, engine="pyogrio").sort_values("landslide_id", ignore_index=True)  # FGB: Hilbert
    else:
        back = gpd.read_parquet(path)
    assert back.crs.to_epsg() == EPSG
    assert back.geometry.geom_equals(polygons.geometry).all()
    wgs84 = gpd.read_file(geojson, engine="pyogrio")
    assert wgs84.geometry.geom_equals_exact(polygons.to_crs(4326).geometry, tolerance=1e-6).all()


def test_provenance_columns_let_inventories_of_several_events_merge(polygons, tmp_path):
    other = with_provenance(polygons, Provenance("demo-storm", dt.date(2025, 9, 2), "unet-7", ("storm-post",)))
    quake, quake_json = write_vectors(polygons, tmp_path / "quake.parquet")
    storm, _ = write_vectors(other, tmp_path / "storm.gpkg")
    table = pq.read_table(quake)
    assert table.column_names[:5] == ["landslide_id", "event", "date", "model", "source"]
    assert str(table.schema.field("date").type) == "date32[day]"
    merged = pd.concat([gpd.read_parquet(quake), gpd.read_file(storm, engine="pyogrio")], ignore_index=True)
    counts = merged.groupby(["event", "model"]).size().to_dict()
    assert counts == {("demo-quake", "demo"): len(polygons), ("demo-storm", "unet-7"): len(polygons)}
    assert set(merged.source) == {"quake-post-a,quake-post-b", "storm-post"}
    assert {str(d)[:10] for d in merged.date} == {"2025-04-26", "2025-09-02"}
    first = json.loads(quake_json.read_text())["features"][0]["properties"]
    assert (first["event"], first["date"], first["model"]) == ("demo-quake", "2025-04-26", "demo")


def test_an_empty_inventory_has_the_schema_of_any_other(polygons, tmp_path):
    empty = with_provenance(vectorize(as_mask(np.zeros((40, 40), np.uint8), 16)), PROVENANCE)
    full, _ = write_vectors(polygons, tmp_path / "full.parquet")
    none, _ = write_vectors(empty, tmp_path / "none.parquet")
    assert pq.read_schema(none).remove_metadata() == pq.read_schema(full).remove_metadata()
    for suffix in (".gpkg", ".fgb"):
        infos = [pyogrio.read_info(write_vectors(frame, tmp_path / f"{name}{suffix}")[0])
                 for name, frame in (("full", polygons), ("none", empty))]
        assert [dict(zip(i["fields"], i["ogr_types"], strict=True)) for i in infos] == \
            [dict(zip(infos[0]["fields"], infos[0]["ogr_types"], strict=True))] * 2
        assert len(gpd.read_file(tmp_path / f"none{suffix}", engine="pyogrio")) == 0


def test_acquisition_date_is_the_latest_utc_day():
    late = dt.datetime(2025, 4, 26, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))  # 27 April in UTC
    assert acquisition_date([dt.datetime(2025, 4, 20, 5, tzinfo=dt.UTC), late, None]) == dt.date(2025, 4, 27)
    assert acquisition_date([None]) is None
