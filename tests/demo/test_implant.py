"""Scars implanted into real imagery: shapes, labels, radiometry, and the catalog they are written to."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from scipy.ndimage import distance_transform_edt

from geoslide.demo.backgrounds import Background, read_background
from geoslide.demo.implant import ImplantSpec, bare_ground, label_mask, paint, scar_outlines
from geoslide.demo.implanted import ImplantedSpec, write_implanted
from geoslide.demo.radiometry import Radiometry, finish, to_sensor
from geoslide.errors import ConfigError
from geoslide.raster.grid import GridSpec
from geoslide.raster.resize import resample

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL_RGBN = FIXTURES / "xrspatial_S2_RGBN_10m_epsg32719.tif"  # real Sentinel-2 (red, green, blue, nir), uint16
# real Sentinel-2 as xarray-spatial ships it: one netCDF per band, SWIR named swir1 and swir2 (../shared beside)
PATAGONIA = Path(__file__).resolve().parents[3] / "shared/data/backgrounds/s2-patagonia-10m"


def _grid(h: int = 300, w: int = 260, res: float = 2.0) -> GridSpec:
    return GridSpec(32633, (500_000.0, 5_000_000.0, 500_000.0 + w * res, 5_000_000.0 + h * res), res)


def test_scars_cover_about_the_asked_share_and_stay_on_valid_ground():
    grid = _grid()
    valid = np.ones(grid.shape, bool)
    valid[:, :40] = False  # a nodata strip
    scars = scar_outlines(grid, valid, ImplantSpec(cover=0.06), np.random.default_rng(0))
    assert len(scars) > 3 and scars.crs.to_epsg() == 32633
    assert scars.geometry.is_valid.all() and (scars.geometry.geom_type == "Polygon").all()
    share = shapely.union_all(scars.geometry.values).area / (valid.sum() * grid.resolution**2)
    assert 0.04 < share < 0.15  # the last scar may overshoot; overlaps of clusters count once
    x0 = grid.bounds[0]
    crowns_x = [g.centroid.x for g in scars.geometry]
    assert min(crowns_x) > x0 + 20 * grid.resolution  # placed from valid pixels (they may reach into the strip)


def test_label_mask_marks_the_pixel_centres_inside_scars():
    grid = _grid(120, 100)
    valid = np.ones(grid.shape, bool)
    valid[0, :] = False
    scars = scar_outlines(grid, valid, ImplantSpec(cover=0.1), np.random.default_rng(1))
    mask = label_mask(scars, grid, valid)
    rows, cols = np.mgrid[0 : grid.shape[0], 0 : grid.shape[1]]
    x = grid.bounds[0] + (cols + 0.5) * grid.resolution
    y = grid.bounds[3] - (rows + 0.5) * grid.resolution
    inside = shapely.contains_xy(shapely.union_all(scars.geometry.values), x, y)
    assert (mask[0] == 255).all()
    agree = (mask[1:] == 1) == inside[1:]
    assert agree.mean() > 0.995  # rasterio and shapely differ only on boundary pixels
    assert set(np.unique(mask)) <= {0, 1, 255}


def test_paint_changes_only_pixels_at_scars_and_brightens_vegetation():
    grid = _grid(200, 200)
    rng = np.random.default_rng(2)
    image = np.stack([np.full(grid.shape, v) for v in (0.03, 0.06, 0.04, 0.35)])  # green vegetation: b, g, r, nir
    scars = scar_outlines(grid, np.ones(grid.shape, bool), ImplantSpec(cover=0.05), rng)
    bare = np.array([0.12, 0.15, 0.19, 0.25])
    out = paint(image, grid, scars, bare, rng)
    near = shapely.union_all(scars.buffer(5 * grid.resolution).geometry.values)  # soft edge + rim shadow
    rows, cols = np.mgrid[0:200, 0:200]
    x = grid.bounds[0] + (cols + 0.5) * grid.resolution
    y = grid.bounds[3] - (rows + 0.5) * grid.resolution
    far = ~shapely.contains_xy(near, x, y)
    np.testing.assert_array_equal(out[:, far], image[:, far])
    mask = label_mask(scars, grid, np.ones(grid.shape, bool)) == 1
    red, nir = out[2][mask], out[3][mask]
    assert np.median((nir - red) / (nir + red)) < 0.3 < (0.35 - 0.04) / 0.39  # scars lose the vegetation signal


def _painted_scars(spec: ImplantSpec, seed: int) -> np.ndarray:
    """Median scar colour (blue, green, red) painted into uniform forest with ``spec``'s tone and hue."""
    grid = _grid(160, 160)
    rng = np.random.default_rng(seed)
    image = np.stack([np.full(grid.shape, v) for v in (0.03, 0.06, 0.04)])
    scars = scar_outlines(grid, np.ones(grid.shape, bool), ImplantSpec(cover=0.08, revegetated=0.0), rng)
    out = paint(image, grid, scars, np.array([0.10, 0.13, 0.17]), rng, spec)
    mask = label_mask(scars, grid, np.ones(grid.shape, bool)) == 1
    return np.median(out[:, mask], axis=1)


