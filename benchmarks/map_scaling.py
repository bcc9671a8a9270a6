"""Mapping at scale (issue 6): overhead over the bare model, memory vs mosaic size, workers, a naive loop.

Every measurement maps the same synthetic mosaic: a 4-band uint16 Cloud-Optimised GeoTIFF (3 m, reflectance
scale 1e-4, nodata 0 with a nodata hole) written with rasterio, described by a STAC item
(``geoslide.catalog.build.raster_item``) and loaded the way ``geoslide map`` loads it (``load_image`` ->
``predict_proba`` -> ``write_map``). The model is an untrained U-Net (``base_filters=8, depth=3``, head scaled so
probabilities spread over [0, 1]) saved with ``save_checkpoint``; its card's receptive field comes from
``geoslide.models.receptive.receptive_field``.

1. Overhead: map wall time (one process, dask threaded scheduler) vs the bare model forward
   (``torch.inference_mode``, input tensors already in memory, the same threads) over (a) the tiles the map ran,
   recorded with a forward hook, and (b) the image's pixels once, in tiles of the same size and batch.
2. Peak RSS (VmHWM of a fresh subprocess per size) mapping a small and a large mosaic.
3. A ``distributed.LocalCluster`` of 1 vs 2 worker processes (``threads_per_worker=1``).
4. A naive loop: rasterio windows of the same tile size (context ``overlap`` px each side, core written),
   read one by one, one forward each, written with rasterio to a GeoTIFF.

The work is checked, not just timed: the naive GeoTIFF and the float probabilities of geoslide agree within 1e-4
on a whole chunk away from the image border, the stored (1/250-quantised) map agrees with the naive one within
half a quantum on the whole interior, nodata agrees, and the stores written in-process and by both clusters agree
(at most one quantum on a few pixels: float rounding differs between torch set-ups). Ratios are measured side
by side in one run (the machine is shared and noisy; compare ratios).

Run: ``.venv/bin/python benchmarks/map_scaling.py`` (about 10 minutes on 2 cores);
``--size 4096 --small 4096 --large 16384`` for the issue's full sizes (the 16384^2 COG is about 2 GiB on disk).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dask
import numpy as np
import rasterio
import rasterio.shutil
import torch
import zarr
from rasterio.transform import from_origin
from rasterio.windows import Window

from geoslide.catalog.build import AssetSpec, BandInfo, raster_item
from geoslide.mapping.inference import predict_proba
from geoslide.mapping.job import MapSpec, load_image
from geoslide.mapping.modelcache import load_model
from geoslide.mapping.spec import InferenceSpec
from geoslide.mapping.store import PROBABILITY_SCALE, write_map
from geoslide.models import build_model, size_multiple
from geoslide.models.card import ModelCard, load_checkpoint, read_card, save_checkpoint
from geoslide.models.receptive import receptive_field

BANDS = ("blue", "green", "red", "nir")
BASE_DN = (900.0, 1100.0, 1300.0, 2600.0)
SCALE = 1e-4
NODATA = 0
EPSG = 32645
RES = 3.0
BLOCK = 512
HEAD_GAIN = 300.0


# -- inputs ---------------------------------------------------------------------------------------


def make_model(folder: Path) -> Path:
    """An untrained U-Net checkpoint whose probabilities spread over [0, 1] on the synthetic mosaic."""
    torch.manual_seed(0)
    model = build_model("unet", len(BANDS), base_filters=8, depth=3).eval()
    with torch.no_grad():
        model.head.weight.mul_(HEAD_GAIN)
        model.head.bias.zero_()
    card = ModelCard("unet", {"base_filters": 8, "depth": 3}, BANDS,
                     mean=tuple(b * SCALE for b in BASE_DN), std=(0.04,) * len(BANDS), patch_size=128,
                     resolution=RES, receptive_field=receptive_field(model, len(BANDS)))
    return save_checkpoint(model, card, folder / "model")


def hole(size: int) -> tuple[slice, slice]:
    """The nodata rectangle of the mosaic (all bands 0)."""
    start = size * 5 // 8
    return slice(start, start + 150), slice(start, start + 250)


def synthetic_rows(row: int, height: int, size: int, seed: int) -> np.ndarray:
    """Rows ``row:row+height`` of the mosaic, ``(4, height, size)`` uint16 DNs: smooth patterns plus noise."""
    rng = np.random.default_rng([seed, row])
    y = np.arange(row, row + height, dtype=np.float32)[:, None]
    x = np.arange(size, dtype=np.float32)[None, :]
    pattern = np.sin(x / 37.0) * np.cos(y / 53.0) + 0.5 * np.sin((x + y) / 211.0)
    out = np.empty((len(BANDS), height, size), np.uint16)
    for b, base in enumerate(BASE_DN):
        dn = base + 300.0 * (b + 1) * pattern + rng.normal(0.0, 150.0, (height, size)).astype(np.float32)
        out[b] = np.clip(dn, 1, 65535)
    rows, cols = hole(size)
    rows = slice(max(rows.start, row) - row, max(min(rows.stop, row + height) - row, 0))
    out[:, rows, cols] = NODATA
    return out


def write_mosaic(path: Path, size: int, seed: int = 0) -> Path:
    """A ``size`` x ``size`` 4-band uint16 COG (deflate, 512 px blocks), written strip by strip."""
    tmp = path.with_suffix(".strips.tif")
    profile = {"driver": "GTiff", "width": size, "height": size, "count": len(BANDS), "dtype": "uint16",
               "crs": f"EPSG:{EPSG}", "transform": from_origin(500000.0, 3100000.0, RES, RES), "nodata": NODATA,
               "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate", "BIGTIFF": "IF_SAFER"}
    with rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, size, BLOCK):
            height = min(BLOCK, size - row)
            dst.write(synthetic_rows(row, height, size, seed), window=Window(0, row, size, height))
    rasterio.shutil.copy(tmp, path, driver="COG", compress="DEFLATE", blocksize=BLOCK, BIGTIFF="IF_SAFER")
    tmp.unlink()
    return path


def mosaic_item(path: Path) -> list:
    """The STAC item of a mosaic COG, as a one-item list (what ``search`` returns)."""
    bands = tuple(BandInfo(b, common_name=b, scale=SCALE) for b in BANDS)
    return [raster_item(path.stem, datetime(2024, 1, 1, tzinfo=UTC), [AssetSpec("image", str(path), bands)])]


# -- geoslide -------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User plus system CPU seconds of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def clock(other_cpu: Callable[[], float] = lambda: 0.0) -> Iterator[dict[str, float]]:
    """Wall seconds ``s`` and cores kept busy (CPU seconds of this process plus ``other_cpu()``, per second)."""
    times: dict[str, float] = {}
    cpu = cpu_seconds() + other_cpu()
    wall = time.perf_counter()
    yield times
    times["s"] = time.perf_counter() - wall
    times["cores"] = (cpu_seconds() + other_cpu() - cpu) / times["s"]


def run_map(items: list, model_dir: Path, out: Path, spec: InferenceSpec, client: object = None) -> None:
    """load_image -> predict_proba -> write_map, the core of ``geoslide map``."""
    card = read_card(model_dir)
    image = load_image(items, card, MapSpec(out=str(out), inference=spec))
    write_map(predict_proba(image, model_dir, spec), out, card.threshold, {"benchmark": "map_scaling"},
              client=client)


def float_probability(items: list, model_dir: Path, spec: InferenceSpec, rows: slice, cols: slice) -> np.ndarray:
    """geoslide's unquantised probabilities of a window (only the chunks under it are computed)."""
    image = load_image(items, read_card(model_dir), MapSpec(out="unused.zarr", inference=spec))
    return predict_proba(image, model_dir, spec).isel(y=rows, x=cols).values


