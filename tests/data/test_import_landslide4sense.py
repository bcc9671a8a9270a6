"""Landslide4Sense imports from both released layouts, built from the genuine patches in ../shared."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from geoslide.catalog.build import AssetSpec, BandInfo, raster_item
from geoslide.data.importers import ImportOptions, import_dataset
from geoslide.data.importers.landslide4sense import BANDS, RELEASE_MEANS
from geoslide.data.splits import split_rows
from geoslide.errors import BandError, ConfigError, GeoslideWarning, LabelError, PatchStoreError
from geoslide.raster.inputs import load_inputs
from geoslide.training.loop import training_rows
from geoslide.training.spec import TrainSpec

REAL = Path(__file__).parents[3] / "shared" / "data" / "real" / "landslide4sense_real"
REAL = REAL if REAL.is_dir() else Path("/work/shared/data/real/landslide4sense_real")
PATCHES = sorted(REAL.glob("image_*.h5"))
pytestmark = pytest.mark.skipif(not PATCHES, reason="the genuine Landslide4Sense patches (../shared) are absent")
RNG = np.random.default_rng(3)


def _real(i: int) -> np.ndarray:
    with h5py.File(PATCHES[i % len(PATCHES)], "r") as f:
        return f["img"][()]


def _write(path: Path, name: str, data: np.ndarray) -> None:
    """An HDF5 file as the release has them: one contiguous dataset, no attributes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=data)


def _mask(image: np.ndarray) -> np.ndarray:
    return (image[..., 12] > np.median(image[..., 12])).astype(np.uint8)  # steep half "landslide"


