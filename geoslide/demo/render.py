"""Render a demo world as surface reflectance seen by any sensor: land cover, spectra, terrain, clouds, noise."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from pyproj import Transformer
from rasterio.features import rasterize
from scipy.ndimage import gaussian_filter

from geoslide.demo.terrain import bilinear_axes, fractal_noise, gradient_xy, resample_bilinear
from geoslide.demo.world import World
from geoslide.errors import GridError
from geoslide.raster.grid import GridSpec

_CLASS_NAMES = ("forest", "grass", "field", "old_scar", "stream", "river_bed", "water", "road", "track",
                "roof_metal", "roof_tile", "roof_concrete", "landslide")  # fmt: skip
CLASSES: dict[str, int] = {name: code for code, name in enumerate(_CLASS_NAMES)}
"""Land-cover class codes of :func:`landcover`."""

# fmt: off
_WL = (0.40, 0.44, 0.49, 0.56, 0.62, 0.665, 0.705, 0.74, 0.783, 0.842, 0.865, 0.945, 1.10, 1.375, 1.61, 2.19, 2.40)
SPECTRA: dict[str, tuple[float, ...]] = {
    "forest":       (.02, .02, .03, .06, .035, .03, .08, .22, .30, .33, .33, .32, .30, .10, .16, .07, .05),
    "grass":        (.03, .03, .045, .09, .06, .055, .13, .27, .35, .38, .38, .37, .35, .14, .25, .13, .10),
    "litter":       (.04, .05, .06, .09, .11, .13, .16, .19, .21, .23, .24, .25, .28, .18, .31, .24, .20),
    "field_soil":   (.04, .05, .07, .10, .125, .14, .16, .18, .20, .22, .23, .24, .27, .20, .31, .27, .24),
    "scar":         (.08, .10, .12, .15, .165, .175, .19, .20, .21, .22, .225, .23, .25, .15, .28, .24, .21),
    "gravel":       (.12, .14, .16, .19, .205, .21, .22, .225, .23, .24, .24, .24, .255, .17, .27, .24, .22),
    "water":        (.05, .06, .06, .05, .035, .03, .02, .012, .01, .008, .007, .004, .002, .001, .002, .001, .001),
    "turbid_water": (.06, .07, .09, .12, .13, .12, .09, .05, .04, .03, .028, .015, .006, .002, .004, .002, .001),
    "asphalt":      (.05, .055, .06, .07, .075, .08, .082, .085, .087, .09, .09, .092, .10, .08, .11, .11, .10),
    "dirt":         (.07, .09, .11, .15, .18, .20, .22, .23, .24, .25, .255, .26, .28, .20, .32, .28, .25),
    "roof_metal":   (.28, .30, .31, .31, .305, .30, .30, .295, .29, .29, .29, .285, .28, .24, .25, .22, .20),
    "roof_tile":    (.06, .07, .08, .11, .22, .27, .31, .33, .34, .36, .36, .37, .39, .30, .40, .35, .33),
    "concrete":     (.17, .19, .21, .23, .245, .25, .26, .265, .27, .27, .275, .28, .29, .22, .30, .28, .26),
    "cloud":        (.72, .74, .74, .74, .735, .73, .73, .73, .72, .72, .72, .70, .66, .55, .45, .30, .25),
}
"""Surface reflectance of the materials at ``_WL`` micrometres (shapes after the USGS and ECOSTRESS libraries)."""

# per class: material, vegetation, vegetation cover (mean, spread), texture at 1.2 m, 4 m and 12 m
_MIX: tuple[tuple[str, str, float, float, float, float, float], ...] = (
    ("litter", "forest", 0.88, 0.08, 0.10, 0.30, 0.08),   # forest: crowns and gaps
    ("litter", "grass", 0.72, 0.14, 0.08, 0.05, 0.08),    # grass, shrub, crops
    ("field_soil", "grass", 0.04, 0.04, 0.12, 0.04, 0.05),  # bare ploughed field
    ("scar", "grass", 0.40, 0.18, 0.12, 0.12, 0.08),      # old revegetating scar
    ("gravel", "grass", 0.45, 0.15, 0.15, 0.10, 0.05),    # tributary gully, partly overgrown
    ("gravel", "grass", 0.03, 0.03, 0.22, 0.08, 0.05),    # river bed
    ("water", "grass", 0.0, 0.0, 0.02, 0.02, 0.04),       # water
    ("asphalt", "grass", 0.0, 0.0, 0.04, 0.02, 0.02),     # paved road
    ("dirt", "grass", 0.02, 0.02, 0.10, 0.05, 0.03),      # unpaved track
    ("roof_metal", "grass", 0.0, 0.0, 0.03, 0.0, 0.0),
    ("roof_tile", "grass", 0.0, 0.0, 0.03, 0.0, 0.0),
    ("concrete", "grass", 0.0, 0.0, 0.03, 0.0, 0.0),
    ("scar", "forest", 0.05, 0.08, 0.18, 0.18, 0.10),     # fresh landslide: soil, boulders, uprooted trees
)
# fmt: on
_TEXTURE_SCALES_M = (1.2, 4.0, 12.0)
_ROOF_SHARES = (0.45, 0.35, 0.20)
_CLOUD_MASK_OPACITY = 0.35  # thinner haze at cloud edges is left unflagged, as by real cloud masks


@dataclass(frozen=True)
class Scene:
    """One rendered acquisition.

    Attributes
    ----------
    reflectance
        float32 ``(band, y, x)`` surface reflectance in [0, 1].
    cloud, shadow
        bool ``(y, x)`` masks of cloud and cloud-shadow pixels.
    """

    reflectance: np.ndarray
    cloud: np.ndarray
    shadow: np.ndarray


def spectrum(name: str, wavelengths_um: Sequence[float]) -> np.ndarray:
    """Reflectance of library material ``name`` interpolated at ``wavelengths_um``."""
    return np.interp(np.asarray(wavelengths_um, dtype=float), _WL, SPECTRA[name]).astype(np.float32)


def sun_position(world: World, day: str) -> tuple[float, float]:
    """Sun azimuth (degrees clockwise from north) and elevation at 10:30 local solar time on ``day``."""
    x0, y0 = world.spec.origin
    half = world.spec.size_m / 2
    _, lat = Transformer.from_crs(world.spec.epsg, 4326, always_xy=True).transform(x0 + half, y0 + half)
    doy = date.fromisoformat(day[:10]).timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
    phi, hour = math.radians(lat), math.radians(-22.5)
    sin_el = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour)
    az = math.atan2(
        -math.cos(decl) * math.sin(hour),
        math.sin(decl) * math.cos(phi) - math.cos(decl) * math.sin(phi) * math.cos(hour),
    )
    return math.degrees(az) % 360, math.degrees(math.asin(sin_el))


@functools.lru_cache(maxsize=4)
def _static_layers(world: World) -> dict[str, np.ndarray]:
    """Fields on the DEM grid that do not change between scenes: vegetation cover, soil brightness, forest."""
    rng = np.random.default_rng([world.seed, 0x5EED])
    shape = world.dem.shape
    gx, gy = gradient_xy(world.dem, world.dem_grid.resolution)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    return {
        "cover": fractal_noise(shape, 2.6, rng),
        "brightness": fractal_noise(shape, 3.0, rng),
        "forest": ((slope - 16) / 8 + 0.9 * fractal_noise(shape, 3.2, rng)).astype(np.float32),
        "slope": slope.astype(np.float32),
    }


@functools.lru_cache(maxsize=8)
def _illumination(world: World, azimuth: float, elevation: float) -> np.ndarray:
    """Direct plus diffuse illumination relative to flat ground, on the DEM grid (no cast shadows)."""
    gx, gy = gradient_xy(world.dem, world.dem_grid.resolution)
    az, el = math.radians(azimuth), math.radians(elevation)
    sun = (math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el))
    cos_i = (-gx * sun[0] - gy * sun[1] + sun[2]) / np.sqrt(1 + gx**2 + gy**2)
    return (0.25 + 0.75 * np.clip(cos_i, 0, None) / sun[2]).astype(np.float32)


def landcover(world: World, grid: GridSpec, post_event: bool) -> np.ndarray:
    """Land-cover classes (see :data:`CLASSES`) rasterised on ``grid`` by pixel centre.

    Later layers win: fields, old scars, streams, river bed, water, roads, buildings, then (after the event)
    the landslides of the inventory, exactly as in ``world.landslides``.
    """
    _check(world, grid)
    c = CLASSES
    roofs = np.random.default_rng([world.seed, 0x2007]).choice(3, len(world.buildings), p=_ROOF_SHARES)
    shapes = [(g, c["field"]) for g in world.fields] + [(g, c["old_scar"]) for g in world.old_scars]
    if not world.streams.is_empty:
        shapes.append((world.streams.buffer(1.5), c["stream"]))
    shapes += [(world.river_bed, c["river_bed"]), (world.water, c["water"])]
    for line, paved in zip(world.roads.geoms, world.road_paved, strict=False):
        shapes.append((line.buffer(3.0 if paved else 2.0), c["road"] if paved else c["track"]))
    shapes += [(g, c["roof_metal"] + int(r)) for g, r in zip(world.buildings, roofs, strict=True)]
    if post_event:
        shapes += [(g, c["landslide"]) for g in world.landslides.geometry]
    shapes = [(g, v) for g, v in shapes if not g.is_empty]
    out = rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=255, dtype="uint8")
    forest = resample_bilinear(_static_layers(world)["forest"], world.dem_grid, grid) > 0
    background = np.where(forest, c["forest"], c["grass"]).astype(np.uint8)
    return np.where(out == 255, background, out)


def landslide_mask(world: World, grid: GridSpec) -> np.ndarray:
    """Pixels of ``grid`` whose centre lies in a landslide of the inventory."""
    _check(world, grid)
    shapes = [(g, 1) for g in world.landslides.geometry]
    if not shapes:
        return np.zeros(grid.shape, dtype=bool)
    return rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0, dtype="uint8").astype(bool)


def _check(world: World, grid: GridSpec) -> None:
    if grid.epsg != world.spec.epsg:
        raise GridError(f"grid is in EPSG:{grid.epsg} but the demo world is in EPSG:{world.spec.epsg}")


def _texture(grid: GridSpec, scale_m: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise with features of ``scale_m``, damped where they are smaller than a pixel."""
    sigma = scale_m / grid.resolution / 2
    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    if sigma >= 0.5:
        noise = gaussian_filter(noise, sigma, mode="wrap")
        noise /= max(float(noise.std()), 1e-9)
    return noise * min(1.0, 2 * sigma)


