"""`geoslide import tiles`: users' own tiles (GeoTIFF/PNG/JPEG, any size, any mask coding) against numpy slices."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from usertiles import write_georef, write_plain

from geoslide.cli import main
from geoslide.data.importers.tiles import TileImportSpec, import_tiles, tile_windows
from geoslide.data.store import PatchStore
from geoslide.data.tilefiles import find_tiles
from geoslide.data.tilesplit import tile_splits
from geoslide.errors import ConfigError, LabelError, PatchStoreError
from geoslide.inventory.codes import MASK_NODATA
from geoslide.inventory.maskvalues import MaskValues, choose_mask_values, parse_mask_values


def _expected(record: dict, size: int, r: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The patch at (r, c) cut from the written source with numpy, nodata as NaN / 255, padded if short."""
    image = record["rgb"].astype(np.float32)
    labels = record["labels"].astype(np.uint8).copy()
    invalid = record.get("nodata", np.zeros(labels.shape, bool))
    image[:, invalid] = np.nan
    labels[invalid] = MASK_NODATA
    if "cloud" in record:
        labels[record["cloud"]] = MASK_NODATA
    h, w = labels.shape
    pad = ((0, max(0, r + size - h)), (0, max(0, c + size - w)))
    image = np.pad(image, ((0, 0), *pad), constant_values=np.nan)
    labels = np.pad(labels, pad, constant_values=MASK_NODATA)
    return image[:, r : r + size, c : c + size], labels[r : r + size, c : c + size]


def _check_patches(store: PatchStore, records: dict[str, dict], size: int, rows=None) -> None:
    meta = store.meta()
    rows = range(len(meta)) if rows is None else rows
    images, masks = store.images().compute(), store.masks().compute()
    for i in rows:
        record = records[meta.item_id[i]]
        image, labels = _expected(record, size, int(meta.row[i]), int(meta.col[i]))
        np.testing.assert_array_equal(images[i], image)
        np.testing.assert_array_equal(masks[i], labels)
        valid = labels != MASK_NODATA
        assert meta.landslide_fraction[i] == pytest.approx((labels == 1).sum() / max(valid.sum(), 1))
        assert meta.nodata_fraction[i] == pytest.approx(1 - valid.sum() / size**2)


def _by_name(root, records):
    return {r["image"].relative_to(root).with_suffix("").as_posix(): r for r in records}


def test_non_square_georeferenced_tiles_become_patches_equal_to_numpy_slices(tmp_path):
    records = write_georef(tmp_path / "src")
    store, found = import_tiles(tmp_path / "src", tmp_path / "s.zarr", TileImportSpec(size=256))
    meta = store.meta()
    # 512 x 547 px: rows 0, 256; columns 0, 256 and 291 (flush with the right edge): 6 patches per tile
    assert len(meta) == 6 * len(records) and sorted(set(meta.col)) == [0, 256, 291]
    assert found.mask_values == MaskValues((0,), (255,), ()) and found.split == "folders"
    _check_patches(store, _by_name(tmp_path / "src", records), 256)
    assert set(meta.split) == {"train", "test"} and set(meta.event) == {"valley"} and set(meta.crs) == {"EPSG:32645"}
    assert (meta.resolution == 0.5).all()
    first = records[0]
    row = meta[(meta.item_id == "valley/train/images/tile_0") & (meta.row == 256) & (meta.col == 291)].iloc[0]
    x0, y0 = first["transform"] * (291, 256)
    assert (row.xmin, row.ymax, row.xmax, row.ymin) == pytest.approx((x0, y0, x0 + 128, y0 - 128))
    assert meta[meta.item_id.str.startswith("valley/test")].split.eq("test").all()
    assert (meta.nodata_fraction > 0).any()  # the black corners are nodata, not background


