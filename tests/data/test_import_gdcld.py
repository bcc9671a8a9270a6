"""GDCLD imports of the Zenodo layout (and generic images/labels trees), files written with rasterio as released."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from geoslide.data.importers import ImportOptions, import_dataset
from geoslide.errors import ConfigError, GeoslideWarning, LabelError, PatchStoreError

RNG = np.random.default_rng(5)
CODES = np.array([0, 0, 0, 0, 0, 1, 1, 85, 255], np.uint8)  # the release's label values


def _raster(path: Path, data: np.ndarray, driver: str = "GTiff", crs: str | None = None, transform=None,
            alpha: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": driver, "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype}
    if crs is not None:
        profile |= {"crs": crs, "transform": transform}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if alpha:
                dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]


def _label(height: int, width: int) -> np.ndarray:
    return CODES[RNG.integers(0, len(CODES), (1, height, width))]


@pytest.fixture
def zenodo(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """train/val tiles of 1024 px, whole test scenes of other sizes; one label 1 px larger, one RGBA image."""
    root = tmp_path / "GDCLD"
    files = {
        "train_data/Luding_UAV_0001.tif": (RNG.integers(0, 256, (3, 1024, 1024), dtype=np.uint8), _label(1025, 1025)),
        "train_data/Jiuzhaigou_PlanetScope_0007.tif": (RNG.integers(0, 256, (4, 1024, 1024), dtype=np.uint8),
                                                       _label(1024, 1024)),
        "val_data/Hokkaido_MapWorld_0003.tif": (RNG.integers(0, 256, (3, 1024, 1024), dtype=np.uint8),
                                               _label(1024, 1024)),
        "test_data/Palu/Palu_1.tif": (RNG.integers(0, 256, (3, 1100, 1500), dtype=np.uint8), _label(1100, 1500)),
        "test_data/Lushan/Lushan_UAV.png": (RNG.integers(0, 256, (3, 700, 900), dtype=np.uint8), _label(700, 900)),
    }
    files["train_data/Jiuzhaigou_PlanetScope_0007.tif"][0][3] = 255
    files["train_data/Jiuzhaigou_PlanetScope_0007.tif"][0][3, :10] = 0  # transparent rows: nodata
    for name, (image, label) in files.items():
        label_name = name.replace("_data", "_label")
        georef = {"crs": "EPSG:32750", "transform": from_origin(800000, 9900000, 1.0, 1.0)} if "Palu" in name else {}
        driver = "PNG" if name.endswith(".png") else "GTiff"
        _raster(root / name, image, driver, alpha=image.shape[0] == 4, **georef)
        _raster(root / label_name, label, driver, **georef)
    return root, files


def _window(array: np.ndarray, row: int, col: int, size: int, fill) -> np.ndarray:
    out = np.full((array.shape[0], size, size), fill, np.float64)
    part = array[:, row:row + size, col:col + size]
    out[:, : part.shape[1], : part.shape[2]] = part
    return out


def _expected_mask(label: np.ndarray, row: int, col: int, size: int, height: int, width: int) -> np.ndarray:
    mapped = np.select([label == 1, label == 0], [1, 0], 255).astype(np.uint8)[:, :height, :width]
    return _window(mapped, row, col, size, 255)[0].astype(np.uint8)


def _check(store, files, root_name: str = "") -> None:
    meta, images, masks = store.meta(), store.images().compute(), store.masks().compute()
    size = store.patch_size
    for i, item in enumerate(meta["item_id"]):
        name = next(n for n in files if n.rsplit(".", 1)[0].endswith(item))
        image, label = files[name]
        row, col = int(meta["row"][i]), int(meta["col"][i])
        expected = _window(image[:3].astype(np.float64), row, col, size, np.nan)
        expected_mask = _expected_mask(label, row, col, size, image.shape[1], image.shape[2])
        if image.shape[0] == 4:
            transparent = _window(image[3:], row, col, size, 0)[0] == 0
            expected[:, transparent] = np.nan
            expected_mask[transparent] = 255
        np.testing.assert_array_equal(images[i], expected.astype(np.float32))
        np.testing.assert_array_equal(masks[i], expected_mask)


def test_zenodo_release_imports_with_split_event_sensor_and_values(zenodo, tmp_path):
    root, files = zenodo
    with pytest.warns(GeoslideWarning) as caught:
        store = import_dataset("gdcld", root, tmp_path / "s.zarr")
    messages = " ".join(str(w.message) for w in caught)
    assert "1 GDCLD label(s) are one pixel larger" in messages and "of code 85" in messages
    assert "name no" not in messages  # sensors from file names, and Palu has one source (Map World) in Table 3
    meta = store.meta()
    assert store.patch_size == 1024 and store.units == ["dn8"] * 3 and len(store) == 3 + 4 + 1
    rows = meta.groupby("item_id").first()
    assert rows.loc["train_data/Luding_UAV_0001", ["split", "event", "sensor"]].tolist() == ["train", "luding", "uav"]
    assert rows.loc["train_data/Jiuzhaigou_PlanetScope_0007", ["event", "sensor"]].tolist() == ["jiuzhaigou",
                                                                                                "planetscope"]
    assert rows.loc["val_data/Hokkaido_MapWorld_0003", ["split", "sensor"]].tolist() == ["val", "mapworld"]
    palu = meta[meta["item_id"] == "test_data/Palu/Palu_1"]
    assert list(zip(palu["row"], palu["col"], strict=True)) == [(0, 0), (0, 1024), (1024, 0), (1024, 1024)]
    assert set(palu["split"]) == {"test"} and set(palu["event"]) == {"palu"} and set(palu["sensor"]) == {"mapworld"}
    assert palu["crs"].iloc[1] == "EPSG:32750" and palu["xmin"].iloc[1] == 801024 and palu["ymax"].iloc[1] == 9900000
    lushan = meta[meta["item_id"] == "test_data/Lushan/Lushan_UAV"]
    assert lushan[["split", "event", "sensor"]].values.tolist() == [["test", "lushan", "uav"]]
    _check(store, files)


def test_a_folder_inside_the_release_keeps_split_event_and_sensor(zenodo, tmp_path):
    root, files = zenodo
    store = import_dataset("gdcld", root / "test_data" / "Palu", tmp_path / "s.zarr")
    assert set(store.meta()["split"]) == {"test"} and set(store.meta()["event"]) == {"palu"}
    assert set(store.meta()["sensor"]) == {"mapworld"} and len(store) == 4
    _check(store, {k: v for k, v in files.items() if "Palu" in k})
    train = import_dataset("gdcld", root / "train_data", tmp_path / "t.zarr", sensor="uav")
    assert list(train.meta()["split"]) == ["train"] * 2 and set(train.meta()["sensor"]) == {"uav"}


def test_label_codes_option(zenodo, tmp_path):
    root, files = zenodo
    store = import_dataset("gdcld", root / "val_data", tmp_path / "s.zarr",
                           options=ImportOptions(label_codes=((85, 1),)))
    label = files["val_data/Hokkaido_MapWorld_0003.tif"][1][0]
    np.testing.assert_array_equal(store.masks().compute()[0], np.select([np.isin(label, (1, 85)), label == 0],
                                                                        [1, 0], 255))
    with pytest.raises(ConfigError, match="a class is 0 .background., 1 .landslide. or 255"):
        import_dataset("gdcld", root, tmp_path / "a.zarr", options=ImportOptions(label_codes=((85, 2),)))
    _raster(root / "val_label" / "Hokkaido_MapWorld_0003.tif", (label[None] > 0).astype(np.uint8) * 255)
    with pytest.warns(GeoslideWarning, match="no GDCLD label pixel is a landslide .*--label-codes 255=1"):
        import_dataset("gdcld", root / "val_data", tmp_path / "b.zarr")
    flipped = import_dataset("gdcld", root / "val_data", tmp_path / "c.zarr",
                             options=ImportOptions(label_codes=((255, 1),)))
    np.testing.assert_array_equal(flipped.masks().compute()[0], (label > 0).astype(np.uint8))


def test_eight_bit_conversion_of_other_sources(zenodo, tmp_path):
    root, _ = zenodo
    planet = RNG.integers(200, 3000, (3, 1024, 1024)).astype(np.uint16)  # PlanetScope reflectance x 10000
    _raster(root / "val_data" / "Haiti_PlanetScope_0001.tif", planet)
    _raster(root / "val_label" / "Haiti_PlanetScope_0001.tif", _label(1024, 1024))
    with pytest.warns(GeoslideWarning, match="mix value ranges .*use --to-8bit"):
        mixed = import_dataset("gdcld", root / "val_data", tmp_path / "m.zarr")
    assert mixed.units == ["mixed"] * 3
    store = import_dataset("gdcld", root / "val_data", tmp_path / "s.zarr", options=ImportOptions(to_8bit=True))
    assert store.units == ["dn8"] * 3
    low, high = np.percentile(planet.reshape(3, -1).astype(np.float64), (2, 98), axis=1)
    expected = np.round(np.clip((planet - low[:, None, None]) / (high - low)[:, None, None], 0, 1) * 255)
    index = list(store.meta()["item_id"]).index("val_data/Haiti_PlanetScope_0001")
    np.testing.assert_array_equal(store.images().compute()[index], expected.astype(np.float32))
    with pytest.raises(PatchStoreError, match="units"):
        import_dataset("gdcld", root / "val_data", tmp_path / "s.zarr")  # 'mixed' into a dn8 store


def test_refused_layouts(zenodo, tmp_path):
    root, _ = zenodo
    (tmp_path / "other" / "pictures").mkdir(parents=True)
    with pytest.raises(ConfigError, match="--patch-size must be a positive"):
        import_dataset("gdcld", root, tmp_path / "a.zarr", options=ImportOptions(patch_size=0))
    with pytest.raises(ConfigError, match="no GDCLD images .*train_data/ \\+ train_label/.*images/ \\+ labels/"):
        import_dataset("gdcld", tmp_path / "other", tmp_path / "a.zarr")
    _raster(root / "val_label" / "Hokkaido_MapWorld_0003.tif", _label(1022, 1024))
    with pytest.raises(PatchStoreError, match="a label is one band of the image's size .or 1 px more."):
        import_dataset("gdcld", root / "val_data", tmp_path / "a.zarr")
    _raster(root / "val_label" / "Hokkaido_MapWorld_0003.tif", np.full((1, 1024, 1024), 7, np.uint8))
    with pytest.raises(LabelError, match=r"label values \[7\] are not among the codes"):
        import_dataset("gdcld", root / "val_data", tmp_path / "a.zarr")
    (root / "val_label" / "Hokkaido_MapWorld_0003.tif").unlink()
    with pytest.raises(LabelError, match="Hokkaido_MapWorld_0003.tif has no label"):
        import_dataset("gdcld", root, tmp_path / "a.zarr")
    assert not (tmp_path / "a.zarr").exists()


# ------------------------------------------------------------- generic images/labels trees

def test_generic_tree_keeps_tiles_whole_and_reads_names(tmp_path):
    root = tmp_path / "gdcld"
    tiles = [("Luding/train/UAV/images/a", 1, "EPSG:32647", from_origin(300000, 3300000, 0.2, 0.2)),
             ("Luding/val/images/b", 255, "EPSG:4326", from_origin(102.0, 29.6, 1e-5, 1e-5)),
             ("test/Palu/images/c", 1, None, None)]
    source = {}
    for name, positive, crs, transform in tiles:
        image = RNG.integers(0, 256, (3, 64, 64), dtype=np.uint8)
        label = (RNG.random((64, 64)) < 0.2).astype(np.uint8)
        _raster(root / f"{name}.tif", image, crs=crs, transform=transform)
        _raster(root / f"{name.replace('images', 'labels')}.tif", (label * positive)[None], crs=crs,
                transform=transform)
        source[name] = (image.astype(np.float32), label)
    with pytest.warns(GeoslideWarning, match="1 GDCLD image.s. name no sensor"):
        store = import_dataset("gdcld", root, tmp_path / "s.zarr")
    meta, images, masks = store.meta(), store.images().compute(), store.masks().compute()
    assert store.patch_size == 64 and len(store) == 3
    for i, item in enumerate(meta["item_id"]):
        np.testing.assert_array_equal(images[i], source[item][0])
        np.testing.assert_array_equal(masks[i], source[item][1])  # 0/1 and 0/255 labels both become 0/1
    rows = meta.set_index("item_id")
    uav, wgs, plain = (rows.loc[k] for k in ("Luding/train/UAV/images/a", "Luding/val/images/b",
                                              "test/Palu/images/c"))
    assert (uav["event"], uav["split"], uav["sensor"], uav["crs"]) == ("luding", "train", "uav", "EPSG:32647")
    assert uav["resolution"] == pytest.approx(0.2)
    assert (uav["xmin"], uav["ymin"], uav["xmax"], uav["ymax"]) == pytest.approx((300000, 3300000 - 12.8,
                                                                                  300012.8, 3300000))
    assert (wgs["event"], wgs["split"], wgs["sensor"]) == ("luding", "val", "mixed")
    assert wgs["resolution"] == pytest.approx(1e-5 * 111_320 * np.cos(np.radians(29.6)), rel=5e-3)
    assert (plain["event"], plain["split"], plain["sensor"], plain["crs"]) == ("palu", "test", "mapworld", "")
    assert set(meta["trigger"]) == {"earthquake"}
    _raster(root / "test/Palu/labels/c.tif", np.full((1, 64, 64), 7, np.uint8))
    with pytest.raises(LabelError, match=r"c.tif: mask values \[7\] are not 0/1 or 0/255"):
        import_dataset("gdcld", root, tmp_path / "a.zarr")
