"""``geoslide map --tiles``: the bundled model chosen by the tiles' bands and pixel size, and their checks.

Real imagery from ``../shared`` (NAIP North Dakota 2010, R, G, B, NIR at 5 m): a 4-band tile must be
mapped with the model's bands whatever their order in the file, found by the band names the file
gives, by ``--bands``, or by what ``geoslide import tiles`` assumes (red, green, blue[, nir]). The
reference is the same pixels written in the model's own band order and mapped with ``--model``.
Tiles in other units are refused, other pixel sizes warned about or, with ``--resolution``, mapped
at another one (reference: the tile resampled by GDAL and mapped as it is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from inprocess import run_cli
from PIL import Image
from rasterio.transform import from_origin

SICHUAN = Path(__file__).resolve().parents[2] / "pipelines/data/sichuan-aerial/test/images"
NAIP = Path(__file__).resolve().parents[3] / "shared/data/backgrounds/naip-nd-5m/m_4709963_se_14_1_20100629.tif"
pytestmark = [pytest.mark.skipif(not NAIP.exists(), reason="needs ../shared beside the repository"),
              pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")]


@pytest.fixture(scope="module")
def naip() -> np.ndarray:
    """A 256 px crop of real NAIP (red, green, blue, nir), uint8."""
    with rasterio.open(NAIP) as ds:
        return ds.read(window=((200, 456), (300, 556)))


def _tif(path: Path, data: np.ndarray, names: tuple[str, ...] | None = None, resolution: float = 5.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=len(data),
                       dtype=data.dtype, photometric="MINISBLACK",  # as NAIP ships: a 4th band is not alpha
                       crs="EPSG:26914", transform=from_origin(485_902, 5_209_248, resolution, resolution)) as ds:
        ds.write(data)
        for i, name in enumerate(names or ()):
            ds.set_band_description(i + 1, name)
    return path


def _masks(out: Path) -> dict[str, np.ndarray]:
    with rasterio.open(next(out.glob("*.tif"))) as ds:
        return ds.read(1)


def test_a_folder_of_rgb_pngs_is_mapped_with_the_bundled_rgb_model_progress_shown_only_when_asked(tmp_path, naip):
    Image.fromarray(naip[:3].transpose(1, 2, 0)).save((tmp_path / "tiles").mkdir() or tmp_path / "tiles" / "a.png")
    chosen = run_cli("map", "--tiles", tmp_path / "tiles", "--out", tmp_path / "auto")
    assert chosen.returncode == 0, chosen.stderr
    assert "model: bundled model 'rgb' (red, green, blue" in chosen.stdout
    assert "%|" not in chosen.stderr, "a progress bar in a pipe, without --progress"
    given = run_cli("map", "--tiles", tmp_path / "tiles", "--model", "rgb", "--out", tmp_path / "given", "--progress")
    assert given.returncode == 0, given.stderr
    assert "mapping tiles: 100%" in given.stderr
    auto = np.asarray(Image.open(tmp_path / "auto" / "a.png"))
    np.testing.assert_array_equal(auto, np.asarray(Image.open(tmp_path / "given" / "a.png")))


@pytest.mark.parametrize("how", ["descriptions", "bands option"])
def test_four_bands_in_any_order_reach_the_rgbn_model_as_blue_green_red_nir(tmp_path, naip, how):
    reference = _tif(tmp_path / "ref" / "t.tif", naip[[2, 1, 0, 3]])  # the model's order, mapped with --model
    done = run_cli("map", "--tiles", reference.parent, "--model", "rgbn", "--bands", "blue", "green", "red", "nir",
                "--out", tmp_path / "ref-out")
    assert done.returncode == 0, done.stderr
    shuffled = [3, 0, 2, 1]  # nir, red, blue, green in the file
    names = ("nir", "red", "blue", "green")
    if how == "descriptions":
        _tif(tmp_path / "tiles" / "t.tif", naip[shuffled], names=("NIR", "B04", "blue", "Green"))
        extra = ()
    else:
        _tif(tmp_path / "tiles" / "t.tif", naip[shuffled])
        extra = ("--bands", *names)
    chosen = run_cli("map", "--tiles", tmp_path / "tiles", "--out", tmp_path / "out", *extra)
    assert chosen.returncode == 0, chosen.stderr
    assert "model: bundled model 'rgbn'" in chosen.stdout
    np.testing.assert_array_equal(_masks(tmp_path / "out"), _masks(tmp_path / "ref-out"))


def test_an_rgbn_tile_is_mapped_by_the_rgb_model_on_its_red_green_blue(tmp_path, naip):
    _tif(tmp_path / "rgbn" / "t.tif", naip, resolution=1.0)  # unnamed 4 bands: red, green, blue, nir
    _tif(tmp_path / "rgb" / "t.tif", naip[:3], resolution=1.0)
    for name in ("rgbn", "rgb"):
        done = run_cli("map", "--tiles", tmp_path / name, "--model", "rgb", "--out", tmp_path / f"{name}-out")
        assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(_masks(tmp_path / "rgbn-out"), _masks(tmp_path / "rgb-out"))


def test_an_rgbn_tile_saved_with_gdal_defaults_keeps_its_nir_band_that_gdal_calls_alpha(tmp_path, naip):
    _tif(tmp_path / "plain" / "t.tif", naip)
    path = tmp_path / "default" / "t.tif"
    path.parent.mkdir()
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=4, dtype="uint8", crs="EPSG:26914",
                       transform=from_origin(485_902, 5_209_248, 5.0, 5.0)) as ds:  # GDAL: RGB + alpha
        ds.write(naip)
    with rasterio.open(path) as ds:
        assert ds.colorinterp[3] == rasterio.enums.ColorInterp.alpha
    for name in ("plain", "default"):
        done = run_cli("map", "--tiles", tmp_path / name, "--out", tmp_path / f"{name}-out")
        assert done.returncode == 0 and "model: bundled model 'rgbn'" in done.stdout, done.stderr
    np.testing.assert_array_equal(_masks(tmp_path / "default-out"), _masks(tmp_path / "plain-out"))


@pytest.mark.parametrize("case", ["bands count", "mixed tiles", "no model fits"])
def test_tiles_no_bundled_model_can_take_are_refused_in_one_line(tmp_path, naip, case):
    if case == "bands count":
        _tif(tmp_path / "tiles" / "t.tif", naip)
        args = ("--bands", "red", "green", "blue")
        expected = "--bands names 3 band(s) but the tiles have 4"
    elif case == "mixed tiles":
        _tif(tmp_path / "tiles" / "a.tif", naip)
        _tif(tmp_path / "tiles" / "b.tif", naip[:3])
        args, expected = (), "tiles differ in band count ([3, 4])"
    else:
        _tif(tmp_path / "tiles" / "t.tif", naip[:2])
        args, expected = (), "no bundled model fits imagery with bands ['b1', 'b2']"
    done = run_cli("map", "--tiles", tmp_path / "tiles", "--out", tmp_path / "out", *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_tiles_in_other_units_are_refused_and_other_pixel_sizes_warned_in_one_line(tmp_path, naip):
    _tif(tmp_path / "reflectance" / "t.tif", naip[:3].astype("float32") * 0.0012, resolution=1.0)
    done = run_cli("map", "--tiles", tmp_path / "reflectance", "--model", "rgb", "--out", tmp_path / "out")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "look like reflectance (0-1)" in lines[0] and "convert the tiles" in lines[0]
    assert not (tmp_path / "out").exists()
    _tif(tmp_path / "coarse" / "t.tif", naip[:3], resolution=10.0)
    done = run_cli("map", "--tiles", tmp_path / "coarse", "--model", "rgb", "--out", tmp_path / "coarse-out")
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warned == ["geoslide map: warning: the imagery's 10 m pixels are outside model rgb's training range "
                      "(0.3-2.99 m): landslides may be missed or over-mapped; --resolution model resamples to it"]


def test_resolution_maps_georeferenced_tiles_at_another_pixel_size_and_back_onto_them(tmp_path):
    from rasterio.enums import Resampling

    rgb = np.asarray(Image.open(SICHUAN / "sichuan-009.jpg").convert("RGB")).transpose(2, 0, 1)  # 26 % flagged
    _tif(tmp_path / "one-metre" / "t.tif", rgb, resolution=1.0)
    with rasterio.open(tmp_path / "one-metre" / "t.tif") as ds:  # GDAL's bilinear to 0.5 m, the reference
        fine = ds.read(out_shape=(3, 2 * ds.height, 2 * ds.width), resampling=Resampling.bilinear)
    _tif(tmp_path / "half-metre" / "t.tif", fine, resolution=0.5)
    for name, extra in (("one-metre", ("--resolution", "0.5")), ("half-metre", ())):
        done = run_cli("map", "--tiles", tmp_path / name, "--model", "rgb", "--out", tmp_path / f"{name}-out", *extra)
        assert done.returncode == 0, done.stderr
    with rasterio.open(tmp_path / "one-metre-out" / "t.tif") as ds:
        assert ds.res == (1.0, 1.0) and ds.shape == rgb.shape[1:]  # back on the tile's own grid
        mask = ds.read(1) == 1
    reference = (_masks(tmp_path / "half-metre-out") == 1)[::2, ::2]
    # measured: 99.7 % agreement and 22.2 % vs 22.2 % flagged; mapped at its own 1 m the tile agrees 95.5 % (26.2 %)
    assert 0.05 < reference.mean() and (mask == reference).mean() > 0.98
    assert mask.mean() == pytest.approx(reference.mean(), rel=0.08)


def test_resolution_needs_georeferenced_tiles(tmp_path, naip):
    Image.fromarray(naip[:3].transpose(1, 2, 0)).save((tmp_path / "tiles").mkdir() or tmp_path / "tiles" / "a.png")
    done = run_cli("map", "--tiles", tmp_path / "tiles", "--model", "rgb", "--resolution", "model", "--out",
                tmp_path / "out")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "has no georeferencing" in lines[0], done.stderr
    assert "--pixel-size" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_declared_pixel_size_maps_plain_pngs_as_the_same_pixels_georeferenced_at_that_size(tmp_path):
    """Reference: the same pixels in a GeoTIFF whose transform gives 0.5 m, mapped at --resolution 1."""
    rgb = np.asarray(Image.open(SICHUAN / "sichuan-009.jpg").convert("RGB")).transpose(2, 0, 1)
    Image.fromarray(rgb.transpose(1, 2, 0)).save((tmp_path / "png").mkdir() or tmp_path / "png" / "t.png")
    _tif(tmp_path / "tif" / "t.tif", rgb, resolution=0.5)
    for name in ("png", "tif"):
        extra = ("--pixel-size", "0.5") if name == "png" else ()
        done = run_cli("map", "--tiles", tmp_path / name, "--resolution", "1", "--out", tmp_path / f"{name}-out",
                       *extra)
        assert done.returncode == 0, done.stderr
        assert "model: bundled model 'rgb'" in done.stdout
    png = np.asarray(Image.open(tmp_path / "png-out" / "t.png"))
    reference = _masks(tmp_path / "tif-out")
    assert 0.05 < (reference == 1).mean()
    np.testing.assert_array_equal(png, reference)
    areas = {n: pd.read_csv(tmp_path / f"{n}-out" / "summary.csv")["landslide_m2"].item() for n in ("png", "tif")}
    assert areas["png"] == areas["tif"] == (reference == 1).sum() * 0.25


YELL = NAIP.parents[1] / "neon-yell-0p1m/2019_YELL_2_541000_4977000_image_crop.png"


def test_a_real_uav_scale_png_is_warned_at_its_declared_pixels_and_clean_at_the_models(tmp_path):
    """Real NEON airborne RGB at 0.1 m (forest and a road, no landslides), a plain PNG as released.

    Mapped at its own 0.1 m pixels the bundled ``rgb`` (0.3-3 m) flags 1.1 % of it (measured
    2026-11-30), at the model's pixel size 0.06 %.
    """
    (tmp_path / "tiles").mkdir()
    (tmp_path / "tiles" / YELL.name).symlink_to(YELL)
    native = run_cli("map", "--tiles", tmp_path / "tiles", "--pixel-size", "0.1", "--out", tmp_path / "native")
    assert native.returncode == 0, native.stderr
    warned = [line for line in native.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1 and "0.1 m pixels are outside" in warned[0] and "--resolution model" in warned[0]
    resampled = run_cli("map", "--tiles", tmp_path / "tiles", "--pixel-size", "0.1", "--resolution", "model",
                     "--out", tmp_path / "model")
    assert resampled.returncode == 0 and "warning" not in resampled.stderr, resampled.stderr
    mask = np.asarray(Image.open(tmp_path / "model" / YELL.name))
    with Image.open(YELL) as im:
        assert mask.shape == im.size[::-1]  # back on the tile's own pixels
    assert (mask == 1).mean() < 0.005
    row = pd.read_csv(tmp_path / "model" / "summary.csv").iloc[0]
    assert row["landslide_m2"] == pytest.approx(row["landslide_pixels"] * 0.01)


def test_plain_tiles_of_unknown_pixel_size_get_one_line_saying_how_to_declare_it(tmp_path, naip):
    Image.fromarray(naip[:3].transpose(1, 2, 0)).save((tmp_path / "tiles").mkdir() or tmp_path / "tiles" / "a.png")
    _tif(tmp_path / "tiles" / "b.tif", naip[:3], resolution=1.0)
    for extra, expected in (((), 1), (("--pixel-size", "1"), 0)):
        done = run_cli("map", "--tiles", tmp_path / "tiles", "--out", tmp_path / f"out{expected}", *extra)
        assert done.returncode == 0, done.stderr
        warned = [line for line in done.stderr.splitlines() if "warning" in line]
        assert len(warned) == expected, done.stderr
        assert all("1 tile(s) have no georeferencing" in w and "--pixel-size M" in w for w in warned)


@pytest.mark.parametrize("value", ["0", "-0.5", "nan"])
def test_a_pixel_size_that_is_no_size_is_refused_in_one_line(tmp_path, naip, value):
    Image.fromarray(naip[:3].transpose(1, 2, 0)).save((tmp_path / "tiles").mkdir() or tmp_path / "tiles" / "a.png")
    done = run_cli("map", "--tiles", tmp_path / "tiles", "--pixel-size", value, "--out", tmp_path / "out")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "pixel" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_tile_options_without_tiles_are_refused_in_one_line(tmp_path):
    done = run_cli("map", "--pixel-size", "0.5", "--out", tmp_path / "m.zarr")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "--pixel-size apply to --tiles only" in lines[0], done.stderr
    assert not (tmp_path / "m.zarr").exists()


@pytest.mark.parametrize("value, says", [("0", "must be positive"), ("-3", "must be positive"),
                                         ("1e-9", "times finer than"), ("1e9", "coarser than the whole tile")])
def test_a_resolution_no_tile_can_be_mapped_at_is_refused_in_one_line(tmp_path, naip, value, says):
    _tif(tmp_path / "tiles" / "t.tif", naip)
    done = run_cli("map", "--tiles", tmp_path / "tiles", "--resolution", value, "--out", tmp_path / "out")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and says in lines[0], done.stderr
    assert not (tmp_path / "out").exists()