def test_png_and_jpeg_tiles_with_a_cloud_code_append_to_a_store_of_other_tiles(tmp_path):
    geo = write_georef(tmp_path / "a", n_per_split=1)
    plain = write_plain(tmp_path / "b")
    out = tmp_path / "s.zarr"
    import_tiles(tmp_path / "a", out, TileImportSpec(size=128))
    with pytest.raises(LabelError, match=r"values \['0', '1', '85'\].*--mask-values"):
        import_tiles(tmp_path / "b", out, TileImportSpec(resolution=3.0))
    n0 = len(PatchStore.open(out))
    store, found = import_tiles(tmp_path / "b", out, TileImportSpec(mask_values="0,1,85", resolution=3.0))
    assert store.patch_size == 128 and found.mask_values.text() == "0,1,85"  # patch size taken from the store
    meta = store.meta()
    new = range(n0, len(meta))
    assert set(meta.event[n0:]) == {"hills"} and (meta.resolution[n0:] == 3.0).all()
    assert meta.xmin[n0:].isna().all() and (meta.crs[n0:] == "").all()
    records = {**_by_name(tmp_path / "a", geo), **_by_name(tmp_path / "b", plain)}
    _check_patches(store, records, 128, rows=new)
    _check_patches(store, records, 128, rows=range(n0))  # what was there is untouched
    # random split over whole tiles: every tile's patches share one split
    assert meta.iloc[n0:].groupby("item_id").split.nunique().eq(1).all()


def test_tiles_smaller_than_a_patch_are_padded_with_nodata(tmp_path):
    records = write_plain(tmp_path / "b", n=2, size=(90, 70))
    store, _ = import_tiles(tmp_path / "b", tmp_path / "s.zarr", TileImportSpec(size=128, mask_values="0,1,85",
                                                                                  max_nodata=1.0, split="none"))
    assert len(store) == 2
    _check_patches(store, _by_name(tmp_path / "b", records), 128)


def test_tile_windows_cover_every_pixel():
    for h, w, size, step in [(512, 547, 256, 256), (300, 260, 128, 100), (100, 90, 128, 128), (720, 512, 512, 256)]:
        covered = np.zeros((h, w), int)
        windows = tile_windows(h, w, size, step)
        for r, c in windows:
            covered[r : r + size, c : c + size] += 1
            assert r + min(size, h) <= h and c + min(size, w) <= w
        assert (covered > 0).all()


def test_mask_value_mapping():
    v = parse_mask_values("0+2,1,85")
    np.testing.assert_array_equal(v.apply(np.array([0, 1, 2, 85]), "m"), [0, 1, 0, 255])
    with pytest.raises(LabelError, match=r"m: mask values \['7'\]"):
        v.apply(np.array([0, 7]), "m")
    assert parse_mask_values("auto") is None and parse_mask_values("0,255").text() == "0,255"
    for bad in ("0", "0,1,2,3", "a,b", "0,0"):
        with pytest.raises(LabelError):
            parse_mask_values(bad)
    assert choose_mask_values([0, 255], None, "s") == MaskValues((0,), (255,), ())
    assert choose_mask_values([0, 1, 255], None, "s") == MaskValues((0,), (1,), (255,))
    with pytest.raises(LabelError, match="--mask-values"):
        choose_mask_values([0, 1, 2], None, "s")


def test_pairing_rules_and_lists(tmp_path):
    write_plain(tmp_path / "b", n=2)
    (tmp_path / "c" / "Train" / "img").mkdir(parents=True)
    (tmp_path / "c" / "Train" / "gt").mkdir(parents=True)
    for name in ("x.png", "mask_y.png"):
        (tmp_path / "c" / "Train" / ("img" if name == "x.png" else "gt") / name).write_bytes(b"")
    (tmp_path / "c" / "Train" / "gt" / "x.png").write_bytes(b"")
    with pytest.raises(LabelError, match="1 mask"):
        find_tiles(tmp_path / "c")
    tiles = find_tiles(tmp_path / "b")
    assert [(t.image.name, t.mask.name) for t in tiles] == [("img00.png", "img00_mask.png"),
                                                             ("img01.jpg", "img01_mask.png")]
    listing = tmp_path / "pairs.csv"
    listing.write_text("image,mask,split\nb/hills/img01.jpg,b/hills/img01_mask.png,validation\n")
    [listed] = find_tiles(listing)
    assert listed.split == "val" and listed.mask == (tmp_path / "b/hills/img01_mask.png").resolve()
    (tmp_path / "b" / "hills" / "img00_mask.png").unlink()
    with pytest.raises(LabelError, match="1 image"):
        find_tiles(tmp_path / "b")