@contextmanager
def recorded_batches(model_dir: Path) -> Iterator[list[tuple[int, ...]]]:
    """Shapes of every batch the process's cached model runs while the context is open."""
    model, _ = load_model(model_dir, "cpu")
    shapes: list[tuple[int, ...]] = []
    handle = model.register_forward_pre_hook(lambda _module, args: shapes.append(tuple(args[0].shape)))
    try:
        yield shapes
    finally:
        handle.remove()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch intra-op threads set to ``n`` (inherited by threads started later), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def timed_map(items: list, model_dir: Path, out: Path, spec: InferenceSpec, threads: int, torch_n: int
              ) -> tuple[dict[str, float], list[tuple[int, ...]]]:
    """In-process map on ``threads`` dask threads with ``torch_n`` torch threads; times and batch shapes."""
    with torch_threads(torch_n), dask.config.set(scheduler="threads", num_workers=threads):
        with recorded_batches(model_dir) as shapes, clock() as times:
            run_map(items, model_dir, out, spec)
    return times, shapes


# -- references -----------------------------------------------------------------------------------


def forward_times(model: torch.nn.Module, shapes: list[tuple[int, ...]], threads: int) -> dict[str, float]:
    """Bare forward passes over batches of ``shapes`` (random inputs in memory), on ``threads`` threads x 1."""
    gen = torch.Generator().manual_seed(0)
    inputs = {s: torch.randn(s, generator=gen) for s in set(shapes)}

    def work(part: list[tuple[int, ...]]) -> None:
        with torch.inference_mode():
            for shape in part:
                model(inputs[shape])

    with torch_threads(1), ThreadPoolExecutor(threads) as pool, clock() as times:
        list(pool.map(work, [shapes[k::threads] for k in range(threads)]))
    return times


