"""Models normalised per scene see the same numbers whatever the imagery's units and gain.

Checked where it matters: patches of one scene stored in two unit systems train and evaluate
identically, and ``geoslide map`` gives the same probabilities for a real Sentinel-2 scene delivered
as declared reflectance, as raw counts and as counts with another gain (``brightness``), and
offset (``scene``).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio

from geoslide.data.store import PatchStore
from geoslide.errors import ConfigError, ModelError
from geoslide.mapping.store import open_map
from geoslide.models.card import ModelCard, bundled_model_path, read_card
from geoslide.models.normalise import Normalisation, robust_normalisation
from geoslide.models.patchnorm import PatchNormaliser
from geoslide.training import TrainSpec
from geoslide.training.loop import fit
from tests.mapping.test_inputcheck import FILE_ORDER, S2, _catalog, _map
from tests.synthetic import synthetic_store


def test_robust_statistics_are_the_median_and_the_interquartile_spread():
    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 0.05, 20_000)
    values[:300] = np.nan  # nodata is ignored
    norm = robust_normalisation([values, values * 40 + 7])
    finite = values[np.isfinite(values)]
    q25, q50, q75 = np.percentile(finite, [25, 50, 75])
    assert norm.mean[0] == pytest.approx(q50) and norm.std[0] == pytest.approx((q75 - q25) / 1.349)
    assert norm.mean[1] == pytest.approx(q50 * 40 + 7) and norm.std[1] == pytest.approx(norm.std[0] * 40)
    assert robust_normalisation([np.full(10, np.nan)]) == Normalisation((0.0,), (1.0,))


def _two_unit_store(tmp_path, gains=(2500.0, 900.0), offset=310.0) -> tuple[PatchStore, int]:
    """Patches of scene ``a`` and the same patches, as another sensor's counts, from scene ``b``."""
    base = synthetic_store(tmp_path / "base.zarr", n=40, size=32, n_bands=2)
    images, masks, meta = base.array("images")[:], base.array("masks")[:], base.meta()
    store = PatchStore.create(tmp_path / "two.zarr", base.bands, base.patch_size)
    counts = images * np.array(gains, dtype=np.float32)[:, None, None] + offset
    meta_a, meta_b = meta.assign(item_id="scene-a"), meta.assign(item_id="scene-b")
    store.append(np.concatenate([images, counts]), np.concatenate([masks, masks]),
                 pd.concat([meta_a, meta_b], ignore_index=True))
    return store, len(meta)


def test_each_scene_is_normalised_with_its_own_statistics(tmp_path):
    store, n = _two_unit_store(tmp_path)
    images = store.array("images")[:]
    rows = np.arange(2 * n)
    norm = Normalisation((0.2, 0.2), (0.05, 0.05))
    scene = PatchNormaliser(store, store.meta(), store.bands, norm, mode="scene")(images, rows)
    np.testing.assert_allclose(scene[:n], scene[n:], atol=2e-4)  # the same patches in other units
    valid = np.isfinite(images[:n])  # the scene's 40 patches are all in its sample (48 at most)
    assert np.median(scene[:n][valid]) == pytest.approx(0.0, abs=0.1)
    fixed = PatchNormaliser(store, store.meta(), store.bands, norm)(images, rows)
    assert np.abs(fixed[:n] - fixed[n:]).max() > 100  # the card's statistics do not follow the units


def test_brightness_takes_one_gain_per_scene_and_keeps_band_ratios(tmp_path):
    store, n = _two_unit_store(tmp_path, gains=(2500.0, 2500.0), offset=0.0)
    images = store.array("images")[:]
    norm = Normalisation((0.2, 0.1), (0.05, 0.02))
    out = PatchNormaliser(store, store.meta(), store.bands, norm, mode="brightness")(images, np.arange(2 * n))
    np.testing.assert_allclose(out[:n], out[n:], atol=2e-4)  # reflectance and counts x 2500 alike
    valid = np.isfinite(images[:n]).all(axis=1)
    factor = np.median(images[:n].mean(axis=1)[valid])  # the scene's brightness, by numpy over all its pixels
    expected = np.nan_to_num((images[:n] / factor - np.array([0.2, 0.1])[:, None, None])
                             / np.array([0.05, 0.02])[:, None, None])
    np.testing.assert_allclose(out[:n], expected, rtol=0.05, atol=0.05)  # brightness from a 1-in-4 pixel sample


def test_a_scene_model_trains_and_records_it_in_its_card(tmp_path):
    store, _ = _two_unit_store(tmp_path)
    spec = TrainSpec(epochs=1, max_steps=2, batch_size=8, normalise="scene", patience=None)
    fit(store.path, spec, tmp_path / "model", progress=False)
    card = read_card(tmp_path / "model")
    assert card.normalise == "scene"
    assert json.loads((tmp_path / "model" / "model.json").read_text())["normalise"] == "scene"
    with pytest.raises(ConfigError, match="normalise must be one of fixed, brightness, scene"):
        TrainSpec(normalise="per-patch")
    with pytest.raises(ModelError, match="'normalise' must be one of fixed, brightness, scene"):
        ModelCard.from_json(json.loads(json.dumps({**card.to_json(), "normalise": "band"})))


@pytest.mark.heavy
@pytest.mark.parametrize("mode", ["brightness", "scene"])
def test_a_scene_model_maps_reflectance_and_counts_alike(tmp_path, mode):
    model = tmp_path / "scene-model"
    shutil.copytree(bundled_model_path("demo"), model)
    card = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**card, "normalise": mode}))
    with rasterio.open(S2) as src:
        counts = src.read()
    offered = {
        "reflectance": _catalog(tmp_path / "refl", counts, FILE_ORDER, scale=1e-4),
        "counts": _catalog(tmp_path / "counts", counts, FILE_ORDER, scale=None),
        "other-gain": _catalog(tmp_path / "gain", (counts.astype(np.uint32) * 3 + (100 if mode == "scene" else 0)
                                                   ).astype(np.uint16), FILE_ORDER, scale=None),
    }
    maps = {}
    for name, catalog in offered.items():
        proc = _map(catalog, tmp_path / f"{name}.zarr", "--model", str(model))
        assert proc.returncode == 0, proc.stderr
        maps[name] = open_map(tmp_path / f"{name}.zarr")["probability"].values
    assert np.isfinite(maps["reflectance"]).any()
    np.testing.assert_allclose(maps["counts"], maps["reflectance"], atol=1e-4)
    np.testing.assert_allclose(maps["other-gain"], maps["reflectance"], atol=1e-4)
