"""Synthetic landslide scars implanted into real imagery.

A real scene keeps its own statistics (towns, rivers, roads, fields, shadows): only the pixels
under a scar change. A scar's outline follows :func:`geoslide.demo.events.outline` (elongated
along a flow direction, arcuate crown, rounded toe, optional runout channel; scars of a cluster
touch and overlap, as amalgamated landslides do), and its radiometry is the scene's own bare
ground: pixels with the least vegetation, not a fixed colour. Fresh scars replace the surface;
partly revegetated ones are a patchy blend; edges are soft (sub-pixel), the crown casts a thin
shadow, and the surface has rock and soil texture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from rasterio.features import rasterize
from scipy.ndimage import gaussian_filter, rotate, shift

from geoslide.demo.events import MIN_AREA_M2, outline, sample_areas, sample_ratios
from geoslide.demo.features import ribbon, smooth_noise
from geoslide.demo.terrain import fractal_noise
from geoslide.raster.grid import GridSpec

MIN_SCAR_PX = 12.0
"""Smallest scar implanted, in pixels of the scene (smaller ones cannot be seen)."""
MAX_SCAR_SHARE = 0.06
"""Largest scar, as a share of the scene: at sub-metre pixels big landslides are wider than a patch."""


@dataclass(frozen=True)
class ImplantSpec:
    """How many scars, of which kinds.

    Parameters
    ----------
    cover
        Target share of the valid scene area covered by scars (0-1).
    trigger
        ``earthquake`` (wider, shorter) or ``rainfall`` (narrow debris flows with runout) shapes.
    revegetated
        Share of scars that are partly revegetated (a patchy blend with the surface below).
    runout
        Share of scars with a narrow runout channel below the toe.
    cluster
        Share of scars placed in touching, overlapping groups of 2-4 (amalgamated).
    max_area_m2
        Largest scar area.
    tone
        Range of the scar material's brightness as a factor of the scene's bare ground, drawn per
        scene and kind of scar: below 1 gives dull, moist or shaded soil, above 1 fresh bright rock.
    hue
        Spread of the scar colour around the bare ground's (standard deviation of a per-band log
        factor): drawn per scene and kind of scar, and varying smoothly across the scene, so that
        scars are red, yellow, brown or grey soils, not one colour. 0 keeps the bare ground's colour.
    """

    cover: float = 0.04
    trigger: str = "earthquake"
    revegetated: float = 0.3
    runout: float = 0.3
    cluster: float = 0.3
    max_area_m2: float = 60_000.0
    tone: tuple[float, float] = (0.8, 1.25)
    hue: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.tone[0] <= self.tone[1]:
            raise ValueError(f"tone {self.tone} must be positive and increasing, e.g. [0.6, 1.25]")
        if not 0 <= self.hue <= 1:
            raise ValueError(f"hue {self.hue} must be between 0 and 1 (0.1-0.2 is a broad range of soil colours)")


def bare_ground(image: np.ndarray, valid: np.ndarray, bands: Sequence[str], rng: np.random.Generator
                ) -> np.ndarray:
    """Per-band value of fresh scar material for this scene (same units as ``image``, reflectance-like).

    The scene's own bare ground where it has some: of its least vegetated pixels (lowest NDVI with
    ``red`` and ``nir``, water left out; else lowest excess green 2G - R - B), the brighter half.
    Scenes without bright bare ground (forest, meadow) get soil and rock spectra instead, and every
    scene a random mix of both: scars are brighter than vegetation, but not one colour.
    """
    names = list(bands)
    library = _library_spectrum(names, rng)
    pixels = image[:, valid].astype("float64")
    if pixels.shape[1] < 100:
        return library
    greenness = _greenness(pixels, names)
    keep = greenness > 0.0 if "nir" in names else np.ones(greenness.shape, bool)  # water has NDVI < 0
    pixels, greenness = pixels[:, keep], greenness[keep]
    if pixels.shape[1] < 100:
        return library
    low = greenness <= np.percentile(greenness, 10)
    brightness = pixels[:, low].mean(axis=0)
    own = np.median(pixels[:, low][:, brightness >= np.median(brightness)], axis=1)
    if own.mean() < np.percentile(pixels.mean(axis=0), 70):  # no bright bare ground in this scene
        return library
    weight = rng.uniform(0.3, 1.0)
    return weight * own + (1 - weight) * library


_SOIL = {"coastal": (0.07, 0.12), "blue": (0.08, 0.14), "green": (0.10, 0.17), "red": (0.13, 0.22),
         "rededge": (0.17, 0.25), "nir": (0.20, 0.30), "nir08": (0.21, 0.30), "swir16": (0.26, 0.34),
         "swir22": (0.21, 0.30), "swir1": (0.26, 0.34), "swir2": (0.21, 0.30)}
"""Reflectance ranges of fresh landslide material (soil and weathered rock) per band."""


def _library_spectrum(names: list[str], rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0, 1)
    return np.array([lo + t * (hi - lo) for lo, hi in (_SOIL.get(n, (0.15, 0.25)) for n in names)])


def _greenness(pixels: np.ndarray, names: list[str]) -> np.ndarray:
    if "red" in names and "nir" in names:
        red, nir = pixels[names.index("red")], pixels[names.index("nir")]
        return (nir - red) / np.maximum(nir + red, 1e-9)
    if {"red", "green", "blue"} <= set(names):
        r, g, b = (pixels[names.index(n)] for n in ("red", "green", "blue"))
        return (2 * g - r - b) / np.maximum(r + g + b, 1e-9)
    return -pixels.mean(axis=0)


def scar_outlines(grid: GridSpec, valid: np.ndarray, spec: ImplantSpec, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Scar polygons (CRS of ``grid``) whose total area is about ``spec.cover`` of the valid area.

    Columns: ``geometry``, ``landslide_id``, ``kind`` (``fresh`` or ``revegetated``), ``cluster``.
    """
    target = spec.cover * valid.sum() * grid.resolution**2
    min_area = MIN_SCAR_PX * grid.resolution**2
    max_area = min(spec.max_area_m2, MAX_SCAR_SHARE * valid.size * grid.resolution**2)
    rows: list[dict] = []
    total, cluster_id = 0.0, 0
    while total < target and len(rows) < 2000:
        members = int(rng.integers(2, 5)) if rng.random() < spec.cluster else 1
        centre = _valid_point(grid, valid, rng)
        if centre is None:
            break
        areas = _areas(members, spec.trigger, min_area, max_area, grid, rng)
        direction = rng.uniform(0, 2 * np.pi)
        for k, area in enumerate(areas):
            offset = _cluster_offset(area, direction, k, rng)
            poly = _scar(np.asarray(centre) + offset, float(area), direction, spec, rng)
            if poly.is_empty:
                continue
            kind = "revegetated" if rng.random() < spec.revegetated else "fresh"
            rows.append({"geometry": poly, "kind": kind, "cluster": cluster_id})
            total += poly.area
        cluster_id += 1
    frame = gpd.GeoDataFrame(rows or None, columns=["geometry", "kind", "cluster"], geometry="geometry",
                             crs=f"EPSG:{grid.epsg}")
    frame.insert(0, "landslide_id", np.arange(len(frame), dtype="int64"))
    return frame


