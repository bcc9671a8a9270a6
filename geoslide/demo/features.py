"""Hydrographic and cultural features of a demo world: river channel and bed, roads, villages, fields."""

from __future__ import annotations

import numpy as np
import shapely
from scipy.ndimage import gaussian_filter1d
from shapely.geometry.base import BaseGeometry

from geoslide.demo.terrain import Channel, sample_points
from geoslide.raster.grid import GridSpec


def smooth_noise(n: int, correlation: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance 1-D noise of length ``n`` correlated over about ``correlation`` samples."""
    raw = rng.standard_normal(n + 8 * int(correlation) + 2)
    out = gaussian_filter1d(raw, max(correlation, 0.5), mode="wrap")[:n]
    return (out - out.mean()) / max(out.std(), 1e-9)


def largest_polygon(geom: BaseGeometry) -> shapely.Polygon:
    """The largest polygon part of ``geom`` (an empty polygon if it has none)."""
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon) and not g.is_empty]
    if not parts:
        for g in shapely.get_parts(geom):  # GeometryCollections from make_valid
            parts.extend(p for p in shapely.get_parts(g) if isinstance(p, shapely.Polygon))
    return max(parts, key=lambda p: p.area) if parts else shapely.Polygon()


def normals(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit tangents and left normals of a polyline given as ``(n, 2)`` coordinates."""
    tangent = np.gradient(coords, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    return tangent, np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def ribbon(coords: np.ndarray, width: np.ndarray) -> shapely.Polygon:
    """A polygon of varying ``width`` around a smooth centre line (flat ends)."""
    _, normal = normals(coords)
    half = (np.asarray(width) / 2.0)[:, None]
    ring = np.vstack([coords + normal * half, (coords - normal * half)[::-1]])
    return largest_polygon(shapely.make_valid(shapely.Polygon(ring)))


def line_in(coords: np.ndarray, domain: shapely.Polygon) -> shapely.LineString:
    """The longest piece of a polyline inside ``domain``."""
    parts = shapely.get_parts(shapely.intersection(shapely.LineString(coords), domain))
    lines = [p for p in parts if isinstance(p, shapely.LineString) and not p.is_empty]
    return max(lines, key=lambda g: g.length) if lines else shapely.LineString()


def bed_halfwidth_max(water_width: float, rainfall: bool) -> float:
    """Upper bound of the half width of the river bed built by :func:`river_corridor`."""
    return 0.5 * water_width * 1.3 * 4.0 * (1.3 if rainfall else 1.0)


def river_corridor(
    river: Channel, water_width: float, rainfall: bool, domain: shapely.Polygon, rng: np.random.Generator
) -> tuple[shapely.LineString, BaseGeometry, BaseGeometry]:
    """River centre line, wetted channel and bare gravel bed (wider after heavy rainfall).

    The wetted channel wanders inside the bed; both vary in width along the river.
    """
    xy = river.coords(5.0)
    n = len(xy)
    w_water = water_width * (1 + 0.1 * np.clip(smooth_noise(n, 20, rng), -3, 3))
    w_bed = w_water * (3.0 + np.clip(smooth_noise(n, 30, rng), -1, 1)) * (1.3 if rainfall else 1.0)
    shift = 0.35 * (w_bed - w_water) * np.clip(smooth_noise(n, 25, rng), -1, 1)
    _, normal = normals(xy)
    water = ribbon(xy + normal * shift[:, None], w_water)
    bed = shapely.union(ribbon(xy, w_bed), water)
    return line_in(xy, domain), water.intersection(domain), largest_polygon(bed.intersection(domain))


def valley_road(river: Channel, offset: float, side: float, domain: shapely.Polygon) -> shapely.LineString:
    """A road along the valley floor, ``offset`` metres to one side of the river, smoothed."""
    xy = river.coords(5.0)
    _, normal = normals(xy)
    road = xy + side * offset * normal
    kernel = np.ones(9) / 9
    smooth = np.stack([np.convolve(road[:, i], kernel, mode="valid") for i in range(2)], axis=1)
    return line_in(smooth, domain)


def switchback(
    road: shapely.LineString,
    gx: np.ndarray,
    gy: np.ndarray,
    grid: GridSpec,
    domain: shapely.Polygon,
    rng: np.random.Generator,
) -> shapely.LineString:
    """An unpaved track leaving ``road`` and climbing the hillside in hairpin bends."""
    p = np.asarray(road.interpolate(rng.uniform(0.3, 0.7), normalized=True).coords[0])
    pts = [p]
    sign = rng.choice([-1.0, 1.0])
    for leg in range(int(rng.integers(4, 7))):
        g = np.array([sample_points(gx, grid, p[0], p[1]), sample_points(gy, grid, p[0], p[1])])
        up = g / max(np.linalg.norm(g), 1e-9)
        turn = 0.0 if leg == 0 else sign * np.radians(rng.uniform(68, 78))
        c, s = np.cos(turn), np.sin(turn)
        step = np.array([c * up[0] - s * up[1], s * up[0] + c * up[1]])
        p = p + step * (40.0 if leg == 0 else rng.uniform(110, 190))
        pts.append(p)
        sign = -sign
    return line_in(np.asarray(pts), domain)


def _rectangle(
    centre: np.ndarray, length: float, width: float, angle: float, jitter: np.ndarray | None = None
) -> shapely.Polygon:
    u = np.array([np.cos(angle), np.sin(angle)])
    v = np.array([-u[1], u[0]])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) * 0.5
    if jitter is not None:
        corners = corners * (1 + jitter)
    xy = centre + corners[:, :1] * length * u + corners[:, 1:] * width * v
    return shapely.Polygon(xy)


def villages(
    road: shapely.LineString,
    avoid: BaseGeometry,
    slope: np.ndarray,
    grid: GridSpec,
    n_villages: int,
    domain: shapely.Polygon,
    rng: np.random.Generator,
) -> list[shapely.Polygon]:
    """Clusters of small rectangular buildings on gentle ground beside the road, aligned with it."""
    shapely.prepare(avoid)
    buildings: list[shapely.Polygon] = []
    for k in range(n_villages):
        f = (k + rng.uniform(0.25, 0.75)) / n_villages
        at = road.length * f
        centre = np.asarray(road.interpolate(at).coords[0])
        ahead = np.asarray(road.interpolate(min(at + 10, road.length)).coords[0]) - centre
        angle = float(np.arctan2(ahead[1], ahead[0]))
        target = int(rng.integers(12, 40))
        placed = 0
        for _ in range(8 * target):
            if placed >= target:
                break
            c = centre + rng.normal(0, 45, 2)
            a = angle + rng.normal(0, 0.08) + (np.pi / 2 if rng.random() < 0.2 else 0.0)
            house = _rectangle(c, rng.uniform(7, 15), rng.uniform(5, 10), a)
            if _fits(house, buildings, avoid, domain, 2.5) and sample_points(slope, grid, *c) < 16:
                buildings.append(house)
                placed += 1
    return buildings


def _fits(
    geom: shapely.Polygon, others: list[shapely.Polygon], avoid: BaseGeometry, domain: shapely.Polygon, gap: float
) -> bool:
    if not domain.contains(geom) or avoid.intersects(geom):
        return False
    return not (others and shapely.intersects(np.asarray(others, dtype=object), geom.buffer(gap)).any())


def fields(
    slope: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    grid: GridSpec,
    avoid: BaseGeometry,
    n: int,
    domain: shapely.Polygon,
    rng: np.random.Generator,
) -> list[shapely.Polygon]:
    """Bare (ploughed) field plots on gentle slopes, long side along the contour like terraces."""
    shapely.prepare(avoid)
    gentle = np.flatnonzero(slope.ravel() < 12)
    if gentle.size == 0:
        return []
    out: list[shapely.Polygon] = []
    for pick in rng.choice(gentle, size=12 * n):
        if len(out) >= n:
            break
        r, c = divmod(int(pick), slope.shape[1])
        x, y = grid.x_coords()[c], grid.y_coords()[r]
        angle = float(np.arctan2(gy[r, c], gx[r, c]) + np.pi / 2 + rng.normal(0, 0.1))
        plot = _rectangle(
            np.array([x, y]), rng.uniform(25, 90), rng.uniform(15, 45), angle, rng.uniform(-0.12, 0.12, (4, 2))
        )
        corners = np.asarray(plot.exterior.coords)
        if (
            plot.is_valid
            and sample_points(slope, grid, corners[:, 0], corners[:, 1]).max() < 18
            and _fits(plot, out, avoid, domain, 1.5)
        ):
            out.append(plot)
    return out
