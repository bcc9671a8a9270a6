"""Reading user tiles as they come: palette (indexed-colour) images and truncated files.

A palette PNG is a colour image stored as one band of indexes into a colour table (web-map
screenshots, GIS exports, images saved with 256 colours). GDAL reports it as one band, which
used to be taken for a grey image and refused by every bundled model. The reference for what a
palette image shows is Pillow's own conversion to RGB. A PNG cut short (an interrupted download)
is read by GDAL without an error, its missing rows as zeros; it must be refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from inprocess import run_cli
from PIL import Image
from rasterio.transform import from_origin

from geoslide.data.tileread import read_tile, tile_header
from geoslide.errors import ConfigError

SICHUAN = Path(__file__).resolve().parents[2] / "pipelines/data/sichuan-aerial/test/images"
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


@pytest.fixture(scope="module")
def aerial() -> Image.Image:
    """A 192 px crop of a real aerial orthophoto (Sichuan test tile, CC BY 4.0)."""
    return Image.open(sorted(SICHUAN.glob("*.jpg"))[0]).convert("RGB").crop((300, 300, 492, 492))


def _palette_png(image: Image.Image, path: Path, transparency: int | None = None) -> Path:
    indexed = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    indexed.save(path, **({} if transparency is None else {"transparency": transparency}))
    return path


def test_a_palette_png_reads_as_the_colours_pillow_shows(tmp_path, aerial):
    path = _palette_png(aerial, tmp_path / "a.png")
    head = tile_header(path)
    assert head.names == ("red", "green", "blue")
    image, labels = read_tile(path, None, head, None)
    expected = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1).astype(np.float32)
    assert labels is None
    np.testing.assert_array_equal(image, expected)


def test_transparent_palette_entries_are_nodata(tmp_path, aerial):
    indexed = aerial.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    clear = int(np.asarray(indexed)[0, 0])
    path = _palette_png(aerial, tmp_path / "a.png", transparency=clear)
    image, _ = read_tile(path, None, tile_header(path), None)
    hidden = np.asarray(Image.open(path)) == clear
    assert hidden.any() and not hidden.all()
    assert np.isnan(image[:, hidden]).all()
    assert np.isfinite(image[:, ~hidden]).all()


def test_a_palette_geotiff_with_a_nodata_index(tmp_path, aerial):
    indexed = aerial.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    index = np.asarray(indexed)
    table = np.asarray(indexed.getpalette()[: 3 * 256]).reshape(-1, 3)
    hole = int(index[0, 0])
    path = tmp_path / "a.tif"
    with rasterio.open(path, "w", driver="GTiff", width=192, height=192, count=1, dtype="uint8", nodata=hole,
                       crs="EPSG:32648", transform=from_origin(400_000, 3_400_000, 0.5, 0.5)) as ds:
        ds.write(index, 1)
        ds.write_colormap(1, {i: (*map(int, rgb), 255) for i, rgb in enumerate(table)})
    head = tile_header(path)
    assert head.names == ("red", "green", "blue") and head.resolution == 0.5
    image, _ = read_tile(path, None, head, None)
    hidden = index == hole
    assert np.isnan(image[:, hidden]).all()
    np.testing.assert_array_equal(image[:, ~hidden], table[index[~hidden]].T.astype(np.float32))


def test_map_tiles_maps_a_palette_png_as_its_rgb_twin(tmp_path, aerial):
    pal = _palette_png(aerial, tmp_path / "pal" / "a.png")
    (tmp_path / "rgb").mkdir()
    Image.open(pal).convert("RGB").save(tmp_path / "rgb" / "a.png")
    runs = {name: run_cli("map", "--tiles", tmp_path / name, "--out", tmp_path / f"out-{name}",
                          "--pixel-size", 1, "--no-progress") for name in ("pal", "rgb")}
    assert all(done.returncode == 0 for done in runs.values()), [done.stderr for done in runs.values()]
    assert "'rgb'" in runs["pal"].stdout
    masks = {name: np.asarray(Image.open(tmp_path / f"out-{name}" / "a.png")) for name in runs}
    np.testing.assert_array_equal(masks["pal"], masks["rgb"])


def test_a_truncated_png_is_refused_in_one_line_and_nothing_is_written(tmp_path, aerial):
    (tmp_path / "tiles").mkdir()
    whole = tmp_path / "whole.png"
    aerial.save(whole)
    data = whole.read_bytes()
    cut = tmp_path / "tiles" / "a.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="truncated"):
        tile_header(cut)
    done = run_cli("map", "--tiles", tmp_path / "tiles", "--out", tmp_path / "out", "--pixel-size", 1)
    code, err = done.returncode, done.stderr
    assert code == 2
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "a.png" in lines[0] and "truncated" in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert tile_header(whole).height == 192  # a whole PNG still reads
