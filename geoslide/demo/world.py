"""A synthetic mountain world hit by a landslide event: terrain, river, roads, villages, fields, landslides."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from rasterio.features import rasterize
from scipy.ndimage import gaussian_filter

from geoslide.demo import features as ft
from geoslide.demo.events import EventSpec, hillslopes, landslide_inventory, old_scars, susceptibility
from geoslide.demo.terrain import Terrain, build_terrain, gradient_xy, resample_bilinear, slope_degrees
from geoslide.raster.grid import GridSpec

__all__ = ["World", "build_world", "sample_dem", "slope_degrees"]

DEM_RESOLUTION = 5.0


@dataclass(frozen=True, eq=False)
class World:
    """Everything that is on the ground in a demo event, in the event's UTM CRS.

    Attributes
    ----------
    spec
        The event.
    dem_grid, dem
        Base DEM (float32 metres) and its grid covering the domain.
    river, water, river_bed
        Main river centre line, wetted channel, bare gravel bed (which contains the water).
    roads
        Valley road and unpaved tracks; ``road_paved`` tells which of ``roads.geoms`` is paved.
    buildings
        Building footprints, clustered in villages.
    fields
        Bare ploughed fields on gentle slopes.
    landslides
        The event's inventory (see :func:`geoslide.demo.events.landslide_inventory`).
    seed
        The seed the world was built with (renderers derive static textures from it).
    streams
        Tributary gullies carved into the hillslopes.
    old_scars
        Revegetating scars of older landslides, visible before and after the event, not in the inventory.
    """

    spec: EventSpec
    dem_grid: GridSpec
    dem: np.ndarray
    river: shapely.LineString
    water: shapely.Polygon | shapely.MultiPolygon
    river_bed: shapely.Polygon | shapely.MultiPolygon
    roads: shapely.MultiLineString
    buildings: list[shapely.Polygon]
    fields: list[shapely.Polygon]
    landslides: gpd.GeoDataFrame
    seed: int = 0
    streams: shapely.MultiLineString = shapely.MultiLineString()
    road_paved: tuple[bool, ...] = ()
    old_scars: tuple[shapely.Polygon, ...] = ()

    @property
    def domain(self) -> shapely.Polygon:
        """The square event domain."""
        x0, y0 = self.spec.origin
        return shapely.box(x0, y0, x0 + self.spec.size_m, y0 + self.spec.size_m)


def _rngs(spec: EventSpec, seed: int, n: int) -> list[np.random.Generator]:
    seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(spec.name.encode())])
    return [np.random.default_rng(s) for s in seq.spawn(n)]


def build_world(spec: EventSpec, seed: int) -> World:
    """Generate the world of ``spec``; the same spec and seed always give the same world.

    Parameters
    ----------
    spec
        The event to generate.
    seed
        Random seed.

    Returns
    -------
    World
        Terrain, hydrography, infrastructure, land use and the landslide inventory.
    """
    r_terrain, r_river, r_roads, r_village, r_fields, r_slides, r_old = _rngs(spec, seed, 7)
    x0, y0 = spec.origin
    grid = GridSpec.around(spec.epsg, (x0, y0, x0 + spec.size_m, y0 + spec.size_m), DEM_RESOLUTION, spec.origin)
    domain = shapely.box(x0, y0, x0 + spec.size_m, y0 + spec.size_m)
    rain = spec.trigger == "rainfall"
    water_width = 22.0 if rain else 16.0
    bed_half = ft.bed_halfwidth_max(water_width, rain)
    floor = bed_half + float(np.clip(0.04 * spec.size_m, 40, 110)) + 10
    terrain = build_terrain(grid, spec.relief_m, floor, r_terrain)
    river, water, bed = ft.river_corridor(terrain.river, water_width, rain, domain, r_river)
    slope = slope_degrees(terrain.dem, grid.resolution)
    gx, gy = gradient_xy(gaussian_filter(terrain.dem.astype(np.float64), 1.5), grid.resolution)
    road = ft.valley_road(terrain.river, bed_half + 0.45 * (floor - bed_half), r_roads.choice([-1.0, 1.0]), domain)
    track = ft.switchback(road, gx, gy, grid, domain, r_roads)
    lines = [g for g in (road, track) if not g.is_empty]
    used = shapely.union_all([bed.buffer(8.0), road.buffer(5.0), track.buffer(4.0)])
    n_villages = max(1, round(spec.size_m / 1200))
    buildings = ft.villages(road, used, slope, grid, n_villages, domain, r_village)
    avoid = shapely.union_all(
        [bed.buffer(5.0), road.buffer(5.0), track.buffer(4.0), *(b.buffer(12.0) for b in buildings)]
    )
    n_fields = max(4, round(6 * spec.size_m**2 / 1e6))
    plots = ft.fields(slope, gx, gy, grid, avoid, n_fields, domain, r_fields)
    stop = rasterize([bed], out_shape=grid.shape, transform=grid.transform, all_touched=True).astype(bool)
    hs = hillslopes(spec, grid, terrain.dem, stop, bed.buffer(1.0))
    weights = susceptibility(spec, terrain.dem, hs.slope, terrain.height_above_river, stop)
    inventory = landslide_inventory(spec, hs, weights, r_slides)
    scars = old_scars(spec, hs, weights, list(inventory.geometry), r_old)
    return World(
        spec,
        grid,
        terrain.dem,
        river,
        water,
        bed,
        shapely.MultiLineString(lines),
        buildings,
        plots,
        inventory,
        int(seed),
        _streams(terrain, domain),
        tuple(i == 0 for i in range(len(lines))),
        tuple(scars),
    )


def _streams(terrain: Terrain, domain: shapely.Polygon) -> shapely.MultiLineString:
    """The lower, incised reaches of the tributaries."""
    lines = []
    for trib in terrain.tributaries:
        xy = trib.coords(5.0)
        lines.append(ft.line_in(xy[: int(0.7 * len(xy))], domain))
    return shapely.MultiLineString([g for g in lines if not g.is_empty])


def sample_dem(world: World, grid: GridSpec) -> np.ndarray:
    """Elevation (float32 metres) bilinearly resampled to the pixel centres of ``grid``.

    Raises
    ------
    geoslide.errors.GridError
        Where ``grid`` is not in the world's CRS.
    """
    return resample_bilinear(world.dem, world.dem_grid, grid).astype(np.float32)