def _areas(n: int, trigger: str, min_area: float, max_area: float, grid: GridSpec, rng: np.random.Generator
           ) -> np.ndarray:
    """Scar areas (m2) between ``min_area`` and ``max_area``.

    The inverse-gamma law of real inventories where the scene is large enough, scaled up on coarse
    imagery (which shows the bigger landslides); log-uniform in a scene too small for it.
    """
    if max_area <= 4 * MIN_AREA_M2:
        return np.exp(rng.uniform(np.log(min_area), np.log(max(max_area, 2 * min_area)), n))
    scale = min(max(1.0, (grid.resolution / 3.0) ** 2), max_area / (4 * MIN_AREA_M2))
    return np.clip(sample_areas(n, trigger, max_area / scale, rng) * scale, min_area, max_area)


def _valid_point(grid: GridSpec, valid: np.ndarray, rng: np.random.Generator) -> tuple[float, float] | None:
    rows, cols = np.nonzero(valid)
    if rows.size == 0:
        return None
    i = int(rng.integers(rows.size))
    x0, _, _, y1 = grid.bounds
    return (x0 + (cols[i] + 0.5) * grid.resolution, y1 - (rows[i] + 0.5) * grid.resolution)


def _cluster_offset(area: float, direction: float, k: int, rng: np.random.Generator) -> np.ndarray:
    """Members of a cluster side by side across the flow direction, overlapping a little."""
    if k == 0:
        return np.zeros(2)
    across = np.array([-np.sin(direction), np.cos(direction)])
    along = np.array([np.cos(direction), np.sin(direction)])
    side = np.sqrt(area / 3.0)
    return across * side * k * rng.uniform(0.7, 1.0) * rng.choice([-1, 1]) + along * side * rng.normal(0, 0.5)


