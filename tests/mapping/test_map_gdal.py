"""Map stores as the GDAL versions in use open them: 3.6 (Debian 12), 3.10 (rasterio 1.4), 3.12 (pyogrio).

``zarr_format=2`` is for GDAL < 3.11 (which lacks Zarr v3's ``bytes`` codec) and the QGIS builds on
it; every GDAL must find the map's CRS, geotransform, nodata and pixels, compared with the grid the
store records, and list only the map's arrays, not geoslide's progress bookkeeping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import CRS
from test_mapstore import ATTRS, GDAL_READ, THRESHOLD, Blocks, probability

from geoslide.errors import ConfigError, OutputError
from geoslide.mapping.job import MapSpec
from geoslide.mapping.store import map_grid, map_status, map_zarr_format, open_map, stored_array, write_map

SUBDATASETS = r"""
import ctypes, glob, json, os, sys
import pyogrio
lib = glob.glob(os.path.join(os.path.dirname(pyogrio.__file__), "..", "pyogrio.libs", "libgdal*"))[0]
g = ctypes.CDLL(lib)
g.GDALAllRegister()
g.GDALOpen.restype, g.GDALOpen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
g.GDALGetMetadata.restype = ctypes.POINTER(ctypes.c_char_p)
g.GDALGetMetadata.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
md, i, out = g.GDALGetMetadata(g.GDALOpen(sys.argv[1].encode(), 0), b"SUBDATASETS"), 0, []
while md and md[i]:
    out.append(md[i].decode())
    i += 1
