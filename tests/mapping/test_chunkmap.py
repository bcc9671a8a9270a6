"""``geoslide map`` one task per chunk, on a catalog across UTM zones, against the cube path on a reference mosaic.

The reference image is the items' mosaic made independently with rasterio and numpy
(tests/zones.py); mapping it through :func:`predict_proba` + :func:`write_map` (map_overlap over an
in-memory image) must give exactly the bytes that ``run_map`` writes reading the COGs chunk by chunk.
"""

from __future__ import annotations

import numpy as np
import pystac
import pytest
import xarray as xr
import zarr

from geoslide.mapping.chunkmap import chunked_map
from geoslide.mapping.inference import predict_proba
from geoslide.mapping.job import MapSpec, run_map
from geoslide.mapping.spec import InferenceSpec
from geoslide.mapping.store import DONE, map_status, write_map
from geoslide.models.card import bundled_model_path, resolve_model
from geoslide.raster.sources import plan_mosaic
from tests.zones import BANDS, TARGET, reference_mosaic, zone_catalog

SPEC = InferenceSpec(chunk=64)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zones")
    items = zone_catalog(folder)
    path = folder / "items.json"
    pystac.ItemCollection(items).save_object(str(path))
    return items, str(path)


@pytest.fixture(scope="module")
def mapped(catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("map") / "zones.zarr"
    run_map(None, MapSpec(out=str(out), model="demo", epsg=TARGET, resolution=10.0, inference=SPEC, quicklook=False,
                          allow_mixed_dates=True), catalog=catalog[1])
    return out


def test_equals_the_cube_path_over_a_rasterio_reference_mosaic(catalog, mapped, tmp_path):
    model = resolve_model(bundled_model_path())
    grid = plan_mosaic(catalog[0], BANDS, epsg=TARGET, resolution=10.0).grid
    image = xr.DataArray(reference_mosaic(catalog[0], grid), dims=("band", "y", "x"),
                         coords={"band": list(BANDS), "y": grid.y_coords(), "x": grid.x_coords()}).rio.write_crs(TARGET)
    write_map(predict_proba(image, model, SPEC), tmp_path / "ref.zarr", model.card.threshold, {})
    ours, ref = zarr.open_group(str(mapped), mode="r"), zarr.open_group(str(tmp_path / "ref.zarr"), mode="r")
    for variable in ("probability", "mask"):
        np.testing.assert_array_equal(ours[variable][...], ref[variable][...])
    assert (ours["mask"][...] != 255).mean() > 0.2


def test_chunks_without_items_are_never_computed(catalog, mapped):
    group = zarr.open_group(str(mapped), mode="r")
    assert map_status(mapped).complete
    model = resolve_model(bundled_model_path())
    plan = plan_mosaic(catalog[0], BANDS, epsg=TARGET, resolution=10.0)
    result = chunked_map(plan, model, SPEC)
    assert result.tasks == np.prod(result.encoded.numblocks[1:])  # one task per output chunk
    assert result.empty
    for i, j in result.empty:
        assert not (mapped / "probability" / "c" / str(i) / str(j)).exists()
        assert (group["probability"][i * 64:(i + 1) * 64, j * 64:(j + 1) * 64] == 255).all()
    written = {(int(p.parent.name), int(p.name)) for p in (mapped / "probability" / "c").glob("*/*")}
    assert written and not written & result.empty


def test_a_rerun_recomputes_only_chunks_not_marked_done(catalog, mapped):
    group = zarr.open_group(str(mapped), mode="r+", use_consolidated=False)  # progress/done is not consolidated
    before = group["probability"][...].copy()
    (i, j) = sorted({(int(p.parent.name), int(p.name)) for p in (mapped / "probability" / "c").glob("*/*")})[0]
    other = next(p for p in (mapped / "mask" / "c").glob("*/*") if (int(p.parent.name), int(p.name)) != (i, j))
    stamp = other.stat().st_mtime_ns
    group["probability"][i * 64:(i + 1) * 64, j * 64:(j + 1) * 64] = 0
    n_cols = -(-group["probability"].shape[1] // 64)
    group[DONE][i * n_cols + j] = 0  # progress/done is flat: one entry per chunk, row by row
    run_map(None, MapSpec(out=str(mapped), model="demo", epsg=TARGET, resolution=10.0, inference=SPEC, quicklook=False,
                          allow_mixed_dates=True), catalog=catalog[1])
    np.testing.assert_array_equal(zarr.open_group(str(mapped), mode="r")["probability"][...], before)
    assert other.stat().st_mtime_ns == stamp
