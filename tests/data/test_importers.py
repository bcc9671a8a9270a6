"""What every importer shares: appending, bounded batches, options, refusals, the CLI and pipeline entry points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from geoslide.cli import main
from geoslide.data.importers import ImportOptions, import_dataset, parse_label_codes
from geoslide.data.store import PatchStore
from geoslide.errors import ConfigError, GeoslideError, LabelError, PatchStoreError
from geoslide.pipeline.config import parse_pipeline

RNG = np.random.default_rng(7)


def _arrays(root: Path, splits: dict[str, int], prefix: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    for split, n in splits.items():
        np.save(root / f"{prefix}{split}X.npy", RNG.uniform(0, 0.5, (n, 128, 128, 4)).astype(np.float32))
        np.save(root / f"{prefix}{split}Y.npy", (RNG.random((n, 128, 128, 1)) < 0.1).astype(np.uint8))


@pytest.fixture
def hrgldd(tmp_path: Path) -> Path:
    _arrays(tmp_path / "hrgldd", {"train": 5, "val": 2, "test": 3})
    return tmp_path / "hrgldd"


def test_append_keeps_first_patches_byte_equal(hrgldd, tmp_path):
    out = tmp_path / "s.zarr"
    import_dataset("hr-gldd", hrgldd, out)
    group = zarr.open_group(str(out), mode="r")
    before = (group["images"][:10].tobytes(), group["masks"][:10].tobytes())
    _arrays(tmp_path / "more", {"test": 2}, prefix="haiti_")
    store = import_dataset("hr-gldd", tmp_path / "more", out)
    group = zarr.open_group(str(out), mode="r")
    assert len(store) == 12 and (group["images"][:10].tobytes(), group["masks"][:10].tobytes()) == before
    assert list(store.meta()["event"]) == ["hr-gldd"] * 10 + ["haiti"] * 2


def test_append_with_other_bands_or_units_is_refused(hrgldd, tmp_path):
    out = tmp_path / "s.zarr"
    import_dataset("hr-gldd", hrgldd, out, options=ImportOptions(bands=("red", "green", "blue")))
    with pytest.raises(PatchStoreError, match="bands"):
        import_dataset("hr-gldd", hrgldd, out)
    np.save(hrgldd / "trainX.npy", RNG.integers(0, 10000, (5, 128, 128, 4)).astype(np.uint16))
    with pytest.raises(PatchStoreError, match="units .*reflectance.*reflectance\\*10000"):
        import_dataset("hr-gldd", hrgldd, out, options=ImportOptions(bands=("red", "green", "blue")))
    assert len(PatchStore.open(out)) == 10


def test_batches_are_bounded(hrgldd, tmp_path, monkeypatch):
    import geoslide.data.importers._common as common

    calls = []
    original = PatchStore.append
    monkeypatch.setattr(common, "MAX_BATCH", 3)
    monkeypatch.setattr(PatchStore, "append", lambda self, i, m, meta, **kw: calls.append(len(meta)) or original(
        self, i, m, meta, **kw))
    store = import_dataset("hr-gldd", hrgldd, tmp_path / "s.zarr")
    assert calls == [3, 3, 3, 1] and len(store) == 10


def test_a_new_split_applies_to_every_dataset(hrgldd, tmp_path):
    store = import_dataset("hr-gldd", hrgldd, tmp_path / "s.zarr", options=ImportOptions(split="random", seed=1))
    counts = store.meta()["split"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (6, 2, 2)  # per event 60/20/20
    with pytest.raises(ConfigError, match="split 'quarters' unknown"):
        import_dataset("hr-gldd", hrgldd, tmp_path / "t.zarr", options=ImportOptions(split="quarters"))


def test_unknown_kind_and_bad_label_codes(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset kind"):
        import_dataset("l8", tmp_path, tmp_path / "a.zarr")
    assert parse_label_codes(["85=1", "255=255"]) == ((85, 1), (255, 255))
    with pytest.raises(ConfigError, match="not VALUE=CLASS"):
        parse_label_codes(["85:1"])


def test_all_errors_are_geoslide_errors():
    assert all(issubclass(e, GeoslideError) for e in (ConfigError, LabelError, PatchStoreError))


def test_import_into_something_else_is_refused(hrgldd, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a store")
    with pytest.raises(PatchStoreError, match="not a geoslide patch store"):
        import_dataset("hr-gldd", hrgldd, tmp_path / "junk")


def test_cli_import_options(hrgldd, tmp_path, capsys):
    sites = tmp_path / "sites.csv"
    sites.write_text("split,first,last,site\ntrain,0,4,kodagu\nval,0,1,kodagu\ntest,0,2,haiti\n")
    assert main(["import", "hr-gldd", str(hrgldd), "--out", str(tmp_path / "s.zarr"), "--sites", str(sites),
                 "--channels", "blue", "green", "red", "nir", "--split", "events", "--test-events", "haiti"]) == 0
    assert "10 patches of 128 px, bands red, green, blue, nir, units reflectance" in capsys.readouterr().out
    meta = PatchStore.open(tmp_path / "s.zarr").meta()
    assert list(meta["split"][7:]) == ["test"] * 3 and set(meta["split"][:7]) == {"train", "val"}
    assert main(["import", "hr-gldd", str(hrgldd), "--out", str(tmp_path / "t.zarr"), "--to-8bit"]) == 2
    assert "--to-8bit applies to gdcld imports only" in capsys.readouterr().err


def test_pipeline_import_options():
    pipeline = parse_pipeline({"name": "t", "models": [{"name": "unet", "model": "unet"}],
                               "imports": [{"kind": "gdcld", "src": "data/GDCLD", "label_codes": {85: 1},
                                            "to_8bit": True, "split": "release"}]})
    step = pipeline.imports[0]
    assert step.options == ImportOptions(label_codes=((85, 1),), to_8bit=True)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\] in imports"):
        parse_pipeline({"name": "t", "models": [{"name": "unet", "model": "unet"}],
                        "imports": [{"kind": "gdcld", "src": "x", "colour": 1}]})


def test_an_interrupted_import_resumes_without_duplicates(hrgldd, tmp_path, monkeypatch):
    import geoslide.data.importers._common as common

    reference = import_dataset("hr-gldd", hrgldd, tmp_path / "ref.zarr")
    monkeypatch.setattr(common, "MAX_BATCH", 3)
    original, calls = PatchStore.append, []

    def dies_on_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("killed")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PatchStore, "append", dies_on_third)
    with pytest.raises(OSError, match="killed"):
        import_dataset("hr-gldd", hrgldd, tmp_path / "s.zarr")
    assert len(PatchStore.open(tmp_path / "s.zarr")) == 6
    monkeypatch.setattr(PatchStore, "append", original)
    store = import_dataset("hr-gldd", hrgldd, tmp_path / "s.zarr")
    again = import_dataset("hr-gldd", hrgldd, tmp_path / "s.zarr")
    assert len(store) == len(again) == len(reference) == 10
    np.testing.assert_array_equal(again.images().compute(), reference.images().compute())
    np.testing.assert_array_equal(again.masks().compute(), reference.masks().compute())
