"""Synthetic mountain terrain: fractal noise, a meandering river valley with tributaries, resampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geoslide.errors import GridError
from geoslide.raster.grid import GridSpec


@dataclass(frozen=True)
class Channel:
    """A channel running from ``start`` along a direction, with a smooth lateral meander.

    Points are ``start + a * along + lateral(a) * across`` for ``a`` in ``[0, length]``; ``lateral`` is a
    sum of sines ``amp * sin(2 pi a / wavelength + phase)``.
    """

    start: tuple[float, float]
    angle: float
    length: float
    amps: tuple[float, ...]
    wavelengths: tuple[float, ...]
    phases: tuple[float, ...]

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors along and across (to the left of) the channel."""
        along = np.array([np.cos(self.angle), np.sin(self.angle)])
        return along, np.array([-along[1], along[0]])

    def lateral(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lateral offset and its derivative at along-channel distances ``a``."""
        off = np.zeros_like(a, dtype=float)
        der = np.zeros_like(a, dtype=float)
        for amp, lam, ph in zip(self.amps, self.wavelengths, self.phases, strict=True):
            k = 2 * np.pi / lam
            off += amp * np.sin(k * a + ph)
            der += amp * k * np.cos(k * a + ph)
        return off, der

    def coords(self, spacing: float = 5.0) -> np.ndarray:
        """``(n, 2)`` points along the centre line, ``spacing`` apart along the channel axis."""
        a = np.linspace(0.0, self.length, max(int(self.length / spacing), 2) + 1)
        along, across = self.axes
        off, _ = self.lateral(a)
        return np.asarray(self.start) + a[:, None] * along + off[:, None] * across

    def local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Along-channel coordinate and approximate distance to the centre line of points ``(x, y)``."""
        along, across = self.axes
        dx, dy = x - self.start[0], y - self.start[1]
        a = dx * along[0] + dy * along[1]
        off, der = self.lateral(a)
        b = dx * across[0] + dy * across[1]
        return a, np.abs(b - off) / np.sqrt(1.0 + der**2)


def fractal_noise(shape: tuple[int, int], beta: float, rng: np.random.Generator) -> np.ndarray:
    """Periodic zero-mean, unit-variance noise with a ``1 / f**beta`` power spectrum.

    Parameters
    ----------
    shape
        ``(rows, cols)`` of the field.
    beta
        Spectral exponent: about 2 is rough, 3-4 is smooth terrain-like relief.
    rng
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        float32 field of ``shape``.
    """
    ny, nx = shape
    f = np.hypot(np.fft.fftfreq(ny)[:, None], np.fft.rfftfreq(nx)[None, :])
    f[0, 0] = np.inf
    amp = f ** (-beta / 2.0)
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    field = np.fft.irfft2(spec, s=shape)
    field -= field.mean()
    return (field / max(field.std(), 1e-12)).astype(np.float32)


def smoothstep(t: np.ndarray) -> np.ndarray:
    """Cubic ramp from 0 (``t <= 0``) to 1 (``t >= 1``)."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def slope_degrees(dem: np.ndarray, resolution: float) -> np.ndarray:
    """Slope of ``dem`` in degrees (central differences, one-sided at the edges).

    Parameters
    ----------
    dem
        Elevation in metres on a north-up grid.
    resolution
        Pixel size in metres.

    Returns
    -------
    numpy.ndarray
        float32 slope in degrees, same shape as ``dem``.
    """
    dzdy, dzdx = np.gradient(np.asarray(dem, dtype=np.float64), resolution)
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy))).astype(np.float32)


def gradient_xy(dem: np.ndarray, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """``(dz/dx, dz/dy)`` with x east and y north, for a north-up grid."""
    dzdrow, dzdx = np.gradient(np.asarray(dem, dtype=np.float64), resolution)
    return dzdx, -dzdrow


def _axis_weights(frac: np.ndarray, n: int, wrap: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i0 = np.floor(frac).astype(np.int64)
    w = (frac - i0).astype(np.float32)
    i1 = i0 + 1
    if wrap:
        return i0 % n, i1 % n, w
    return np.clip(i0, 0, n - 1), np.clip(i1, 0, n - 1), w


def bilinear_axes(field: np.ndarray, rows: np.ndarray, cols: np.ndarray, wrap: bool = False) -> np.ndarray:
    """Bilinear samples of ``field`` at the outer product of fractional ``rows`` and ``cols`` indices.

    Separable, so it costs a few passes over the output. Indices are clamped at the edges, or wrapped
    around for a periodic ``field``.
    """
    r0, r1, wr = _axis_weights(np.asarray(rows, dtype=np.float64), field.shape[0], wrap)
    c0, c1, wc = _axis_weights(np.asarray(cols, dtype=np.float64), field.shape[1], wrap)
    src = field.astype(np.float32, copy=False)
    tmp = src[:, c0] * (1 - wc) + src[:, c1] * wc
    return tmp[r0] * (1 - wr)[:, None] + tmp[r1] * wr[:, None]


def resample_bilinear(field: np.ndarray, src: GridSpec, dst: GridSpec) -> np.ndarray:
    """Resample a field defined at pixel centres of ``src`` onto the pixel centres of ``dst``.

    Raises
    ------
    GridError
        Where the grids are in different CRSs.
    """
    if src.epsg != dst.epsg:
        raise GridError(f"grid is in EPSG:{dst.epsg} but the demo world is in EPSG:{src.epsg}; use that CRS")
    cols = (dst.x_coords() - src.bounds[0]) / src.resolution - 0.5
    rows = (src.bounds[3] - dst.y_coords()) / src.resolution - 0.5
    return bilinear_axes(field, rows, cols)


def sample_points(field: np.ndarray, grid: GridSpec, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of a field on ``grid`` at scattered points ``(x, y)`` (clamped at the edges)."""
    cols = np.clip((np.asarray(x) - grid.bounds[0]) / grid.resolution - 0.5, 0, field.shape[1] - 1)
    rows = np.clip((grid.bounds[3] - np.asarray(y)) / grid.resolution - 0.5, 0, field.shape[0] - 1)
    r0 = np.minimum(np.floor(rows).astype(np.int64), field.shape[0] - 2)
    c0 = np.minimum(np.floor(cols).astype(np.int64), field.shape[1] - 2)
    wr, wc = rows - r0, cols - c0
    top = field[r0, c0] * (1 - wc) + field[r0, c0 + 1] * wc
    bottom = field[r0 + 1, c0] * (1 - wc) + field[r0 + 1, c0 + 1] * wc
    return top * (1 - wr) + bottom * wr


def random_channel(
    start: tuple[float, float],
    angle: float,
    length: float,
    wavelength: float,
    amplitude: float,
    rng: np.random.Generator,
) -> Channel:
    """A channel with two meander harmonics of random phase around ``wavelength`` and ``amplitude``."""
    lams = (wavelength * rng.uniform(0.85, 1.15), wavelength * rng.uniform(0.3, 0.45))
    amps = (amplitude * rng.uniform(0.7, 1.0), amplitude * rng.uniform(0.1, 0.2))
    return Channel(start, float(angle), float(length), amps, lams, tuple(rng.uniform(0, 2 * np.pi, 2)))


@dataclass(frozen=True)
class Terrain:
    """A carved DEM and the channels that carved it."""

    dem: np.ndarray
    river: Channel
    tributaries: tuple[Channel, ...]
    height_above_river: np.ndarray
    floor_halfwidth: float


def main_river(size: float, origin: tuple[float, float], rng: np.random.Generator) -> Channel:
    """A meandering river crossing the square domain through its central part."""
    angle = rng.uniform(0, 2 * np.pi)
    along = np.array([np.cos(angle), np.sin(angle)])
    centre = np.asarray(origin) + size * (0.5 + rng.uniform(-0.08, 0.08, 2))
    start = centre - 0.9 * size * along
    return random_channel(tuple(start), angle, 1.8 * size, 0.8 * size, 0.06 * size, rng)


def _tributaries(river: Channel, size: float, rng: np.random.Generator) -> tuple[Channel, ...]:
    n = max(2, round(1.6 * size / 1000))
    out = []
    for _ in range(n):
        a0 = rng.uniform(0.65, 1.15) * size
        xy = river.coords(spacing=1.0)[int(a0)]
        side = rng.choice([-1.0, 1.0])
        # traced from the confluence up to the ridge: it flows back down at an acute angle to the river
        angle = river.angle + side * np.radians(rng.uniform(105, 140))
        out.append(random_channel(tuple(xy), angle, 0.6 * size, 0.5 * size, 0.03 * size, rng))
    return tuple(out)


def build_terrain(grid: GridSpec, relief: float, floor_halfwidth: float, rng: np.random.Generator) -> Terrain:
    """Carve a river valley with tributary gullies into fractal relief.

    Parameters
    ----------
    grid
        DEM grid; its bounds are the domain.
    relief
        Ridge-to-valley relief in metres.
    floor_halfwidth
        Half width of the nearly flat valley floor around the river, in metres.
    rng
        Source of randomness.
    """
    size = grid.bounds[2] - grid.bounds[0]
    river = main_river(size, grid.bounds[:2], rng)
    xx, yy = np.meshgrid(grid.x_coords(), grid.y_coords())
    a, d = river.local(xx, yy)
    z_river = 0.02 * (river.length - a)  # the river drops 2 % downstream
    ridge = 0.5 * size * rng.uniform(0.85, 1.0)
    t = (d - floor_halfwidth) / (ridge - floor_halfwidth)
    profile = np.where(t < 1, np.sin(0.5 * np.pi * np.clip(t, 0, 1)), 1 - 0.5 * (t - 1) ** 2)
    above = 0.03 * np.minimum(d, floor_halfwidth) + 0.7 * relief * profile
    taper = smoothstep((d - floor_halfwidth) / (0.35 * ridge))
    rough = 0.12 * fractal_noise(grid.shape, 4.0, rng) + 1.5 / relief * fractal_noise(grid.shape, 2.4, rng)
    above = above + relief * rough * taper
    tribs = _tributaries(river, size, rng)
    for trib in tribs:
        above = _carve(above, trib, xx, yy, size)
    above = np.maximum(above, 0.0)
    dem = (1500.0 + z_river + above).astype(np.float32)
    return Terrain(dem, river, tribs, above.astype(np.float32), floor_halfwidth)


def _carve(above: np.ndarray, trib: Channel, xx: np.ndarray, yy: np.ndarray, size: float) -> np.ndarray:
    a, d = trib.local(xx, yy)
    s = np.clip(a / trib.length, 0, 1)
    depth = 0.55 * np.sqrt(1 - s) * smoothstep((a + 60.0) / 60.0)
    width = 0.07 * size * (0.6 + 0.6 * s)
    return above * (1 - depth * np.exp(-((d / width) ** 2)))