def _scar(crown: np.ndarray, area: float, direction: float, spec: ImplantSpec, rng: np.random.Generator
          ) -> shapely.Polygon:
    """One scar of about ``area`` m2 from ``crown`` along ``direction`` (radians), slightly curved."""
    ratio = float(sample_ratios(1, spec.trigger, rng)[0])
    width = np.sqrt(area / ratio)
    length = width * ratio
    bend = rng.normal(0, 0.25)
    t = np.linspace(0, 1, 24)
    angle = direction + bend * t
    steps = np.stack([np.cos(angle), np.sin(angle)], axis=1) * (length / (len(t) - 1))
    path = crown + np.vstack([[0, 0], np.cumsum(steps[1:], axis=0)])
    poly = outline(path, width, spec.trigger, rng.standard_normal(16))
    if rng.random() < spec.runout:
        poly = shapely.union(poly, _runout(path, width, angle[-1], rng))
    return poly if isinstance(poly, shapely.Polygon) else shapely.Polygon()


def _runout(path: np.ndarray, width: float, angle: float, rng: np.random.Generator) -> shapely.Polygon:
    """A narrow channel continuing below the toe (debris flow runout)."""
    n = 16
    length = width * rng.uniform(1.0, 3.0)
    wander = angle + np.cumsum(smooth_noise(n, 4, rng)) * 0.05
    steps = np.stack([np.cos(wander), np.sin(wander)], axis=1) * (length / n)
    coords = path[-1] + np.vstack([[0, 0], np.cumsum(steps[1:], axis=0)])
    widths = width * np.linspace(0.35, 0.15, n)
    return ribbon(coords, widths)


def paint(image: np.ndarray, grid: GridSpec, scars: gpd.GeoDataFrame, bare: np.ndarray,
          rng: np.random.Generator, spec: ImplantSpec | None = None) -> np.ndarray:
    """``image`` (band, y, x) with the scars painted in: float64, same units as the input.

    ``spec`` gives the scar material's ``tone`` and ``hue`` (:class:`ImplantSpec`'s defaults if None).
    """
    spec = spec or ImplantSpec()
    out = image.astype("float64", copy=True)
    if len(scars) == 0:
        return out
    h, w = grid.shape
    texture = _debris_texture((h, w), rng)
    rock = _rock_share((h, w), rng)
    for kind, group in scars.groupby("kind"):
        alpha = _soft_cover(group.geometry, grid)
        if kind == "revegetated":
            alpha *= np.clip(0.55 + 0.35 * fractal_noise((h, w), 2.5, rng), 0.1, 0.9)
        else:  # remnant trees and grass left standing on a fresh scar
            alpha *= 1 - 0.85 * (fractal_noise((h, w), 1.8, rng) > rng.uniform(1.2, 3.0))
        tone = bare * rng.uniform(*spec.tone) * (1 + rng.normal(0, 0.04, size=bare.shape))
        grey = np.full_like(tone, tone.mean() * rng.uniform(0.9, 1.4))  # rock and boulders: brighter, greyer
        soil = tone[:, None, None] * _soil_hue(len(bare), (h, w), spec.hue, rng)
        scar = soil * (1 - rock[None]) + grey[:, None, None] * rock[None]
        out = out * (1 - alpha[None]) + scar * texture[None] * alpha[None]
    cover = _soft_cover(scars.geometry, grid)
    return out * _scarp_shadow(cover, rng.uniform(0, 2 * np.pi), 1.5)[None]


