"""Labels, patch plans and the patch store, each against an independent numpy/rasterio reference."""

from __future__ import annotations

import warnings

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from inprocess import run_cli
from rasterio.features import rasterize

from geoslide import grid_of, open_cube, search
from geoslide.data.patches import PatchSpec, plan_windows, select_windows, window_sums
from geoslide.data.splits import block_split, events_split, random_split
from geoslide.data.store import COLUMNS, PatchStore
from geoslide.data.trainingset import TrainingSetSpec, build_patches
from geoslide.errors import ConfigError, GeoslideWarning, LabelError, PatchStoreError
from geoslide.inventory.codes import MASK_NODATA
from geoslide.inventory.rasterize import rasterize_inventory
from geoslide.inventory.read import read_inventory
from geoslide.raster.grid import GridSpec

GRID = GridSpec(32645, (351_201.7, 3_071_443.3, 351_201.7 + 3 * 470, 3_071_443.3 + 3 * 333), 3.0)


def _inventory_path(event):
    item = search({"collections": [f"{event}-inventory"]})[0]
    return item.assets["labels-parquet"].get_absolute_href()


def _post(event, sensor="planetscope"):
    return search({"collections": [f"{event}-{sensor}"], "query": {"geoslide:phase": {"eq": "post"}}})


@pytest.mark.parametrize("chunks", [64, (100, 37), 4096])
def test_chunked_mask_equals_rasterio_over_the_whole_grid(chunks):
    inv = gpd.read_parquet(_inventory_path("demo-quake"))
    grid = grid_of(open_cube(_post("demo-quake"), ["red"]))
    expected = rasterize(((g, 1) for g in inv.geometry), out_shape=grid.shape, transform=grid.transform, dtype="uint8")
    got = rasterize_inventory(inv.to_crs(4326), grid, chunks=chunks)  # reprojected back to UTM per the grid
    assert got.data.chunks[0][0] == (chunks if isinstance(chunks, int) else chunks[0]) or chunks == 4096
    np.testing.assert_array_equal(got.values, expected)
    assert expected.sum() > 1000


def test_invalid_polygons_are_repaired_with_a_counted_warning():
    bowtie = shapely.Polygon([(351_300, 3_071_500), (351_400, 3_071_600), (351_400, 3_071_500), (351_300, 3_071_600)])
    square = shapely.box(351_500, 3_071_500, 351_560, 3_071_560)
    frame = gpd.GeoDataFrame(geometry=[bowtie, square, bowtie], crs=32645)
    with pytest.warns(GeoslideWarning, match="repaired 2 invalid"):
        mask = rasterize_inventory(frame, GRID, chunks=128).values
    repaired = shapely.make_valid(bowtie)
    expected = rasterize([(repaired, 1), (square, 1)], out_shape=GRID.shape, transform=GRID.transform, dtype="uint8")
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(("frame", "match"), [
    (gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 1, 1)]), "has no CRS"),
    (gpd.GeoDataFrame(geometry=[shapely.box(10.0, 45.0, 10.1, 45.1)], crs=4326), "outside the imagery"),
])
def test_bad_labels(frame, match):
    with pytest.raises(LabelError, match=match):
        rasterize_inventory(frame, GRID)


def test_an_inventory_without_polygons_labels_nothing_but_cannot_make_a_training_set():
    """Landslide-free labels (to count false alarms) rasterize to zeros; read as an inventory only when allowed."""
    empty = gpd.GeoDataFrame(geometry=[], crs=32645)
    assert not rasterize_inventory(empty, GRID, chunks=128).values.any()
    with pytest.raises(LabelError, match="no polygons"):
        read_inventory(empty)


