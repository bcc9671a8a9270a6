"""Mosaics of items of different phases or far-apart dates are refused, unless asked for."""

from __future__ import annotations

import json
import subprocess

import pytest
from inprocess import run_cli

from geoslide import search
from geoslide.demo.catalog import write_demo
from geoslide.errors import MixedDatesError
from geoslide.mapping.job import MapSpec, load_image, run_map
from geoslide.mapping.store import map_attrs, map_status
from geoslide.mapping.tiling import InferenceSpec
from geoslide.models.card import ModelCard
from geoslide.raster.scenes import MAX_DAYS_APART, mixed_scenes

BOTH = {"collections": ["tiny-planetscope"]}  # the pre- and the post-event scene, 49 days apart


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(write_demo(tmp_path_factory.mktemp("mixed") / "events", seed=5, events=["tiny"],
                          sensors=["planetscope"]))


def _item(name: str, day: str, phase: str | None = "post", **props) -> dict:
    properties = {"datetime": f"{day}T10:30:00Z", **({"geoslide:phase": phase} if phase else {}), **props}
    return {"type": "Feature", "id": name, "properties": properties, "assets": {}}


def test_phases_or_dates_far_apart_are_described_and_one_scene_date_is_not():
    assert MAX_DAYS_APART == 30
    assert mixed_scenes([_item("a", "2023-05-01"), _item("b", "2023-05-31")]) is None
    assert mixed_scenes([_item("a", "2023-05-01")]) is None
    assert mixed_scenes([_item("a", "2023-05-01", None), _item("b", "2023-05-03", None)]) is None
    phases = mixed_scenes([_item("a", "2023-05-01"), _item("b", "2023-05-02", "pre")])
    assert "mix phases post (a) and pre (b)" in phases and '"geoslide:phase": {"eq": "post"}' in phases
    apart = mixed_scenes([_item("a", "2023-05-01"), _item("b", "2023-06-01T12:00:00Z"[:10])])
    assert "31 days apart" in apart and "2023-05-01 (a) to 2023-06-01 (b)" in apart and '"datetime"' in apart
    ranges = [_item("a", "2023-05-01"), {"id": "b", "properties": {"datetime": None, "start_datetime":
                                                                  "2023-07-01T00:00:00Z", "end_datetime":
                                                                  "2023-07-02T00:00:00Z"}, "assets": {}}]
    assert "61 days apart" in mixed_scenes(ranges)
    assert mixed_scenes([_item("a", "2023-05-01"), _item("b", "2023-05-11")], max_days=5) is not None


def test_run_map_refuses_a_mosaic_of_pre_and_post_and_writes_nothing(tiny, tmp_path):
    with pytest.raises(MixedDatesError, match=r"mix phases post \(tiny-planetscope-post\) and pre "
                                              r"\(tiny-planetscope-pre\).*allow_mixed_dates"):
        run_map(BOTH, MapSpec(out=str(tmp_path / "m.zarr")), tiny)
    assert not (tmp_path / "m.zarr").exists()


def test_allow_mixed_dates_mosaics_them(tiny, tmp_path):
    spec = MapSpec(out=str(tmp_path / "m.zarr"), allow_mixed_dates=True, quicklook=False,
                   inference=InferenceSpec(chunk=256))
    result = run_map(BOTH, spec, tiny)
    assert map_status(result.out).complete
    assert map_attrs(result.out)["params"]["inputs"] == ["tiny-planetscope-post", "tiny-planetscope-pre"]


def _cli_map(tiny: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("map", "--catalog", tiny, "--stac-query", json.dumps(BOTH), "--out", out, "--chunk", "256",
                   "--no-quicklook", *extra)


def test_cli_map_refuses_mixed_phases_in_one_line_and_the_flag_allows_them(tiny, tmp_path):
    refused = _cli_map(tiny, str(tmp_path / "r.zarr"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "mix phases" in refused.stderr and "--allow-mixed-dates" in refused.stderr
    assert not (tmp_path / "r.zarr").exists()
    allowed = _cli_map(tiny, str(tmp_path / "a.zarr"), "--allow-mixed-dates")
    assert allowed.returncode == 0, allowed.stderr
    assert map_status(tmp_path / "a.zarr").complete


def test_pre_event_items_are_checked_too(tiny):
    post = search({"ids": ["tiny-planetscope-post"]}, tiny)
    card = ModelCard("unet", {}, ("red", "d_red"), (0.0, 0.0), (1.0, 1.0), patch_size=64)
    with pytest.raises(MixedDatesError, match="the pre-event items mix phases"):
        load_image(post, card, MapSpec(out="unused.zarr"), pre_items=search(BOTH, tiny))
