"""Shared fixtures: a static STAC catalog over real rasters, and a real STAC API serving it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pystac
import pytest
import rasterio

from geoslide.catalog.build import AssetSpec, BandInfo, raster_item
from geoslide.catalog.trust import ENV_VAR

DATA = Path(__file__).parent / "fixtures"
S2 = DATA / "xrspatial_S2_RGBN_10m_epsg32719.tif"
L8 = DATA / "satellite_LC08_195025_20130707_RGBN_30m.tif"
DEM = DATA / "satellite_DEM_30m.tif"
L7 = DATA / "stars_L7_ETMs_28m.tif"
RGBN = ("red", "green", "blue", "nir")


def _bands(names, wavelengths=None):
    wl = wavelengths or [None] * len(names)
    return tuple(BandInfo(n, n, w) for n, w in zip(names, wl, strict=True))


def _split_bands(src: Path, out_dir: Path, names) -> list[AssetSpec]:
    """Write each band of ``src`` as its own GeoTIFF (the one-COG-per-band layout)."""
    specs = []
    with rasterio.open(src) as ds:
        profile = ds.profile | {"count": 1}
        for i, name in enumerate(names, start=1):
            path = out_dir / f"{src.stem}_{name}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(ds.read(i), 1)
            specs.append(AssetSpec(name, str(path), _bands([name])))
    return specs


def build_real_items(folder: Path) -> list[pystac.Item]:
    """Items over the real rasters, with copies of the files in ``folder``."""
    for f in (S2, L8, DEM, L7):
        shutil.copy(f, folder / f.name)
    s2, l8, dem, l7 = (folder / f.name for f in (S2, L8, DEM, L7))
    day = lambda y, m, d: datetime(y, m, d, 10, 30, tzinfo=UTC)  # noqa: E731
    items = [
        raster_item("s2-pre", day(2023, 1, 10), [AssetSpec("image", str(s2), _bands(RGBN, [0.665, 0.56, 0.49, 0.842]))],
                    collection="s2-patagonia", properties={"eo:cloud_cover": 3.0, "platform": "sentinel-2a"}),
        raster_item("s2-post", day(2023, 3, 2), _split_bands(s2, folder, RGBN), collection="s2-patagonia",
                    properties={"eo:cloud_cover": 21.5, "platform": "sentinel-2b"}),
        raster_item("l8-alps", day(2013, 7, 7), [
            AssetSpec("rgbn", str(l8), _bands(RGBN)),
            AssetSpec("dem", str(dem), (BandInfo("elevation", unit="m"),)),
        ], collection="l8-alps", properties={"eo:cloud_cover": 0.0, "platform": "landsat-8"}),
        raster_item("l7-olinda", day(2000, 8, 1), [
            AssetSpec("etm", str(l7), _bands(["blue", "green", "red", "nir", "swir16", "swir22"]))
        ], collection="l7-olinda", properties={"eo:cloud_cover": 10.0, "platform": "landsat-7"}),
    ]
    return items


def _collections(items: list[pystac.Item]) -> dict[str, pystac.Collection]:
    out = {}
    for cid in sorted({i.collection_id for i in items}):
        members = [i for i in items if i.collection_id == cid]
        box = [min(i.bbox[0] for i in members), min(i.bbox[1] for i in members),
               max(i.bbox[2] for i in members), max(i.bbox[3] for i in members)]
        extent = pystac.Extent(pystac.SpatialExtent([box]),
                               pystac.TemporalExtent([[min(i.datetime for i in members), None]]))
        out[cid] = pystac.Collection(cid, f"real test rasters: {cid}", extent, license="other")
    return out


@pytest.fixture(scope="session")
def real_catalog(tmp_path_factory) -> Iterator[dict]:
    """A static catalog on disk plus ``items.json``/collection files with ``file://`` hrefs.

    The rasters lie beside the catalog (``stac/``), not in it, and the STAC APIs serving the same
    items name them by ``file://``: both are outside a catalog's own places, so the folder is
    trusted explicitly (``$GEOSLIDE_ALLOW_ASSETS``, as a user would) while the fixture lives.
    """
    folder = tmp_path_factory.mktemp("realcat")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_VAR, ",".join(filter(None, [os.environ.get(ENV_VAR), str(folder)])))
        yield _real_catalog(folder)


def _real_catalog(folder: Path) -> dict:
    items = build_real_items(folder)
    api_dir = folder / "api"
    api_dir.mkdir()
    features = []
    for item in items:
        d = item.to_dict(include_self_link=False)
        for asset in d["assets"].values():
            asset["href"] = Path(asset["href"]).resolve().as_uri()
        features.append(d)
    (api_dir / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    collections = _collections(items)
    cat = pystac.Catalog("real", "real rasters for geoslide tests")
    collection_files = []
    for cid, col in collections.items():
        col.add_items([i.clone() for i in items if i.collection_id == cid])
        cat.add_child(col)
        path = api_dir / f"{cid}.json"
        path.write_text(json.dumps(col.to_dict(include_self_link=False, transform_hrefs=False) | {"links": []}))
        collection_files.append(path)
    cat.normalize_and_save(str(folder / "stac"), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return {"catalog": folder / "stac" / "catalog.json", "items": items, "api_files": collection_files
            + [api_dir / "items.json"], "folder": folder}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stac_api(real_catalog):
    """A real STAC API (``rustac serve``, in-memory backend) on loopback serving the real items."""
    beside = Path(sys.executable).parent / "rustac"  # the venv's bin, also when it is not activated
    exe = str(beside) if beside.is_file() else shutil.which("rustac")
    if exe is None:  # a declared test dependency: missing it is an error, not a skip
        raise RuntimeError("rustac is not installed; pip install -e '.[test]'")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([exe, "serve", "--addr", f"127.0.0.1:{port}", *map(str, real_catalog["api_files"])],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"rustac serve did not start: {proc.stdout.read().decode()[-500:]}") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API (moto_server) on loopback for the whole session; yields its endpoint URL."""
    from servers import running_s3

    with running_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> dict[str, str]:
    """This process (and subprocesses given ``os.environ``) pointed at the loopback S3 API."""
    from servers import s3_environment

    env = s3_environment(s3_endpoint)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def s3_bucket(s3_env) -> str:
    """A new, empty bucket on the loopback S3 API; yields ``s3://NAME``."""
    import uuid

    from geoslide.fileio import filesystem

    name = f"t-{uuid.uuid4().hex[:12]}"
    fs, _ = filesystem(f"s3://{name}")
    fs.mkdir(name)
    return f"s3://{name}"
