"""Map exports: a valid COG equal to the store, a STAC item that validates, a quicklook PNG."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import dask.array as da
import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer
from rasterio.enums import ColorInterp
from stac_schemas import OfflineValidator, fetch_schemas
from test_mapstore import THRESHOLD, Blocks, probability

import geoslide
from geoslide.errors import GridError, OutputError
from geoslide.mapping.cog import export_cog
from geoslide.mapping.item import item_path, map_item
from geoslide.mapping.quicklook import quicklook
from geoslide.mapping.store import map_status, stored_array, write_map
from geoslide.raster.grid import GridSpec

# Big enough for three overview levels with 64-pixel COG tiles.
GRID = GridSpec(32645, (412345.5, 3012345.25, 412345.5 + 300 * 10, 3012345.25 + 260 * 10), 10.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "event.zarr"
    write_map(probability(GRID, chunk=64), out, THRESHOLD, {"model": "unet-demo"})
    return out


@pytest.mark.parametrize("variable", ["probability", "mask"])
def test_cog_is_cloud_optimized_and_equals_the_store(store, tmp_path, variable):
    path = export_cog(store, variable, tmp_path / f"{variable}.tif", blocksize=64)
    stored = stored_array(store, variable)[...]
    with rasterio.open(path) as src:
        assert src.driver == "GTiff" and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.profile["tiled"] and src.block_shapes == [(64, 64)]
        # halving until the image fits one tile
        assert src.overviews(1) == [2 ** k for k in range(1, 12) if max(GRID.shape) / 2 ** (k - 1) > 64]
        assert src.crs.to_epsg() == 32645
        assert src.transform.almost_equals(GRID.transform, precision=1e-9)
        assert src.nodata == 255 and src.dtypes == ("uint8",)
        np.testing.assert_array_equal(src.read(1), stored)
        if variable == "probability":
            assert src.scales == (1 / 250,)
            overview = src.read(1, out_shape=(GRID.shape[0] // 2, GRID.shape[1] // 2))
    if variable == "probability":  # AVERAGE overviews: 2x2 means of the valid pixels
        blocks = stored.reshape(GRID.shape[0] // 2, 2, GRID.shape[1] // 2, 2).astype(float)
        full = (blocks != 255).all(axis=(1, 3))
        means = blocks.mean(axis=(1, 3))
        assert np.abs(overview[full] - means[full]).max() <= 1


def test_mask_cog_has_a_colour_table_and_a_qgis_style_beside_it(store, tmp_path):
    path = export_cog(store, "mask", tmp_path / "event.mask.tif", blocksize=64)
    with rasterio.open(path) as src:
        assert src.colorinterp == (ColorInterp.palette,)
        table = src.colormap(1)
        assert table[0][:3] == (200, 200, 200) and table[1][:3] == (230, 25, 25)  # grey background, red landslides
        overview = src.read(1, out_shape=(GRID.shape[0] // 4, GRID.shape[1] // 4))
        assert set(np.unique(overview)) <= {0, 1, 255}  # MODE overviews keep the classes the palette names
    qml = ElementTree.parse(tmp_path / "event.mask.qml").getroot()  # QGIS loads OUT.mask.qml for OUT.mask.tif
    renderer = qml.find("pipe/rasterrenderer")
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = {int(e.get("value")): e for e in renderer.iter("paletteEntry")}
    assert set(entries) == {0, 1, 255}
    for value, entry in entries.items():
        assert entry.get("color") == "#{:02x}{:02x}{:02x}".format(*table[value][:3])
    assert [entries[v].get("alpha") for v in (0, 1, 255)] == ["0", "255", "0"]  # only landslides are drawn
    assert not (tmp_path / "probability.qml").exists()


def test_cog_of_an_unfinished_store_is_refused(tmp_path):
    out = tmp_path / "half.zarr"
    with pytest.raises(RuntimeError):
        write_map(probability(blocks=Blocks(fail_after=3)), out, THRESHOLD, {})
    assert not map_status(out).complete
    with pytest.raises(OutputError, match="unfinished.*rerun"):
        export_cog(out, "mask", tmp_path / "mask.tif")
    with pytest.raises(OutputError, match="not 'labels'"):
        export_cog(out, "labels", tmp_path / "labels.tif")


def _input_item(folder: Path, item_id: str, day: int) -> pystac.Item:
    item = pystac.Item(item_id, {"type": "Point", "coordinates": [85.0, 27.1]}, [85.0, 27.1, 85.0, 27.1],
                       datetime(2025, 4, day, 5, 0, tzinfo=UTC), {})
    item.set_self_href(str(folder / f"{item_id}.json"))
    item.save_object(include_self_link=False)
    return item


def test_stac_item_describes_the_outputs_and_validates(store, tmp_path):
    cog = export_cog(store, "probability", store.parent / "event_probability.tif")
    png = store.parent / "event.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    inputs = [_input_item(tmp_path, "s2-pre", 2), _input_item(tmp_path, "s2-post", 9), "planet-post"]
    model = {"architecture": "unet", "bands": ["red", "green", "blue", "nir"], "patch_size": 256}
    map_item(store, inputs, model, {"overlap": 32}, cogs={"probability": cog}, quicklook_png=png)

    saved = item_path(store)
    assert saved == store.parent / "event.json" and saved.is_file()
    d = json.loads(saved.read_text())
    used = OfflineValidator(fetch_schemas()).check(d)
    assert {u.split("/")[3] for u in used[1:]} == {"projection", "raster", "processing", "label", "classification",
                                                    "file"}
    props = d["properties"]
    assert props["proj:code"] == "EPSG:32645" and props["proj:shape"] == [260, 300]
    assert props["proj:transform"] == pytest.approx(list(GRID.transform)[:6])
    to_wgs84 = Transformer.from_crs(32645, 4326, always_xy=True)
    for x in (GRID.bounds[0], GRID.bounds[2]):
        for y in (GRID.bounds[1], GRID.bounds[3]):
            lon, lat = to_wgs84.transform(x, y)
            assert d["bbox"][0] <= lon <= d["bbox"][2] and d["bbox"][1] <= lat <= d["bbox"][3]
    assert props["start_datetime"].startswith("2025-04-02") and props["end_datetime"].startswith("2025-04-09")
    assert props["processing:software"] == {"geoslide": geoslide.__version__} and props["processing:level"] == "L4"
    assert props["label:type"] == "raster" and props["label:tasks"] == ["segmentation"]
    assert props["geoslide:threshold"] == THRESHOLD and props["geoslide:model"]["architecture"] == "unet"
    assert props["geoslide:inputs"] == ["s2-pre", "s2-post", "planet-post"]
    assert "unet" in props["processing:lineage"] and "nir" in props["processing:lineage"]
    for rel in ("derived_from", "source"):  # relative to the item, resolving to the input items
        hrefs = [link["href"] for link in d["links"] if link["rel"] == rel]
        assert all(not Path(h).is_absolute() for h in hrefs)
        assert sorted((saved.parent / h).resolve() for h in hrefs) == sorted(
            (tmp_path / f"{i}.json").resolve() for i in ("s2-pre", "s2-post"))
    assert {k: a["href"] for k, a in d["assets"].items()} == {
        "zarr": "./event.zarr", "probability": "./event_probability.tif", "quicklook": "./event.png"}
    assert d["assets"]["zarr"]["type"] == "application/vnd.zarr; version=3"
    for asset in d["assets"].values():
        path = saved.parent / asset["href"]
        if path.is_file():
            assert asset["file:size"] == path.stat().st_size
            assert asset["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            assert asset["file:size"] == sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert d["assets"]["probability"]["bands"][0]["raster:scale"] == pytest.approx(1 / 250)
    mask_band = d["assets"]["zarr"]["bands"][1]
    assert {c["value"]: c["name"] for c in mask_band["classification:classes"]} == {
        0: "background", 1: "landslide", 255: "nodata"}


def _gray_image(shape: tuple[int, int]) -> xr.DataArray:
    """(band, y, x) imagery: a smooth ramp per band, dask-chunked, a NaN corner."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    img = np.stack([xx, yy, xx + yy])
    img[:, :20, :20] = np.nan
    return xr.DataArray(da.from_array(img, chunks=(1, 64, 64)), dims=("band", "y", "x"),
                        coords={"band": ["red", "green", "blue"]})