def pixels_once(size: int, spec: InferenceSpec) -> list[tuple[int, ...]]:
    """Batches covering ``size``^2 pixels once in tiles of ``spec.tile`` (the model's cost without overlap)."""
    tiles = math.ceil(size * size / spec.tile**2)
    full, rest = divmod(tiles, spec.batch_size)
    batch = (spec.batch_size, len(BANDS), spec.tile, spec.tile)
    return [batch] * full + ([(rest, *batch[1:])] if rest else [])


def naive_times(cog: Path, model_dir: Path, out_tif: Path, spec: InferenceSpec, threads: int) -> dict[str, float]:
    """Window-by-window rasterio read, one forward per window, core written with rasterio; torch on ``threads``."""
    model, card = load_checkpoint(model_dir)
    core = spec.tile - 2 * spec.overlap
    with torch_threads(threads), clock() as times, rasterio.open(cog) as src:
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "float32",
                   "crs": src.crs, "transform": src.transform, "nodata": float("nan"), "tiled": True,
                   "blockxsize": BLOCK, "blockysize": BLOCK}
        with rasterio.open(out_tif, "w", **profile) as dst:
            for row in range(0, src.height, core):
                for col in range(0, src.width, core):
                    prob = naive_window(src, model, card, Window(col - spec.overlap, row - spec.overlap,
                                                                 spec.tile, spec.tile))
                    h, w = min(core, src.height - row), min(core, src.width - col)
                    inner = prob[spec.overlap:spec.overlap + h, spec.overlap:spec.overlap + w]
                    dst.write(inner, 1, window=Window(col, row, w, h))
    return times


def naive_window(src: rasterio.DatasetReader, model: torch.nn.Module, card: ModelCard, window: Window
                 ) -> np.ndarray:
    """Probabilities of one window read from ``src`` (boundless, nodata outside), NaN at nodata."""
    raw = src.read(window=window, boundless=True, fill_value=NODATA)
    nodata = (raw == NODATA).any(axis=0)
    mean = np.asarray(card.mean, np.float32)[:, None, None]
    std = np.asarray(card.std, np.float32)[:, None, None]
    x = (raw.astype(np.float32) * np.float32(SCALE) - mean) / std
    x[:, nodata] = 0.0
    with torch.inference_mode():
        prob = torch.sigmoid(model(torch.from_numpy(x[None]))[0, 0]).numpy()
    prob[nodata] = np.nan
    return prob


# -- peak memory and clusters ---------------------------------------------------------------------


