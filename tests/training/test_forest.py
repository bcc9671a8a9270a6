"""The random-forest baseline: features, training on the training split only, counts from its predictions."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import synthetic_store

from geoslide.errors import ConfigError, PatchStoreError
from geoslide.evaluation.score import grouped_scores
from geoslide.training.forest import ForestSpec, features, forest_counts, train_forest


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_store(tmp_path_factory.mktemp("forest") / "s.zarr", n=30, size=32)


def test_features_add_indices_only_where_their_bands_exist():
    images = np.array([[[[0.1]], [[0.3]], [[0.5]]]], dtype="float32")  # green, red, nir
    out = features(images, ["green", "red", "nir"], ("ndvi", "ndwi"))
    assert out.shape == (1, 5, 1, 1)
    assert out[0, 3, 0, 0] == pytest.approx((0.5 - 0.3) / (0.5 + 0.3))
    assert out[0, 4, 0, 0] == pytest.approx((0.1 - 0.5) / (0.1 + 0.5))
    s2 = features(images, ["B03", "B04", "B08"], ("ndvi",))
    assert s2[0, 3, 0, 0] == pytest.approx(0.25)
    assert features(images, ["a", "b", "c"], ("ndvi", "ndwi")).shape == (1, 3, 1, 1)


def test_forest_learns_blobs_and_its_counts_are_its_predictions(store):
    spec = ForestSpec(trees=10, pixels=4000, seed=1)
    forest = train_forest(store, spec)
    rows = np.flatnonzero(store.meta()["split"].to_numpy() == "test")
    counts = forest_counts(forest, store, rows, spec)
    images, masks = store.images().compute()[rows], store.masks().compute()[rows]
    feats = np.nan_to_num(np.moveaxis(images, 1, -1))  # the synthetic store has no red/NIR: bands only
    pred = forest.predict(feats.reshape(-1, feats.shape[-1])).reshape(masks.shape)
    valid = masks != 255
    assert counts.sum(axis=0).tolist() == [int(((pred == 0) & (masks == 0)).sum()),
                                           int(((pred == 1) & (masks == 0)).sum()),
                                           int(((pred == 0) & (masks == 1)).sum()),
                                           int(((pred == 1) & (masks == 1)).sum())]
    assert counts.sum() == valid.sum()
    scores = grouped_scores(store.meta(), rows, counts, ("event",))
    assert scores.iloc[0]["f1"] > 0.8  # bright blobs are easy per pixel
    assert train_forest(store, spec).predict(feats.reshape(-1, 2)[:50]).tolist() == pred.ravel()[:50].tolist()


def test_forest_options_are_checked(store):
    with pytest.raises(ConfigError, match="unknown random-forest option"):
        ForestSpec.from_dict({"model": "random-forest", "depth": 3})
    with pytest.raises(ConfigError, match="unknown index"):
        ForestSpec(indices=("evi",))
    with pytest.raises(PatchStoreError, match="no 'train' patches"):
        train_forest(store, ForestSpec(sensors=("drone",)))