def test_split_by_list_and_refusals(tmp_path):
    write_plain(tmp_path / "b")
    splits = tmp_path / "splits.csv"
    splits.write_text("name,split\nimg00,train\nimg01,val\nimg02,test\nimg03,train\n")
    store, _ = import_tiles(tmp_path / "b", tmp_path / "s.zarr",
                            TileImportSpec(size=128, mask_values="0,1,85", split=str(splits)))
    meta = store.meta()
    assert dict(meta.groupby("item_id").split.first()) == {"hills/img00": "train", "hills/img01": "val",
                                                          "hills/img02": "test", "hills/img03": "train"}
    with pytest.raises(ConfigError, match="georeferenced"):
        import_tiles(tmp_path / "b", tmp_path / "t.zarr", TileImportSpec(mask_values="0,1,85", split="blocks"))
    with pytest.raises(ConfigError, match="no train/val/test folders"):
        import_tiles(tmp_path / "b", tmp_path / "t.zarr", TileImportSpec(mask_values="0,1,85", split="folders"))
    with pytest.raises(PatchStoreError, match="patch size|holds"):
        import_tiles(tmp_path / "b", tmp_path / "s.zarr", TileImportSpec(size=64, mask_values="0,1,85"))
    assert not (tmp_path / "t.zarr").exists()


def test_blocks_split_of_georeferenced_tiles_runs_west_to_east(tmp_path):
    write_georef(tmp_path / "a", n_per_split=3)
    store, _ = import_tiles(tmp_path / "a", tmp_path / "s.zarr", TileImportSpec(size=256, split="blocks"))
    meta = store.meta()
    centre = (meta.xmin + meta.xmax) / 2
    order = {"train": 0, "val": 1, "test": 2}
    ranked = meta.assign(c=centre, k=meta.split.map(order)).sort_values("c")
    assert ranked.k.is_monotonic_increasing and set(meta.split) == {"train", "val", "test"}


def test_cli_import_tiles_and_refusals(tmp_path, capsys):
    write_plain(tmp_path / "b", n=2)
    out = str(tmp_path / "s.zarr")
    assert main(["import", "tiles", str(tmp_path / "b"), "--out", out, "--mask-values", "0,1,85",
                 "--patch-size", "128", "--stride", "100", "--split", "none", "--event", "e1"]) == 0
    assert "masks read as 0,1,85" in capsys.readouterr().out
    meta = PatchStore.open(out).meta()
    assert set(meta.event) == {"e1"} and set(meta.split) == {""} and len(meta) == 2 * 3 * 3
    assert main(["import", "gdcld", str(tmp_path / "b"), "--out", str(tmp_path / "g.zarr"),
                 "--mask-values", "0,1"]) == 2
    assert "apply to `geoslide import tiles` only" in capsys.readouterr().err
    assert main(["import", "tiles", str(tmp_path / "b"), "--out", out, "--split-fractions", "0.5,0.5"]) == 2
    assert "summing to 1" in capsys.readouterr().err


REAL = Path("/work/shared/data/real/xrspatial_S2_RGBN_10m_epsg32719.tif")


