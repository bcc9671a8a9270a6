"""Models trained on derived bands can map: ndvi, slope (from the imagery's DEM or another collection's), post - pre.

The README flow ``patches -> train -> map`` runs through the CLI on a tiny demo event; the bands
``geoslide map`` feeds the model are compared with those ``geoslide patches`` stored, and both with
a rasterio/numpy reference, on the same pixels.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
import rasterio
from inprocess import run_cli
from rasterio.warp import Resampling, reproject

from geoslide import grid_of, open_cube, search
from geoslide.data.patches import PatchSpec
from geoslide.data.trainingset import TrainingSetSpec, build_patches
from geoslide.demo.catalog import write_demo
from geoslide.mapping.job import MapSpec, load_image
from geoslide.mapping.store import map_status, open_map
from geoslide.models.card import ModelCard, read_card


def _phase(collection: str, phase: str) -> dict:
    return {"collections": [collection], "query": {"geoslide:phase": {"eq": phase}}}


PS_POST, PS_PRE = _phase("tiny-planetscope", "post"), _phase("tiny-planetscope", "pre")
S2_POST = _phase("tiny-sentinel2", "post")
UNET = '{"base_filters": 4, "depth": 2}'


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(write_demo(tmp_path_factory.mktemp("derived") / "events", seed=5, events=["tiny"],
                          sensors=["planetscope", "sentinel2"]))


def _labels(root: str) -> str:
    return search({"collections": ["tiny-inventory"]}, root)[0].assets["labels-parquet"].get_absolute_href()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args)


@dataclass(frozen=True)
class Flow:
    """One README flow: the imagery, the patch options, the inputs patches and map are given, the card's bands,
    and the error ``geoslide map`` gives without those inputs."""

    query: dict
    patch_args: tuple[str, ...]
    inputs: tuple[str, ...]
    bands: tuple[str, ...]
    missing: str | None = None


FLOWS = {
    "ndvi": Flow(PS_POST, ("--bands", "red", "green", "blue", "nir", "--derived", "ndvi"), (),
                 ("red", "green", "blue", "nir", "ndvi")),
    "slope-of-the-imagery-dem": Flow(S2_POST, ("--bands", "red", "nir", "--derived", "ndvi", "slope"), (),
                                     ("red", "nir", "ndvi", "slope")),
    "slope-of-another-collection": Flow(
        PS_POST, ("--bands", "red", "nir", "--derived", "slope"), ("--dem-stac-query", json.dumps(S2_POST)),
        ("red", "nir", "slope"), "the model needs slope, but the items offer no elevation band: give --dem-stac-query"),
    "post-minus-pre": Flow(PS_POST, ("--bands", "red", "nir"), ("--pre-stac-query", json.dumps(PS_PRE)),
                           ("red", "nir", "d_red", "d_nir"), "the model needs d_red, d_nir (post - pre): give "
                                                             "--pre-stac-query"),
}


@pytest.fixture(scope="module", params=sorted(FLOWS))
def trained(request, tiny, tmp_path_factory):
    """patches -> train with ``--derived``/``--pre-stac-query``/``--dem-stac-query``, as in the README."""
    flow, work = FLOWS[request.param], tmp_path_factory.mktemp(request.param)
    size = "32" if flow.query is S2_POST else "64"
    done = _cli("patches", "--catalog", tiny, "--stac-query", json.dumps(flow.query), "--labels", _labels(tiny),
                "--out", str(work / "p.zarr"), "--patch-size", size, "--empty", "keep", *flow.patch_args,
                *flow.inputs)
    assert done.returncode == 0, done.stderr
    done = _cli("train", "--patches", str(work / "p.zarr"), "--model", "unet", "--model-params", UNET,
                "--out", str(work / "model"), "--epochs", "1", "--max-steps", "5", "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    return flow, work, tiny


def _map(trained, out: str, *inputs: str) -> subprocess.CompletedProcess:
    flow, work, tiny = trained
    return _cli("map", "--catalog", tiny, "--stac-query", json.dumps(flow.query), "--model", str(work / "model"),
                "--out", out, "--chunk", "256", "--no-quicklook", *inputs)


def test_a_model_of_derived_bands_maps_its_imagery(trained):
    flow, work, tiny = trained
    assert read_card(work / "model").bands == flow.bands
    done = _map(trained, str(work / "map.zarr"), *flow.inputs)
    assert done.returncode == 0, done.stderr
    assert map_status(work / "map.zarr").complete
    mask = open_map(work / "map.zarr")["mask"]
    red = open_cube(search(flow.query, tiny), ["red"], rescale=True).isel(time=0, band=0)
    assert grid_of(mask) == grid_of(red)
    nodata = mask.values == 255
    assert nodata[np.isnan(red.values)].all() and nodata.mean() < 0.2  # the scene's nodata corner only
    if flow.missing:  # the same model without its extra input is refused in one line, before anything is written
        done = _map(trained, str(work / "refused.zarr"))
        assert done.returncode == 2 and flow.missing in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert not (work / "refused.zarr").exists()


def _read(href: str, bands: list[int]) -> np.ndarray:
    with rasterio.open(href) as src:
        data = src.read(bands).astype("float32")
    return np.where(data == 0, np.nan, data * np.float32(0.0001))


def _dem_on(href: str, grid) -> np.ndarray:
    """The DEM warped bilinearly onto ``grid`` by rasterio, the reference for what slope is computed from."""
    out = np.full(grid.shape, np.nan, dtype="float32")
    with rasterio.open(href) as src:
        reproject(src.read(1), out, src_transform=src.transform, src_crs=src.crs, src_nodata=src.nodata,
                  dst_transform=grid.transform, dst_crs=src.crs, dst_nodata=np.nan, resampling=Resampling.bilinear)
    return out


def _slope(dem: np.ndarray, resolution: float) -> np.ndarray:
    gy, gx = np.gradient(dem.astype("float64"), resolution)
    return np.degrees(np.arctan(np.hypot(gx, gy)))


def _stored_and_mapped(items, store, **inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each stored patch and the same window of the image ``geoslide map`` builds for a model of the store's bands."""
    n = len(store.bands)
    card = ModelCard("unet", {}, tuple(store.bands), (0.0,) * n, (1.0,) * n, patch_size=store.patch_size)
    image = load_image(items, card, MapSpec(out="unused.zarr"), **inputs).values
    size, meta = store.patch_size, store.meta()
    mapped = np.stack([image[:, r : r + size, c : c + size] for r, c in zip(meta.row, meta.col, strict=True)])
    return store.images().compute(), mapped, image