def test_a_landslide_free_scene_gives_negative_patches_where_empty_ones_are_kept(tmp_path):
    """Hard negatives: every window of the scene, none with a landslide pixel; refused where empties are dropped."""
    empty = tmp_path / "none.parquet"
    gpd.GeoDataFrame(geometry=[], crs=32645).to_parquet(empty)
    keep = TrainingSetSpec(bands=("red", "green", "blue", "nir"), patch=PatchSpec(size=64, empty="keep"))
    store = build_patches(_post("demo-quake"), str(empty), tmp_path / "neg.zarr", keep)
    labelled = build_patches(_post("demo-quake"), _inventory_path("demo-quake"), tmp_path / "pos.zarr", keep)
    meta, masks = store.meta(), store.masks().compute()
    assert len(meta) > 50 and not (masks == 1).any() and (meta.landslide_fraction == 0).all()
    # the same windows as the scene cut with its real inventory (where patches are chosen by nodata only)
    pos = labelled.meta()
    assert sorted(zip(meta.row, meta.col, strict=True)) == sorted(zip(pos.row, pos.col, strict=True))
    np.testing.assert_array_equal(store.images().compute(), labelled.images().compute())
    drop = TrainingSetSpec(bands=("red", "green", "blue", "nir"), patch=PatchSpec(size=64))
    with pytest.raises(LabelError, match="has no polygons and empty patches are dropped"):
        build_patches(_post("demo-quake"), str(empty), tmp_path / "none.zarr", drop)
    assert not (tmp_path / "none.zarr").exists()


@pytest.mark.parametrize(("shape", "size", "stride"),
                         [((333, 470), 64, None), ((333, 470), 64, 50), ((128, 128), 128, 7)])
def test_window_plan_and_sums_match_numpy(shape, size, stride):
    spec = PatchSpec(size=size, stride=stride)
    windows = plan_windows(shape, spec)
    step = stride or size
    expected = [(r, c) for r in range(0, shape[0] - size + 1, step) for c in range(0, shape[1] - size + 1, step)]
    assert [tuple(w) for w in windows] == expected
    flag = np.random.default_rng(1).random(shape) < 0.2
    (sums,) = window_sums([da.from_array(flag, chunks=100)], windows, size, stride)
    np.testing.assert_array_equal(sums, [flag[r : r + size, c : c + size].sum() for r, c in windows])


def test_patch_larger_than_the_image():
    with pytest.raises(ConfigError, match="larger than the image"):
        plan_windows((100, 300), PatchSpec(size=128))


def test_selection_policies():
    windows = np.zeros((1000, 2), dtype=int)
    landslide = np.r_[np.full(100, 0.2), np.zeros(900)]
    nodata = np.r_[np.zeros(990), np.full(10, 0.5)]
    drop = select_windows(windows, landslide, nodata, PatchSpec(empty="drop"))
    assert drop.sum() == 100 and drop[:100].all()
    keep = select_windows(windows, landslide, nodata, PatchSpec(empty="keep", max_nodata=0.6))
    assert keep.all()
    frac = select_windows(windows, landslide, nodata, PatchSpec(empty="fraction", keep_fraction=0.3, seed=4))
    assert frac[:100].all() and 0.25 < frac[100:].mean() < 0.35 and not frac[990:].any()
    chosen = np.zeros(1000, dtype=bool)
    chosen[500:510] = True
    neg = select_windows(windows, landslide, nodata, PatchSpec(empty="drop"), negatives=chosen)
    assert neg.sum() == 110 and neg[500:510].all()


def test_splits():
    meta = pd.DataFrame({"event": ["a"] * 50 + ["b"] * 30, "xmin": np.r_[np.arange(50), np.arange(30)] * 10.0})
    meta["xmax"] = meta.xmin + 10
    split = random_split(meta, seed=1)
    for event, n in (("a", 50), ("b", 30)):
        counts = pd.Series(split[meta.event == event]).value_counts()
        assert counts["train"] == round(0.6 * n) and counts["val"] == round(0.2 * n)
    blocks = block_split(meta)
    a = meta.event == "a"
    assert (blocks[a][:12] == "train").all() and (blocks[a][12:15] == "val").all() and (blocks[a][15:] == "test").all()
    unplaced = meta.assign(xmin=np.nan, xmax=np.nan)
    with pytest.warns(GeoslideWarning, match="80 patches have no coordinates"):
        by_order = block_split(unplaced)
    assert list(by_order[:50]) == ["train"] * 12 + ["val"] * 3 + ["test"] * 35  # 50 * 0.25 = 12.5
    ev = events_split(meta, ["b"], val_share=0.25)
    assert (ev[~a] == "test").all() and (ev[a] == "val").sum() == round(0.25 * 50)
    with pytest.raises(ConfigError, match="not in the store"):
        events_split(meta, ["c"])


@pytest.fixture
def built(tmp_path):
    spec = TrainingSetSpec(bands=("red", "green", "blue", "nir"), derived=("ndvi",), patch=PatchSpec(size=64))
    out = tmp_path / "p.zarr"
    store = build_patches(_post("demo-quake"), _inventory_path("demo-quake"), out, spec)
    return store, spec, out


