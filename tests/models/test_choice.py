"""Choosing the bundled model by the imagery's bands and resolution."""

from __future__ import annotations

import json

import pytest

from geoslide.errors import ModelError
from geoslide.models.card import CARD, ModelCard, bundled_names, model_location, read_card
from geoslide.models.choice import choose_bundled


def _card(root, name, bands, span):
    folder = root / name
    folder.mkdir(parents=True)
    card = ModelCard("unet", {}, tuple(bands), (0.1,) * len(bands), (0.1,) * len(bands), 128,
                     resolution=span[0] if span[0] == span[1] else None, resolution_range=span)
    (folder / CARD).write_text(json.dumps(card.to_json()))


@pytest.fixture
def bundled(tmp_path):
    _card(tmp_path, "rgb", ["red", "green", "blue"], (0.3, 3.0))
    _card(tmp_path, "rgbn", ["blue", "green", "red", "nir"], (3.0, 5.0))
    _card(tmp_path, "s2", ["blue", "green", "red", "nir", "swir16", "swir22"], (10.0, 20.0))
    _card(tmp_path, "demo", ["blue", "green", "red", "nir"], (3.0, 3.0))
    return tmp_path


@pytest.mark.parametrize(("bands", "res", "want"), [
    (["red", "green", "blue"], 0.5, "rgb"),               # UAV RGB
    (["red", "green", "blue", "nir"], 4.0, "rgbn"),       # PlanetScope: more bands win at a fitting resolution
    (["red", "green", "blue", "nir"], 1.0, "rgb"),        # RGBN aerial at 1 m: the RGB model fits the resolution
    (["coastal", "blue", "green", "red", "nir", "swir16", "swir22", "scl"], 10.0, "s2"),  # Sentinel-2 L2A
    (["blue", "green", "red", "nir", "swir16", "swir22"], 3.0, "rgbn"),  # SWIR at 3 m: the resolution decides
    (["red", "green", "blue", "nir"], 10.0, "rgbn"),      # four bands at 10 m: the s2 model needs SWIR
    (["red", "green", "blue", "nir"], None, "rgbn"),      # unknown resolution: most bands, then name order
])
def test_choice_by_bands_then_resolution(bundled, bands, res, want):
    choice = choose_bundled(bands, res, root=bundled)
    assert choice.path == bundled / want and choice.card == read_card(bundled / want)
    assert repr(want) in choice.reason


def test_demo_model_only_for_synthetic_demo_items(bundled):
    assert choose_bundled(["red", "green", "blue", "nir"], 3.0, synthetic=True, root=bundled).path.name == "demo"
    assert choose_bundled(["red", "green", "blue", "nir"], 3.0, root=bundled).path.name != "demo"


def test_far_resolution_is_said(bundled):
    choice = choose_bundled(["red", "green", "blue"], 30.0, root=bundled)
    assert choice.path.name == "rgb" and "--resolution model" in choice.reason


def test_positional_bands_match_by_count_and_unknown_bands_are_refused(bundled):
    assert choose_bundled(["b1", "b2", "b3"], 0.5, positional=True, root=bundled).path.name == "rgb"
    with pytest.raises(ModelError, match="no bundled model fits imagery with bands"):
        choose_bundled(["b1", "b2", "b3"], 0.5, root=bundled)
    with pytest.raises(ModelError, match="rgb needs red, green, blue"):
        choose_bundled(["sar_vv"], 10.0, root=bundled)


def test_model_location_takes_paths_urls_and_bundled_names(tmp_path):
    assert model_location(tmp_path) == tmp_path
    assert model_location("s3://bucket/model") == "s3://bucket/model"
    assert "demo" in bundled_names()
    assert model_location("demo").name == "demo"
    with pytest.raises(ModelError, match="neither a model directory nor a bundled model"):
        model_location("no-such-model")