def _official(root: Path, n_train: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """TrainData with masks, ValidData and TestData without, as the competition released them."""
    source = {}
    for folder, count, masked in (("TrainData", n_train, True), ("ValidData", 2, False), ("TestData", 1, False)):
        for n in range(1, count + 1):
            image = _real(n + len(source))
            _write(root / folder / "img" / f"image_{n}.h5", "img", image)
            mask = _mask(image) if masked else None
            if masked:
                _write(root / folder / "mask" / f"mask_{n}.h5", "mask", mask)
            source[f"{folder}/img/image_{n}"] = (image, mask)
    return source


def _hugging_face(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    source = {}
    for split, count in (("train", 3), ("validation", 2), ("test", 2)):
        for n in range(1, count + 1):
            image = _real(2 * n + len(source))
            mask = _mask(image)
            _write(root / "images" / split / f"image_{n}.h5", "img", image)
            _write(root / "annotations" / split / f"mask_{n}.h5", "mask", mask)
            source[f"images/{split}/image_{n}"] = (image, mask)
    return source


def _expected(image: np.ndarray, units: str = "reflectance") -> np.ndarray:
    """Independent reference: band/mean ratio times the mean, Sentinel-2 bands / 10 000, as float32."""
    factor = np.array(RELEASE_MEANS)
    if units == "reflectance":
        factor[:12] = factor[:12] / 10_000
    if units == "release":
        factor[:] = 1
    return (np.moveaxis(image, -1, 0) * factor[:, None, None]).astype(np.float32)


def test_genuine_patches_are_what_the_release_holds():
    image = _real(0)
    assert image.dtype == np.float64 and image.shape == (128, 128, 14)
    assert 0.01 < np.median(image[..., :12]) < 10  # ratios to the mean, not digital numbers


def test_official_release_imports_with_unlabelled_splits_for_prediction(tmp_path):
    source = _official(tmp_path / "l4s")
    with pytest.warns(GeoslideWarning, match="no mask folder .* imported for prediction"):
        store = import_dataset("landslide4sense", tmp_path / "l4s", tmp_path / "s.zarr")
    meta, images, masks = store.meta(), store.images().compute(), store.masks().compute()
    assert store.bands == list(BANDS) and len(store) == 7
    assert store.units == ["reflectance"] * 12 + ["degree", "m"]
    assert list(meta["split"]) == ["train"] * 4 + ["val"] * 2 + ["test"]
    for i, item in enumerate(meta["item_id"]):
        image, mask = source[item]
        np.testing.assert_array_equal(images[i], _expected(image))
        if mask is None:
            assert (masks[i] == 255).all() and meta["nodata_fraction"][i] == 1
        else:
            np.testing.assert_array_equal(masks[i], mask)
            assert meta["landslide_fraction"][i] == pytest.approx(mask.mean(), rel=1e-6)
    assert list(split_rows(meta, "val")) == [] and list(split_rows(meta, "train")) == [0, 1, 2, 3]
    assert 0 < np.nanmedian(images[:, 1]) < 1 and 0 <= images[:, 12].max() <= 90  # reflectance; slope degrees
    with pytest.raises(PatchStoreError, match="no validation patches .*--split random, blocks or events"):
        training_rows(store, meta, TrainSpec(batch_size=2))  # ValidData has no labels to validate on


@pytest.mark.parametrize("units", ["dn", "release"])
def test_other_units(tmp_path, units):
    source = _official(tmp_path / "l4s", n_train=1)
    store = import_dataset("landslide4sense", tmp_path / "l4s" / "TrainData", tmp_path / "s.zarr",
                           options=ImportOptions(units=units))
    np.testing.assert_array_equal(store.images().compute()[0], _expected(source["TrainData/img/image_1"][0], units))
    assert store.units[0] == {"dn": "reflectance*10000", "release": "ratio to release mean"}[units]


def test_hugging_face_layout_and_its_split_folders(tmp_path):
    source = _hugging_face(tmp_path / "hf")
    store = import_dataset("landslide4sense", tmp_path / "hf", tmp_path / "s.zarr")
    meta, images, masks = store.meta(), store.images().compute(), store.masks().compute()
    assert list(meta["split"]) == ["train"] * 3 + ["val"] * 2 + ["test"] * 2
    for i, item in enumerate(meta["item_id"]):
        np.testing.assert_array_equal(images[i], _expected(source[item][0]))
        np.testing.assert_array_equal(masks[i], source[item][1])
    one = import_dataset("landslide4sense", tmp_path / "hf" / "images" / "validation", tmp_path / "v.zarr",
                         event="iburi")
    assert list(one.meta()["item_id"]) == ["images/validation/image_1", "images/validation/image_2"]
    assert set(one.meta()["split"]) == {"val"} and set(one.meta()["event"]) == {"iburi"}
    np.testing.assert_array_equal(one.masks().compute(), masks[3:5])


def test_a_split_folder_of_the_official_release_keeps_its_split(tmp_path):
    _official(tmp_path / "l4s", n_train=1)
    with pytest.warns(GeoslideWarning, match="TestData.*1 patches are imported for prediction"):
        store = import_dataset("landslide4sense", tmp_path / "l4s" / "TestData", tmp_path / "s.zarr")
    assert list(store.meta()["split"]) == ["test"] and (store.masks().compute() == 255).all()


def test_block_split_makes_a_validation_split(tmp_path):
    _official(tmp_path / "l4s", n_train=20)
    with pytest.warns(GeoslideWarning, match="20 patches have no coordinates"):
        store = import_dataset("landslide4sense", tmp_path / "l4s", tmp_path / "s.zarr",
                               options=ImportOptions(split="blocks"))
    meta = store.meta()
    # 20 labelled training patches: the first quarter trains, the next 5 % validates, the rest tests;
    # the unlabelled ValidData/TestData patches keep their release split and train or score nothing.
    assert list(meta["split"]) == ["train"] * 5 + ["val"] + ["test"] * 14 + ["val"] * 2 + ["test"]
    assert list(split_rows(meta, "val")) == [5] and list(split_rows(meta, "train")) == [0, 1, 2, 3, 4]


def test_bands_without_b10_for_l2a_items(tmp_path):
    source = _official(tmp_path / "l4s", n_train=1)
    keep = tuple(b for b in BANDS if b != "B10")
    store = import_dataset("landslide4sense", tmp_path / "l4s" / "TrainData", tmp_path / "s.zarr",
                           options=ImportOptions(bands=keep))
    assert store.bands == list(keep) and len(store.units) == 13
    np.testing.assert_array_equal(store.images().compute()[0],
                                  np.delete(_expected(source["TrainData/img/image_1"][0]), 9, axis=0))
    with pytest.raises(PatchStoreError, match=r"band\(s\) \['B8A'\] are not in this dataset"):
        import_dataset("landslide4sense", tmp_path / "l4s" / "TrainData", tmp_path / "t.zarr",
                       options=ImportOptions(bands=("B8A",)))


def _item(tmp_path: Path, image: np.ndarray, with_b10: bool):
    """A Sentinel-2 item as catalogues publish it: uint16 DN with raster:scale 1e-4, and a DEM asset."""
    dn = np.round(np.moveaxis(image[..., :12], -1, 0) * np.array(RELEASE_MEANS[:12])[:, None, None])
    names = [b for b in BANDS[:12] if with_b10 or b != "B10"]
    keep = [BANDS.index(b) for b in names]
    transform, profile = from_origin(500000, 4000000, 10, 10), {"driver": "GTiff", "width": 128, "height": 128,
                                                                  "crs": "EPSG:32633"}
    with rasterio.open(tmp_path / "s2.tif", "w", count=len(keep), dtype="uint16", transform=transform,
                       **profile) as dst:
        dst.write(dn[keep].astype(np.uint16))
    with rasterio.open(tmp_path / "dem.tif", "w", count=1, dtype="float32", transform=transform, **profile) as dst:
        dst.write((image[..., 13] * RELEASE_MEANS[13]).astype(np.float32)[None])
    bands = tuple(BandInfo(b, scale=1e-4) for b in names)
    return raster_item("s2", datetime(2020, 1, 1, tzinfo=UTC),
                       [AssetSpec("bands", str(tmp_path / "s2.tif"), bands),
                        AssetSpec("dem", str(tmp_path / "dem.tif"), (BandInfo("elevation", unit="m"),))])


def test_imported_values_are_those_a_sentinel2_item_gives_at_map_time(tmp_path):
    """A model trained on the import is fed the same units when `geoslide map` reads a Sentinel-2 item."""
    _official(tmp_path / "l4s", n_train=1)
    store = import_dataset("landslide4sense", tmp_path / "l4s" / "TrainData", tmp_path / "s.zarr")
    imported = store.images().compute()[0]
    names = [b for b in store.bands if b != "slope"]
    cube = load_inputs([_item(tmp_path, _real(1), with_b10=True)], names).values
    np.testing.assert_allclose(cube[:12], imported[:12], atol=0.5e-4 + 1e-6)  # DN rounded to integers in the item
    np.testing.assert_allclose(cube[12], imported[13], rtol=1e-6)
    l2a = [_item(tmp_path, _real(1), with_b10=False)]
    with pytest.raises(BandError, match="L2A items have no B10.*--bands leaving B10 out"):
        load_inputs(l2a, names)


def test_refused_layouts_and_files(tmp_path):
    source_root = tmp_path / "l4s"
    _official(source_root, n_train=2)
    with pytest.raises(ConfigError, match="does not exist"):
        import_dataset("landslide4sense", tmp_path / "nowhere", tmp_path / "a.zarr")
    (tmp_path / "other" / "pictures").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a Landslide4Sense layout; expected TrainData/img.*Hugging Face"):
        import_dataset("landslide4sense", tmp_path / "other", tmp_path / "a.zarr")
    (source_root / "TrainData" / "img" / "notes.txt").write_text("x")
    (source_root / "TrainData" / "mask" / "mask_2.h5").unlink()
    with pytest.warns(GeoslideWarning, match="1 file.* not named image_N.h5"), \
            pytest.raises(LabelError, match="image_2.h5 has no mask"):
        import_dataset("landslide4sense", source_root, tmp_path / "a.zarr")
    _write(source_root / "TrainData" / "mask" / "mask_2.h5", "mask", np.full((128, 128), 2, np.uint8))
    with pytest.raises(LabelError, match=r"mask_2.h5: mask values \[2\]"):
        import_dataset("landslide4sense", source_root, tmp_path / "a.zarr")
    assert not (tmp_path / "a.zarr").exists()  # masks are checked before anything is written
    _write(source_root / "TrainData" / "img" / "image_1.h5", "img", np.zeros((128, 128, 13)))
    with pytest.raises(PatchStoreError, match=r"shape \(128, 128, 13\), expected \(128, 128, 14\)"):
        import_dataset("landslide4sense", source_root, tmp_path / "a.zarr")
    with pytest.raises(ConfigError, match="--channels applies to hr-gldd imports only"):
        import_dataset("landslide4sense", source_root, tmp_path / "a.zarr",
                       options=ImportOptions(channels=("red", "green", "blue", "nir")))


def test_a_model_refuses_patches_in_other_units(tmp_path):
    """Trained on reflectance, a model scores reflectance patches and refuses the release's ratios."""
    from geoslide.evaluation.score import evaluate_patches
    from geoslide.training import train

    _official(tmp_path / "l4s", n_train=4)
    options = ImportOptions(split="random", seed=0)
    store = import_dataset("landslide4sense", tmp_path / "l4s" / "TrainData", tmp_path / "s.zarr", options=options)
    assert sorted(store.meta()["split"]) == ["test", "train", "train", "val"]
    spec = TrainSpec(model="unet", model_params={"base_filters": 4, "depth": 2}, epochs=1, batch_size=2,
                     augment=False)
    train(tmp_path / "s.zarr", spec, tmp_path / "model")
    assert len(evaluate_patches(tmp_path / "model", store, split="test", by=())) == 1
    ratios = import_dataset("landslide4sense", tmp_path / "l4s" / "TrainData", tmp_path / "r.zarr",
                            options=ImportOptions(split="random", units="release"))
    with pytest.raises(LabelError, match="trained on values in units .*reflectance.* store holds .*ratio"):
        evaluate_patches(tmp_path / "model", ratios, split="test", by=())
