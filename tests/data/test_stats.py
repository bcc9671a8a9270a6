"""Patch store statistics against numpy, and inventory areas against shapely."""

from __future__ import annotations

import io
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import geoslide.data.stats as stats_module
from geoslide.data.stats import format_stats, inventory_areas, stats_csv, store_stats
from geoslide.data.store import COLUMNS, PatchStore
from geoslide.errors import LabelError

BANDS = ["B04", "nir", "slope"]
SIZE = 8


def _meta(events, splits, resolution) -> pd.DataFrame:
    n = len(events)
    frame = pd.DataFrame({name: [""] * n if dtype == "str" else np.zeros(n, dtype) for name, dtype in COLUMNS.items()})
    frame["event"], frame["split"], frame["resolution"] = events, splits, resolution
    return frame


@pytest.fixture
def built(tmp_path: Path) -> tuple[PatchStore, np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 12
    images = rng.normal(100, 30, (n, len(BANDS), SIZE, SIZE)).astype(np.float32)
    images[0, 1, :2, :] = np.nan
    masks = (rng.random((n, SIZE, SIZE)) < 0.15).astype(np.uint8)
    masks[1, :, :3] = 255
    masks[2] = 0  # a patch without landslides
    masks[3] = 255  # all nodata
    events = ["quake"] * 5 + ["storm"] * 7
    splits = ["train", "train", "val", "test", "train"] + ["train"] * 4 + ["val"] * 2 + ["test"]
    resolution = [10.0] * 5 + [np.nan] * 7
    meta = _meta(events, splits, resolution)
    store = PatchStore.create(tmp_path / "s.zarr", BANDS, SIZE)
    store.append(images[:7], masks[:7], meta.iloc[:7].reset_index(drop=True))
    store.append(images[7:], masks[7:], meta.iloc[7:].reset_index(drop=True))
    return store, images, masks, meta


def _expected(images: np.ndarray, masks: np.ndarray, resolution: np.ndarray) -> dict:
    ls, valid = masks == 1, masks != 255
    means = {}
    for name, cls in (("landslide", 1), ("background", 0)):
        sel = np.broadcast_to((masks == cls)[:, None], images.shape) & np.isfinite(images)
        means[name] = {b: float(images[:, i][sel[:, i]].astype(np.float64).mean()) for i, b in enumerate(BANDS)}
    known = np.isfinite(resolution)
    area = float((ls.sum(axis=(1, 2))[known] * resolution[known] ** 2).sum()) if known.any() else None
    return {"landslide_pixels": int(ls.sum()), "valid_pixels": int(valid.sum()),
            "landslide_ratio": ls.sum() / valid.sum(), "band_means": means, "landslide_area_m2": area,
            "landslide_patches": int((ls.sum(axis=(1, 2)) > 0).sum()), "patches": len(masks)}


def _compare(got: dict, want: dict) -> None:
    for key in ("landslide_pixels", "valid_pixels", "landslide_patches", "patches"):
        assert got[key] == want[key], key
    assert got["landslide_ratio"] == pytest.approx(want["landslide_ratio"], rel=1e-12)
    for name in ("landslide", "background"):
        for band in BANDS:
            assert got["band_means"][name][band] == pytest.approx(want["band_means"][name][band], rel=1e-9)
    if want["landslide_area_m2"] is None:
        assert got["landslide_area_m2"] is None and got["landslide_area_km2"] is None
    else:
        assert got["landslide_area_m2"] == pytest.approx(want["landslide_area_m2"])
        assert got["landslide_area_km2"] == pytest.approx(want["landslide_area_m2"] / 1e6)


@pytest.mark.parametrize("block_bytes", [stats_module.BLOCK_BYTES, 1])
def test_store_stats_match_numpy(built, monkeypatch, block_bytes):
    monkeypatch.setattr(stats_module, "BLOCK_BYTES", block_bytes)  # 1 byte: one patch per dask block
    store, images, masks, meta = built
    stats = store_stats(store)
    resolution = meta["resolution"].to_numpy()
    assert stats["bands"] == BANDS and stats["patch_size"] == SIZE and stats["patches"] == 12
    assert stats["inventory"] is None
    _compare(stats["overall"], _expected(images, masks, resolution))
    assert set(stats["events"]) == {"quake", "storm"}
    for event, rows in (("quake", slice(0, 5)), ("storm", slice(5, 12))):
        _compare(stats["events"][event], _expected(images[rows], masks[rows], resolution[rows]))
    assert stats["events"]["quake"]["splits"] == {"test": 1, "train": 3, "val": 1}
    assert stats["events"]["storm"]["splits"] == {"test": 1, "train": 4, "val": 2}
    assert stats["overall"]["splits"] == {"test": 2, "train": 7, "val": 3}


def test_stats_stream_in_blocks(built, monkeypatch):
    seen = []
    original = stats_module._block_sums
    monkeypatch.setattr(stats_module, "BLOCK_BYTES", 4 * len(BANDS) * SIZE * SIZE * 5)  # five patches a block
    monkeypatch.setattr(stats_module, "_block_sums", lambda i, m: seen.append(len(i)) or original(i, m))
    store_stats(built[0])
    assert sorted(n for n in seen if n) == [2, 5, 5]


def test_empty_store(tmp_path):
    stats = store_stats(PatchStore.create(tmp_path / "e.zarr", BANDS, SIZE))
    assert stats["patches"] == 0 and stats["events"] == {} and stats["overall"]["landslide_ratio"] is None
    assert "| all | 0 | 0 |" in format_stats(stats)


def test_format_and_csv(built):
    stats = store_stats(built[0])
    text = format_stats(stats)
    assert text.startswith("| event | patches | landslide patches | split train | split val | split test |")
    assert "| quake | 5 |" in text and "| storm | 7 |" in text and "| storm | slope |" in text
    assert "| storm |" in text and "n/a |" in text  # storm has no resolution: no mask area
    for table in text.strip().split("\n\n"):
        assert len({line.count("|") for line in table.splitlines()}) == 1  # header, rule and rows align
    table = pd.read_csv(io.StringIO(stats_csv(stats)))
    assert set(table.columns) == {"scope", "event", "statistic", "band", "value"}
    row = table[(table.event == "quake") & (table.statistic == "landslide_pixels")]
    assert row["value"].astype(float).item() == stats["events"]["quake"]["landslide_pixels"]


# ---------------------------------------------------------------- inventory areas

def _squares_utm() -> gpd.GeoDataFrame:
    sides = [10.0, 25.0, 40.0, 7.5]
    geoms = [shapely.box(500_000 + 100 * i, 4_000_000, 500_000 + 100 * i + s, 4_000_000 + s)
             for i, s in enumerate(sides)]
    return gpd.GeoDataFrame({"event": ["a", "a", "b", "b"]}, geometry=geoms, crs="EPSG:32633")


def test_inventory_areas_utm(tmp_path):
    frame = _squares_utm()
    path = tmp_path / "inv.parquet"
    frame.to_parquet(path)
    result = inventory_areas(path)
    areas = frame.geometry.area.to_numpy()  # shapely areas in the UTM CRS
    assert result["by_event"] is True
    a, b = result["areas"]["a"], result["areas"]["b"]
    assert (a["count"], b["count"]) == (2, 2)
    assert a["min_m2"] == pytest.approx(areas[0], rel=1e-9) and a["max_m2"] == pytest.approx(areas[1], rel=1e-9)
    assert b["total_m2"] == pytest.approx(areas[2] + areas[3], rel=1e-9)
    assert b["total_km2"] == pytest.approx((areas[2] + areas[3]) / 1e6, rel=1e-9)


def test_inventory_areas_wgs84_without_event(tmp_path):
    frame = _squares_utm().drop(columns="event")
    path = tmp_path / "inv.geojson"
    frame.to_crs("EPSG:4326").to_file(path, driver="GeoJSON")
    result = inventory_areas(path)
    areas = frame.geometry.area.to_numpy()
    assert result["by_event"] is False and list(result["areas"]) == ["all"]
    got = result["areas"]["all"]
    assert got["count"] == 4
    assert got["total_m2"] == pytest.approx(areas.sum(), rel=1e-6)
    assert (got["min_m2"], got["max_m2"]) == pytest.approx((areas.min(), areas.max()), rel=1e-6)


def test_store_stats_with_inventory_and_format(built, tmp_path):
    path = tmp_path / "inv.gpkg"
    _squares_utm().to_file(path, driver="GPKG")
    stats = store_stats(built[0], inventory=path)
    assert stats["inventory"]["areas"]["a"]["count"] == 2
    assert "| a | 2 | 100 | 625 | 725 | 0.000725 |" in format_stats(stats)


def test_inventory_errors(tmp_path):
    with pytest.raises(LabelError, match="does not exist"):
        inventory_areas(tmp_path / "missing.geojson")
    frame = _squares_utm()
    frame.set_crs(None, allow_override=True).to_parquet(tmp_path / "nocrs.parquet")
    with pytest.raises(LabelError, match="no CRS"):
        inventory_areas(tmp_path / "nocrs.parquet")
    frame.set_crs("EPSG:4326", allow_override=True).to_file(tmp_path / "wrongcrs.geojson", driver="GeoJSON")
    with pytest.raises(LabelError, match="outside longitude/latitude"):
        inventory_areas(tmp_path / "wrongcrs.geojson")
    gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs="EPSG:4326").to_file(tmp_path / "pts.geojson")
    with pytest.raises(LabelError, match="no polygons"):
        inventory_areas(tmp_path / "pts.geojson")
    (tmp_path / "bad.geojson").write_text("not json")
    with pytest.raises(LabelError, match="cannot read"):
        inventory_areas(tmp_path / "bad.geojson")