def _soil_hue(bands: int, shape: tuple[int, int], spread: float, rng: np.random.Generator) -> np.ndarray:
    """Per-band colour factors (band, y, x) of scar soil: one draw per scene plus a smooth drift across it."""
    if spread == 0:
        return np.ones((bands, 1, 1))
    offset = rng.normal(0, spread, size=bands)
    offset -= offset.mean()  # colour, not brightness: ``tone`` sets that
    drift = np.stack([gaussian_filter(rng.standard_normal(shape), min(shape) / 8) for _ in range(bands)])
    drift /= max(float(drift.std()), 1e-9)
    drift -= drift.mean(axis=0, keepdims=True)
    return np.exp(offset[:, None, None] + 0.5 * spread * drift)


def _debris_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Multiplicative texture of scar material: blotches, downslope streaks (rills) and grain."""
    blotches = rng.uniform(0.08, 0.22) * fractal_noise(shape, 2.2, rng)
    streaks = gaussian_filter(rng.standard_normal(shape), (rng.uniform(3, 8), 1.5))
    streaks = rotate(streaks / max(streaks.std(), 1e-9), rng.uniform(0, 180), reshape=False, mode="reflect")
    grain = rng.uniform(0.03, 0.10) * rng.standard_normal(shape)
    return np.clip(1 + blotches + rng.uniform(0.0, 0.08) * streaks + grain, 0.3, 2.0)


def _rock_share(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Share (0-1) of grey rock mixed into the soil colour of scars, patchy and different per scene."""
    field = fractal_noise(shape, 2.0, rng)
    return np.clip(rng.uniform(0.0, 0.6) + 0.4 * field, 0.0, 1.0) * (rng.random() < 0.7)


def _soft_cover(geoms: gpd.GeoSeries, grid: GridSpec, k: int = 4) -> np.ndarray:
    """Fraction of each pixel covered by ``geoms`` (``k`` x ``k`` supersampling, edge softened)."""
    h, w = grid.shape
    fine = GridSpec(grid.epsg, grid.bounds, grid.resolution / k)
    burnt = rasterize(((g, 1) for g in geoms), out_shape=fine.shape, transform=fine.transform, dtype="uint8")
    cover = gaussian_filter(burnt.reshape(h, k, w, k).mean(axis=(1, 3)), 0.4)
    cover[cover < 1e-6] = 0.0  # the filter's far tails: leave the scene exactly as it was there
    return cover


def _scarp_shadow(cover: np.ndarray, azimuth: float, length_px: float) -> np.ndarray:
    """Multiplicative shade: the scar's rim casts a thin shadow onto the side away from the sun."""
    dy, dx = length_px * np.cos(azimuth), -length_px * np.sin(azimuth)
    cast = shift(cover, (dy, dx), order=1, mode="constant", cval=0.0)
    shade = np.clip(cast - cover, 0, 1)
    shade[shade < 1e-6] = 0.0
    return 1 - 0.4 * shade


def label_mask(scars: gpd.GeoDataFrame, grid: GridSpec, valid: np.ndarray) -> np.ndarray:
    """The label raster: 1 where a pixel centre is inside a scar, 0 elsewhere, 255 outside ``valid``."""
    mask = rasterize(((g, 1) for g in scars.geometry), out_shape=grid.shape, transform=grid.transform,
                     dtype="uint8") if len(scars) else np.zeros(grid.shape, dtype="uint8")
    mask[~valid] = 255
    return mask
