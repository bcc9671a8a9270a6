"""What `geoslide map` refuses before it writes anything, and what it leaves alone.

Broken assets (missing, truncated, not a TIFF, corrupt), broken weights and devices are found on
the client before the map store exists; files of the same names as the outputs that geoslide did
not write are not replaced; a model changed in place is not resumed into the old store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from geoslide.catalog.bundled import demo_catalog_path
from geoslide.cli import main
from geoslide.mapping.store import open_map
from geoslide.models.card import bundled_model_path, load_checkpoint, save_checkpoint

POST = json.dumps({"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}})
BOTH = json.dumps({"collections": ["demo-quake-planetscope"]})
TIF = "demo-quake/demo-quake-planetscope/demo-quake-planetscope-post.tif"


@pytest.fixture
def catalog(tmp_path):
    """A copy of the demo catalog that a test may damage."""
    root = tmp_path / "catalog"
    shutil.copytree(demo_catalog_path().parent, root)
    return root


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model"
    shutil.copytree(bundled_model_path(), path)
    return path


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt(path):
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 3
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    lambda p: p.unlink(),
    _truncate,
    lambda p: p.write_text("<html>not found</html>"),
    _corrupt,
], ids=["missing", "truncated", "not-a-tiff", "corrupt"])
def test_a_broken_asset_is_one_line_and_nothing_is_written(damage, catalog, tmp_path, capsys):
    damage(catalog / TIF)
    out = tmp_path / "out" / "m.zarr"
    (tmp_path / "out").mkdir()
    assert main(["map", "--stac-query", POST, "--catalog", str(catalog / "catalog.json"), "--out", str(out)]) == 2
    _one_line_error(capsys, "cannot be read", "demo-quake-planetscope-post.tif")
    assert _files(tmp_path / "out") == []


def test_missing_assets_may_be_left_out_with_a_counted_warning(catalog, tmp_path, capsys):
    (catalog / TIF).unlink()
    out = tmp_path / "m.zarr"
    args = ["map", "--stac-query", BOTH, "--catalog", str(catalog / "catalog.json"), "--out", str(out),
            "--allow-mixed-dates", "--no-quicklook"]
    with pytest.warns(UserWarning, match="1 of 2 items left out"):
        assert main([*args, "--allow-missing-assets"]) == 0
    assert (open_map(out)["mask"].values != 255).any()


@pytest.mark.parametrize("damage", [_truncate, _corrupt, lambda p: p.write_bytes(b"")], ids=["truncated", "corrupt",
                                                                                             "empty"])
def test_broken_weights_are_one_line_and_nothing_is_written(damage, model, tmp_path, capsys):
    net, card = load_checkpoint(model)
    save_checkpoint(net, card, model)  # as `geoslide train` writes it now: with a checksum of the tensors
    damage(model / "model.safetensors")
    out = tmp_path / "out" / "m.zarr"
    (tmp_path / "out").mkdir()
    assert main(["map", "--stac-query", POST, "--model", str(model), "--out", str(out)]) == 2
    _one_line_error(capsys, "model.safetensors")
    assert _files(tmp_path / "out") == []


def test_equal_weights_are_written_as_equal_bytes(tmp_path):
    """safetensors writes its metadata in hash-map order; the saved file must not depend on it."""
    from safetensors.torch import load

    net, card = load_checkpoint(bundled_model_path())
    files = {save_checkpoint(net, card, tmp_path / str(i)) and (tmp_path / str(i) / "model.safetensors").read_bytes()
             for i in range(12)}
    assert len(files) == 1
    got = load(files.pop())
    assert all(torch.equal(got[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("device", ["not-a-device", "cuda:7"])
def test_a_bad_device_is_refused_before_the_store_exists(device, tmp_path, capsys):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    out = tmp_path / "m.zarr"
    assert main(["map", "--stac-query", POST, "--out", str(out), "--device", device]) == 2
    _one_line_error(capsys, device)
    assert not out.exists()


@pytest.mark.parametrize("name", ["m.json", "m.png"])
def test_files_of_another_are_not_replaced_nor_written_through(name, tmp_path, capsys):
    mine = tmp_path / name
    mine.write_text("my notes")
    out = tmp_path / "m.zarr"
    assert main(["map", "--stac-query", POST, "--out", str(out)]) == 2
    _one_line_error(capsys, "not written by geoslide")
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    mine.unlink()
    mine.symlink_to(target)
    assert main(["map", "--stac-query", POST, "--out", str(out)]) == 2
    _one_line_error(capsys, "symbolic link")
    assert target.read_text() == "keep me" and mine.is_symlink() and not out.exists()


def test_a_half_created_store_is_restarted_and_a_model_changed_in_place_is_refused(model, tmp_path, capsys):
    import zarr

    out = tmp_path / "m.zarr"
    group = zarr.open_group(str(out), mode="w-", zarr_format=3,
                            attributes={"geoslide_map_store_partial": "geoslide-map-store/1"})
    group.create_array("probability", shape=(10, 10), dtype="uint8")  # killed while creating the store
    args = ["map", "--stac-query", POST, "--model", str(model), "--out", str(out), "--chunk", "256", "--no-quicklook"]
    assert main(args) == 0
    capsys.readouterr()
    first = open_map(out)["probability"].values
    assert np.isfinite(first).any()
    weights = load_file(model / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] * 1.01
    save_file(weights, model / "model.safetensors", metadata={"format": "geoslide-model/1"})
    assert main(args) == 2
    _one_line_error(capsys, "other parameters", "weights-sha256")
    np.testing.assert_array_equal(open_map(out)["probability"].values, first)


def test_an_asset_answering_http_404_is_an_error_not_an_empty_map(tmp_path, capsys):
    import tempfile

    from servers import running_nginx

    out = tmp_path / "m.zarr"
    with tempfile.TemporaryDirectory() as served:  # pytest's tmp_path is private; nginx's worker must read this
        Path(served).chmod(0o755)
        catalog = Path(served) / "catalog"
        shutil.copytree(demo_catalog_path().parent, catalog)
        (catalog / TIF).unlink()
        with running_nginx(catalog) as base:
            _http_404_cases(base, out, capsys)


def _http_404_cases(base, out, capsys):
    """The post scene's COG answers 404: refused in one line, or left out when that is allowed."""
    args = ["map", "--stac-query", POST, "--catalog", f"{base}/catalog.json", "--out", str(out)]
    assert main(args) == 2
    _one_line_error(capsys, "cannot be read", "404")
    assert not out.exists()
    with pytest.warns(UserWarning, match="1 of 2 items left out"):
        assert main(["map", "--stac-query", BOTH, "--catalog", f"{base}/catalog.json", "--out", str(out),
                     "--allow-mixed-dates", "--allow-missing-assets", "--no-quicklook", "--chunk", "256"]) == 0