def rss_child(cog: str, model_dir: str, out: str, chunk: int) -> None:
    """Map ``cog`` as shipped (default threads); print JSON with times and VmHWM (kB). Run in a fresh process."""
    with clock() as times:
        run_map(mosaic_item(Path(cog)), Path(model_dir), Path(out), InferenceSpec(chunk=chunk))
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM")).split()[1]
    print(json.dumps({**times, "vmhwm_kb": int(hwm)}))


def peak_rss(cog: Path, model_dir: Path, out: Path, chunk: int) -> dict:
    """Peak RSS (MB) and wall time of a fresh process mapping ``cog``.

    VmHWM belongs to the process's own address space; getrusage's ru_maxrss would carry over the
    parent's peak across fork and exec.
    """
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import map_scaling as b; "
            f"b.rss_child({str(cog)!r}, {str(model_dir)!r}, {str(out)!r}, {chunk})")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"mb": result["vmhwm_kb"] / 1024, "s": result["s"], "cores": result["cores"]}


def _warm_worker() -> int:
    import geoslide.mapping.inference  # noqa: F401  (torch, rasterio and geoslide imported before timing)

    return torch.get_num_threads()


def cluster_times(items: list, model_dir: Path, out: Path, spec: InferenceSpec, workers: int
                  ) -> tuple[dict[str, float], list[int]]:
    """Map on a LocalCluster of ``workers`` processes x 1 thread (started and warmed up before timing).

    Cores busy count the client (which writes the store) and the workers; the scheduler is left out.
    """
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(workers)
        torch_per_worker = sorted(client.run(_warm_worker).values())
        with clock(lambda: sum(client.run(cpu_seconds).values())) as times:
            run_map(items, model_dir, out, spec, client=client)
        return times, torch_per_worker


# -- checks ---------------------------------------------------------------------------------------


def read_naive(path: Path) -> np.ndarray:
    """The naive loop's probabilities."""
    with rasterio.open(path) as src:
        return src.read(1)


