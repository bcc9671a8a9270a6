"""Overlapping-chunk inference against the model run once on the whole image."""

from __future__ import annotations

import os
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import torch
import xarray as xr
from dask.callbacks import Callback

from geoslide.errors import BandError, ConfigError, GeoslideWarning, GridError
from geoslide.mapping import modelcache
from geoslide.mapping.inference import predict_proba
from geoslide.mapping.spec import InferenceSpec
from geoslide.mapping.tiling import predict_block
from geoslide.models import build_model
from geoslide.models.card import ModelCard, read_card, save_checkpoint
from geoslide.raster.cube import mosaic

BANDS = ("red", "green", "blue", "nir")
MEAN = (0.3, 0.25, 0.2, 0.45)
STD = (0.2, 0.15, 0.1, 0.25)
DEPTH = 3


def unet_reach(depth: int) -> int:
    """Farthest input pixel an output pixel of the plain U-Net depends on, by interval arithmetic over its layers.

    Encoder level ``l`` position ``p``: two 3x3 convs over level ``l`` after a 2x2 pool of level ``l - 1``.
    Decoder level ``l``: two 3x3 convs over [skip of level ``l``, 2x2/stride-2 transposed conv of level ``l + 1``].
    """

    def enc(level: int, p: int) -> tuple[int, int]:
        if level == 0:
            return p - 2, p + 2
        return enc(level - 1, 2 * (p - 2))[0], enc(level - 1, 2 * (p + 2) + 1)[1]

    def dec(level: int, p: int) -> tuple[int, int]:
        if level == depth:
            return enc(depth, p)
        lo = min(enc(level, p - 2)[0], dec(level + 1, (p - 2) // 2)[0])
        hi = max(enc(level, p + 2)[1], dec(level + 1, (p + 2) // 2)[1])
        return lo, hi

    base = 1000 * 2**depth  # any aligned position far from 0; every phase modulo 2**depth
    spans = [dec(0, base + phase) for phase in range(2**depth)]
    return max(max(base + ph - lo, hi - base - ph) for ph, (lo, hi) in enumerate(spans))


def make_model() -> torch.nn.Module:
    torch.manual_seed(7)
    model = build_model("unet", len(BANDS), base_filters=8, depth=DEPTH)
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode differs from a fresh net
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        model.head.weight.mul_(30.0)  # spread the probabilities well beyond the tolerance
    return model.eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = make_model()
    card = ModelCard("unet", {"base_filters": 8, "depth": DEPTH}, BANDS, MEAN, STD, patch_size=64,
                     receptive_field=2 * unet_reach(DEPTH) + 1)
    return save_checkpoint(model, card, tmp_path_factory.mktemp("model") / "unet")


def raster(values: np.ndarray, bands=BANDS) -> xr.DataArray:
    _, ny, nx = values.shape
    image = xr.DataArray(values, dims=("band", "y", "x"), coords={
        "band": list(bands), "y": 4_000_000 - 10.0 * np.arange(ny) - 5, "x": 500_000 + 10.0 * np.arange(nx) + 5})
    return image.rio.write_crs(32632)


def scene(ny: int = 300, nx: int = 420, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.random((4, ny // 10 + 2, nx // 10 + 2)).repeat(10, 1).repeat(10, 2)[:, :ny, :nx]
    return (smooth * 0.6 + rng.random((4, ny, nx)) * 0.4).astype(np.float32)


def whole_image(values: np.ndarray, pad: int = 0) -> np.ndarray:
    """Reference: normalise, mirror ``pad`` px (numpy "symmetric"), pad to a multiple of 8, run the model once."""
    x = (values - np.array(MEAN, np.float32)[:, None, None]) / np.array(STD, np.float32)[:, None, None]
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), mode="symmetric")
    _, h, w = x.shape
    x = np.pad(x, ((0, 0), (0, -h % 8), (0, -w % 8)))
    with torch.inference_mode():
        logits = make_model()(torch.from_numpy(np.ascontiguousarray(x[None], np.float32)))
    return torch.sigmoid(logits)[0, 0].numpy()[pad:pad + values.shape[1], pad:pad + values.shape[2]]


def test_overlap_is_derived_from_the_card(model_dir):
    card = read_card(model_dir)
    spec = InferenceSpec(chunk=128).resolve(card, 8)
    assert card.receptive_field == 2 * unet_reach(DEPTH) + 1
    assert spec.overlap % 8 == 0 and spec.overlap >= card.receptive_field / 2 > spec.overlap - 8
    global_attention = ModelCard("unet", {}, BANDS, MEAN, STD, patch_size=256)
    assert InferenceSpec().resolve(global_attention, 32).overlap == 64


@pytest.mark.parametrize(("tile", "blend"), [(None, "hann"), (176, "hann"), (176, "flat")])
def test_chunked_inference_equals_whole_image(model_dir, tile, blend):
    values = scene()
    spec = InferenceSpec(chunk=128, tile=tile, blend=blend, batch_size=3)
    out = predict_proba(raster(values), model_dir, spec)
    assert isinstance(out.data, da.Array) and out.data.chunks == ((128, 172), (128, 128, 164))
    got = out.compute(scheduler="threads").values
    depth = spec.resolve(read_card(model_dir), 8).overlap
    ref = whole_image(values)
    inner = (slice(depth, -depth), slice(depth, -depth))
    assert got.dtype == np.float32 and got[inner].std() > 0.01
    assert np.abs(got[inner] - ref[inner]).max() <= 1e-4
    # the border too, against the whole image mirrored like map_overlap's boundary
    assert np.abs(got - whole_image(values, pad=depth)).max() <= 1e-4


def test_too_little_overlap_shows_seams(model_dir):
    values = scene()
    with pytest.warns(GeoslideWarning, match="receptive field"):
        out = predict_proba(raster(values), model_dir, InferenceSpec(chunk=128, overlap=0, tile=128))
    ref = whole_image(values)
    assert np.abs(out.values - ref)[56:-56, 56:-56].max() > 1e-3


def test_predict_block_on_numpy(model_dir):
    values = scene(200, 232, seed=3)
    model, card = modelcache.load_model(model_dir, "cpu")
    got = predict_block(values, model, card, InferenceSpec(tile=176))
    depth = card.receptive_field // 2 + 1
    assert got.shape == (200, 232)
    assert np.abs(got - whole_image(values))[depth:-depth, depth:-depth].max() <= 1e-4


def test_nodata_in_any_band_stays_nodata(model_dir):
    values = scene(260, 300, seed=1)
    values[:, 100:140, 40:90] = np.nan
    values[2, 10, 200] = np.nan
    values[:, :, 0] = np.nan
    values[1, -1, -1] = np.nan
    got = predict_proba(raster(values), model_dir, InferenceSpec(chunk=128)).values
    hole = np.isnan(values).any(axis=0)
    np.testing.assert_array_equal(np.isnan(got), hole)
    assert ((got[~hole] >= 0) & (got[~hole] <= 1)).all()


def test_integer_nodata_value_becomes_nan(model_dir):
    counts = (scene(160, 176, seed=2) * 10_000).astype(np.uint16) + 1
    counts[0, 50:60, 70:75] = 0
    image = raster(counts).rio.write_nodata(0)
    got = predict_proba(image, model_dir, InferenceSpec(chunk=128)).values
    np.testing.assert_array_equal(np.isnan(got), (counts == 0).any(axis=0))


def test_bands_are_selected_by_name(model_dir):
    values = scene(160, 176, seed=4)
    spec = InferenceSpec(chunk=128)
    ref = predict_proba(raster(values), model_dir, spec).values
    shuffled = np.concatenate([values[[3, 1]], np.zeros_like(values[:1]), values[[0, 2]]])
    image = raster(shuffled, bands=("nir", "green", "swir16", "red", "blue"))
    np.testing.assert_array_equal(predict_proba(image, model_dir, spec).values, ref)
    with pytest.raises(BandError, match="nir"):
        predict_proba(raster(values[:3], bands=BANDS[:3]), model_dir, spec)


def test_output_keeps_grid_and_crs(model_dir):
    image = raster(scene(160, 176))
    out = predict_proba(image, model_dir, InferenceSpec(chunk=128))
    assert out.name == "probability" and out.dims == ("y", "x")
    np.testing.assert_array_equal(out.x, image.x)
    np.testing.assert_array_equal(out.y, image.y)
    assert out.rio.crs.to_epsg() == 32632
    assert out.rio.transform() == image.rio.transform()


@pytest.mark.parametrize(("options", "error", "fix"), [
    ({"chunk": 100}, GridError, "use 104"),
    ({"chunk": 128, "overlap": 60}, GridError, "use 64"),
    ({"chunk": 128, "tile": 112}, GridError, "use tile >= 120"),
    ({"chunk": 128, "blend": "gauss"}, ConfigError, "hann"),
    ({"chunk": 128, "batch_size": 0}, ConfigError, "batch_size"),
])
def test_bad_sizes_are_refused(model_dir, options, error, fix):
    with pytest.raises(error, match=fix):
        predict_proba(raster(scene(160, 176)), model_dir, InferenceSpec(**options))


def test_image_shape_is_checked(model_dir):
    with pytest.raises(GridError, match="smaller than the inference overlap"):
        predict_proba(raster(scene(40, 176)), model_dir, InferenceSpec(chunk=128))
    cube = raster(scene(160, 176)).expand_dims(time=2)
    with pytest.raises(GridError, match="mosaic"):
        predict_proba(cube, model_dir, InferenceSpec(chunk=128))


class PeakResult(Callback):
    """The largest array any task of a local computation returned."""

    def __init__(self):
        super().__init__()
        self.peak = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        if isinstance(result, np.ndarray) and not str(key).startswith("finalize"):  # not the assembled output
            self.peak = max(self.peak, result.nbytes)


def test_a_task_holds_one_chunk_and_its_overlap(model_dir):
    ny, nx, chunk = 640, 640, 128
    image = raster(da.random.default_rng(5).random((4, ny, nx), chunks=(1, 160, 160), dtype=np.float32))
    out = predict_proba(image, model_dir, InferenceSpec(chunk=chunk))
    depth = InferenceSpec(chunk=chunk).resolve(read_card(model_dir), 8).overlap
    with PeakResult() as peak:
        got = out.compute(scheduler="threads").values
    assert np.isfinite(got).all()
    block = 4 * (chunk + 2 * depth) ** 2 * 4  # float32 bands of one chunk with its overlap
    assert block < 4 * ny * nx * 4 / 5
    assert 0 < peak.peak <= block


def test_model_is_cached_per_file_version(model_dir):
    first = modelcache.load_model(model_dir, "cpu")
    loads = modelcache.model_loads()
    assert modelcache.load_model(str(model_dir) + "/", "cpu") is first
    assert modelcache.model_loads() == loads
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = modelcache.load_model(model_dir, "cpu")
    assert again is not first and modelcache.model_loads() == loads + 1
    assert not again[0].training


def test_mosaic_latest_valid_pixel_wins():
    rng = np.random.default_rng(9)
    values = rng.random((3, 2, 30, 40)).astype(np.float32)
    values[2, :, :10, :] = np.nan  # latest scene misses a strip
    values[2, 1, 20:25, 5:9] = np.nan  # ... and one band of some pixels
    values[1, :, :5, :20] = np.nan  # the middle one misses a corner
    values[0, 0, 0, 0] = np.nan
    times = np.array(["2023-01-01", "2023-02-01", "2023-03-01"], "M8[ns]")
    cube = raster(values[0], bands=BANDS[:2]).expand_dims(time=times)
    cube = cube.copy(data=da.from_array(values, chunks=(1, 1, 16, 16))).rio.write_crs(32632)
    got = mosaic(cube)
    expected = np.full(values.shape[1:], np.nan, np.float32)
    for layer in values:  # oldest first, so later valid pixels overwrite
        valid = ~np.isnan(layer).any(axis=0)
        expected[:, valid] = layer[:, valid]
    assert got.dims == ("band", "y", "x") and isinstance(got.data, da.Array)
    np.testing.assert_array_equal(got.values, expected)
    np.testing.assert_array_equal(got.band, cube.band)
    assert got.rio.crs.to_epsg() == 32632 and got.rio.transform() == cube.rio.transform()


def test_distributed_workers_load_the_model_once(model_dir):
    distributed = pytest.importorskip("distributed")
    image = raster(scene(300, 420, seed=6))
    spec = InferenceSpec(chunk=128, device="cpu")
    local = predict_proba(image, model_dir, spec).compute(scheduler="threads").values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            with dask.config.set(scheduler=client):
                remote = predict_proba(image, model_dir, spec).compute().values
            loads = client.run(modelcache.model_loads)
    np.testing.assert_allclose(remote, local, atol=1e-6)
    assert len(loads) == 2 and max(loads.values()) == 1, loads


def test_exact_tiles_run_each_pixel_about_once(model_dir):
    values = scene(256, 256, seed=4)
    model, card = modelcache.load_model(model_dir, "cpu")
    seen = []
    hook = model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0] * i[0].shape[2] * i[0].shape[3]))
    try:
        predict_block(values, model, card, InferenceSpec(tile=176, overlap=56))
    finally:
        hook.remove()
    # 176 px tiles with 56 px context step by their 64 px core: 3 x 3 tiles over 256 px (half-core steps: 4 x 4)
    assert sum(seen) == 9 * 176 * 176


def test_blended_half_steps_for_a_card_without_receptive_field(model_dir, tmp_path):
    card = read_card(model_dir)
    blind = save_checkpoint(make_model(), ModelCard(**{**card.__dict__, "receptive_field": None}), tmp_path / "m")
    values = scene()
    spec = InferenceSpec(chunk=128, overlap=56, tile=176)
    got = predict_proba(raster(values), blind, spec).compute(scheduler="threads").values
    # the U-Net is exact with this overlap, so half-core steps blended by Hann weights still give the same values
    assert np.abs(got - whole_image(values, pad=56)).max() <= 1e-4