def test_a_map_of_nothing_but_nodata_says_so(catalog, tmp_path):
    import rasterio

    path = catalog / TIF
    with rasterio.open(path) as src:
        profile, nodata = src.profile, src.nodata
    assert nodata is not None
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((profile["count"], profile["height"], profile["width"]), nodata, dtype=profile["dtype"]))
    out = tmp_path / "m.zarr"
    with pytest.warns(UserWarning, match="all nodata"):
        assert main(["map", "--stac-query", POST, "--catalog", str(catalog / "catalog.json"), "--out", str(out),
                     "--no-quicklook", "--chunk", "256"]) == 0
    assert (open_map(out)["mask"].values == 255).all()


def test_recording_exports_keeps_the_consolidated_metadata(tmp_path):
    """The files a map writes are recorded without rewriting the group's metadata: xarray opens it silently."""
    import json
    import warnings

    import xarray as xr

    from geoslide.mapping.job import MapSpec, run_map
    from geoslide.mapping.store import map_exports

    query = {"collections": ["demo-quake-planetscope"], "query": {"geoslide:phase": {"eq": "post"}}}
    out = tmp_path / "m.zarr"
    run_map(query, MapSpec(out=str(out), quicklook=True))
    assert "consolidated_metadata" in json.loads((out / "zarr.json").read_text())
    assert str((tmp_path / "m.png").resolve()) in map_exports(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(xr.open_zarr(out).data_vars) == {"probability", "mask"}