def stored_probability(store: Path) -> np.ndarray:
    """A map store's probabilities, decoded to float (NaN nodata), 1/250 quantised."""
    raw = np.asarray(zarr.open_group(str(store), mode="r")["probability"][...])
    return np.where(raw == 255, np.nan, raw / np.float32(PROBABILITY_SCALE)).astype(np.float32)


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference where both are valid; inf if their nodata differs."""
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return math.inf
    valid = ~np.isnan(a)
    return float(np.abs(a[valid] - b[valid]).max())


def check_outputs(items: list, model_dir: Path, spec: InferenceSpec, naive: np.ndarray, store: Path) -> dict:
    """geoslide vs the naive loop: float probabilities on the chunk holding the nodata hole, stored map inside."""
    size, margin = naive.shape[0], spec.overlap
    first = hole(size)[0].start // spec.chunk * spec.chunk
    window = slice(max(first, margin), min(first + spec.chunk, size - margin))
    ours = float_probability(items, model_dir, spec, window, window)
    inside = slice(margin, size - margin)
    result = {"float_window_px": f"{window.start}:{window.stop}",
              "float_max_abs_diff": max_difference(ours, naive[window, window]),
              "stored_max_abs_diff": max_difference(stored_probability(store)[inside, inside], naive[inside, inside]),
              "probability_std": float(np.nanstd(naive[inside, inside])),
              "nodata_px": int(np.isnan(naive[inside, inside]).sum())}
    assert result["float_max_abs_diff"] <= 1e-4, result
    assert result["stored_max_abs_diff"] <= 0.5 / PROBABILITY_SCALE + 1e-4, result
    assert result["probability_std"] > 0.05 and result["nodata_px"] > 0, result
    return result


def store_agreement(first: Path, *others: Path) -> dict:
    """How far map stores are apart: pixels whose stored probability or mask differ, and the largest step.

    Float rounding differs between torch thread set-ups (and processes), so a probability on the edge of a
    1/250 quantum, or on the threshold, may land on the other side; more than one quantum means other work.
    """
    def arrays(store: Path) -> list[np.ndarray]:
        group = zarr.open_group(str(store), mode="r")
        return [np.asarray(group[name][...]).astype(np.int16) for name in ("probability", "mask")]

    reference = arrays(first)
    steps, differ = 0, 0
    for other in others:
        for a, b in zip(reference, arrays(other), strict=True):
            steps = max(steps, int(np.abs(a - b).max()))
            differ = max(differ, int(np.count_nonzero(a != b)))
    result = {"max_quanta": steps, "max_px_differing": differ}
    assert steps <= 1 and differ <= 1e-4 * reference[0].size, result
    return result


# -- the run --------------------------------------------------------------------------------------


def overhead(folder: Path, model_dir: Path, cog: Path, spec: InferenceSpec, threads: int) -> dict:
    """Benchmarks 1 and 4 on one mosaic, with the correctness checks."""
    items = mosaic_item(cog)
    with rasterio.open(cog) as src:
        size = src.width
    model = load_model(model_dir, "cpu")[0]
    forward_times(model, [(spec.batch_size, len(BANDS), spec.tile, spec.tile)] * threads, threads)  # warm-up
    shipped, shapes = timed_map(items, model_dir, folder / "shipped.zarr", spec, threads, torch.get_num_threads())
    single, _ = timed_map(items, model_dir, folder / "torch1.zarr", spec, threads, 1)
    tiles = forward_times(model, shapes, threads)
    once = forward_times(model, pixels_once(size, spec), threads)
    naive = naive_times(cog, model_dir, folder / "naive.tif", spec, threads)
    checks = check_outputs(items, model_dir, spec, read_naive(folder / "naive.tif"), folder / "shipped.zarr")
    tile_px = sum(math.prod(s[:1] + s[2:]) for s in shapes)
    return {"map": shipped, "map_torch1": single, "forward_map_tiles": tiles, "forward_pixels_once": once,
            "naive": naive, "tiles": sum(s[0] for s in shapes), "tile_px_per_image_px": tile_px / size**2,
            "checks": checks}


def workers(folder: Path, model_dir: Path, cog: Path, spec: InferenceSpec) -> dict:
    """Benchmark 3: 1 vs 2 worker processes, same input; both stores must agree with the in-process ones."""
    items = mosaic_item(cog)
    one, torch_one = cluster_times(items, model_dir, folder / "cluster1.zarr", spec, 1)
    two, torch_two = cluster_times(items, model_dir, folder / "cluster2.zarr", spec, 2)
    same = store_agreement(folder / "shipped.zarr", folder / "torch1.zarr", folder / "cluster1.zarr",
                           folder / "cluster2.zarr")
    return {"cluster1": one, "cluster2": two, "worker_torch_threads": [torch_one, torch_two],
            "stores_agree": same}


def memory(folder: Path, model_dir: Path, cogs: dict[int, Path], small: int, large: int, chunk: int) -> dict:
    """Benchmark 2: peak RSS of fresh processes mapping the small and the large mosaic."""
    for size in (small, large):
        if size not in cogs:
            cogs[size] = write_mosaic(folder / f"mosaic-{size}.tif", size)
    low = peak_rss(cogs[small], model_dir, folder / "rss-small.zarr", chunk)
    high = peak_rss(cogs[large], model_dir, folder / "rss-large.zarr", chunk)
    return {"rss_small_mb": low.pop("mb"), "rss_large_mb": high.pop("mb"), "rss_small_map": low,
            "rss_large_map": high}


def _took(times: dict[str, float]) -> str:
    return f"{times['s']:.1f} s ({times['cores']:.2f} cores busy)"


def _ratio(r: dict, a: str, b: str) -> str:
    return f"{r[a]['s'] / r[b]['s']:.2f}"


def table(args: argparse.Namespace, r: dict) -> str:
    """The results as a Markdown table."""
    rows = [
        (f"map {args.size}^2, in-process, as shipped (dask x torch threads {r['threads']} x {r['torch_threads']})",
         _took(r["map"]), ""),
        (f"map {args.size}^2, in-process, torch 1 thread per dask thread", _took(r["map_torch1"]), ""),
        ("bare forward on the map's tiles", _took(r["forward_map_tiles"]), ""),
        ("bare forward on the image's pixels once", _took(r["forward_pixels_once"]), ""),
        ("tile pixels the map runs per image pixel", f"{r['tile_px_per_image_px']:.2f}", ""),
        ("**map / forward on the same pixels (once)**", _ratio(r, "map", "forward_pixels_once"), "<= 1.10"),
        ("map / forward on the map's own tiles (machinery only)", _ratio(r, "map", "forward_map_tiles"), "(<= 1.10)"),
        (f"peak RSS {args.small}^2 / {args.large}^2 (MB)", f"{r['rss_small_mb']:.0f} / {r['rss_large_mb']:.0f}", ""),
        (f"**peak RSS ratio, {(args.large / args.small) ** 2:.3g}x pixels**",
         f"{r['rss_large_mb'] / r['rss_small_mb']:.2f}", "<= 1.3 (4096^2 vs 16384^2)"),
        (f"map {args.large}^2 in the RSS run", _took(r["rss_large_map"]), ""),
        ("LocalCluster, 1 worker x 1 thread", _took(r["cluster1"]), ""),
        ("LocalCluster, 2 workers x 1 thread", _took(r["cluster2"]), ""),
        ("**speed-up 2 vs 1 worker**", _ratio(r, "cluster1", "cluster2"), ">= 1.8"),
        ("naive rasterio-window loop", _took(r["naive"]), ""),
        ("**naive loop / geoslide map (wall time)**", _ratio(r, "naive", "map"), "> 1 (no number in the issue)"),
        ("naive vs geoslide float probability, max abs diff", f"{r['checks']['float_max_abs_diff']:.1e}", "<= 1e-4"),
        ("naive vs stored map (1/250 quantised), max abs diff", f"{r['checks']['stored_max_abs_diff']:.1e}",
         "<= 2.1e-3"),
        ("stores: in-process x 2 vs 1 and 2 workers, px differing / max quanta",
         f"{r['stores_agree']['max_px_differing']} / {r['stores_agree']['max_quanta']}", "few / <= 1"),
    ]
    lines = ["| measurement | measured | goal |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    load = ", ".join(f"{v:.1f}" for v in r["load_before"]) + " -> " + ", ".join(f"{v:.1f}" for v in r["load_after"])
    lines += ["", f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) {load}. Cores busy = CPU seconds of the "
              "measured processes per wall second: what the machine gave, the ceiling of any speed-up."]
    return "\n".join(lines)


def rounded(value: object) -> object:
    """Floats rounded to 4 decimals, inside dicts, lists and tuples too."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="mosaic side (px) for benchmarks 1, 3 and 4")
    parser.add_argument("--small", type=int, default=None, help="small mosaic side for peak RSS (default --size)")
    parser.add_argument("--large", type=int, default=4096, help="large mosaic side for peak RSS (issue: 16384)")
    parser.add_argument("--chunk", type=int, default=1024, help="inference chunk (px)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="dask threads in one process")
    args = parser.parse_args()
    args.small = args.small or args.size
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        model_dir = make_model(folder)
        cogs = {args.size: write_mosaic(folder / f"mosaic-{args.size}.tif", args.size)}
        setup = time.perf_counter() - t0
        multiple = size_multiple(load_model(model_dir, "cpu")[0])
        spec = InferenceSpec(chunk=args.chunk).resolve(read_card(model_dir), multiple)
        result = {"size": args.size, "threads": args.threads, "torch_threads": torch.get_num_threads(),
                  "spec": {"chunk": spec.chunk, "overlap": spec.overlap, "tile": spec.tile,
                           "batch_size": spec.batch_size}, "setup_s": setup, "load_before": load}
        result.update(overhead(folder, model_dir, cogs[args.size], spec, args.threads))
        result.update(workers(folder, model_dir, cogs[args.size], spec))
        result.update(memory(folder, model_dir, cogs, args.small, args.large, args.chunk))
    result["load_after"] = os.getloadavg()
    print(json.dumps(rounded(result), indent=1))
    print()
    print(table(args, result))


if __name__ == "__main__":
    main()