@pytest.mark.skipif(not REAL.is_file(), reason="the shared real rasters are not on this machine")
def test_a_real_sentinel2_scene_as_a_uint16_four_band_tile(tmp_path):
    """Real Sentinel-2 RGBN (uint16, 300 x 200, EPSG:32719; MANIFEST: MIT / Copernicus) with a mask beside it."""
    folder = tmp_path / "src" / "andes"
    (folder / "images").mkdir(parents=True)
    shutil.copy(REAL, folder / "images" / "s2.tif")
    with rasterio.open(REAL) as src:
        pixels, profile = src.read(), src.profile
    labels = (pixels[3] > np.quantile(pixels[3], 0.9)).astype(np.uint8)  # any mask on the scene's grid
    profile.update(count=1, dtype="uint8")
    (folder / "masks").mkdir()
    with rasterio.open(folder / "masks" / "s2.tif", "w", **profile) as dst:
        dst.write(labels, 1)
    store, found = import_tiles(tmp_path / "src", tmp_path / "s.zarr", TileImportSpec(size=128, split="none"))
    meta = store.meta()
    assert store.bands == ["red", "green", "blue", "nir"] and len(meta) == 2 * 3
    assert (meta.resolution == 10.0).all() and set(meta.crs) == {"EPSG:32719"} and set(meta.event) == {"andes"}
    images, masks = store.images().compute(), store.masks().compute()
    for i, (r, c) in enumerate(zip(meta.row, meta.col, strict=True)):
        np.testing.assert_array_equal(images[i], pixels[:, r : r + 128, c : c + 128].astype(np.float32))
        np.testing.assert_array_equal(masks[i], labels[r : r + 128, c : c + 128])
        assert meta.xmin[i] == 600_000 + 10 * c and meta.ymax[i] == 4_700_020 - 10 * r


def test_a_layout_with_dem_folders_and_negative_images_without_masks(tmp_path):
    """As the Bijie dataset ships: landslide/{image,mask,dem}/, non-landslide/{image,dem}/ (no masks)."""
    root = tmp_path / "bijie"
    for folder in ("landslide/image", "landslide/mask", "landslide/dem", "non-landslide/image", "non-landslide/dem"):
        (root / folder).mkdir(parents=True)
    for k, record in enumerate(write_plain(tmp_path / "scratch", n=3)):
        kind = "landslide" if k < 2 else "non-landslide"
        name = record["image"].with_suffix(".png").name
        shutil.copy(record["image"], root / kind / "image" / name)  # all as PNG-named files GDAL reads
        shutil.copy(record["mask"], root / kind / "dem" / name)  # a DEM stand-in: must not be taken as a tile
        if kind == "landslide":
            shutil.copy(record["mask"], root / kind / "mask" / name)
    with pytest.raises(LabelError, match="--unpaired"):
        import_tiles(root, tmp_path / "s.zarr", TileImportSpec(mask_values="0,1,85"))
    spec = TileImportSpec(size=128, mask_values="0,1,85", unpaired="background", split="none", max_nodata=1.0)
    store, found = import_tiles(root, tmp_path / "s.zarr", spec)
    meta = store.meta()
    assert found.tiles == 3 and len(meta) == 3 * 9
    negative = (meta.event == "non-landslide").to_numpy()
    assert set(meta.event) == {"landslide", "non-landslide"}
    masks = store.masks().compute()
    assert (masks[negative] == 0).all() and (masks[~negative] == 1).any()
    store2, found2 = import_tiles(root, tmp_path / "t.zarr", replace(spec, unpaired="skip"))
    assert found2.tiles == 2 and len(store2) == 2 * 9


def test_random_split_draws_whole_tiles_and_single_rows_without_a_source():
    meta = pd.DataFrame({"item_id": [f"t{i // 3}" for i in range(30)] + [""] * 20, "event": "e", "split": ""})
    split = tile_splits(meta, "random", (0.5, 0.25, 0.25), seed=1)
    tiles = pd.Series(split[:30]).groupby(meta.item_id[:30].to_numpy()).nunique()
    assert (tiles == 1).all()  # every tile's patches together
    assert set(split[30:]) == {"train", "val", "test"}  # rows without a source are drawn one by one
    assert list(split) == list(tile_splits(meta, "random", (0.5, 0.25, 0.25), seed=1))
