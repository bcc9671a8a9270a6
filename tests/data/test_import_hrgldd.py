"""HR-GLDD imports of the released trainX/valX/testX.npy arrays, with site tables and channel orders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geoslide.data.importers import ImportOptions, import_dataset
from geoslide.errors import ConfigError, GeoslideWarning, LabelError, PatchStoreError
from geoslide.pipeline.config import parse_pipeline
from geoslide.pipeline.steps import build_data

RNG = np.random.default_rng(11)
COUNTS = {"train": 6, "val": 3, "test": 4}


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The arrays as released: X (n, 128, 128, 4) scaled reflectance, Y (n, 128, 128, 1) 0/1."""
    root = tmp_path / "HR-GLDD"
    root.mkdir()
    source = {}
    for split, n in COUNTS.items():
        x = RNG.uniform(0.0, 0.6, (n, 128, 128, 4)).astype(np.float32)
        y = (RNG.random((n, 128, 128, 1)) < 0.1).astype(np.float32)
        np.save(root / f"{split}X.npy", x)
        np.save(root / f"{split}Y.npy", y)
        source[split] = (x, y)
    return root, source


def _stacked(source, key: int) -> np.ndarray:
    return np.concatenate([source[s][key] for s in COUNTS])


def test_release_imports_intact(release, tmp_path):
    root, source = release
    store = import_dataset("hr-gldd", root, tmp_path / "s.zarr")
    meta = store.meta()
    assert store.bands == ["red", "green", "blue", "nir"] and store.units == ["reflectance"] * 4
    assert list(meta["split"]) == ["train"] * 6 + ["val"] * 3 + ["test"] * 4
    np.testing.assert_array_equal(store.images().compute(), np.moveaxis(_stacked(source, 0), -1, 1))
    np.testing.assert_array_equal(store.masks().compute(), _stacked(source, 1)[..., 0].astype(np.uint8))
    assert set(meta["event"]) == {"hr-gldd"} and meta["item_id"][6] == "valX.npy:0"


def test_channel_order_option(release, tmp_path):
    root, source = release
    store = import_dataset("hr-gldd", root, tmp_path / "s.zarr",
                           options=ImportOptions(channels=("blue", "green", "red", "nir")))
    x = np.moveaxis(_stacked(source, 0), -1, 1)
    np.testing.assert_array_equal(store.images().compute(), x[:, [2, 1, 0, 3]])
    with pytest.warns(GeoslideWarning, match="green or nir elsewhere"):
        import_dataset("hr-gldd", root, tmp_path / "t.zarr", options=ImportOptions(channels=("green", "red", "blue",
                                                                                            "nir")))
    with pytest.raises(ConfigError, match="must name each of red, green, blue, nir once"):
        import_dataset("hr-gldd", root, tmp_path / "u.zarr", options=ImportOptions(channels=("red",) * 4))


def _sites(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_site_table_names_every_patch(release, tmp_path):
    root, _ = release
    table = _sites(tmp_path / "sites.csv", "split,first,last,site\ntrain,0,3,kodagu\ntrain,4,5,iburi\n"
                   "val,0,2,kodagu\ntest,0,1,haiti\ntest,2,3,drc\n")
    store = import_dataset("hr-gldd", root, tmp_path / "s.zarr", options=ImportOptions(sites=table))
    assert list(store.meta()["event"]) == (["kodagu"] * 4 + ["iburi"] * 2 + ["kodagu"] * 3 + ["haiti"] * 2
                                           + ["drc"] * 2)
    partial = _sites(tmp_path / "part.csv", "file,first,last,site\ntestX.npy,0,1,haiti\n")
    with pytest.warns(GeoslideWarning, match="covers 2 of 13 patches; the other 11 keep the event"):
        import_dataset("hr-gldd", root, tmp_path / "p.zarr", options=ImportOptions(sites=partial))
    for text, match in (("split,first,last,site\ntrain,0,6,a\n", "outside the 6 patches of trainX.npy"),
                        ("split,first,last,site\ntrain,0,3,a\ntrain,3,4,b\n", "already given a site"),
                        ("first,last,site\n0,1,a\n", "needs first, last, site and split"),
                        ("split,first,last,site\nholdout,0,1,a\n", "matches 0 of the arrays")):
        with pytest.raises(ConfigError, match=match):
            import_dataset("hr-gldd", root, tmp_path / "x.zarr", options=ImportOptions(sites=_sites(
                tmp_path / "bad.csv", text)))
    assert not (tmp_path / "x.zarr").exists()


def test_arrays_without_a_split_word_are_reported(release, tmp_path):
    root, _ = release
    np.save(root / "kodagu.npy", np.zeros((2, 128, 128, 4), np.float32))
    with pytest.warns(GeoslideWarning, match="kodagu.npy has no split word"):
        store = import_dataset("hr-gldd", root, tmp_path / "s.zarr")
    assert len(store) == 13


def _pipeline(root: Path, unseen: list[str], sites: str | None = None):
    step = {"kind": "hr-gldd", "src": str(root)} | ({"sites": sites} if sites else {})
    return parse_pipeline({"name": "t", "imports": [step], "models": [{"name": "unet", "model": "unet"}],
                           "evaluate": {"unseen_events": unseen}})


def test_unseen_events_that_match_nothing_are_refused(release, tmp_path):
    root, _ = release
    with pytest.raises(ConfigError, match=r"unseen_events \['haiti'\] match no patch.*\['hr-gldd'\]"):
        build_data(_pipeline(root, ["haiti"]), tmp_path / "work", progress=False)
    table = _sites(tmp_path / "sites.csv", "split,first,last,site\ntest,0,3,haiti\n")
    with pytest.warns(GeoslideWarning, match="covers 4 of 13"):
        store = build_data(_pipeline(root, ["haiti"], table), tmp_path / "work2", progress=False)
    assert (store.meta()["event"] == "haiti").sum() == 4


def test_refused_arrays(release, tmp_path):
    root, _ = release
    np.save(root / "valY.npy", np.full((3, 128, 128), 3, np.uint8))
    with pytest.raises(LabelError, match="valY.npy"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr")
    np.save(root / "valY.npy", np.zeros((2, 128, 128), np.uint8))
    with pytest.raises(PatchStoreError, match="do not match the 3 patches"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr")
    np.save(root / "valX.npy", np.zeros((3, 128, 128, 3), np.float32))
    with pytest.raises(PatchStoreError, match="4 bands"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr")
    (root / "valY.npy").unlink()
    with pytest.raises(LabelError, match="no mask array"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ConfigError, match="no HR-GLDD arrays"):
        import_dataset("hr-gldd", tmp_path / "nothing", tmp_path / "a.zarr")
    with pytest.raises(ConfigError, match="--label-codes applies to gdcld imports only"):
        import_dataset("hr-gldd", root, tmp_path / "a.zarr", options=ImportOptions(label_codes=((85, 1),)))