def _ground(
    world: World,
    grid: GridSpec,
    classes: np.ndarray,
    wavelengths: Sequence[float],
    post_event: bool,
    sun: tuple[float, float],
) -> np.ndarray:
    """Sunlit surface reflectance ``(band, y, x)`` before clouds and sensor noise."""
    layers = _static_layers(world)
    turbid = post_event and world.spec.trigger == "rainfall"
    material = np.stack([spectrum("turbid_water" if m == "water" and turbid else m, wavelengths) for m, *_ in _MIX])
    vegetation = np.stack([spectrum(v, wavelengths) for _, v, *_ in _MIX])
    mean, spread, *amps = (np.array([row[k] for row in _MIX], dtype=np.float32) for k in range(2, 7))
    cover_noise = resample_bilinear(layers["cover"], world.dem_grid, grid)
    cover = np.clip(mean[classes] + spread[classes] * cover_noise, 0, 1)
    bright = 1 + 0.1 * resample_bilinear(layers["brightness"], world.dem_grid, grid)
    scar = (classes == CLASSES["landslide"]) | (classes == CLASSES["old_scar"])
    if scar.any():  # bare rock on the steep source, darker moist debris on the gentler runout
        slope = resample_bilinear(layers["slope"], world.dem_grid, grid)
        bright = np.where(scar, bright * (0.8 + 0.4 * np.clip((slope - 15) / 30, 0, 1)), bright)
    rng = np.random.default_rng([world.seed, *(round(v * 100) for v in (*grid.bounds, grid.resolution))])
    texture = 1 + sum(a[classes] * _texture(grid, m, rng) for a, m in zip(amps, _TEXTURE_SCALES_M, strict=True))
    light = resample_bilinear(_illumination(world, *sun), world.dem_grid, grid)
    scale = np.clip(texture, 0.2, None) * light
    out = np.empty((len(wavelengths), *grid.shape), dtype=np.float32)
    for b in range(len(wavelengths)):
        mixed = material[classes, b] * bright * (1 - cover) + vegetation[classes, b] * cover
        out[b] = mixed * scale
    return out


