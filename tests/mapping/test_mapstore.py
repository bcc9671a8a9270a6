"""The map store: georeferencing read back by xarray/rioxarray and GDAL, resume, skip, fingerprints."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from pyproj import CRS

from geoslide.errors import CRSError, GridError, OutputError
from geoslide.mapping.store import map_status, open_map, read_probability, stored_array, write_map
from geoslide.raster.grid import GridSpec

# UTM 45N (Nepal), origin off the pixel lattice of whole metres, 4 x 5 chunks of 32 with ragged edges.
GRID = GridSpec(32645, (412345.5, 3012345.25, 412345.5 + 150 * 10, 3012345.25 + 100 * 10), 10.0)
CHUNK = 32
THRESHOLD = 0.5
ATTRS = {"model": "unet-demo", "inputs": ["tiny-sentinel2-post"]}


_LIVE: dict[int, Blocks] = {}


def _live(key: int) -> Blocks:
    return _LIVE[key]


class Blocks:
    """Counts block computations; raises once ``fail_after`` blocks have been computed.

    Pickles as a reference, so in-process dask workers count on the same object.
    """

    def __init__(self, fail_after: int | None = None) -> None:
        self.count, self.fail_after, self.lock = 0, fail_after, threading.Lock()
        _LIVE[id(self)] = self

    def __reduce__(self):
        return _live, (id(self),)

    def tick(self) -> None:
        with self.lock:
            if self.fail_after is not None and self.count >= self.fail_after:
                raise RuntimeError("interrupted on purpose")
            self.count += 1


def probability(grid: GridSpec = GRID, chunk: int = CHUNK, seed: int = 0, blocks: Blocks | None = None
                ) -> xr.DataArray:
    """Lazy probabilities, each block drawn from a seed and its position; about 5% NaN."""
    def block(block_info=None):
        if blocks is not None:
            blocks.tick()
        (r0, _), (c0, _) = block_info[None]["array-location"]
        shape = block_info[None]["chunk-shape"]
        rng = np.random.default_rng([seed, r0, c0])
        p = rng.random(shape, dtype=np.float32)
        p[rng.random(shape) < 0.05] = np.nan
        return p

    data = da.map_blocks(block, chunks=da.core.normalize_chunks((chunk, chunk), grid.shape), dtype=np.float32,
                         meta=np.empty((0, 0), np.float32))
    arr = xr.DataArray(data, dims=("y", "x"), coords={"y": grid.y_coords(), "x": grid.x_coords()})
    return arr.rio.write_crs(grid.epsg)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted write and the probabilities it was made from."""
    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    write_map(probability(), out, THRESHOLD, ATTRS)
    return out, probability().values


def _n_blocks() -> int:
    return -(-GRID.shape[0] // CHUNK) * -(-GRID.shape[1] // CHUNK)


# -- georeferencing ------------------------------------------------------------------------------


@pytest.mark.parametrize("decode_coords", ["all", True])
def test_xarray_reads_crs_and_transform(reference, decode_coords):
    out, _ = reference
    ds = xr.open_zarr(out, decode_coords=decode_coords, consolidated=False)
    for name in ("probability", "mask"):
        assert ds[name].rio.crs == CRS.from_epsg(32645)
        assert ds[name].rio.transform().almost_equals(GRID.transform, precision=1e-9)
    np.testing.assert_array_equal(ds.x.values, GRID.x_coords())
    np.testing.assert_array_equal(ds.y.values, GRID.y_coords())
    assert ds.rio.bounds() == pytest.approx(GRID.bounds, abs=1e-6)


def test_values_and_chunks(reference):
    out, p = reference
    ds = open_map(out)
    assert ds.rio.crs.to_epsg() == 32645 and ds.rio.transform().almost_equals(GRID.transform, precision=1e-9)
    got = ds.probability.values
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(p))
    valid = ~np.isnan(p)
    assert np.abs(got[valid] - p[valid]).max() <= 1 / 500 + 1e-7  # quantised to 1/250
    np.testing.assert_array_equal(got[valid], (np.rint(p[valid] * 250) / 250).astype(np.float32))
    expected_mask = np.where(np.isnan(p), 255, p >= THRESHOLD).astype(np.uint8)
    np.testing.assert_array_equal(ds["mask"].values, expected_mask)
    assert ds["mask"].dtype == np.uint8
    np.testing.assert_array_equal(read_probability(out).values, got)
    for name in ("probability", "mask"):
        assert stored_array(out, name).chunks == (CHUNK, CHUNK)
    assert map_status(out).complete and map_status(out).total == _n_blocks()


