"""geoslide map checks that the imagery is what the model was trained on, and lets users choose bands/resolution.

Real Sentinel-2 pixels (tests/fixtures, uint16 reflectance x 10000) are offered to the bundled demo model
(trained on reflectance 0-1) as users really ship them: with raster:scale declared, without it, as 8-bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from geoslide.catalog.build import AssetSpec, BandInfo, raster_item
from geoslide.mapping.store import open_map

S2 = Path(__file__).resolve().parents[1] / "fixtures" / "xrspatial_S2_RGBN_10m_epsg32719.tif"
FILE_ORDER = ("red", "green", "blue", "nir")


def _catalog(folder: Path, data: np.ndarray | None, names, scale: float | None, common: bool = True,
             source: Path = S2) -> Path:
    """A one-item static catalog over ``source`` (the fixture), or ``data`` written on its grid."""
    (folder / "stac").mkdir(parents=True)
    tif = folder / "stac" / "scene.tif"  # inside the catalog's folder, where the trust policy allows assets
    with rasterio.open(source) as src:
        profile = src.profile
        values = src.read() if data is None else data
    with rasterio.open(tif, "w", **(profile | {"dtype": values.dtype, "nodata": 0})) as dst:
        dst.write(values)
    bands = tuple(BandInfo(n, n if common else None, scale=scale) for n in names)
    item = raster_item("scene", datetime(2023, 3, 2, tzinfo=UTC), [AssetSpec("image", str(tif), bands)],
                       collection="scenes")
    col = pystac.Collection("scenes", "test scene", pystac.Extent(pystac.SpatialExtent([item.bbox]),
                            pystac.TemporalExtent([[item.datetime, None]])), license="other")
    col.add_item(item)
    cat = pystac.Catalog("cat", "one scene")
    cat.add_child(col)
    cat.normalize_and_save(str(folder / "stac"), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return folder / "stac" / "catalog.json"


def _map(catalog: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "geoslide.cli", "map", "--catalog", str(catalog), "--stac-query",
           '{"collections": ["scenes"]}', "--out", str(out), "--no-quicklook", "--chunk", "256", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "default"})


def _one_line_error(proc: subprocess.CompletedProcess, words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("geoslide map: error")]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_raw_counts_and_8bit_values_are_refused_before_anything_is_written(tmp_path):
    raw = _catalog(tmp_path / "raw", None, FILE_ORDER, scale=None)
    proc = _map(raw, tmp_path / "raw.zarr", "--model", "demo")
    _one_line_error(proc, "raw counts")
    assert not (tmp_path / "raw.zarr").exists()
    with rasterio.open(S2) as src:
        refl = src.read().astype(float) * 1e-4
    dn8 = np.clip(refl / np.percentile(refl, 99.5) * 254 + 1, 1, 255).astype(np.uint8)
    eight = _catalog(tmp_path / "eight", dn8, FILE_ORDER, scale=None)
    proc = _map(eight, tmp_path / "eight.zarr", "--model", "demo")
    _one_line_error(proc, "8-bit values (0-255)")
    assert not (tmp_path / "eight.zarr").exists()


@pytest.mark.heavy
def test_declared_reflectance_maps_and_unnamed_bands_can_be_fed_by_position(tmp_path):
    named = _catalog(tmp_path / "named", None, FILE_ORDER, scale=1e-4)
    proc = _map(named, tmp_path / "named.zarr", "--model", "demo")
    assert proc.returncode == 0, proc.stderr
    assert "outside" in proc.stderr and "training range" in proc.stderr  # 10 m imagery, a 3 m model: warned
    unnamed = _catalog(tmp_path / "unnamed", None, ("b1", "b2", "b3", "b4"), scale=1e-4, common=False)
    proc = _map(unnamed, tmp_path / "unnamed.zarr", "--model", "demo")
    _one_line_error(proc, "not in item")  # the model's band names are not the item's
    proc = _map(unnamed, tmp_path / "unnamed.zarr", "--model", "demo", "--bands", "b3", "b2", "b1", "b4")
    assert proc.returncode == 0, proc.stderr
    a, b = (open_map(tmp_path / f"{n}.zarr")["probability"].values for n in ("named", "unnamed"))
    np.testing.assert_array_equal(a, b)  # blue, green, red, nir fed by position equal them fed by name
    proc = _map(unnamed, tmp_path / "wrong.zarr", "--model", "demo", "--bands", "b1", "b2")
    _one_line_error(proc, "--bands lists 2 band(s) but the model takes 4")


def test_resolution_model_resamples_to_the_training_resolution(tmp_path):
    named = _catalog(tmp_path / "named", None, FILE_ORDER, scale=1e-4)
    proc = _map(named, tmp_path / "model-res.zarr", "--model", "demo", "--resolution", "model")
    assert proc.returncode == 0, proc.stderr
    assert "training range" not in proc.stderr
    ds = open_map(tmp_path / "model-res.zarr")
    assert float(abs(ds.x[1] - ds.x[0])) == pytest.approx(3.0)  # the demo model's 3 m
    with rasterio.open(S2) as src:
        width_m = src.width * src.res[0]
    assert ds.sizes["x"] == pytest.approx(width_m / 3.0, abs=1)


def test_without_model_the_choice_is_said(tmp_path):
    named = _catalog(tmp_path / "named", None, FILE_ORDER, scale=1e-4)
    proc = _map(named, tmp_path / "auto.zarr")
    assert proc.returncode == 0, proc.stderr
    assert "model: bundled model 'rgbn'" in proc.stdout  # a real RGBN scene: the RGBN model, said with the results
    assert "10 m is outside its range" in proc.stdout  # and that 10 m pixels are coarser than it was trained on


def test_an_image_smaller_than_the_model_context_is_mapped_with_mirrored_context(tmp_path):
    """A 40 x 56 px scene (less than the demo model's 64 px of context per side) maps; the reference
    is the model run once on the scene mirrored by numpy to the context on every side."""
    from geoslide.mapping.modelcache import load_model
    from geoslide.mapping.spec import InferenceSpec
    from geoslide.mapping.tiling import predict_block
    from geoslide.models.card import bundled_model_path, resolve_model

    with rasterio.open(S2) as src:
        window = rasterio.windows.Window(100, 60, 56, 40)
        counts, transform, profile = src.read(window=window), src.window_transform(window), src.profile
    small = tmp_path / "small.tif"
    with rasterio.open(small, "w", **(profile | {"width": 56, "height": 40, "transform": transform})) as dst:
        dst.write(counts)
    catalog = _catalog(tmp_path / "one", None, FILE_ORDER, scale=1e-4, source=small)
    proc = _map(catalog, tmp_path / "small.zarr", "--model", "demo")
    assert proc.returncode == 0, proc.stderr
    mapped = open_map(tmp_path / "small.zarr")["probability"].values
    model = resolve_model(bundled_model_path("demo"))
    net, card = load_model(model, "cpu")
    spec = InferenceSpec().resolve(card, model.multiple)
    halo = spec.overlap
    image = counts[[FILE_ORDER.index(b) for b in card.bands]].astype(np.float32) * 1e-4  # in the model's order
    padded = np.pad(image, ((0, 0), (halo, halo), (halo, halo)), mode="symmetric")
    reference = predict_block(padded, net, card, spec)[halo:-halo, halo:-halo]
    assert mapped.shape == (40, 56)
    np.testing.assert_allclose(mapped, reference, atol=0.0021)  # the store keeps probabilities in steps of 1/250