def _cloud_layers(
    world: World, grid: GridSpec, fraction: float, seed: int, sun: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud opacity and cloud-shadow strength in [0, 1]; the cloud mask covers ``fraction`` of the domain."""
    if fraction <= 0:
        zeros = np.zeros(grid.shape, dtype=np.float32)
        return zeros, zeros
    rng = np.random.default_rng([seed, 0xC10D])
    n, period, fine_period = 512, 2 * world.spec.size_m + 2000.0, 1024.0
    coarse = 0.9 * fractal_noise((n, n), 3.6, rng) + 0.45 * fractal_noise((n, n), 2.5, rng)
    fine = 0.2 * fractal_noise((n, n), 3.0, rng)  # cauliflower edges below the coarse cell size
    x0, y0 = world.spec.origin
    top = y0 + world.spec.size_m

    def field(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        big = bilinear_axes(coarse, (top - ys) / period * n, (xs - x0) / period * n, wrap=True)
        return big + bilinear_axes(fine, (top - ys) / fine_period * n, (xs - x0) / fine_period * n, wrap=True)

    probe = x0 + np.arange(0.5, 300) / 300 * world.spec.size_m
    threshold = np.quantile(field(probe, probe - x0 + y0), 1 - min(fraction, 1.0))
    height = rng.uniform(800, 2500)
    az, el = math.radians(sun[0]), math.radians(sun[1])
    dx, dy = height / math.tan(el) * np.array([math.sin(az), math.cos(az)])
    xs, ys = grid.x_coords(), grid.y_coords()
    alpha = np.clip(_CLOUD_MASK_OPACITY + (field(xs, ys) - threshold) / 0.7, 0, 1)
    beta = np.clip(_CLOUD_MASK_OPACITY + (field(xs + dx, ys + dy) - threshold) / 0.7, 0, 1)
    return alpha, beta


def _supersampling(grid: GridSpec) -> int:
    """Sub-pixels per pixel side for coarse grids, so small objects mix into pixels as they would."""
    budget = int(math.sqrt(3e6 / (grid.shape[0] * grid.shape[1])))
    return max(1, min(round(grid.resolution / 2.5), budget, 4))


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return a
    *lead, h, w = a.shape
    return a.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1))


def render_scene(
    world: World,
    grid: GridSpec,
    wavelengths_um: Sequence[float],
    post_event: bool,
    seed: int,
    cloud_fraction: float | None = None,
) -> Scene:
    """Render one pre- or post-event acquisition of ``world`` on ``grid``.

    Parameters
    ----------
    world
        The demo world.
    grid
        Target grid, in the world's CRS; any resolution (0.2-30 m).
    wavelengths_um
        Band centre wavelengths in micrometres.
    post_event
        Show the landslides of the inventory (``True``) or the landscape before the event.
    seed
        Seed of the clouds and sensor noise; the ground texture depends only on the world and grid.
    cloud_fraction
        Target cloud cover of the domain; ``None`` takes ``spec.cloud_fraction`` after the event and half of
        it before.

    Returns
    -------
    Scene
        Reflectance with cloud and cloud-shadow masks.
    """
    _check(world, grid)
    k = _supersampling(grid)
    fine = GridSpec(grid.epsg, grid.bounds, grid.resolution / k)
    spec = world.spec
    sun = sun_position(world, spec.post_date if post_event else spec.pre_date)
    ground = _ground(world, fine, landcover(world, fine, post_event), wavelengths_um, post_event, sun)
    if cloud_fraction is None:
        cloud_fraction = spec.cloud_fraction if post_event else spec.cloud_fraction / 2
    alpha, beta = _cloud_layers(world, fine, cloud_fraction, seed, sun)
    wl = np.asarray(wavelengths_um, dtype=np.float32)[:, None, None]
    diffuse = np.clip(0.3 * 0.49 / np.maximum(wl, 0.3), 0.1, 0.35)  # skylight left in shadow, bluish
    shaded = ground * (1 - beta * (1 - diffuse))
    refl = _block_mean(shaded * (1 - alpha) + alpha * spectrum("cloud", wavelengths_um)[:, None, None], k)
    rng = np.random.default_rng([seed, 0x5E45])
    refl = refl + rng.standard_normal(refl.shape, dtype=np.float32) * (0.002 + 0.01 * refl)
    cloud = _block_mean(alpha, k) >= _CLOUD_MASK_OPACITY
    shadow = (_block_mean(beta, k) >= _CLOUD_MASK_OPACITY) & (_block_mean(alpha, k) < 0.1)
    return Scene(np.clip(refl, 0, 1).astype(np.float32), cloud, shadow)