GDAL_READ = r"""
import base64, ctypes, glob, json, os, sys
import pyogrio  # points its bundled GDAL at its PROJ data
libs = glob.glob(os.path.join(os.path.dirname(pyogrio.__file__), "..", "pyogrio.libs", "libgdal*"))
if not libs:
    print(json.dumps({"missing": True})); sys.exit()
g = ctypes.CDLL(libs[0])
g.GDALAllRegister()
g.GDALVersionInfo.restype = ctypes.c_char_p
g.GDALOpen.restype, g.GDALOpen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
g.GDALGetProjectionRef.restype, g.GDALGetProjectionRef.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
g.GDALGetGeoTransform.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)]
g.GDALGetRasterBand.restype, g.GDALGetRasterBand.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]
g.GDALGetRasterNoDataValue.restype = ctypes.c_double
g.GDALGetRasterNoDataValue.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
g.GDALGetRasterXSize.argtypes = g.GDALGetRasterYSize.argtypes = [ctypes.c_void_p]
g.GDALRasterIO.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                           ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
g.CPLGetLastErrorMsg.restype = ctypes.c_char_p
ds = g.GDALOpen(sys.argv[1].encode(), 0)
if not ds:
    print(json.dumps({"error": g.CPLGetLastErrorMsg().decode()})); sys.exit()
gt = (ctypes.c_double * 6)()
g.GDALGetGeoTransform(ds, gt)
band, ok = g.GDALGetRasterBand(ds, 1), ctypes.c_int()
w, h = g.GDALGetRasterXSize(ds), g.GDALGetRasterYSize(ds)
buf = (ctypes.c_uint8 * (w * h))()
g.GDALRasterIO(band, 0, 0, 0, w, h, buf, w, h, 1, 0, 0)  # GF_Read, GDT_Byte
print(json.dumps({"version": g.GDALVersionInfo(b"RELEASE_NAME").decode(), "wkt": g.GDALGetProjectionRef(ds).decode(),
                  "geotransform": list(gt), "nodata": g.GDALGetRasterNoDataValue(band, ctypes.byref(ok)),
                  "shape": [h, w], "data": base64.b64encode(bytes(buf)).decode()}))
"""