def _reference_rgb(image: np.ndarray, f: int) -> np.ndarray:
    """Block means over f x f then a 2-98 percentile stretch, with numpy only."""
    b, h, w = image.shape
    padded = np.full((b, -(-h // f) * f, -(-w // f) * f), np.nan, np.float32)
    padded[:, :h, :w] = image
    means = np.nanmean(padded.reshape(b, padded.shape[1] // f, f, padded.shape[2] // f, f), axis=(2, 4))
    lo, hi = np.nanpercentile(means, 2, axis=(1, 2)), np.nanpercentile(means, 98, axis=(1, 2))
    return np.clip((means - lo[:, None, None]) / (hi - lo)[:, None, None], 0, 1) * 255


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_quicklook_png_of_the_expected_size_with_landslides_drawn(tmp_path):
    shape = (300, 500)
    image = _gray_image(shape)
    mask = np.zeros(shape, np.uint8)
    mask[100:200, 200:320] = 1  # a landslide of 25 x 30 pixels after reduction by 4
    overlay = xr.DataArray(da.from_array(mask, chunks=64), dims=("y", "x"))
    path = quicklook(image, overlay, tmp_path / "q.png", max_size=128)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with rasterio.open(path) as png:
        assert png.driver == "PNG" and (png.count, png.height, png.width) == (4, 75, 125)
        rgba = png.read()
    expected = _reference_rgb(image.values, 4)
    hits = np.zeros((75, 125), bool)
    hits[25:50, 50:80] = True
    valid = np.isfinite(expected).all(axis=0)
    plain = valid & ~hits
    assert np.abs(rgba[:3, plain].astype(int) - np.rint(expected[:, plain])).max() <= 1
    assert (rgba[3, ~valid] == 0).all() and (rgba[3, valid] == 255).all()
    inner, rim = rgba[:, 30:45, 55:75], rgba[:3, 25, 50:80]
    assert (inner[0] > np.rint(expected[0, 30:45, 55:75]) - 1).all()  # tinted red
    assert (np.abs(inner[:3].astype(int) - np.rint(expected[:, 30:45, 55:75])) > 2).any(axis=0).all()
    assert (rim == rim[:, :1]).all() and not np.array_equal(rim[:, 0], inner[:3, 0, 0])  # one outline colour


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_quicklook_thresholds_probabilities_and_checks_grids(tmp_path):
    image = _gray_image((64, 96))
    p = np.full((64, 96), 0.2, np.float32)
    p[10:30, 40:70] = 0.9
    p[50:, :] = np.nan
    overlay = xr.DataArray(p, dims=("y", "x"))
    low = quicklook(image, overlay, tmp_path / "low.png", threshold=0.1)
    high = quicklook(image, overlay, tmp_path / "high.png", threshold=0.5)
    with rasterio.open(low) as a, rasterio.open(high) as b:
        low_px, high_px = a.read(), b.read()
    assert low_px.shape == (4, 64, 96)
    changed = (low_px != high_px).any(axis=0)
    assert changed[0, 0] and changed[40, 5] and not changed[20, 55] and not changed[60, 0]
    with pytest.raises(GridError, match="not on the image's grid"):
        quicklook(image, overlay[:10], tmp_path / "bad.png")