def test_map_time_bands_equal_patch_time_bands_and_numpy(tiny, tmp_path):
    post, pre, dem = search(PS_POST, tiny), search(PS_PRE, tiny), search(S2_POST, tiny)
    spec = TrainingSetSpec(bands=("red", "nir"), derived=("ndvi", "slope"), patch=PatchSpec(size=64, empty="keep"))
    store = build_patches(post, _labels(tiny), tmp_path / "p.zarr", spec, pre_items=pre, dem_items=dem)
    assert store.bands == ["red", "nir", "ndvi", "slope", "d_red", "d_nir"]
    stored, mapped, image = _stored_and_mapped(post, store, pre_items=pre, dem_items=dem)
    assert len(stored) > 10
    np.testing.assert_array_equal(mapped, stored)  # the same functions on the same pixels: equal to the bit

    red, nir = _read(post[0].assets["image"].get_absolute_href(), [3, 4])
    pre_red, pre_nir = _read(pre[0].assets["image"].get_absolute_href(), [3, 4])
    np.testing.assert_array_equal(image[0], red)
    np.testing.assert_allclose(image[2], (nir - red) / (nir + red), rtol=1e-6)
    np.testing.assert_allclose(image[4:], [red - pre_red, nir - pre_nir], atol=1e-6)
    grid = grid_of(open_cube(post, ["red"]))
    reference = _slope(_dem_on(dem[0].assets["dem"].get_absolute_href(), grid), grid.resolution)
    inner = np.s_[1:-1, 1:-1]
    valid = np.isfinite(reference[inner])
    assert valid.mean() > 0.95
    np.testing.assert_allclose(image[3][inner][valid], reference[inner][valid], atol=1e-4)


def test_slope_of_the_imagery_dem_equals_numpy(tiny, tmp_path):
    post = search(S2_POST, tiny)
    spec = TrainingSetSpec(bands=("red",), derived=("slope",), patch=PatchSpec(size=20, empty="keep"))
    store = build_patches(post, _labels(tiny), tmp_path / "s.zarr", spec)
    stored, mapped, image = _stored_and_mapped(post, store)
    np.testing.assert_array_equal(mapped, stored)
    with rasterio.open(post[0].assets["dem"].get_absolute_href()) as src:
        reference = _slope(src.read(1), src.res[0])
    np.testing.assert_allclose(image[1][1:-1, 1:-1], reference[1:-1, 1:-1], rtol=1e-5, atol=1e-4)