def test_tone_scales_the_scar_material_against_the_bare_ground():
    dull = _painted_scars(ImplantSpec(tone=(0.5, 0.5)), seed=4)
    bright = _painted_scars(ImplantSpec(tone=(1.2, 1.2)), seed=4)  # same draws otherwise
    np.testing.assert_allclose(bright / dull, 2.4, rtol=0.06)  # remnant trees keep some forest in the median


def test_hue_changes_the_scar_colour_of_a_scene_but_not_its_brightness():
    plain = np.array([_painted_scars(ImplantSpec(hue=0.0), seed) for seed in range(12)])
    varied = np.array([_painted_scars(ImplantSpec(hue=0.1), seed) for seed in range(12)])  # same scars and tone
    shift = np.log(varied[:, 2] / varied[:, 0]) - np.log(plain[:, 2] / plain[:, 0])  # redder or bluer
    assert np.abs(shift).max() > 0.1 and shift.std() > 0.05
    brightness = np.log(varied).mean(axis=1) - np.log(plain).mean(axis=1)
    assert np.abs(brightness).max() < 0.05


def test_scar_colour_options_are_checked():
    with pytest.raises(ValueError, match="tone"):
        ImplantSpec(tone=(1.2, 0.6))
    with pytest.raises(ValueError, match="hue"):
        ImplantSpec(hue=-0.1)


def test_bare_ground_comes_from_the_scene_bare_pixels_not_water_or_forest():
    rng = np.random.default_rng(3)
    h, w = 100, 100
    image = np.empty((4, h, w))
    image[:, :, :50] = np.array([0.03, 0.06, 0.04, 0.40])[:, None, None]   # forest (blue, green, red, nir)
    image[:, :, 50:80] = np.array([0.05, 0.05, 0.03, 0.01])[:, None, None]  # water (NDVI < 0)
    image[:, :, 80:] = np.array([0.14, 0.17, 0.22, 0.27])[:, None, None]   # bright bare field
    image += rng.normal(0, 0.002, image.shape)
    bare = bare_ground(image, np.ones((h, w), bool), ["blue", "green", "red", "nir"], rng)
    assert bare[2] > 0.12 and bare[3] < 0.32  # bare field (possibly mixed with a soil spectrum), not forest/water


def test_to_sensor_writes_what_products_ship():
    rng = np.random.default_rng(4)
    refl = rng.uniform(0.01, 0.4, (3, 50, 50))
    dn = to_sensor(refl, "dn8", rng)
    assert dn.dtype == np.uint8 and dn.min() >= 1 and dn.max() <= 255 and dn.max() - dn.min() > 150
    # an auto-exposure stretch is monotonic: brighter reflectance never gives a darker value
    order = np.argsort(refl[0].ravel())
    assert (np.diff(dn[0].ravel()[order].astype(int)) >= 0).all()
    r16 = to_sensor(refl, "reflectance", rng)
    assert r16.dtype == np.uint16
    np.testing.assert_allclose(r16 * 1e-4, refl, atol=0.5e-4)


def test_to_sensor_exposure_ranges_give_dim_linear_products_and_defaults_stay_as_they_were():
    refl = np.random.default_rng(4).uniform(0.01, 0.4, (3, 50, 50))
    default = to_sensor(refl, "dn8", np.random.default_rng(7))
    np.testing.assert_array_equal(default, to_sensor(refl, "dn8", np.random.default_rng(7), Radiometry()))
    dim = to_sensor(refl, "dn8", np.random.default_rng(7), Radiometry(white=(2.0, 2.0), display_gamma=(1.0, 1.0)))
    # numpy's reference: black point as drawn, white point twice the 99.5th percentile, linear
    rng = np.random.default_rng(7)
    black = np.percentile(refl, 0.5) * rng.uniform(0.0, 0.8)
    white = np.percentile(refl, 99.5) * rng.uniform(2.0, 2.0)
    expected = np.round(np.clip((refl - black) / (white - black), 0, 1) * 254 + 1).astype(np.uint8)
    np.testing.assert_array_equal(dim, expected)
    assert dim.max() < 135 and dim.mean() < default.mean() - 40  # the top of the range left unused
    with pytest.raises(ValueError, match="display_gamma"):
        Radiometry(display_gamma=(0.0, 1.0))


def test_finish_draws_nothing_unless_asked_so_earlier_catalogs_stay_the_same():
    image = np.random.default_rng(0).random((3, 40, 40))
    rng = np.random.default_rng(5)
    out = finish(image, Radiometry(), rng)
    assert out is image and rng.random() == np.random.default_rng(5).random()


def test_finish_adds_sensor_noise_of_the_drawn_level_to_the_whole_scene():
    flat = np.full((2, 200, 200), 0.2)
    out = finish(flat, Radiometry(sensor_noise=(0.01, 0.01)), np.random.default_rng(1))
    assert out.std(axis=(1, 2)) == pytest.approx([0.01, 0.01], rel=0.05)
    assert out.mean() == pytest.approx(0.2, abs=1e-3)