def test_patches_equal_numpy_slices_of_the_cube(built):
    store, spec, _ = built
    cube = open_cube(_post("demo-quake"), ["red", "green", "blue", "nir"], rescale=True).isel(time=0).values
    grid = grid_of(open_cube(_post("demo-quake"), ["red"]))
    inv = gpd.read_parquet(_inventory_path("demo-quake"))
    mask = rasterize(((g, 1) for g in inv.geometry), out_shape=grid.shape, transform=grid.transform, dtype="uint8")
    invalid = np.isnan(cube).any(axis=0)
    mask[invalid] = MASK_NODATA
    meta, images, masks = store.meta(), store.images().compute(), store.masks().compute()
    assert len(meta) == len(images) == len(masks) > 10 and store.bands == ["red", "green", "blue", "nir", "ndvi"]
    for i, (r, c) in enumerate(zip(meta.row, meta.col, strict=True)):
        window = np.s_[r : r + 64, c : c + 64]
        np.testing.assert_array_equal(images[i, :4], cube[(slice(None), *window)])
        np.testing.assert_array_equal(masks[i], mask[window])
        ndvi = (cube[3][window] - cube[0][window]) / (cube[3][window] + cube[0][window])
        np.testing.assert_allclose(images[i, 4], ndvi, rtol=1e-6)
        assert (masks[i] == 1).any()  # HR-GLDD policy: no patch without landslide pixels
    assert (meta.nodata_fraction == 0).all() and set(meta.split) == {"train", "val", "test"}
    assert np.allclose(meta.xmax - meta.xmin, 64 * 3.0) and set(meta.crs) == {"EPSG:32645"}


def test_appending_an_event_keeps_what_is_there(built):
    store, spec, out = built
    before_n, before_img, before_meta = len(store), store.images().compute(), store.meta()
    storm = build_patches(_post("demo-storm"), _inventory_path("demo-storm"), out, spec)
    assert len(storm) > before_n
    np.testing.assert_array_equal(storm.images()[:before_n].compute(), before_img)
    pd.testing.assert_frame_equal(storm.meta().iloc[:before_n], before_meta)
    assert set(storm.meta().event) == {"demo-quake", "demo-storm"}
    assert set(storm.meta().crs) == {"EPSG:32645", "EPSG:32718"}


def test_append_with_other_bands_is_refused(built):
    _, _, out = built
    other = TrainingSetSpec(bands=("red", "nir"), patch=PatchSpec(size=64))
    with pytest.raises(PatchStoreError, match="match --bands/--patch-size"):
        build_patches(_post("demo-storm"), _inventory_path("demo-storm"), out, other)


def test_an_interrupted_append_leaves_the_store_readable(built):
    store, _, out = built
    n, before = len(store), store.images().compute()

    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 3:
            raise OSError("worker lost")
        return block

    images = da.zeros((6, 5, 64, 64), chunks=(1, 5, 64, 64), dtype="float32").map_blocks(boom, dtype="float32")
    meta = pd.DataFrame({k: np.full(6, "") if v == "str" else np.zeros(6, dtype=v) for k, v in COLUMNS.items()})
    with pytest.raises(OSError, match="worker lost"):
        store.append(images, da.zeros((6, 64, 64), dtype="uint8"), meta)
    reopened = PatchStore.open(out)
    assert len(reopened) == n and len(reopened.meta()) == n
    np.testing.assert_array_equal(reopened.images().compute(), before)


def test_store_refuses_to_overwrite_and_checks_kind(tmp_path):
    PatchStore.create(tmp_path / "s.zarr", ["red"], 16)
    with pytest.raises(PatchStoreError, match="already exists"):
        PatchStore.create(tmp_path / "s.zarr", ["red"], 16)
    with pytest.raises(PatchStoreError, match="no patch store"):
        PatchStore.open(tmp_path / "none.zarr")


def _cli(*args):
    return run_cli(*args)


