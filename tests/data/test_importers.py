"""Importers of Landslide4Sense (.h5), HR-GLDD (.npy) and GDCLD (TIFF) into the patch store."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
import zarr
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

from geoslide.data.importers import import_dataset, landslide4sense
from geoslide.data.store import PatchStore
from geoslide.errors import ConfigError, GeoslideError, LabelError, PatchStoreError

RNG = np.random.default_rng(7)


# ---------------------------------------------------------------- Landslide4Sense

def _l4s_patch(folder: Path, number: int) -> tuple[np.ndarray, np.ndarray]:
    image = RNG.normal(1.0, 0.5, (128, 128, 14)).astype(np.float32)
    image[0, 0, 3] = np.nan  # the release has a few NaN pixels
    mask = (RNG.random((128, 128)) < 0.1).astype(np.uint8)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    (folder / "mask").mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "img" / f"image_{number}.h5", "w") as f:
        f["img"] = image
    with h5py.File(folder / "mask" / f"mask_{number}.h5", "w") as f:
        f["mask"] = mask
    return image, mask


@pytest.fixture
def l4s(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    root = tmp_path / "l4s"
    source = {}
    for folder, numbers in (("TrainData", (1, 2, 10)), ("ValidData", (1, 2))):
        for number in numbers:
            source[f"{folder}/img/image_{number}"] = _l4s_patch(root / folder, number)
    return root, source


def test_landslide4sense_import_equals_source(l4s, tmp_path):
    root, source = l4s
    store = import_dataset("landslide4sense", root, tmp_path / "s.zarr")
    assert store.bands == [*(f"B{i:02d}" for i in range(1, 13)), "slope", "elevation"]
    assert store.patch_size == 128 and len(store) == 5
    meta, images, masks = store.meta(), store.images().compute(), store.masks().compute()
    assert list(meta["item_id"]) == ["TrainData/img/image_1", "TrainData/img/image_2", "TrainData/img/image_10",
                                     "ValidData/img/image_1", "ValidData/img/image_2"]
    for i, item in enumerate(meta["item_id"]):
        image, mask = source[item]
        np.testing.assert_array_equal(images[i], np.moveaxis(image, -1, 0))
        np.testing.assert_array_equal(masks[i], mask)
        assert meta["landslide_fraction"][i] == pytest.approx(mask.mean(), rel=1e-6)
    assert list(meta["split"]) == ["train"] * 3 + ["val"] * 2
    assert set(meta["event"]) == {"landslide4sense"} and set(meta["sensor"]) == {"sentinel2"}
    assert (meta["resolution"] == 10.0).all() and set(meta["crs"]) == {""}
    assert meta[["xmin", "ymin", "xmax", "ymax"]].isna().all().all()
    assert (meta["nodata_fraction"] == 0).all()


def test_split_folder_itself_and_event_argument(l4s, tmp_path):
    root, _ = l4s
    store = import_dataset("landslide4sense", root / "ValidData", tmp_path / "s.zarr", event="iburi")
    assert len(store) == 2 and set(store.meta()["event"]) == {"iburi"} and set(store.meta()["split"]) == {"val"}


def test_append_keeps_first_patches_byte_equal(l4s, tmp_path):
    root, _ = l4s
    out = tmp_path / "s.zarr"
    import_dataset("landslide4sense", root / "TrainData", out)
    group = zarr.open_group(str(out), mode="r")
    before = (group["images"][:3].tobytes(), group["masks"][:3].tobytes())
    store = import_dataset("landslide4sense", root / "ValidData", out, event="second")
    group = zarr.open_group(str(out), mode="r")
    assert len(store) == 5
    assert (group["images"][:3].tobytes(), group["masks"][:3].tobytes()) == before
    assert list(store.meta()["event"]) == ["landslide4sense"] * 3 + ["second"] * 2


def test_append_with_other_bands_is_refused(l4s, hrgldd, tmp_path):
    out = tmp_path / "s.zarr"
    import_dataset("landslide4sense", l4s[0], out)
    with pytest.raises(PatchStoreError, match="bands"):
        import_dataset("hr-gldd", hrgldd[0], out)
    assert len(PatchStore.open(out)) == 5


def test_landslide4sense_errors(l4s, tmp_path):
    root, _ = l4s
    with pytest.raises(ConfigError, match="does not exist"):
        import_dataset("landslide4sense", tmp_path / "nowhere", tmp_path / "a.zarr")
    (tmp_path / "empty" / "TrainData" / "img").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no image_"):
        import_dataset("landslide4sense", tmp_path / "empty", tmp_path / "a.zarr")
    (root / "TrainData" / "mask" / "mask_2.h5").unlink()
    with pytest.raises(LabelError, match="image_2.h5 has no mask"):
        import_dataset("landslide4sense", root, tmp_path / "a.zarr")
    assert not (tmp_path / "a.zarr").exists()


def test_landslide4sense_bad_shape_and_mask_values(l4s, tmp_path):
    root, _ = l4s
    with h5py.File(root / "ValidData" / "mask" / "mask_2.h5", "r+") as f:
        f["mask"][5, 5] = 2
    with pytest.raises(LabelError, match=r"mask_2.h5: mask values \[0, 1, 2\]"):
        import_dataset("landslide4sense", root, tmp_path / "a.zarr")
    assert not (tmp_path / "a.zarr").exists()  # masks are checked before anything is written
    with h5py.File(root / "TrainData" / "img" / "image_1.h5", "w") as f:
        f["img"] = np.zeros((128, 128, 13), np.float32)
    with pytest.raises(PatchStoreError, match=r"shape \(128, 128, 13\), expected \(128, 128, 14\)"):
        import_dataset("landslide4sense", root, tmp_path / "a.zarr")


def test_unknown_kind(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset kind"):
        import_dataset("l8", tmp_path, tmp_path / "a.zarr")  # type: ignore[arg-type]


def test_band_names_are_documented():
    assert len(landslide4sense.BANDS) == 14 and "B8A" not in landslide4sense.BANDS


# ---------------------------------------------------------------- HR-GLDD

@pytest.fixture
def hrgldd(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    root = tmp_path / "hrgldd" / "arrays"
    root.mkdir(parents=True)
    source = {}
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        x = RNG.integers(0, 10000, (n, 128, 128, 4)).astype(np.uint16)  # NHWC, as the authors' notebook reads it
        y = (RNG.random((n, 128, 128, 1)) < 0.1).astype(np.float32)
        source[split] = (np.moveaxis(x, -1, 1).astype(np.float32), y[..., 0].astype(np.uint8))
        if split == "test":  # the other naming and channels-first layout
            np.save(root / "X_test.npy", np.moveaxis(x, -1, 1))
            np.save(root / "Y_test.npy", y[..., 0])
        else:
            np.save(root / f"{split}X.npy", x)
            np.save(root / f"{split}Y.npy", y)
    return root.parent, source


def test_hrgldd_import_equals_source(hrgldd, tmp_path):
    root, source = hrgldd
    store = import_dataset("hr-gldd", root, tmp_path / "s.zarr", progress=True)
    assert store.bands == ["red", "green", "blue", "nir"] and store.patch_size == 128
    meta = store.meta()
    assert list(meta["split"]) == ["train"] * 5 + ["val"] * 2 + ["test"] * 3
    np.testing.assert_array_equal(store.images().compute(), np.concatenate([source[s][0] for s in
                                                                            ("train", "val", "test")]))
    np.testing.assert_array_equal(store.masks().compute(), np.concatenate([source[s][1] for s in
                                                                           ("train", "val", "test")]))
    assert set(meta["event"]) == {"hr-gldd"} and set(meta["sensor"]) == {"planetscope"}
    assert (meta["resolution"] == 3.0).all() and meta["item_id"][5] == "valX.npy:0"


def test_hrgldd_batches_are_bounded(hrgldd, tmp_path, monkeypatch):
    import geoslide.data.importers._common as common

    calls = []
    original = PatchStore.append
    monkeypatch.setattr(common, "MAX_BATCH", 3)
    monkeypatch.setattr(PatchStore, "append", lambda self, i, m, meta, **kw: calls.append(len(meta)) or original(
        self, i, m, meta, **kw))
    store = import_dataset("hr-gldd", hrgldd[0], tmp_path / "s.zarr")
    assert calls == [3, 3, 3, 1] and len(store) == 10


def test_hrgldd_errors(hrgldd, tmp_path):
    root, _ = hrgldd
    arrays = root / "arrays"
    np.save(arrays / "valY.npy", np.full((2, 128, 128), 3, np.uint8))
    with pytest.raises(LabelError, match="valY.npy"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr")
    np.save(arrays / "valY.npy", np.zeros((3, 128, 128), np.uint8))
    with pytest.raises(PatchStoreError, match="do not match the 2 patches"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr")
    np.save(arrays / "valX.npy", np.zeros((2, 128, 128, 3), np.uint16))
    with pytest.raises(PatchStoreError, match="4 bands"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr")
    (arrays / "valY.npy").unlink()
    with pytest.raises(LabelError, match="no mask array"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr")
    with pytest.raises(ConfigError, match="no HR-GLDD arrays"):
        import_dataset("hr-gldd", _empty(tmp_path), tmp_path / "a.zarr")


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "nothing").mkdir(exist_ok=True)
    return tmp_path / "nothing"


# ---------------------------------------------------------------- GDCLD

def _tiff(path: Path, data: np.ndarray, crs: str | None = None, transform=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype}
    if crs is not None:
        profile |= {"crs": crs, "transform": transform}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)


@pytest.fixture
def gdcld(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    root = tmp_path / "gdcld"
    source = {}
    tiles = [("Luding/train/UAV/images/a", 1, "EPSG:32647", from_origin(300000, 3300000, 0.2, 0.2)),
             ("Luding/val/images/b", 255, "EPSG:4326", from_origin(102.0, 29.6, 1e-5, 1e-5)),
             ("test/Palu/images/c", 1, None, None)]
    for name, positive, crs, transform in tiles:
        image = RNG.integers(0, 256, (3, 64, 64), dtype=np.uint8)
        label = (RNG.random((64, 64)) < 0.2).astype(np.uint8)
        _tiff(root / f"{name}.tif", image, crs, transform)
        _tiff(root / f"{name.replace('images', 'labels')}.tif", (label * positive)[None], crs, transform)
        source[name] = (image.astype(np.float32), label)
    return root, source


def test_gdcld_import_equals_source(gdcld, tmp_path):
    root, source = gdcld
    store = import_dataset("gdcld", root, tmp_path / "s.zarr")
    assert store.bands == ["red", "green", "blue"] and store.patch_size == 64 and len(store) == 3
    meta, images, masks = store.meta(), store.images().compute(), store.masks().compute()
    for i, item in enumerate(meta["item_id"]):
        np.testing.assert_array_equal(images[i], source[item][0])
        np.testing.assert_array_equal(masks[i], source[item][1])  # 0/1 and 0/255 labels both become 0/1
    rows = meta.set_index("item_id")
    uav, wgs, plain = rows.loc["Luding/train/UAV/images/a"], rows.loc["Luding/val/images/b"], rows.loc[
        "test/Palu/images/c"]
    assert (uav["event"], uav["split"], uav["sensor"], uav["crs"]) == ("Luding", "train", "uav", "EPSG:32647")
    assert uav["resolution"] == pytest.approx(0.2)
    assert (uav["xmin"], uav["ymin"], uav["xmax"], uav["ymax"]) == pytest.approx((300000, 3300000 - 12.8,
                                                                                  300012.8, 3300000))
    assert (wgs["event"], wgs["split"], wgs["sensor"], wgs["crs"]) == ("Luding", "val", "mixed", "EPSG:4326")
    assert wgs["resolution"] == pytest.approx(1e-5 * 111_320 * np.cos(np.radians(29.6)), rel=5e-3)
    assert (plain["event"], plain["split"], plain["crs"]) == ("Palu", "test", "")
    assert np.isnan(plain["resolution"]) and np.isnan(plain["xmin"])
    assert set(meta["trigger"]) == {"earthquake"}


def test_gdcld_arguments_win(gdcld, tmp_path):
    store = import_dataset("gdcld", gdcld[0], tmp_path / "s.zarr", event="luding-2022", sensor="planetscope")
    assert set(store.meta()["event"]) == {"luding-2022"} and set(store.meta()["sensor"]) == {"planetscope"}


def test_gdcld_errors(gdcld, tmp_path):
    root, _ = gdcld
    _tiff(root / "test/Palu/labels/c.tif", np.full((1, 64, 64), 7, np.uint8))
    with pytest.raises(LabelError, match="c.tif: mask values \\[7\\] are not 0/1 or 0/255"):
        import_dataset("gdcld", root, tmp_path / "a.zarr")
    mixed = np.zeros((1, 64, 64), np.uint8)
    mixed[0, 0, :2] = (1, 255)
    _tiff(root / "test/Palu/labels/c.tif", mixed)
    with pytest.raises(LabelError, match=r"mask values \[0, 1, 255\] are not 0/1 or 0/255"):
        import_dataset("gdcld", root, tmp_path / "a.zarr")
    (root / "test/Palu/labels/c.tif").unlink()
    with pytest.raises(LabelError, match="c.tif has no label"):
        import_dataset("gdcld", root, tmp_path / "a.zarr")
    _tiff(root / "test/Palu/labels/c.tif", np.zeros((1, 64, 64), np.uint8))
    _tiff(root / "test/Palu/images/c.tif", np.zeros((4, 64, 64), np.uint8))
    with pytest.raises(PatchStoreError, match="4 band"):
        import_dataset("gdcld", root, tmp_path / "a.zarr")
    with pytest.raises(ConfigError, match="no GDCLD tiles"):
        import_dataset("gdcld", _empty(tmp_path), tmp_path / "a.zarr")
    with pytest.raises(ConfigError, match="does not exist"):
        import_dataset("gdcld", tmp_path / "missing", tmp_path / "a.zarr")


def test_all_errors_are_geoslide_errors():
    assert all(issubclass(e, GeoslideError) for e in (ConfigError, LabelError, PatchStoreError))


def test_import_into_something_else_is_refused(hrgldd, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a store")
    with pytest.raises(PatchStoreError, match="not a geoslide patch store"):
        import_dataset("hr-gldd", hrgldd[0], tmp_path / "junk")


def test_an_interrupted_import_resumes_without_duplicates(hrgldd, tmp_path, monkeypatch):
    import geoslide.data.importers._common as common

    reference = import_dataset("hr-gldd", hrgldd[0], tmp_path / "ref.zarr")
    monkeypatch.setattr(common, "MAX_BATCH", 3)
    original, calls = PatchStore.append, []

    def dies_on_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("killed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PatchStore, "append", dies_on_third)
    with pytest.raises(OSError, match="killed"):
        import_dataset("hr-gldd", hrgldd[0], tmp_path / "s.zarr")
    assert len(PatchStore.open(tmp_path / "s.zarr")) == 6
    monkeypatch.setattr(PatchStore, "append", original)
    store = import_dataset("hr-gldd", hrgldd[0], tmp_path / "s.zarr")
    again = import_dataset("hr-gldd", hrgldd[0], tmp_path / "s.zarr")
    assert len(store) == len(again) == len(reference) == 10
    np.testing.assert_array_equal(again.images().compute(), reference.images().compute())
    np.testing.assert_array_equal(again.masks().compute(), reference.masks().compute())
