"""Continental mosaics (issue 16): cost per output chunk as the catalog grows, beside odc-stac and the cube path.

The simulated catalog: ``N`` items of 128 x 128 px, 4-band uint16 COGs at 10 m (deflate, nodata 0, reflectance
scale 1e-4), tiling a strip 8 times wider than high on a 1,200 m step (neighbours overlap by 8 px). Half the
items are a first date; the other half, ten days later, cover the same places with a nodata triangle in one
corner, so the older date shows through there. The strip is cut in three thirds along x whose items are in UTM
31N, 32N and 33N (as overlapping MGRS tiles are near zone edges); the map is on UTM 32N. Items are written as
STAC 1.0 dicts (projection, eo, raster extensions) to ``items.json`` and, through rustac, to ``items.parquet``
(stac-geoparquet).

For each N, each design runs in a fresh subprocess (for its peak RSS):

- ``geoslide``: :func:`geoslide.raster.sources.plan_mosaic` from the item dicts, :func:`open_mosaic` and
  :func:`geoslide.mapping.chunkmap.chunked_map` graphs (tasks per output chunk), one 1024^2 block read at the
  centre of the strip (across a zone edge), then a map of a 2048^2 window with the bundled model (seconds per
  output Mpx). Planning is also timed from ``items.parquet`` (read with pyarrow + rustac, then planned).
- ``odc-stac``: ``odc.stac.load(..., groupby="solar_day", chunks=1024)`` on the same geobox (pystac Items made
  beforehand, not timed), the same block read (both dates) and mosaicked latest-on-top in numpy.
- ``stackstac`` (the previous design): :func:`geoslide.raster.inputs.load_inputs` (``open_cube`` + ``mosaic``),
  the same block, only up to ``--stackstac-max`` items (its graph grows with items x chunks).

The block reads of all three are checked against each other (geoslide vs odc-stac: equal where both have data,
allowing the resampling of a few edge pixels across zones). ``--overhead`` also runs ``map_scaling``'s
overhead benchmark with the per-chunk map in one run: map vs bare forward, and vs a naive rasterio window loop.

Run: ``.venv/bin/python benchmarks/continental.py --sizes 16 64 256 1024 4096 16384``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer

TILE, STEP, RES = 128, 120, 10.0
ZONES = (32631, 32632, 32633)
TARGET = 32632
BANDS = ("blue", "green", "red", "nir")
BLOCK = 1024
MAP_WINDOW = 2048
ORIGIN = (500_000.0, 5_000_000.0)  # NW corner of the strip in UTM 32N


# -- the simulated catalog ----------------------------------------------------------------------------


def layout(n: int) -> tuple[int, int]:
    """Rows and columns of places for ``n`` items (two dates per place), the strip 8x wider than high."""
    places = max(1, n // 2)
    rows = max(1, round(math.sqrt(places / 8)))
    return rows, math.ceil(places / rows)


def simulate(folder: Path, n: int, seed: int = 16) -> list[dict]:
    """Write the COGs of ``n`` items and return their STAC dicts (see the module notes)."""
    rows, cols = layout(n)
    rng = np.random.default_rng(seed)
    to_zone = {z: Transformer.from_crs(TARGET, z, always_xy=True) for z in ZONES}
    items = []
    for k in range(n):
        place, date = divmod(k, 2)
        r, c = divmod(place, cols)
        if r >= rows:
            break
        zone = ZONES[min(2, c * 3 // cols)]
        x, y = to_zone[zone].transform(ORIGIN[0] + c * STEP * RES, ORIGIN[1] - r * STEP * RES)
        corner = (round(x / RES) * RES, round(y / RES) * RES)
        items.append(_write_item(folder, f"s{r:03d}-{c:04d}-d{date}", zone, corner, date, rng))
    return items


def _write_item(folder: Path, name: str, epsg: int, corner: tuple[float, float], date: int,
                rng: np.random.Generator) -> dict:
    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float32)
    pattern = np.sin((xx + corner[0] / RES) / 23.0) * np.cos((yy - corner[1] / RES) / 31.0)
    data = np.stack([900 + 300 * (b + 1) * pattern + rng.normal(0, 100, (TILE, TILE)) for b in range(4)])
    data = np.clip(data, 1, 65535).astype(np.uint16)
    if date:
        data[:, yy + xx < TILE // 2] = 0  # a nodata triangle: the first date shows through
    transform = rasterio.Affine(RES, 0, corner[0], 0, -RES, corner[1])
    path = folder / f"{name}.tif"
    # one 128 px tile and no overviews: the GTiff driver writes a valid COG, 10x faster than the COG driver
    with rasterio.open(path, "w", driver="GTiff", width=TILE, height=TILE, count=4, dtype="uint16", nodata=0,
                       crs=f"EPSG:{epsg}", transform=transform, compress="DEFLATE", tiled=True, blockxsize=TILE,
                       blockysize=TILE) as ds:
        ds.write(data)
    return _item_dict(name, path, epsg, transform, date)


def _item_dict(name: str, path: Path, epsg: int, transform: rasterio.Affine, date: int) -> dict:
    x0, y1 = transform.c, transform.f
    x1, y0 = x0 + TILE * RES, y1 - TILE * RES
    lon, lat = _to_wgs84(epsg).transform([x0, x1, x1, x0], [y0, y0, y1, y1])
    ring = [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]
    when = datetime(2024, 6, 1, 10, tzinfo=UTC) + timedelta(days=10 * date)
    bands = [{"name": b, "common_name": b} for b in BANDS]
    raster = [{"data_type": "uint16", "nodata": 0, "scale": 1e-4, "offset": 0.0, "spatial_resolution": RES}] * 4
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": name, "collection": "continental",
        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                            "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
        "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        "bbox": [min(lon), min(lat), max(lon), max(lat)],
        "properties": {"datetime": when.isoformat().replace("+00:00", "Z"), "proj:epsg": epsg,
                       "proj:shape": [TILE, TILE], "proj:transform": list(transform)[:6]},
        "assets": {"image": {"href": str(path), "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                             "roles": ["data"], "eo:bands": bands, "raster:bands": raster}},
        "links": [],
    }


@lru_cache(maxsize=8)
def _to_wgs84(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


def write_catalog(folder: Path, items: list[dict]) -> None:
    """``items.json`` (a FeatureCollection) and ``items.parquet`` (stac-geoparquet, through rustac)."""
    import rustac

    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    rustac.write_sync(str(folder / "items.parquet"), items)


# -- the designs, each in its own process ---------------------------------------------------------------


def grid_of_strip(items: list[dict]):
    """The map grid (UTM 32N, 10 m) as geoslide plans it, and the centre block window ``(row, col, h, w)``."""
    from geoslide.raster.sources import plan_mosaic

    grid = plan_mosaic(items, BANDS, epsg=TARGET, resolution=RES).grid
    ny, nx = grid.shape
    row = max(0, (ny - BLOCK) // 2) // BLOCK * BLOCK
    col = max(0, (nx - BLOCK) // 2) // BLOCK * BLOCK
    return grid, (row, col, min(BLOCK, ny - row), min(BLOCK, nx - col))


def run_geoslide(folder: Path, items: list[dict]) -> dict:
    from geoslide.mapping.chunkmap import chunked_map
    from geoslide.mapping.spec import InferenceSpec
    from geoslide.mapping.store import write_encoded
    from geoslide.models.card import bundled_model_path, resolve_model
    from geoslide.raster.chunkread import open_mosaic, window_bounds
    from geoslide.raster.sources import plan_mosaic

    start = time.perf_counter()
    plan = plan_mosaic(items, BANDS, epsg=TARGET, resolution=RES)
    planning = time.perf_counter() - start
    parquet = _plan_from_parquet(folder)
    model, spec = resolve_model(bundled_model_path()), InferenceSpec(chunk=BLOCK)
    mosaic = open_mosaic(plan, chunksize=BLOCK)
    mapped = chunked_map(plan, model, spec)
    _, window = grid_of_strip(items)
    row, col, h, w = window
    start = time.perf_counter()
    block = mosaic.data[:, row:row + h, col:col + w].compute(scheduler="threads")
    read = time.perf_counter() - start
    rss_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the model is loaded
    np.save(folder / "geoslide_block.npy", block)
    area = plan_mosaic(items, BANDS, epsg=TARGET, resolution=RES, bounds=_map_bounds(plan.grid, window))
    start = time.perf_counter()
    cut = chunked_map(area, model, spec)
    write_encoded(cut.encoded, area.grid, folder / "map.zarr", model.card.threshold, {"bench": "continental"},
                  empty=cut.empty)
    mapping = time.perf_counter() - start
    mpx = area.grid.shape[0] * area.grid.shape[1] / 1e6
    return {"plan_s": planning, "plan_parquet_s": parquet, "tasks_per_chunk": mapped.tasks / _chunks(mapped.encoded),
            "read_tasks_per_chunk": len(mosaic.data.__dask_graph__()) / _chunks(mosaic.data),
            "items_per_chunk": _items_per_chunk(plan, window_bounds), "read_s": read,
            "read_s_per_mpx": read / (h * w / 1e6), "map_s_per_mpx": mapping / mpx, "map_mpx": mpx,
            "peak_rss_read_mb": rss_read}


def _plan_from_parquet(folder: Path) -> float:
    """Seconds from ``items.parquet`` on disk to a plan (read, items as dicts, plan)."""
    from geoslide.catalog.search import search
    from geoslide.raster.sources import plan_mosaic

    start = time.perf_counter()
    items = search(None, str(folder / "items.parquet"))
    plan_mosaic(items, BANDS, epsg=TARGET, resolution=RES)
    return time.perf_counter() - start


def _map_bounds(grid, window) -> tuple[float, float, float, float]:
    """A MAP_WINDOW^2 area starting at the block (clipped to the grid)."""
    row, col, _, _ = window
    x0, y1 = grid.bounds[0] + col * RES, grid.bounds[3] - row * RES
    return x0, max(grid.bounds[1], y1 - MAP_WINDOW * RES), min(grid.bounds[2], x0 + MAP_WINDOW * RES), y1


def _chunks(array) -> int:
    return int(np.prod(array.numblocks[1:]))


def _items_per_chunk(plan, window_bounds) -> float:
    ny, nx = plan.grid.shape
    wins = [(r, c, min(BLOCK, ny - r), min(BLOCK, nx - c)) for r in range(0, ny, BLOCK) for c in range(0, nx, BLOCK)]
    return float(np.mean([len(s) for s in plan.query_many(np.array([window_bounds(plan.grid, w) for w in wins]))]))


def run_odc(folder: Path, items: list[dict]) -> dict:
    import odc.stac
    import pystac
    from odc.geo.geobox import GeoBox

    grid, (row, col, h, w) = grid_of_strip(items)
    stac_items = [pystac.Item.from_dict(i) for i in items]
    start = time.perf_counter()
    geobox = GeoBox(grid.shape, grid.transform, f"EPSG:{grid.epsg}")
    ds = odc.stac.load(stac_items, bands=list(BANDS), geobox=geobox, groupby="solar_day",
                       chunks={"x": BLOCK, "y": BLOCK}, resampling="nearest", dtype="uint16", nodata=0)
    cube = ds.to_array("band")
    planning = time.perf_counter() - start
    graph = cube.data.__dask_graph__()
    chunks = int(np.prod(cube.data.numblocks[-2:]))
    start = time.perf_counter()
    raw = cube.data[..., row:row + h, col:col + w].compute(scheduler="threads")  # (band, time, y, x)
    out = np.full((4, h, w), np.nan, np.float32)
    for t in range(raw.shape[1]):
        values = raw[:, t].astype(np.float32) * np.float32(1e-4)
        valid = (raw[:, t] != 0).all(axis=0)
        out[:, valid] = values[:, valid]
    read = time.perf_counter() - start
    np.save(folder / "odc_block.npy", out)
    return {"plan_s": planning, "tasks_per_chunk": len(graph) / chunks, "read_s": read,
            "read_s_per_mpx": read / (h * w / 1e6)}


def run_stackstac(folder: Path, items: list[dict]) -> dict:
    from geoslide.raster.inputs import load_inputs

    _, (row, col, h, w) = grid_of_strip(items)
    start = time.perf_counter()
    image = load_inputs(items, BANDS, epsg=TARGET, resolution=RES, chunksize=BLOCK)
    planning = time.perf_counter() - start
    graph = image.data.__dask_graph__()
    start = time.perf_counter()
    block = image.data[:, row:row + h, col:col + w].compute(scheduler="threads")
    read = time.perf_counter() - start
    np.save(folder / "stackstac_block.npy", block)
    return {"plan_s": planning, "tasks_per_chunk": len(graph) / int(np.prod(image.data.numblocks[-2:])),
            "read_s": read, "read_s_per_mpx": read / (h * w / 1e6)}


def child(design: str, folder: str) -> None:
    """Run one design on the catalog in ``folder``; print its figures and peak RSS as JSON."""
    path = Path(folder)
    items = json.loads((path / "items.json").read_text())["features"]
    result = {"geoslide": run_geoslide, "odc-stac": run_odc, "stackstac": run_stackstac}[design](path, items)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def in_child(design: str, folder: Path, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", design, str(folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(folder: Path) -> dict:
    """Blocks of the designs compared: NaN masks and values where both have data."""
    ours = np.load(folder / "geoslide_block.npy")
    out = {}
    for other in ("odc", "stackstac"):
        path = folder / f"{other}_block.npy"
        if path.exists():
            theirs = np.load(path)
            both = ~np.isnan(ours).any(0) & ~np.isnan(theirs).any(0)
            out[other] = {"same_nodata": float((np.isnan(ours).any(0) == np.isnan(theirs).any(0)).mean()),
                          "same_values": float((ours[:, both] == theirs[:, both]).all(0).mean())}
    return out


# -- the report -----------------------------------------------------------------------------------------


def measure(n: int, root: Path, args: argparse.Namespace) -> dict:
    folder = root / f"n{n}"
    folder.mkdir()
    start = time.perf_counter()
    items = simulate(folder, n)
    write_catalog(folder, items)
    row = {"n": len(items), "zones": len({i["properties"]["proj:epsg"] for i in items}),
           "write_s": time.perf_counter() - start}
    row["geoslide"] = in_child("geoslide", folder, args.timeout)
    row["odc-stac"] = in_child("odc-stac", folder, args.timeout)
    row["stackstac"] = (in_child("stackstac", folder, args.timeout) if n <= args.stackstac_max
                        else {"error": f"skipped above {args.stackstac_max} items"})
    row["agreement"] = agreement(folder) if "error" not in row["geoslide"] else {}
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    """The README table: one line per N and design."""
    lines = ["| items | design | tasks / output chunk | planning s | peak RSS MB (geoslide: read / with map) "
             "| block read s | read s/Mpx | map s/Mpx |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for design in ("geoslide", "odc-stac", "stackstac"):
            r = row[design]
            if "error" in r:
                lines.append(f"| {row['n']} | {design} | {r['error']} | | | | | |")
                continue
            plan = f"{r['plan_s']:.2f}"
            if "plan_parquet_s" in r:
                plan += f" ({r['plan_parquet_s']:.2f} from parquet)"
            mapping = f"{r['map_s_per_mpx']:.2f}" if "map_s_per_mpx" in r else ""
            if "map_mpx" in r:
                mapping += f" ({r['map_mpx']:.1f} Mpx)"
            rss = f"{r['peak_rss_mb']:.0f}"
            if "peak_rss_read_mb" in r:
                rss = f"{r['peak_rss_read_mb']:.0f} / {rss}"
            lines.append(f"| {row['n']} | {design} | {r['tasks_per_chunk']:.1f} | {plan} | {rss} | "
                         f"{r['read_s']:.2f} | {r['read_s_per_mpx']:.2f} | {mapping} |")
    return "\n".join(lines)


def overhead_run(root: Path, size: int) -> dict:
    """map_scaling's overhead benchmark (map vs forward vs naive loop, one run) with the per-chunk map."""
    sys.path.insert(0, str(Path(__file__).parent))
    import map_scaling

    from geoslide.mapping.chunkmap import chunked_map
    from geoslide.mapping.store import write_encoded
    from geoslide.models.card import resolve_model
    from geoslide.raster.sources import plan_mosaic

    def per_chunk_map(items, model_dir, out, spec, client=None):
        model = resolve_model(model_dir)
        plan = plan_mosaic(items, model.card.bands)
        mapped = chunked_map(plan, model, spec)
        write_encoded(mapped.encoded, plan.grid, out, model.card.threshold, {"benchmark": "continental"},
                      client=client, empty=mapped.empty)

    map_scaling.run_map = per_chunk_map
    folder = root / "overhead"
    folder.mkdir()
    model_dir = map_scaling.make_model(folder)
    cog = map_scaling.write_mosaic(folder / f"mosaic{size}.tif", size)
    spec = map_scaling.InferenceSpec(chunk=1024, batch_size=4)
    r = map_scaling.overhead(folder, model_dir, cog, spec.resolve(map_scaling.read_card(model_dir), 8), 2)
    return {"map_s": r["map"]["s"], "forward_map_tiles_s": r["forward_map_tiles"]["s"],
            "forward_pixels_once_s": r["forward_pixels_once"]["s"], "naive_s": r["naive"]["s"],
            "map_over_forward_tiles": r["map"]["s"] / r["forward_map_tiles"]["s"],
            "map_over_forward_once": r["map"]["s"] / r["forward_pixels_once"]["s"],
            "naive_over_map": r["naive"]["s"] / r["map"]["s"], "checks": r["checks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256, 1024, 4096])
    parser.add_argument("--stackstac-max", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--overhead", type=int, default=0, help="also run the overhead benchmark at this size")
    parser.add_argument("--child", nargs=2, metavar=("DESIGN", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="continental-") as tmp:
        rows = [measure(n, Path(tmp), args) for n in args.sizes]
        print(table(rows))
        if args.overhead:
            print(json.dumps(overhead_run(Path(tmp), args.overhead), default=str))


if __name__ == "__main__":
    main()
