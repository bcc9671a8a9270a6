"""Synthetic landslide events: their specifications and the landslide inventory each one triggers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import shapely
from scipy.ndimage import gaussian_filter, laplace
from shapely.geometry.base import BaseGeometry

from geoslide.demo.features import largest_polygon, normals, smooth_noise
from geoslide.demo.terrain import gradient_xy, sample_points, slope_degrees
from geoslide.errors import ConfigError
from geoslide.raster.grid import GridSpec

MIN_AREA_M2 = 100.0
MAX_AREA_M2 = 5e5
SHAPE_FACTOR = 0.8  # polygon area over (length * width)


@dataclass(frozen=True)
class EventSpec:
    """What a synthetic landslide event looks like.

    Parameters
    ----------
    name
        Event name, e.g. ``"demo-quake"``.
    trigger
        ``"earthquake"`` (large, clustered slides near ridges) or ``"rainfall"`` (many small slides and
        debris flows with long runout toward the channels).
    epsg
        A UTM zone EPSG code.
    origin
        South-west corner ``(x, y)`` of the square domain, in metres.
    size_m
        Side of the domain in metres.
    pre_date, post_date
        ISO dates of the pre- and post-event acquisitions.
    relief_m
        Ridge-to-valley relief in metres.
    n_landslides
        Target number of landslides, before amalgamated ones are counted together.
    cluster_fraction
        Share of the landslides placed in clusters of touching or overlapping slides.
    cloud_fraction
        Target cloud cover of the post-event scenes (about half of it before the event).
    """

    name: str
    trigger: Literal["earthquake", "rainfall"]
    epsg: int
    origin: tuple[float, float]
    size_m: float
    pre_date: str
    post_date: str
    relief_m: float
    n_landslides: int
    cluster_fraction: float
    cloud_fraction: float

    def __post_init__(self) -> None:
        if self.trigger not in ("earthquake", "rainfall"):
            raise ConfigError(f"event trigger must be 'earthquake' or 'rainfall', got {self.trigger!r}")
        if not (self.size_m >= 200 and self.relief_m > 0 and self.n_landslides >= 0):
            raise ConfigError("event size_m must be >= 200 m, relief_m > 0 and n_landslides >= 0")
        for key in ("cluster_fraction", "cloud_fraction"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"event {key} must lie in [0, 1], got {getattr(self, key)}")


EVENTS: dict[str, EventSpec] = {
    "demo-quake": EventSpec(
        name="demo-quake", trigger="earthquake", epsg=32645, origin=(351_201.7, 3_071_443.3), size_m=3000.0,
        pre_date="2023-03-28", post_date="2023-05-14", relief_m=800.0, n_landslides=120, cluster_fraction=0.35,
        cloud_fraction=0.08,
    ),
    "demo-storm": EventSpec(
        name="demo-storm", trigger="rainfall", epsg=32718, origin=(700_133.6, 8_512_917.9), size_m=3000.0,
        pre_date="2023-01-12", post_date="2023-03-21", relief_m=700.0, n_landslides=160, cluster_fraction=0.25,
        cloud_fraction=0.12,
    ),
    "tiny": EventSpec(
        name="tiny", trigger="earthquake", epsg=32645, origin=(352_407.3, 3_072_119.9), size_m=1000.0,
        pre_date="2023-03-28", post_date="2023-05-14", relief_m=280.0, n_landslides=20, cluster_fraction=0.3,
        cloud_fraction=0.08,
    ),
}  # fmt: skip
"""Predefined events: a Himalayan earthquake (Nepal), an Andean rainstorm (Peru) and a tiny one for tests."""


def event_spec(name: str, **overrides: object) -> EventSpec:
    """The predefined event ``name``, with any field replaced by ``overrides``.

    Raises
    ------
    ConfigError
        For an unknown event name or field.
    """
    if name not in EVENTS:
        raise ConfigError(f"unknown demo event {name!r}; known events: {', '.join(sorted(EVENTS))}")
    fields = {f.name for f in dataclasses.fields(EventSpec)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown event field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(fields))}")
    return dataclasses.replace(EVENTS[name], **overrides)


@dataclass(frozen=True)
class Hillslopes:
    """The terrain fields and masks landslides are placed with."""

    grid: GridSpec
    gx: np.ndarray  # smoothed dz/dx
    gy: np.ndarray  # smoothed dz/dy (y north)
    slope: np.ndarray  # degrees, from the unsmoothed DEM
    stop: np.ndarray  # bool, runout stops here (river bed)
    forbidden: BaseGeometry  # landslides are clipped off it
    domain: shapely.Polygon
    trigger: str
    min_gradient: float


def hillslopes(
    spec: EventSpec, grid: GridSpec, dem: np.ndarray, stop: np.ndarray, forbidden: BaseGeometry
) -> Hillslopes:
    """Prepare the fields for :func:`landslide_inventory`."""
    gx, gy = gradient_xy(gaussian_filter(dem.astype(np.float64), 1.5), grid.resolution)
    min_grad = np.tan(np.radians(10.0 if spec.trigger == "earthquake" else 4.0))
    shapely.prepare(forbidden)
    domain = shapely.box(*grid.bounds).buffer(-1.0, join_style="mitre")
    return Hillslopes(
        grid, gx, gy, slope_degrees(dem, grid.resolution), stop, forbidden, domain, spec.trigger, float(min_grad)
    )


def susceptibility(
    spec: EventSpec, dem: np.ndarray, slope: np.ndarray, height: np.ndarray, stop: np.ndarray
) -> np.ndarray:
    """Relative probability of a landslide source per DEM pixel.

    Steep slopes dominate everywhere; earthquake sources favour upper slopes and convex ridges (topographic
    amplification), rainfall sources mid and lower slopes and concave hollows where water converges.
    """
    steep = 1.0 / (1.0 + np.exp(-(slope - 33.0) / 3.0)) * (slope > 24)
    rel = np.clip(height / spec.relief_m, 0, 1)
    curv = laplace(gaussian_filter(dem.astype(np.float64), 2.0))
    curv /= max(curv.std(), 1e-9)
    if spec.trigger == "earthquake":
        w = steep * (0.1 + rel**2) * (1 + np.clip(-curv, 0, 2))
    else:
        w = steep * (0.25 + np.exp(-(((rel - 0.35) / 0.22) ** 2))) * (1 + np.clip(curv, 0, 2))
    w[gaussian_filter(stop.astype(np.float32), 4.0) > 0.01] = 0
    w[:3], w[-3:], w[:, :3], w[:, -3:] = 0, 0, 0, 0
    return w


def sample_areas(n: int, trigger: str, max_area: float, rng: np.random.Generator) -> np.ndarray:
    """Landslide areas (m2) from a three-parameter inverse-gamma law (Malamud et al. 2004), clipped."""
    scale = 1800.0 if trigger == "earthquake" else 900.0
    out = np.empty(0)
    while out.size < n:
        a = -132.0 + scale / rng.gamma(1.4, size=2 * n + 8)
        out = np.concatenate([out, a[(a >= MIN_AREA_M2) & (a <= max_area)]])
    return np.sort(out[:n])[::-1]


def sample_ratios(n: int, trigger: str, rng: np.random.Generator) -> np.ndarray:
    """Length-to-width ratios: about 3 for earthquake slides, 4 for rainfall debris flows."""
    median = 3.0 if trigger == "earthquake" else 3.8
    return np.clip(median * np.exp(rng.normal(0, 0.25, n)), 2.0, 7.0)


def width_profile(t: np.ndarray, trigger: str) -> np.ndarray:
    """Relative width along a landslide, from crown (0) to toe (1)."""
    if trigger == "earthquake":
        return 0.55 + 0.6 * np.sin(np.pi * np.clip(t, 0, 1)) ** 0.7
    return 0.4 + 0.95 * np.exp(-5 * t) + 0.4 * np.exp(-(((t - 0.9) / 0.1) ** 2))


def trace_downslope(hs: Hillslopes, x0: np.ndarray, y0: np.ndarray, max_len: float) -> tuple[np.ndarray, np.ndarray]:
    """Steepest-descent paths from sources ``(x0, y0)``, all traced at once.

    Returns
    -------
    paths, lengths
        ``(steps + 1, n, 2)`` positions (frozen once a path stops) and each path's length in metres. A path
        stops on gentle ground, in a pit, at the river bed or at the domain edge, or after ``max_len``.
    """
    step = max(2.0, hs.grid.resolution / 2)
    pos = [np.stack([x0, y0], axis=1).astype(float)]
    alive = np.ones(len(x0), dtype=bool)
    length = np.zeros(len(x0))
    prev = np.zeros((len(x0), 2))
    xmin, ymin, xmax, ymax = hs.domain.bounds
    for _ in range(int(max_len / step)):
        p = pos[-1]
        g = np.stack(
            [sample_points(hs.gx, hs.grid, p[:, 0], p[:, 1]), sample_points(hs.gy, hs.grid, p[:, 0], p[:, 1])], axis=1
        )
        norm = np.linalg.norm(g, axis=1)
        down = -g / np.maximum(norm, 1e-12)[:, None]
        new = p + step * down
        inside = (new[:, 0] > xmin) & (new[:, 0] < xmax) & (new[:, 1] > ymin) & (new[:, 1] < ymax)
        alive &= (norm > hs.min_gradient) & ((down * prev).sum(axis=1) > -0.2) & inside
        alive &= ~_lookup(hs.stop, hs.grid, new)
        if not alive.any():
            break
        pos.append(np.where(alive[:, None], new, p))
        length += step * alive
        prev = down
    return np.asarray(pos), length


def _lookup(mask: np.ndarray, grid: GridSpec, xy: np.ndarray) -> np.ndarray:
    cols = np.clip(((xy[:, 0] - grid.bounds[0]) / grid.resolution).astype(int), 0, mask.shape[1] - 1)
    rows = np.clip(((grid.bounds[3] - xy[:, 1]) / grid.resolution).astype(int), 0, mask.shape[0] - 1)
    return mask[rows, cols]


def outline(path: np.ndarray, width: float, trigger: str, wobble: np.ndarray) -> shapely.Polygon:
    """Landslide polygon around a downslope ``path``: varying width, arcuate crown, rounded toe.

    ``wobble`` is unit noise (any length) roughening the flanks.
    """
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    m = int(np.clip(cum[-1] / max(width / 5, 2.0), 8, 60))
    s = np.linspace(0, cum[-1], m)
    xy = np.stack([np.interp(s, cum, path[:, 0]), np.interp(s, cum, path[:, 1])], axis=1)
    t = s / max(cum[-1], 1e-9)
    base = width * width_profile(t, trigger) / 2
    knots = np.linspace(0, 1, len(wobble) // 2)
    left = (base * (1 + 0.18 * np.interp(t, knots, wobble[: len(knots)])))[:, None]
    right = (base * (1 + 0.18 * np.interp(t, knots, wobble[len(knots) :])))[:, None]
    tangent, normal = normals(xy)
    phi = np.linspace(0, np.pi, 9)[1:-1, None]
    toe = xy[-1] + (left[-1] + right[-1]) / 2 * (np.cos(phi) * normal[-1] + np.sin(phi) * tangent[-1])
    crown = xy[0] + (left[0] + right[0]) / 2 * (-np.cos(phi) * normal[0] - np.sin(phi) * tangent[0])
    ring = np.vstack([xy + normal * left, toe, (xy - normal * right)[::-1], crown])
    return largest_polygon(shapely.make_valid(shapely.Polygon(ring)))


@dataclass
class _Pool:
    """Candidate sources with their traced paths; consumed in order."""

    paths: np.ndarray
    lengths: np.ndarray
    next: int = 0


def _candidate_pool(hs: Hillslopes, weights: np.ndarray, n: int, max_len: float, rng: np.random.Generator) -> _Pool:
    p = weights.ravel() / weights.sum()
    picks = rng.choice(p.size, size=n, p=p)
    rows, cols = np.divmod(picks, weights.shape[1])
    res = hs.grid.resolution
    x = hs.grid.x_coords()[cols] + rng.uniform(-0.5, 0.5, n) * res
    y = hs.grid.y_coords()[rows] + rng.uniform(-0.5, 0.5, n) * res
    paths, lengths = trace_downslope(hs, x, y, max_len)
    return _Pool(paths, lengths)


def _path_of(paths: np.ndarray, lengths: np.ndarray, i: int, upto: float, step: float) -> np.ndarray:
    k = int(round(min(upto, lengths[i]) / step))
    return paths[: max(k, 1) + 1, i]


def _build(hs: Hillslopes, path: np.ndarray, area: float, width: float, rng: np.random.Generator) -> shapely.Polygon:
    wobble = smooth_noise(48, 1.5, rng)
    poly = outline(path, width, hs.trigger, wobble)
    if poly.area > 0:  # one correction of the width toward the target area
        poly = outline(path, width * area / poly.area, hs.trigger, wobble)
    clipped = poly.difference(hs.forbidden).intersection(hs.domain)
    return largest_polygon(clipped)


@dataclass
class _Slide:
    polygon: shapely.Polygon
    path: np.ndarray
    cluster: int = -1


def _dims(hs: Hillslopes, area: float, ratio: float) -> tuple[float, float]:
    """Mean width and the downslope path length giving ``area`` at length/width ``ratio``."""
    length = np.sqrt(area * ratio / SHAPE_FACTOR)
    width = length / ratio
    caps = width * width_profile(np.array([0.0, 1.0]), hs.trigger).sum() / 2
    return float(width), float(max(length - caps, 2 * _step(hs)))


def _step(hs: Hillslopes) -> float:
    return max(2.0, hs.grid.resolution / 2)


def _clear(poly: shapely.Polygon, others: list[shapely.Polygon], gap: float) -> bool:
    if poly.is_empty or poly.area < 0.9 * MIN_AREA_M2:
        return False
    return not (others and shapely.intersects(np.asarray(others, dtype=object), poly.buffer(gap)).any())


def _place_single(
    hs: Hillslopes,
    pool: _Pool,
    used: np.ndarray,
    area: float,
    ratio: float,
    others: list[shapely.Polygon],
    rng: np.random.Generator,
) -> _Slide | None:
    width, need = _dims(hs, area, ratio)
    fits = np.flatnonzero(~used & (pool.lengths >= 0.85 * need))[:40]
    if fits.size == 0:  # nothing long enough left: shrink the slide to the longest free path
        free = np.flatnonzero(~used & (pool.lengths >= 3 * _step(hs)))
        if free.size == 0:
            return None
        fits = free[np.argsort(pool.lengths[free])[::-1][:5]]
    for i in fits:
        used[i] = True
        path = _path_of(pool.paths, pool.lengths, i, need, _step(hs))
        shrink = min(1.0, pool.lengths[i] / need)
        poly = _build(hs, path, area * shrink, width, rng)
        if _clear(poly, others, 1.0):
            return _Slide(poly, path)
    return None


def _place_cluster(
    hs: Hillslopes,
    pool: _Pool,
    used: np.ndarray,
    areas: np.ndarray,
    ratios: np.ndarray,
    others: list[shapely.Polygon],
    rng: np.random.Generator,
) -> list[_Slide]:
    dims = [_dims(hs, a, r) for a, r in zip(areas, ratios, strict=True)]
    fits = np.flatnonzero(~used & (pool.lengths >= 0.85 * max(d[1] for d in dims)))
    if fits.size == 0:
        return []
    used[fits[0]] = True
    src = pool.paths[0, fits[0]]
    g = np.array([sample_points(hs.gx, hs.grid, *src), sample_points(hs.gy, hs.grid, *src)])
    down = -g / max(np.linalg.norm(g), 1e-12)
    across = np.array([-down[1], down[0]])
    tops = np.array([w for w, _ in dims]) * width_profile(np.zeros(1), hs.trigger)[0]
    offsets = np.concatenate([[0.0], np.cumsum(0.35 * (tops[:-1] + tops[1:]))])
    offsets -= offsets.mean()
    jitter = rng.uniform(-0.08, 0.08, len(dims)) * np.array([n for _, n in dims])
    xy = src + offsets[:, None] * across + jitter[:, None] * down
    paths, lengths = trace_downslope(hs, xy[:, 0], xy[:, 1], max(n for _, n in dims))
    members = []
    for j, (width, need) in enumerate(dims):
        if lengths[j] < 3 * _step(hs):
            continue
        path = _path_of(paths, lengths, j, need, _step(hs))
        poly = _build(hs, path, areas[j] * min(1.0, lengths[j] / need), width, rng)
        if _clear(poly, others, 1.0):
            members.append(_Slide(poly, path))
    return _connected(members)


def _connected(members: list[_Slide]) -> list[_Slide]:
    """The largest group of members linked by intersections."""
    best: list[int] = []
    seen: set[int] = set()
    for start in range(len(members)):
        if start in seen:
            continue
        group, todo = [], [start]
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            group.append(k)
            todo.extend(
                j for j in range(len(members)) if j not in seen and members[k].polygon.intersects(members[j].polygon)
            )
        best = group if len(group) > len(best) else best
    return [members[k] for k in sorted(best)] if len(best) >= 2 else []


def landslide_inventory(
    spec: EventSpec, hs: Hillslopes, weights: np.ndarray, rng: np.random.Generator
) -> gpd.GeoDataFrame:
    """Place ``spec.n_landslides`` landslides, ``spec.cluster_fraction`` of them in amalgamated clusters.

    Sources are drawn from the ``weights`` (see :func:`susceptibility`); each landslide follows the
    steepest-descent path from its source. Singles do not touch each other; cluster members overlap.
    """
    n = spec.n_landslides
    max_area = min(MAX_AREA_M2, 0.03 * spec.size_m**2)
    areas = sample_areas(n, spec.trigger, max_area, rng)
    if spec.size_m >= 2000 and n and areas.max() < 6e4:  # a full-size event has at least one very large slide
        areas[0] = rng.uniform(6e4, min(2e5, max_area))
    ratios = sample_ratios(n, spec.trigger, rng)
    order = rng.permutation(n)
    n_clustered = int(round(spec.cluster_fraction * n))
    step = _step(hs)
    max_len = max([_dims(hs, a, r)[1] for a, r in zip(areas, ratios, strict=True)] + [step])
    pool = _candidate_pool(hs, weights, 8 * n + 50, max_len * 1.05, rng)
    used = np.zeros(len(pool.lengths), dtype=bool)
    slides: list[_Slide] = []
    k, cluster = 0, 0
    while k < n_clustered:
        size = int(min(rng.integers(3, 7) if spec.trigger == "earthquake" else rng.integers(2, 5), n_clustered - k))
        idx = order[k : k + max(size, 2)]
        members = _place_cluster(hs, pool, used, areas[idx], ratios[idx], [s.polygon for s in slides], rng)
        for m in members:
            m.cluster = cluster
        cluster += bool(members)
        slides.extend(members)
        k += size
    for i in sorted(order[n_clustered:], key=lambda i: -areas[i]):
        slide = _place_single(hs, pool, used, areas[i], ratios[i], [s.polygon for s in slides], rng)
        if slide is not None:
            slides.append(slide)
    return _to_frame(spec, hs, slides)


def _to_frame(spec: EventSpec, hs: Hillslopes, slides: list[_Slide]) -> gpd.GeoDataFrame:
    rows = []
    for i, s in enumerate(slides, start=1):
        chord = s.path[-1] - s.path[0]
        axis = chord / max(np.linalg.norm(chord), 1e-9)
        along = np.asarray(s.polygon.exterior.coords) @ axis
        length = float(along.max() - along.min())
        slope = float(sample_points(hs.slope, hs.grid, *s.path[0]))
        rows.append(
            {
                "landslide_id": i,
                "cluster_id": s.cluster,
                "area_m2": float(s.polygon.area),
                "length_m": length,
                "width_m": float(s.polygon.area) / length,
                "source_slope_deg": slope,
                "trigger": spec.trigger,
                "geometry": s.polygon,
            }
        )
    columns = [
        "landslide_id",
        "cluster_id",
        "area_m2",
        "length_m",
        "width_m",
        "source_slope_deg",
        "trigger",
        "geometry",
    ]
    frame = gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs=spec.epsg)
    return frame.astype({"landslide_id": "int64", "cluster_id": "int64"})


def old_scars(
    spec: EventSpec, hs: Hillslopes, weights: np.ndarray, avoid: list[shapely.Polygon], rng: np.random.Generator
) -> list[shapely.Polygon]:
    """Scars of older, revegetating landslides: not part of the event's inventory, but visible in imagery."""
    n = max(2, spec.n_landslides // 6)
    areas = sample_areas(n, "rainfall", min(2e4, 0.01 * spec.size_m**2), rng)
    ratios = sample_ratios(n, spec.trigger, rng)
    max_len = max(_dims(hs, a, r)[1] for a, r in zip(areas, ratios, strict=True))
    pool = _candidate_pool(hs, weights, 6 * n + 20, max_len * 1.05, rng)
    used = np.zeros(len(pool.lengths), dtype=bool)
    out: list[shapely.Polygon] = []
    for a, r in zip(areas, ratios, strict=True):
        slide = _place_single(hs, pool, used, a, r, [p.buffer(5.0) for p in avoid] + out, rng)
        if slide is not None:
            out.append(slide.polygon)
    return out