print(json.dumps(out))
"""


@pytest.fixture(scope="module", params=[2, 3])
def store(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"v{request.param}") / "event.zarr"
    write_map(probability(), out, THRESHOLD, ATTRS, zarr_format=request.param)
    return out


def _names(subdatasets: list[str]) -> set[str]:
    """Array paths out of ``SUBDATASET_n_NAME=ZARR:"path":/array`` lines (or bare names)."""
    return {s.split(":")[-1].strip('"/') for s in subdatasets if "_DESC=" not in s}


def _via_rasterio(out) -> tuple[dict, set[str]]:
    with rasterio.open(f'ZARR:"{out}":/mask') as src:
        got = {"version": rasterio.__gdal_version__, "wkt": src.crs.to_wkt(), "nodata": src.nodata,
               "geotransform": list(src.transform.to_gdal()), "pixels": src.read(1)}
    with warnings.catch_warnings():  # the group itself has no geotransform
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(str(out)) as src:
            return got, _names(src.subdatasets)


def _via_pyogrio(out) -> tuple[dict, set[str]]:
    run = subprocess.run([sys.executable, "-c", GDAL_READ, f'ZARR:"{out}":/mask'], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    if got.get("missing"):
        pytest.skip("pyogrio bundles no GDAL here")
    assert "error" not in got, got.get("error")
    import base64

    got["pixels"] = np.frombuffer(base64.b64decode(got.pop("data")), np.uint8).reshape(got["shape"])
    listed = subprocess.run([sys.executable, "-c", SUBDATASETS, str(out)], capture_output=True, text=True,
                            timeout=60, check=True)
    return got, _names(json.loads(listed.stdout))


def _via_debian(out, tmp_path) -> tuple[dict, set[str]]:
    if shutil.which("gdalinfo") is None:
        pytest.skip("no gdalinfo (Debian's gdal-bin; .ci/gdal.sh installs it)")
    version = subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True, check=True).stdout
    info = json.loads(subprocess.run(["gdalinfo", "-json", f'ZARR:"{out}":/mask'], capture_output=True,
                                     text=True, check=True).stdout)
    tif = tmp_path / "mask.tif"
    subprocess.run(["gdal_translate", "-q", f'ZARR:"{out}":/mask', str(tif)], check=True)
    with rasterio.open(tif) as src:
        pixels = src.read(1)
    group = json.loads(subprocess.run(["gdalinfo", "-json", str(out)], capture_output=True, text=True,
                                      check=True).stdout)
    listed = [v for k, v in group.get("metadata", {}).get("SUBDATASETS", {}).items() if k.endswith("_NAME")]
    got = {"version": version.split(",")[0].split()[-1], "wkt": info["coordinateSystem"]["wkt"],
           "geotransform": info["geoTransform"], "nodata": info["bands"][0]["noDataValue"], "pixels": pixels}
    return got, _names(listed)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(".")[:2])


def _check(got: dict, out) -> None:
    grid = map_grid(out)
    assert CRS.from_wkt(got["wkt"]).to_epsg() == grid.epsg
    assert got["geotransform"] == pytest.approx(list(grid.transform.to_gdal()), abs=1e-6)
    assert got["nodata"] == 255
    np.testing.assert_array_equal(got["pixels"], stored_array(out, "mask")[...])


def test_gdal_3_10_of_rasterio_reads_a_v2_store_and_lists_only_the_map(store):
    if map_zarr_format(store) == 3:
        if _version(rasterio.__gdal_version__) < (3, 11):
            with pytest.raises(rasterio.errors.RasterioIOError, match="codec"):
                _via_rasterio(store)
            return
    got, listed = _via_rasterio(store)
    _check(got, store)
    assert {"mask", "probability"} <= listed and "done" not in " ".join(listed)


def test_gdal_3_12_of_pyogrio_reads_the_store_and_lists_only_the_map(store):
    got, listed = _via_pyogrio(store)
    assert _version(got["version"]) >= (3, 11)
    _check(got, store)
    assert listed == {"mask", "probability"}


def test_debian_gdal_3_6_reads_a_v2_store(store, tmp_path):
    if map_zarr_format(store) == 3:
        pytest.skip("GDAL < 3.11 reads no Zarr v3 that zarr-python writes; that is what zarr_format=2 is for")
    got, listed = _via_debian(store, tmp_path)
    assert _version(got["version"]) < (3, 11)
    _check(got, store)
    assert {"mask", "probability"} <= listed and "done" not in " ".join(listed)


def test_xarray_opens_without_warning_and_open_map_gives_float32(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(store, decode_coords="all")
        assert ds.rio.crs.to_epsg() == 32645 and set(ds.data_vars) == {"probability", "mask"}
        assert open_map(store)["probability"].dtype == np.float32


def test_group_has_cf_and_zarr_conventions_attributes(store):
    import zarr

    attrs = zarr.open_group(str(store), mode="r").attrs
    grid = map_grid(store)
    assert attrs["Conventions"].startswith("CF-")
    assert {c["name"] for c in attrs["zarr_conventions"]} == {"proj:", "spatial"}
    assert attrs["proj:code"] == f"EPSG:{grid.epsg}" and CRS.from_wkt(attrs["proj:wkt2"]).to_epsg() == grid.epsg
    assert attrs["spatial:transform"] == pytest.approx(list(grid.transform)[:6])
    assert attrs["spatial:shape"] == list(grid.shape) and attrs["spatial:dimensions"] == ["y", "x"]
    mask = zarr.open_array(str(store), path="mask", mode="r")
    assert mask.attrs["spatial:dimensions"] == ["y", "x"]


def test_v2_store_resumes_and_refuses_the_other_format(tmp_path, store):
    fmt = map_zarr_format(store)
    out = tmp_path / "again.zarr"
    with pytest.raises(RuntimeError, match="on purpose"):
        write_map(probability(blocks=Blocks(fail_after=5)), out, THRESHOLD, ATTRS, zarr_format=fmt)
    other = 5 - fmt
    with pytest.raises(OutputError, match=f"--zarr-format {fmt}"):
        write_map(probability(), out, THRESHOLD, ATTRS, zarr_format=other)
    resumed = Blocks()
    write_map(probability(blocks=resumed), out, THRESHOLD, ATTRS, zarr_format=fmt)
    assert 0 < resumed.count < map_status(out).total and map_status(out).complete
    for name in ("probability", "mask"):
        np.testing.assert_array_equal(stored_array(out, name)[...], stored_array(store, name)[...])


def test_zarr_format_other_than_2_or_3_is_refused_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="2 or 3"):
        write_map(probability(), tmp_path / "x.zarr", THRESHOLD, ATTRS, zarr_format=4)
    with pytest.raises(ConfigError, match="2 or 3"):
        MapSpec(out=str(tmp_path / "x.zarr"), zarr_format=1)
    assert not (tmp_path / "x.zarr").exists()
