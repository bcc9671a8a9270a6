"""Patches per second into a Zarr store: geoslide vs xbatcher on the same cube, and peak memory vs cube size.

Both read the same lazily loaded PlanetScope-like cube (4 bands, 3 m, a synthetic demo event) and
write every 128 px patch (image + landslide mask) to Zarr v3:

- geoslide: ``build_patches`` (one Dask graph per scene written chunk by chunk with dask.array.store);
- xbatcher: ``BatchGenerator`` over the same (image, mask) Dataset, each patch computed and written
  into a preallocated Zarr array, the way its documentation iterates batches.

Peak memory (max RSS of a fresh process) is measured for geoslide on two cube sizes, one 4x the
pixels of the other. Run: ``.venv/bin/python benchmarks/patches_vs_xbatcher.py [--size-m 3000]``.
Prints ratios measured side by side in one run (the machine is noisy; ratios are what to compare).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PATCH = 128


def make_event(folder: Path, size_m: float) -> tuple[str, str]:
    """A PlanetScope-only demo event; returns (catalog path, inventory path)."""
    from geoslide.demo.catalog import write_demo

    root = write_demo(folder / f"event-{int(size_m)}", seed=7, events=["demo-quake"], sensors=["planetscope"],
                      size_m=size_m)
    inventory = root.parent / "demo-quake" / "demo-quake-inventory" / "inventory.parquet"
    return str(root), str(inventory)


def _post(catalog: str):
    from geoslide import search

    return search({"query": {"geoslide:phase": {"eq": "post"}}, "collections": ["demo-quake-planetscope"]}, catalog)


def run_geoslide(catalog: str, inventory: str, out: Path) -> dict:
    from geoslide.data.patches import PatchSpec
    from geoslide.data.trainingset import TrainingSetSpec, build_patches

    spec = TrainingSetSpec(bands=("blue", "green", "red", "nir"), split="none", chunksize=1024,
                           patch=PatchSpec(size=PATCH, empty="keep", max_nodata=1.0))
    t0 = time.perf_counter()
    store = build_patches(_post(catalog), inventory, out, spec)
    seconds = time.perf_counter() - t0
    return {"patches": len(store), "seconds": seconds}


def run_xbatcher(catalog: str, inventory: str, out: Path) -> dict:
    import xarray as xr
    import xbatcher
    import zarr

    from geoslide import grid_of, open_cube
    from geoslide.inventory.rasterize import rasterize_inventory

    t0 = time.perf_counter()
    cube = open_cube(_post(catalog), ["blue", "green", "red", "nir"], rescale=True, chunksize=1024).isel(time=0)
    mask = rasterize_inventory(inventory, grid_of(cube), chunks=1024)
    ds = xr.Dataset({"image": cube.drop_vars([c for c in cube.coords if c not in ("band", "y", "x")]),
                     "mask": mask.drop_vars([c for c in mask.coords if c not in ("y", "x")])})
    gen = xbatcher.BatchGenerator(ds, input_dims={"y": PATCH, "x": PATCH})
    group = zarr.open_group(str(out), mode="w", zarr_format=3)
    n = len(gen)
    images = group.create_array("images", shape=(n, 4, PATCH, PATCH), chunks=(1, 4, PATCH, PATCH), dtype="float32")
    masks = group.create_array("masks", shape=(n, PATCH, PATCH), chunks=(1, PATCH, PATCH), dtype="uint8")
    for i, batch in enumerate(gen):
        batch = batch.compute()
        images[i] = batch["image"].transpose("band", "y", "x").values
        masks[i] = batch["mask"].values
    return {"patches": n, "seconds": time.perf_counter() - t0}


def peak_rss_mb(catalog: str, inventory: str, out: Path) -> float:
    """Peak RSS (MB) of a fresh process that builds the patch store.

    Read from VmHWM in /proc/self/status, which belongs to the process's own address space;
    getrusage's ru_maxrss would carry over the parent's peak across fork and exec.
    """
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import patches_vs_xbatcher as b; from pathlib import Path; "
        f"b.run_geoslide({catalog!r}, {inventory!r}, Path({str(out)!r})); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-m", type=float, default=9000.0,
                        help="event side in metres of the large cube (9000 m = 3000 x 3000 px at 3 m)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = make_event(folder, args.size_m)
        small = make_event(folder, args.size_m / 2)
        ours = run_geoslide(*big, folder / "ours.zarr")
        theirs = run_xbatcher(*big, folder / "xbatcher.zarr")
        assert ours["patches"] == theirs["patches"], (ours, theirs)
        rss_small = peak_rss_mb(*small, folder / "rss-small.zarr")
        rss_big = peak_rss_mb(*big, folder / "rss-big.zarr")
    result = {
        "cube_px": f"{int(args.size_m / 3)}^2 x 4 bands", "patches": ours["patches"],
        "geoslide_patches_per_s": round(ours["patches"] / ours["seconds"], 1),
        "xbatcher_patches_per_s": round(theirs["patches"] / theirs["seconds"], 1),
        "speedup_vs_xbatcher": round(theirs["seconds"] / ours["seconds"], 2),
        "peak_rss_mb_small": round(rss_small), "peak_rss_mb_4x_pixels": round(rss_big),
        "rss_ratio_4x_pixels": round(rss_big / rss_small, 2),
    }
    print(json.dumps(result, indent=1))
    np.testing.assert_(result["patches"] > 0)


if __name__ == "__main__":
    main()