def test_cli_patches_builds_a_store(tmp_path):
    query = '{"collections": ["demo-storm-sentinel2"], "query": {"geoslide:phase": {"eq": "post"}}}'
    done = _cli("patches", "--stac-query", query, "--labels", _inventory_path("demo-storm"), "--out",
                str(tmp_path / "s2.zarr"), "--patch-size", "32", "--bands", "red", "green", "blue", "nir",
                "elevation", "--derived", "ndvi", "slope", "--split", "blocks", "--empty", "keep")
    assert done.returncode == 0, done.stderr
    store = PatchStore.open(tmp_path / "s2.zarr")
    assert store.bands == ["red", "green", "blue", "nir", "elevation", "ndvi", "slope"]
    assert len(store) == (200 // 32) ** 2  # empty patches kept: the whole 6 x 6 grid of 32 px patches
    assert set(store.meta().split) == {"train", "val", "test"}  # blocks: a validation strip after the training quarter
    assert "36 patches of 32 px" in done.stdout


@pytest.mark.parametrize(("extra", "message"), [
    (["--patch-size", "4000"], "larger than the image"),
    (["--bands", "red", "--derived", "ndvi"], "deriving needs band 'nir'"),
])
def test_cli_patches_errors(tmp_path, extra, message):
    done = _cli("patches", "--stac-query", '{"ids": ["demo-storm-sentinel2-post"]}', "--labels",
                _inventory_path("demo-storm"), "--out", str(tmp_path / "x.zarr"), *extra)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "x.zarr").exists()  # a failed build leaves nothing behind


