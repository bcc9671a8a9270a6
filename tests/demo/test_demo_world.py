"""The synthetic landslide world: terrain, features, inventory realism and multi-sensor rendering."""

from __future__ import annotations

import time

import numpy as np
import pytest
import shapely
from rasterio.features import rasterize
from scipy.ndimage import gaussian_filter, uniform_filter

from geoslide.demo.events import EVENTS, event_spec
from geoslide.demo.render import CLASSES, landcover, landslide_mask, render_scene
from geoslide.demo.terrain import sample_points
from geoslide.demo.world import build_world, sample_dem, slope_degrees
from geoslide.errors import ConfigError, GridError
from geoslide.raster.grid import GridSpec

RGBN = (0.49, 0.565, 0.665, 0.865)


@pytest.fixture(scope="module")
def quake():
    return build_world(event_spec("demo-quake"), 7)


@pytest.fixture(scope="module")
def storm():
    return build_world(event_spec("demo-storm"), 7)


@pytest.fixture(scope="module")
def tiny():
    return build_world(event_spec("tiny"), 3)


def domain_grid(world, res, shrink=0.0):
    x0, y0 = world.spec.origin
    side = world.spec.size_m - 2 * shrink
    n = int(side // res)
    return GridSpec(world.spec.epsg, (x0 + shrink, y0 + shrink, x0 + shrink + n * res, y0 + shrink + n * res), res)


def ndvi(refl):
    return (refl[3] - refl[2]) / np.maximum(refl[3] + refl[2], 1e-6)


def per_slide_pixels(world):
    ids = rasterize(
        [(g, i) for i, g in zip(world.landslides.landslide_id, world.landslides.geometry, strict=True)],
        out_shape=world.dem_grid.shape,
        transform=world.dem_grid.transform,
        fill=0,
        dtype="int32",
    )
    return ids


def test_event_spec_lookup_and_overrides():
    assert {"demo-quake", "demo-storm", "tiny"} <= set(EVENTS)
    assert EVENTS["demo-quake"].trigger == "earthquake" and EVENTS["demo-quake"].epsg == 32645
    assert EVENTS["demo-storm"].trigger == "rainfall" and EVENTS["demo-storm"].epsg == 32718
    assert event_spec("tiny", n_landslides=5).n_landslides == 5
    with pytest.raises(ConfigError, match="demo-quake"):
        event_spec("nope")
    with pytest.raises(ConfigError, match="colour"):
        event_spec("tiny", colour="red")
    with pytest.raises(ConfigError):
        event_spec("tiny", trigger="volcano")


def test_deterministic_by_seed(tiny):
    again = build_world(event_spec("tiny"), 3)
    other = build_world(event_spec("tiny"), 4)
    assert np.array_equal(tiny.dem, again.dem)
    assert len(tiny.landslides) == len(again.landslides)
    assert all(a.equals_exact(b, 0) for a, b in zip(tiny.landslides.geometry, again.landslides.geometry, strict=True))
    assert tiny.roads.equals_exact(again.roads, 0) and len(tiny.buildings) == len(again.buildings)
    assert not np.array_equal(tiny.dem, other.dem)
    grid = domain_grid(tiny, 10.0)
    a = render_scene(tiny, grid, RGBN, post_event=True, seed=1)
    b = render_scene(again, grid, RGBN, post_event=True, seed=1)
    c = render_scene(tiny, grid, RGBN, post_event=True, seed=2)
    assert np.array_equal(a.reflectance, b.reflectance) and np.array_equal(a.cloud, b.cloud)
    assert not np.array_equal(a.cloud, c.cloud)


def test_terrain_is_steep_with_relief(quake):
    slope = slope_degrees(quake.dem, quake.dem_grid.resolution)
    assert quake.dem.dtype == np.float32 and quake.dem_grid.shape == quake.dem.shape
    assert 0.6 * quake.spec.relief_m < np.ptp(quake.dem) < 1.6 * quake.spec.relief_m
    assert np.mean(slope > 35) > 0.2 and np.percentile(slope, 90) > 40


def test_river_follows_valley_bottom(quake, storm):
    for world in (quake, storm):
        xy = np.asarray(world.river.segmentize(5.0).coords)
        along = sample_points(world.dem, world.dem_grid, xy[:, 0], xy[:, 1])
        assert along.mean() < np.percentile(world.dem, 20)
        assert world.river_bed.area > 2 * world.water.area
        assert world.water.difference(world.river_bed).area < 1.0


def test_roads_villages_fields(quake):
    slope = slope_degrees(quake.dem, quake.dem_grid.resolution)
    assert len(quake.roads.geoms) >= 2 and quake.road_paved[0]
    assert len(quake.buildings) >= 20 and len(quake.fields) >= 20
    road = quake.roads.geoms[0]
    assert np.median([road.distance(b) for b in quake.buildings]) < 80
    centres = np.array([f.centroid.coords[0] for f in quake.fields])
    assert np.median(sample_points(slope, quake.dem_grid, centres[:, 0], centres[:, 1])) < 12
    assert not any(f.intersects(quake.river_bed) for f in quake.fields)


def test_inventory_schema_and_validity(quake, storm):
    for world in (quake, storm):
        inv = world.landslides
        assert list(inv.columns) == [
            "landslide_id",
            "cluster_id",
            "area_m2",
            "length_m",
            "width_m",
            "source_slope_deg",
            "trigger",
            "geometry",
        ]
        assert inv.crs.to_epsg() == world.spec.epsg and inv.landslide_id.is_unique
        assert len(inv) >= 0.8 * world.spec.n_landslides
        assert inv.is_valid.all() and (inv.geom_type == "Polygon").all()
        assert inv.within(world.domain.buffer(1e-6)).all()
        assert np.allclose(inv.area_m2, inv.area)
        assert inv.intersection(world.river_bed).area.max() < 1.0  # never on the river bed or water
        assert (inv.trigger == world.spec.trigger).all()


def test_area_distribution(quake, storm):
    for world in (quake, storm):
        area = world.landslides.area_m2
        assert area.min() >= 80 and area.max() <= 5e5
        assert area.max() > 5e4  # at least one very large slide
        assert area.median() < 0.05 * area.max()  # heavy tail
    assert quake.landslides.area_m2.median() > storm.landslides.area_m2.median()


def test_sources_on_steep_slopes(quake, storm):
    for world in (quake, storm):
        slope = slope_degrees(world.dem, world.dem_grid.resolution)
        ids = per_slide_pixels(world)
        steep = []
        for i in world.landslides.landslide_id:
            pix = ids == i
            if pix.sum() < 3:
                continue
            z = world.dem[pix]
            upper = z >= np.percentile(z, 70)  # the source zone: the upper 30 % of the slide
            steep.append(np.median(slope[pix][upper]) > 25)
        assert np.mean(steep) > 0.7
        assert np.mean(world.landslides.source_slope_deg > 25) > 0.7


def test_landslides_elongated_downslope(quake, storm):
    for world in (quake, storm):
        dzdy, dzdx = np.gradient(gaussian_filter(world.dem.astype(float), 1.0), world.dem_grid.resolution)
        ids = per_slide_pixels(world)
        aligned, ratio = [], []
        for i, geom in zip(world.landslides.landslide_id, world.landslides.geometry, strict=True):
            pix = ids == i
            if pix.sum() < 4:
                continue
            down = np.array([-dzdx[pix].mean(), dzdy[pix].mean()])  # rows run south
            rect = np.asarray(geom.minimum_rotated_rectangle.exterior.coords)
            sides = np.diff(rect[:3], axis=0)
            major = sides[np.argmax(np.linalg.norm(sides, axis=1))]
            cos = abs(major @ down) / (np.linalg.norm(major) * np.linalg.norm(down))
            aligned.append(cos > np.cos(np.radians(30)))
            ratio.append(np.linalg.norm(sides, axis=1).max() / np.linalg.norm(sides, axis=1).min())
        assert np.mean(aligned) > 0.7
        assert np.mean((np.array(ratio) > 1.6) & (np.array(ratio) < 7)) > 0.7
        lw = world.landslides.length_m / world.landslides.width_m
        assert ((lw >= 2) & (lw <= 6)).mean() > 0.7
    assert (storm.landslides.length_m / storm.landslides.width_m).median() > (
        quake.landslides.length_m / quake.landslides.width_m
    ).median()


def test_clusters_amalgamate(quake, storm):
    for world in (quake, storm):
        inv = world.landslides
        clustered = inv[inv.cluster_id >= 0]
        assert clustered.cluster_id.nunique() >= 3
        assert len(clustered) >= 0.5 * world.spec.cluster_fraction * len(inv)
        for _, members in clustered.groupby("cluster_id"):
            assert len(members) >= 2
            geoms = list(members.geometry)
            assert all(any(g.intersects(h) for h in geoms if h is not g) for g in geoms)
        singles = inv[inv.cluster_id < 0]
        tree = shapely.STRtree(inv.geometry.values)
        hits = tree.query(singles.geometry.values, predicate="intersects")
        assert (np.bincount(hits[0], minlength=len(singles)) == 1).mean() > 0.9  # singles stand alone


def test_earthquake_slides_sit_higher_than_rainfall_ones(quake, storm):
    def relative_height(world):
        xy = np.array([g.representative_point().coords[0] for g in world.landslides.geometry])
        z = sample_points(world.dem, world.dem_grid, xy[:, 0], xy[:, 1])
        return np.mean((z - world.dem.min()) / np.ptp(world.dem))

    assert relative_height(quake) > relative_height(storm)


def test_sample_dem_and_slope(tiny):
    assert np.allclose(sample_dem(tiny, tiny.dem_grid), tiny.dem)
    fine = domain_grid(tiny, 2.5, shrink=100)
    dem = sample_dem(tiny, fine)
    assert dem.dtype == np.float32 and dem.shape == fine.shape
    assert tiny.dem.min() - 1e-3 <= dem.min() and dem.max() <= tiny.dem.max() + 1e-3
    plane = np.add.outer(-np.arange(50.0), np.zeros(60)) * 10.0  # rises 10 m per 10 m pixel northward
    assert np.allclose(slope_degrees(plane, 10.0), 45.0, atol=1e-4)
    with pytest.raises(GridError):
        sample_dem(tiny, GridSpec(4326, (0, 0, 1, 1), 0.5))


def test_ndvi_of_scars_water_and_vegetation(tiny):
    grid = domain_grid(tiny, 3.0)
    post = render_scene(tiny, grid, RGBN, post_event=True, seed=11, cloud_fraction=0.0)
    pre = render_scene(tiny, grid, RGBN, post_event=False, seed=12, cloud_fraction=0.0)
    assert post.reflectance.dtype == np.float32 and post.reflectance.shape == (4, *grid.shape)
    assert 0 <= post.reflectance.min() and post.reflectance.max() <= 1
    scars = landslide_mask(tiny, grid)
    cover = landcover(tiny, grid, post_event=True)
    vegetated = np.isin(cover, [CLASSES["forest"], CLASSES["grass"]])
    assert scars.sum() > 100
    assert np.median(ndvi(post.reflectance)[scars]) < 0.3
    assert np.median(ndvi(post.reflectance)[vegetated]) > 0.6
    assert np.median(ndvi(pre.reflectance)[scars]) > 0.55
    assert np.mean(post.reflectance[3][cover == CLASSES["water"]]) < 0.05
    fields = cover == CLASSES["field"]
    assert fields.any() and np.median(ndvi(post.reflectance)[fields]) < 0.35  # a confuser of scars


def test_cloud_fraction_and_shadows(quake):
    grid = domain_grid(quake, 10.0)
    post = render_scene(quake, grid, RGBN, post_event=True, seed=21)
    pre = render_scene(quake, grid, RGBN, post_event=False, seed=22)
    heavy = render_scene(quake, grid, RGBN, post_event=True, seed=23, cloud_fraction=0.4)
    assert abs(post.cloud.mean() - quake.spec.cloud_fraction) < 0.03
    assert abs(pre.cloud.mean() - quake.spec.cloud_fraction / 2) < 0.03
    assert abs(heavy.cloud.mean() - 0.4) < 0.05
    assert heavy.shadow.any() and not (heavy.shadow & heavy.cloud).any()
    red = heavy.reflectance[2]
    assert np.median(red[heavy.cloud]) > 0.4
    assert np.median(red[heavy.shadow]) < 0.7 * np.median(red[~heavy.cloud & ~heavy.shadow])


def test_resolutions_agree(tiny):
    coarse, fine = domain_grid(tiny, 10.0), domain_grid(tiny, 3.0)
    a = landcover(tiny, coarse, post_event=True)
    b = landcover(tiny, fine, post_event=True)
    for code in (CLASSES["forest"], CLASSES["landslide"], CLASSES["water"], CLASSES["river_bed"]):
        assert abs(np.mean(a == code) - np.mean(b == code)) < 0.015
    ra = render_scene(tiny, coarse, RGBN, post_event=True, seed=5, cloud_fraction=0.0).reflectance
    rb = render_scene(tiny, fine, RGBN, post_event=True, seed=5, cloud_fraction=0.0).reflectance
    assert np.allclose(ra.mean(axis=(1, 2)), rb.mean(axis=(1, 2)), rtol=0.05)
    assert abs(ndvi(ra).mean() - ndvi(rb).mean()) < 0.02


def test_fine_grid_has_fine_texture(tiny):
    box = domain_grid(tiny, 0.5, shrink=400)
    renders = [
        render_scene(tiny, box, (0.65, 0.55, 0.47), post_event=False, seed=s, cloud_fraction=0.0) for s in (1, 2)
    ]
    forest = landcover(tiny, box, post_event=False) == CLASSES["forest"]
    assert forest.sum() > 500
    detail = [r.reflectance[1] - uniform_filter(r.reflectance[1], 10) for r in renders]  # below 5 m
    green = renders[0].reflectance[1][forest]
    assert detail[0][forest].std() > 0.1 * green.mean()  # not a smooth upsampled 5 m image
    assert np.corrcoef(detail[0][forest], detail[1][forest])[0, 1] > 0.5  # static canopy, not sensor noise


def test_rasterised_inventory_matches_area(quake):
    grid = domain_grid(quake, 3.0)
    mask = landslide_mask(quake, grid)
    union = shapely.union_all(quake.landslides.geometry.values).area
    assert abs(mask.sum() * 9.0 - union) / union < 0.03


def test_grid_in_other_crs_is_refused(tiny):
    with pytest.raises(GridError):
        render_scene(tiny, GridSpec(32646, (0, 0, 100, 100), 10.0), RGBN, post_event=True, seed=0)


def test_speed(tiny, quake):
    t = time.perf_counter()
    build_world(event_spec("tiny"), 99)
    assert time.perf_counter() - t < 1.5
    grid = domain_grid(quake, 3.0)
    t = time.perf_counter()
    render_scene(quake, grid, RGBN, post_event=True, seed=3)
    assert time.perf_counter() - t < 3.0