def test_finish_sharpens_a_soft_edge_as_an_unsharp_mask():
    from scipy.ndimage import gaussian_filter

    edge = gaussian_filter(np.repeat(np.r_[np.zeros(20), np.ones(20)][None, None], 10, axis=1), (0, 0, 1.5))
    out = finish(edge, Radiometry(sharpen=(1.0, 1.0)), np.random.default_rng(2))
    assert np.abs(np.diff(out, axis=2)).max() > 1.12 * np.abs(np.diff(edge, axis=2)).max()  # steeper
    np.testing.assert_allclose(out[..., [0, -1]], edge[..., [0, -1]], atol=0.02)  # flat ground stays as it was


def test_radiometry_ranges_are_checked():
    with pytest.raises(ValueError, match="sensor_noise"):
        Radiometry(sensor_noise=(0.02, 0.01))
    with pytest.raises(ValueError, match="sharpen"):
        Radiometry(sharpen=(-1.0, 0.5))


def test_resample_keeps_a_constant_field_and_shrinks_the_valid_area():
    image = np.full((2, 90, 60), 7.0)
    valid = np.ones((90, 60), bool)
    valid[:10] = False
    out, kept = resample(image, valid, 3.0)
    assert out.shape == (2, 30, 20) and kept.shape == (30, 20)
    np.testing.assert_allclose(out, 7.0)
    assert not kept[:3].any() and kept[4:].all()


def test_read_background_refuses_missing_files_and_band_mismatches(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_background(Background(str(tmp_path / "nope.tif"), ("red",), 1.0))
    with pytest.raises(ConfigError, match="has 4 band"):
        read_background(Background(str(REAL_RGBN), ("red", "green", "blue"), 1e-4))


def test_band_files_are_named_apart_from_the_bands():
    import xarray as xr

    bg = Background(str(PATAGONIA / "{band}_band.nc"), ("blue", "red", "swir16", "swir22"), 1e-4, resolution=10.0,
                    files=("blue", "red", "swir1", "swir2"))
    scene = read_background(bg)
    assert scene.bands == ("blue", "red", "swir16", "swir22") and scene.image.shape[0] == 4
    with xr.open_dataarray(PATAGONIA / "swir2_band.nc") as swir2:
        np.testing.assert_allclose(scene.image[3], np.asarray(swir2.values, "float64") * 1e-4)
    with pytest.raises(ConfigError, match="files lists 2 name"):
        read_background(Background(bg.path, bg.bands, 1e-4, resolution=10.0, files=("swir1", "swir2")))


def test_real_scene_catalog_round_trips_through_rasterio_and_the_inventory(tmp_path):
    bg = Background(str(REAL_RGBN), ("red", "green", "blue", "nir"), 1e-4, name="patagonia")
    spec = ImplantedSpec("t", ("blue", "green", "red", "nir"), units="reflectance", resolution=(10.0, 10.0),
                         variants=2, implant=ImplantSpec(cover=0.06))
    catalog = write_implanted(tmp_path / "cat", [bg], spec, seed=5)
    items = sorted((tmp_path / "cat").glob("t/t-imagery/*/*.json"))
    assert len(items) == 2
    inventory = gpd.read_parquet(tmp_path / "cat/t/t-inventory/inventory.parquet")
    source = read_background(bg)
    for path in items:
        item = json.loads(path.read_text())
        tif = path.parent / Path(item["assets"]["image"]["href"]).name
        with rasterio.open(tif) as ds:
            data = ds.read()
            assert ds.res == (10.0, 10.0) and ds.crs.to_epsg() == 32633 and data.dtype == np.uint16
            assert [b["eo:common_name"] for b in item["assets"]["image"]["bands"]] == ["blue", "green", "red", "nir"]
            scars = inventory[inventory["event"] == item["id"]]
            assert len(scars) > 0
            bounds = shapely.box(*ds.bounds)
            assert all(bounds.intersects(g) for g in scars.geometry)
            mask = label_mask(scars, GridSpec(32633, tuple(ds.bounds), 10.0), data[0] > 0)
        assert item["properties"]["geoslide:landslide_pixels"] == int((mask == 1).sum()) > 0
        # real backgrounds: `map` without --model must pick a model for real imagery, not the demo world's
        assert item["properties"]["geoslide:implanted"] and "geoslide:synthetic" not in item["properties"]
        # away from the scars the real scene is kept, under one smooth radiometric change per band
        far = (distance_transform_edt(mask != 1) > 5) & (data[0] > 0)
        src = source.image[[2, 1, 0, 3]]  # file order red, green, blue, nir -> blue, green, red, nir
        for b in range(4):
            corr = np.corrcoef(data[b][far].astype(float), src[b][far])[0, 1]
            assert corr > 0.9, (b, corr)
    assert json.loads(catalog.read_text())["type"] == "Catalog"
    with pytest.raises(Exception, match="already exists"):
        write_implanted(tmp_path / "cat", [bg], spec, seed=5)