def test_no_warning_flood_from_a_build(tmp_path):
    spec = TrainingSetSpec(bands=("red", "nir"), patch=PatchSpec(size=64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_patches(_post("demo-quake"), _inventory_path("demo-quake"), tmp_path / "w.zarr", spec)
    assert not [w for w in caught if issubclass(w.category, GeoslideWarning)]


def test_band_split_chunks_are_written_whole(tmp_path):
    """stackstac gives one band per dask chunk; partial writes of one Zarr chunk used to race."""
    rng = np.random.default_rng(0)
    images = rng.random((120, 4, 16, 16), dtype=np.float32)
    store = PatchStore.create(tmp_path / "r.zarr", ["a", "b", "c", "d"], 16)
    meta = pd.DataFrame({k: np.full(120, "") if v == "str" else np.zeros(120, dtype=v) for k, v in COLUMNS.items()})
    for _ in range(3):
        store.append(da.from_array(images, chunks=(1, 1, 16, 16)), da.zeros((120, 16, 16), dtype="uint8"), meta)
    np.testing.assert_array_equal(store.images().compute(), np.concatenate([images] * 3))


def _reflectance(item):
    import rasterio

    with rasterio.open(item.assets["image"].get_absolute_href()) as ds:
        data = ds.read([3, 4]).astype("float32")  # red, nir of blue, green, red, nir
    return np.where(data == 0, np.nan, data * np.float32(0.0001))


def test_difference_bands_equal_post_minus_pre(tmp_path):
    post = search({"ids": ["demo-storm-planetscope-post"]})
    pre = search({"ids": ["demo-storm-planetscope-pre"]})
    spec = TrainingSetSpec(bands=("red", "nir"), patch=PatchSpec(size=64))
    store = build_patches(post, _inventory_path("demo-storm"), tmp_path / "d.zarr", spec, pre_items=pre)
    assert store.bands == ["red", "nir", "d_red", "d_nir"]
    expected = _reflectance(post[0]) - _reflectance(pre[0])
    images, meta = store.images().compute(), store.meta()
    assert len(meta) > 5
    for i, (r, c) in enumerate(zip(meta.row, meta.col, strict=True)):
        np.testing.assert_allclose(images[i, 2:], expected[:, r : r + 64, c : c + 64], atol=1e-6)


def test_cli_leave_events_out(tmp_path):
    out = str(tmp_path / "ev.zarr")
    for event in ("demo-quake", "demo-storm"):
        query = f'{{"collections": ["{event}-sentinel2"], "query": {{"geoslide:phase": {{"eq": "post"}}}}}}'
        done = _cli("patches", "--stac-query", query, "--labels", _inventory_path(event), "--out", out,
                    "--patch-size", "32", "--bands", "red", "nir", "--split", "events", "--test-events", "demo-storm")
        assert done.returncode == 0, done.stderr
    meta = PatchStore.open(out).meta()
    assert set(meta.split[meta.event == "demo-storm"]) == {"test"}
    assert set(meta.split[meta.event == "demo-quake"]) == {"train", "val"}


@pytest.mark.parametrize(("stride", "split", "warns"), [(32, "random", True), (64, "random", False),
                                                        (32, "blocks", False)])
def test_random_split_of_overlapping_patches_warns_of_leakage(tmp_path, stride, split, warns):
    spec = TrainingSetSpec(bands=("red", "nir"), split=split, patch=PatchSpec(size=64, stride=stride))
    scenes = [*_post("demo-quake"), *_post("demo-quake", "sentinel2")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_patches(scenes, _inventory_path("demo-quake"), tmp_path / "w.zarr", spec)
    leaks = [w for w in caught if issubclass(w.category, GeoslideWarning) and "optimistic" in str(w.message)]
    assert len(leaks) == int(warns)  # once per build, not once per scene
    assert not leaks or leaks[0].filename == __file__  # pointing at the caller of build_patches


def test_patches_of_mixed_phases_warn(tmp_path):
    both = search({"collections": ["demo-quake-planetscope"]})  # pre and post: the inventory labels both
    spec = TrainingSetSpec(bands=("red", "nir"), patch=PatchSpec(size=128))
    with pytest.warns(GeoslideWarning, match=r"mix phases post \(demo-quake-planetscope-post\) and pre"):
        build_patches(both, _inventory_path("demo-quake"), tmp_path / "m.zarr", spec)


def test_a_scene_with_no_patch_window_gives_empty_patch_arrays():
    """A scene smaller than the patch size (or with every window dropped) yields no patches, not an error."""
    import dask.array as da
    import xarray as xr

    from geoslide.data.patches import extract

    image = xr.DataArray(da.ones((3, 50, 40), chunks=(1, 50, 40)), dims=("band", "y", "x"))
    images, masks = extract(image, da.zeros((50, 40), dtype="uint8"), np.zeros((0, 2), dtype=int), 128)
    assert images.compute().shape == (0, 3, 128, 128) and images.dtype == np.float32
    assert masks.compute().shape == (0, 128, 128) and masks.dtype == np.uint8


def test_an_empty_store_is_resumed_and_a_rerun_adds_no_duplicates(tmp_path):
    """A store with 0 committed patches is a store, not "absent"; a second build of the same items adds nothing."""
    spec = TrainingSetSpec(bands=("red", "green", "blue", "nir"), patch=PatchSpec(size=64))
    out = tmp_path / "p.zarr"
    PatchStore.create(out, ["red", "green", "blue", "nir"], 64)  # as left by a build killed before its first commit
    items, labels = _post("demo-quake"), _inventory_path("demo-quake")
    first = build_patches(items, labels, out, spec)
    n, images, meta = len(first), first.images().compute(), first.meta()
    assert n > 10
    again = build_patches(items, labels, out, spec)
    assert len(again) == n
    np.testing.assert_array_equal(again.images().compute(), images)
    pd.testing.assert_frame_equal(again.meta(), meta)
    keys = {f"{i.collection_id}/{i.id}" for i in items}
    assert set(again.sources()) == keys and sum(v["rows"][1] - v["rows"][0] for v in again.sources().values()) == n


def test_a_scene_cut_with_other_options_is_refused(tmp_path):
    out = tmp_path / "p.zarr"
    items, labels = _post("demo-quake"), _inventory_path("demo-quake")
    build_patches(items, labels, out, TrainingSetSpec(bands=("red", "nir"), patch=PatchSpec(size=64)))
    other = TrainingSetSpec(bands=("red", "nir"), patch=PatchSpec(size=64, stride=32))
    with pytest.raises(PatchStoreError, match="cut with other options"):
        build_patches(items, labels, out, other)


def test_a_half_created_store_is_replaced_and_a_foreign_folder_refused(tmp_path):
    import zarr

    out = tmp_path / "p.zarr"
    group = zarr.open_group(str(out), mode="w-", zarr_format=3, attributes={"geoslide_patch_store_partial":
                                                                          "geoslide-patch-store/1"})
    group.create_array("images", shape=(0, 2, 64, 64), dtype="float32")  # killed here
    with pytest.raises(PatchStoreError, match="creation was interrupted"):
        PatchStore.open(out)
    spec = TrainingSetSpec(bands=("red", "nir"), patch=PatchSpec(size=64))
    store = build_patches(_post("demo-quake"), _inventory_path("demo-quake"), out, spec)
    assert len(store) > 0 and store.bands == ["red", "nir"]
    foreign = tmp_path / "mine.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(PatchStoreError, match="not a geoslide patch store"):
        build_patches(_post("demo-quake"), _inventory_path("demo-quake"), foreign, spec)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