def _gdal_read(spec: str) -> dict:
    """CRS, geotransform, nodata and pixels of ``spec`` as a GDAL >= 3.11 reads them."""
    if tuple(int(v) for v in rasterio.__gdal_version__.split(".")[:2]) >= (3, 11):
        with rasterio.open(spec) as src:
            return {"version": rasterio.__gdal_version__, "wkt": src.crs.to_wkt(),
                    "geotransform": list(src.transform.to_gdal()), "nodata": src.nodata, "shape": list(src.shape),
                    "pixels": src.read(1)}
    # rasterio's GDAL (3.10 here) predates Zarr v3's "bytes" codec; pyogrio bundles a newer libgdal.
    run = subprocess.run([sys.executable, "-c", GDAL_READ, spec], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    if got.get("missing"):
        pytest.skip("no GDAL >= 3.11 here (rasterio's is older and pyogrio bundles none)")
    assert "error" not in got, got.get("error")
    got["pixels"] = np.frombuffer(base64.b64decode(got.pop("data")), np.uint8).reshape(got["shape"])
    return got


@pytest.mark.parametrize("name", ["mask", "probability"])
def test_gdal_reads_crs_transform_nodata_and_pixels(reference, name):
    out, _ = reference
    got = _gdal_read(f'ZARR:"{out}":/{name}')
    assert CRS.from_wkt(got["wkt"]).to_epsg() == 32645
    assert got["geotransform"] == pytest.approx(list(GRID.transform.to_gdal()), abs=1e-6)
    assert got["nodata"] == 255 and got["shape"] == list(GRID.shape)
    np.testing.assert_array_equal(got["pixels"], stored_array(out, name)[...])


# -- resume, skip, fingerprint -------------------------------------------------------------------


def _files(store: Path) -> dict[str, bytes]:
    """Every file of a store; gzip's write-time field (bytes 4-8 of a chunk) zeroed."""
    out = {}
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name != "zarr.json" and data[:2] == b"\x1f\x8b":
            data = data[:4] + b"\0\0\0\0" + data[8:]
        out[str(path.relative_to(store))] = data
    return out


def _assert_same_store(a: Path, b: Path) -> None:
    for name in ("probability", "mask", "x", "y", "spatial_ref", "progress/done"):
        left, right = zarr.open_array(a / name, mode="r"), zarr.open_array(b / name, mode="r")
        np.testing.assert_array_equal(left[...], right[...])
    files_a, files_b = _files(a), _files(b)
    assert sorted(files_a) == sorted(files_b)
    changed = [k for k in files_a if files_a[k] != files_b[k]]
    assert not changed, f"files differ: {changed[:5]}"


def test_interrupted_write_resumes_to_the_same_bytes(reference, tmp_path):
    out = tmp_path / "map.zarr"
    with pytest.raises(RuntimeError, match="on purpose"):
        write_map(probability(blocks=Blocks(fail_after=9)), out, THRESHOLD, ATTRS)
    partial = map_status(out)
    assert 0 < partial.done < partial.total == _n_blocks()
    resumed = Blocks()
    write_map(probability(blocks=resumed), out, THRESHOLD, ATTRS)
    assert resumed.count == partial.total - partial.done  # done chunks are not recomputed
    assert map_status(out).complete
    _assert_same_store(reference[0], out)


def test_rerun_of_a_finished_store_computes_nothing(reference, tmp_path, caplog):
    out = tmp_path / "map.zarr"
    write_map(probability(), out, THRESHOLD, ATTRS)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = Blocks()
    with caplog.at_level("INFO", logger="geoslide.mapping.store"):
        write_map(probability(blocks=again), out, THRESHOLD, ATTRS)
    assert again.count == 0
    assert "complete" in caplog.text
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("threshold", "attrs", "chunk", "what"), [
    (0.6, ATTRS, CHUNK, "threshold"),
    (THRESHOLD, {**ATTRS, "model": "other"}, CHUNK, "params.model"),
    (THRESHOLD, ATTRS, 48, "chunks"),
])
def test_rerun_with_other_parameters_is_refused(reference, threshold, attrs, chunk, what):
    out, _ = reference
    untouched = Blocks()
    with pytest.raises(OutputError, match=rf"{what}.*pick a new --out or delete the old store"):
        write_map(probability(chunk=chunk, blocks=untouched), out, threshold, attrs)
    assert untouched.count == 0


def test_something_else_at_out_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a geoslide map store"):
        write_map(probability(), tmp_path, THRESHOLD, ATTRS)
    with pytest.raises(OutputError, match="no map store"):
        open_map(tmp_path / "missing.zarr")


def test_distributed_client_writes_and_resumes_the_same(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "map.zarr"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cl, \
            distributed.Client(cl) as client:
        with pytest.raises(RuntimeError, match="on purpose"):
            write_map(probability(blocks=Blocks(fail_after=5)), out, THRESHOLD, ATTRS, client=client)
        partial = map_status(out)
        assert partial.done < partial.total
        resumed = Blocks()
        write_map(probability(blocks=resumed), out, THRESHOLD, ATTRS, client=client)
    assert resumed.count == partial.total - partial.done
    _assert_same_store(reference[0], out)


def test_progress_bar_counts_chunks(tmp_path, capsys):
    write_map(probability(), tmp_path / "map.zarr", THRESHOLD, ATTRS, progress=True)
    assert f"{_n_blocks()}/{_n_blocks()}" in capsys.readouterr().err


def test_irregular_chunks_become_regular_store_chunks(tmp_path):
    p = probability().chunk({"y": (40, 30, 30), "x": (50, 50, 50)})
    out = write_map(p, tmp_path / "map.zarr", THRESHOLD, ATTRS)
    assert stored_array(out, "mask").chunks == (40, 50)
    np.testing.assert_array_equal(open_map(out)["mask"].values, open_map(write_map(
        probability(), tmp_path / "plain.zarr", THRESHOLD, ATTRS))["mask"].values)


def test_bad_inputs_say_what_to_fix(tmp_path):
    p = probability()
    with pytest.raises(CRSError, match="write_crs"):
        write_map(xr.DataArray(p.data, dims=p.dims, coords={"y": p.y, "x": p.x}), tmp_path / "a.zarr", 0.5, {})
    with pytest.raises(GridError, match="dims"):
        write_map(p.transpose("x", "y"), tmp_path / "b.zarr", 0.5, {})
    with pytest.raises(GridError, match="regular"):
        write_map(p.assign_coords(x=p.x.values ** 1.0001), tmp_path / "c.zarr", 0.5, {})
    assert not (tmp_path / "a.zarr").exists()
