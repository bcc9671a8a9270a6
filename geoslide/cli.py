"""The ``geoslide`` command line: parse, call the library, print. No logic of its own.

Errors a user can fix (every :class:`GeoslideError`) print one line and exit with status 2.
The names an option accepts (datasets, splits, models, losses, ...) come from the library's
registries, read only when a command needs them, so that no command pays for another's imports.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from functools import cached_property, partial
from pathlib import Path
from typing import Any, NoReturn

from geoslide._version import version
from geoslide.errors import GeoslideError

Handler = Callable[[argparse.Namespace], int]
#: The ``--stac-query`` example of the help texts; it matches items of the bundled catalog (tested).
STAC_QUERY_EXAMPLE = '{"collections": ["demo-quake-planetscope"], "datetime": "2023-05-01/.."}'


class _Names(Sequence[str]):
    """The names a registry function lists, called when argparse first checks a value or prints help."""

    def __init__(self, module: str, function: str) -> None:
        self._module, self._function = module, function

    @cached_property
    def _names(self) -> list[str]:
        return list(getattr(importlib.import_module(self._module), self._function)())

    def __getitem__(self, index: int) -> str:
        return self._names[index]

    def __len__(self) -> int:
        return len(self._names)

    def __str__(self) -> str:
        return ", ".join(self._names)


_IMPORTERS = _Names("geoslide.data.importers", "importer_names")
_SPLITS = _Names("geoslide.data.splits", "split_names")
_EMPTY_POLICIES = _Names("geoslide.data.patches", "empty_policy_names")
_DERIVED = _Names("geoslide.raster.derived", "derived_names")
_MODELS = _Names("geoslide.models", "model_names")
_LOSSES = _Names("geoslide.training.losses", "loss_names")
_OPTIMISERS = _Names("geoslide.training.optim", "optimiser_names")
_SCHEDULES = _Names("geoslide.training.optim", "schedule_names")
_SELECTS = _Names("geoslide.training.spec", "select_names")
_NORMALISES = _Names("geoslide.models.normalise", "normalise_names")


def _add_named(p: argparse.ArgumentParser, *flags: str, names: _Names, **kwargs: Any) -> None:
    """``add_argument`` with ``choices=names``, set after argparse's check of the new argument (which reads them)."""
    p.add_argument(*flags, **kwargs).choices = names


class _Help(argparse.HelpFormatter):
    """Shows each option's default, and fills ``{models}`` and ``{losses}`` from the registries, when help is printed.

    A default is added to a help text that does not already speak of one, unless it is None or
    False (an option that is off or taken from elsewhere says so itself) or the option is a switch.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action) or ""
        for key, names in (("{models}", _MODELS), ("{losses}", _LOSSES)):
            if key in text:  # only then: the registries import torch
                text = text.replace(key, str(names))
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings and action.nargs != 0
        if shown and "default" not in text:
            value = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
            text = f"{text} (default: {str(value).replace('%', '%%')})".lstrip()
        return text

    def _split_lines(self, text: str, width: int) -> list[str]:
        """Wrapped at spaces only, so that names such as ``demo-quake-planetscope`` stay whole for copying."""
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search a STAC catalog; prints item ids, one a line")
    _stac_args(p)
    p.add_argument("--json", action="store_true", help="print the matching items as a GeoJSON FeatureCollection")
    p.set_defaults(handler=_search)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="write a synthetic landslide event catalog (COGs + STAC + inventory)")
    p.add_argument("--out", type=_path,
                   required=True, help="output folder or s3:// prefix (created; must be empty if it exists)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--events", nargs="+", default=["demo-quake", "demo-storm"], metavar="EVENT",
                   help="events to generate: demo-quake, demo-storm, tiny (default: demo-quake demo-storm)")
    p.add_argument("--sensors", nargs="+", default=None, metavar="SENSOR",
                   help="sensors to simulate (default: all: uav, planetscope, sentinel2)")
    p.add_argument("--size-m", type=_finite, default=None, metavar="M",
                   help="side of each event's square domain in metres (default: the event's own, 3000 m for "
                        "demo-quake); landslide counts scale with the area")
    _progress_arg(p)
    p.set_defaults(handler=_demo)


def _add_patches(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patches", help="cut imagery + inventory into a Zarr patch store (appends to an existing one)")
    _stac_args(p)
    p.add_argument("--labels", type=_path,
                   required=True, metavar="PATH", help="landslide polygons (GeoParquet/GeoJSON/GPKG; "
                   "a path or an s3:// or http(s):// URL) or a raster mask (GeoTIFF, ..., any grid)")
    _mask_values_arg(p)
    p.add_argument("--out", type=_path,
                   required=True, metavar="STORE.zarr", help="patch store to create or append to (a path "
                   "or s3:// URL)")
    p.add_argument("--patch-size", type=int, default=128, metavar="N", help="patch side in pixels (default 128)")
    p.add_argument("--stride", type=int, default=None, metavar="N", help="step between patches (default: patch size)")
    p.add_argument("--bands", nargs="+", default=None, help="bands by common name or asset key (default: all shared)")
    _add_named(p, "--derived", names=_DERIVED, nargs="+", default=[], help="derived bands to append")
    _add_named(p, "--empty", names=_EMPTY_POLICIES, default="drop",
                   help="patches without landslides: drop (HR-GLDD), keep, or keep a fraction (GDCLD)")
    p.add_argument("--keep-fraction", type=_finite, default=0.1, metavar="F", help="share of empty patches kept")
    p.add_argument("--negatives", type=_path, default=None, metavar="PATH",
                   help="polygons of hand-picked negative areas (roads, rivers, ...) whose patches are kept")
    p.add_argument("--max-nodata", type=_finite, default=0.0, metavar="F", help="drop patches with more nodata")
    _add_named(p, "--split", names=_SPLITS, default="random",
                   help="random: per event 60/20/20 (HR-GLDD); blocks: western quarter trains, next 5%% validates "
                        "(Landslide4Sense); "
                        "events: --test-events are held out, the others train/val 3:1 (GDCLD)")
    p.add_argument("--test-events", nargs="+", default=[], metavar="EVENT", help="events held out by --split events")
    p.add_argument("--pre-stac-query", default=None, metavar="JSON",
                   help="pre-event items (same catalog): append post - pre difference bands d_<band>")
    _dem_arg(p)
    p.add_argument("--event", default=None, help="event name (default: the items' geoslide:event)")
    p.add_argument("--resolution", type=_finite, default=None, metavar="RES",
                   help="pixel size to resample the scenes to, in their CRS units (default: the items')")
    p.add_argument("--seed", type=int, default=0, help="seed for random choices")
    _cluster_args(p)
    p.set_defaults(handler=_patches)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import", help="import a published landslide dataset as released, or your own tiles and masks, into a "
        "patch store",
        description="Layouts read: landslide4sense: TrainData/{img,mask}, ValidData/img, TestData/img (competition "
                    "release; splits without masks are imported for prediction, masks all nodata) or "
                    "images/{train,validation,test} + annotations/... (Hugging Face); hr-gldd: trainX.npy/trainY.npy, "
                    "valX/valY, testX/testY; gdcld: train_data + train_label, val_data + val_label, "
                    "test_data/<event> + test_label/<event> (Zenodo) or images/ + labels/ folder pairs. SRC may be a "
                    "folder inside the download: its split, event and sensor are kept. tiles: any folder (or CSV "
                    "list) of image tiles and masks in GeoTIFF/PNG/JPEG, any size.")
    _add_named(p, "kind", names=_IMPORTERS, help="dataset format")
    p.add_argument("src", type=_path,
                   help="folder of the downloaded dataset, or a folder inside it (tiles: a folder or a CSV "
                   "of image,mask pairs)")
    p.add_argument("--out", type=_path, required=True, metavar="STORE.zarr", help="patch store to create or append to")
    p.add_argument("--event", default=None, help="event name stored with the patches (default: from the paths)")
    p.add_argument("--sensor", default=None, help="sensor name stored with the patches (default: from the paths)")
    p.add_argument("--split", default=None, metavar="RULE|FILE",
                   help="the release's own splits by default (tiles: train/val/test folder names if any, else "
                        "random); or re-split: random, blocks (datasets: first quarter trains, next 5%% validates, "
                        "per event; tiles: west to east), events, none, or a CSV/text file of name,split")
    p.add_argument("--test-events", nargs="+", default=[], metavar="EVENT", help="events held out by --split events")
    p.add_argument("--seed", type=int, default=0, help="seed of --split random/events")
    p.add_argument("--bands", nargs="+", default=None, metavar="BAND",
                   help="datasets: keep only these bands (e.g. Landslide4Sense without B10 to map Sentinel-2 L2A "
                        "items); tiles: names of the image bands (default red green blue[ nir])")
    p.add_argument("--patch-size", type=int, default=None, metavar="PX",
                   help="gdcld: patches whole scenes are cut into (default 1024); tiles: patch side (default: the "
                        "store's, else 256)")
    g = p.add_argument_group("published datasets only")
    g.add_argument("--units", default=None, choices=["reflectance", "dn", "release"],
                   help="landslide4sense: reflectance (default; 0-1, slope in degrees, DEM in m), dn (x 10000) or "
                        "release (the release's band/mean ratios)")
    g.add_argument("--channels", nargs=4, default=None, metavar="BAND",
                   help="hr-gldd: the band of each array channel (default red green blue nir; known: green 1, nir 3)")
    g.add_argument("--sites", type=_path, default=None, metavar="CSV",
                   help="hr-gldd: table split,first,last,site (or file,first,last,site) naming each patch's site")
    g.add_argument("--label-codes", nargs="+", default=None, metavar="VALUE=CLASS",
                   help="gdcld: label value to class 0/1/255 (default 0=0 1=1 85=255 255=255)")
    g.add_argument("--to-8bit", action="store_true",
                   help="gdcld: stretch images that are not 8-bit to 0-255 (2-98%% per band), as the paper converted")
    g = p.add_argument_group("tiles only")
    g.add_argument("--split-fractions", default=None, metavar="TRAIN,VAL,TEST",
                   help="shares for --split random/blocks (default 0.6,0.2,0.2)")
    g.add_argument("--mask-values", default=None, metavar="BG,LS[,NODATA]",
                   help="what mask values mean: background,landslide[,nodata], '+' joins values, e.g. 0,255 or "
                        "0,1,85 (default: 0/1 with 255 nodata, or 0/255)")
    g.add_argument("--resolution", type=_finite, default=None, metavar="M",
                   help="pixel size in metres of tiles without georeferencing")
    g.add_argument("--stride", type=int, default=None, metavar="N", help="step between patches (default: patch size)")
    _add_named(g, "--empty", names=_EMPTY_POLICIES, default="keep", help="patches without landslides (default keep)")
    g.add_argument("--keep-fraction", type=_finite, default=0.1, metavar="F", help="share of empty patches kept")
    g.add_argument("--max-nodata", type=_finite, default=0.5, metavar="F",
                   help="drop patches with a larger share of nodata (default 0.5)")
    g.add_argument("--nodata", type=_finite, default=None, metavar="V",
                   help="image value marking nodata where a file declares none (e.g. 0 for black corners)")
    g.add_argument("--unpaired", choices=["error", "skip", "background"], default="error",
                   help="images without a mask: error (default), skip them, or read them as all background")
    _progress_arg(p)
    p.set_defaults(handler=_import)


def _add_stats(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="statistics of a patch store (landslide ratio, band means, areas)")
    p.add_argument("store", type=_path, metavar="STORE.zarr", help="patch store")
    p.add_argument("--inventory", type=_path,
                   default=None, metavar="PATH", help="polygons or a georeferenced raster mask for "
                   "landslide counts and areas")
    _mask_values_arg(p)
    p.add_argument("--csv", action="store_true", help="print CSV instead of Markdown tables")
    p.set_defaults(handler=_stats)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a segmentation model on a patch store")
    p.add_argument("--patches", type=_path,
                   required=True, metavar="STORE.zarr", help="patch store with train/val splits (a path "
                   "or s3:// URL)")
    p.add_argument("--model", type=_path, default=None, metavar="NAME", help="architecture: {models} (or --init)")
    p.add_argument("--init", type=_path,
                   default=None, metavar="MODEL_DIR", help="fine-tune this model (a directory or a "
                   "bundled model's name, e.g. rgb): its architecture, weights and normalisation; the store needs "
                   "its bands")
    p.add_argument("--out", type=_path,
                   required=True, metavar="MODEL_DIR", help="model directory or s3:// prefix (resumed if "
                   "it holds a run)")
    p.add_argument("--model-params", default="{}", metavar="JSON",
                   help='architecture options, e.g. \'{"base_filters": 16}\'')
    p.add_argument("--loss", default="dice", help="{losses}; plain losses also join with +, e.g. focal+dice")
    _add_named(p, "--optimiser", names=_OPTIMISERS, default="adam", help="optimiser")
    p.add_argument("--lr", type=_finite, default=5e-4, help="learning rate (default 5e-4)")
    p.add_argument("--weight-decay", type=_finite, default=0.0, help="weight decay (default 0: none)")
    _add_named(p, "--schedule", names=_SCHEDULES, default="constant", help="learning-rate schedule")
    p.add_argument("--epochs", type=int, default=50, help="most epochs to train")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--batch-size", type=int, default=16, help="global batch (split over workers)")
    p.add_argument("--balance", action="store_true", help="class-balanced sampling of patches with landslides")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no flips/rotations")
    p.add_argument("--radiometric", type=_finite, default=0.0, metavar="S",
                   help="strength of random radiometry per patch (contrast, brightness, band gains, noise): "
                        "0 off (default), 1 the documented ranges; for imagery of one camera")
    p.add_argument("--paste", type=_finite, default=0.0, metavar="F",
                   help="copy-paste augmentation: share of training patches (0-1) that get the landslide pixels of "
                        "another patch laid onto them, turned and shifted (default 0: off)")
    p.add_argument("--patience", type=int, default=10,
                   help="stop after this many epochs without a better one by --select (default 10)")
    _add_named(p, "--select", names=_SELECTS, default="f1",
               help="which epoch's weights to keep: the best validation F1 (f1, default), the lowest validation "
                    "loss (loss) or the final epoch (last: when the validation patches are few or unlike the "
                    "imagery to map)")
    p.add_argument("--train-split", default="train", metavar="NAME", help="store split to train on (default train)")
    p.add_argument("--val-split", default="val", metavar="NAME", help="store split to validate on (default val)")
    p.add_argument("--val-fraction", type=_finite, default=None, metavar="F",
                   help="validate on this share of the training split instead (whole tiles/scenes when there "
                        "are 5 or more), for stores without a validation split")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, sampling and augmentation")
    _add_named(p, "--normalise", names=_NORMALISES, default="fixed",
               help="input normalisation: the training patches' band statistics (fixed), those of scenes divided "
                    "by their brightness (brightness: the model takes 8-bit, reflectance or counts alike), or each "
                    "scene's own per band (scene)")
    _cluster_args(p)
    p.set_defaults(handler=_train)


def _add_map(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="map landslides in STAC imagery with a model (tiled inference to Zarr), or in a "
                       "folder of image tiles (--tiles)")
    _stac_args(p)
    p.add_argument("--tiles", type=_path,
                   default=None, metavar="DIR", help="map the image tiles (GeoTIFF/PNG/JPEG) in DIR or a "
                   "CSV list instead of STAC items: one mask per tile in --out DIR, summary.csv, and scores where "
                   "tiles have masks (--mask-values as for import)")
    _mask_values_arg(p)
    p.add_argument("--nodata", type=_finite, default=None, metavar="V", help="with --tiles: image value marking nodata")
    p.add_argument("--pixel-size", type=_finite, default=None, metavar="M",
                   help="with --tiles: pixel size in metres of tiles without georeferencing (PNG/JPEG), e.g. 0.1 "
                        "for a UAV orthomosaic; used to choose the model, to warn, for --resolution and for areas")
    p.add_argument("--model", type=_path, default=None, metavar="MODEL_DIR",
                   help="model directory (a path or an s3:// or http(s):// URL) or a bundled model's name "
                   "(default: the bundled model that fits the items' bands and resolution, which is printed)")
    p.add_argument("--out", type=_path,
                   required=True, metavar="OUT.zarr", help="map store, a path or s3:// URL; the item, "
                   "quicklook and COGs go beside it (an unfinished one is resumed)")
    p.add_argument("--vectors", type=_path, default=None, metavar="OUT.parquet",
                   help="also write landslide polygons and print the event summary; the suffix picks the format, "
                        "in the map's CRS: .parquet (GeoParquet 1.1), .gpkg (GeoPackage) or .fgb (FlatGeobuf), and "
                        "a GeoJSON in WGS84 (RFC 7946) is written beside it; a path or s3:// URL")
    p.add_argument("--min-area", type=_finite, default=None, metavar="M2",
                   help="minimum mapping unit for --vectors in m2; 0 keeps every polygon (default: the model card's "
                        "min_area, 4 pixels at the model's resolution: 36 m2 for the bundled model)")
    p.add_argument("--split-amalgamated", action="store_true", help="split merged landslides in --vectors")
    p.add_argument("--chunk", type=int, default=1024, metavar="PX", help="chunk side for inference (default 1024)")
    p.add_argument("--overlap", type=int, default=None, metavar="PX", help="context per side (default: from the model)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--resolution", type=_resolution_option, default=None, metavar="R|model",
                   help="target pixel size, or 'model' for the nearest in the model's training range "
                   "(default: the items'; with --tiles, georeferenced tiles are mapped there and the masks "
                   "resampled back onto them)")
    p.add_argument("--bands", nargs="+", default=None, metavar="BAND",
                   help="item bands fed to the model, one per model band in its order (e.g. b1 b2 b3 for an RGB "
                   "model); without --model, the bundled model is chosen among those taking these bands. With "
                   "--tiles: the names of the tiles' bands in file order (e.g. blue green red nir; default: what "
                   "the files say, else red green blue[ nir])")
    p.add_argument("--epsg", type=int, default=None, help="target CRS (needed when items differ in CRS)")
    p.add_argument("--cog", action="store_true", help="also export probability and mask as COGs")
    p.add_argument("--zarr-format", type=int, choices=(2, 3), default=3,
                   help="Zarr format of the map store; 2 opens in GDAL 3.6-3.10 and QGIS (default: 3)")
    p.add_argument("--no-quicklook", dest="quicklook", action="store_false", help="skip the quicklook PNG")
    p.add_argument("--pre-stac-query", default=None, metavar="JSON",
                   help="pre-event items (same catalog), for a model of post - pre bands d_<band>")
    _dem_arg(p)
    p.add_argument("--allow-mixed-dates", action="store_true",
                   help="mosaic items of different geoslide:phase or dates over 30 days apart (refused otherwise)")
    p.add_argument("--allow-missing-assets", action="store_true",
                   help="leave out, with a warning that counts them, items whose assets cannot be read (HTTP 404, "
                        "missing or corrupt files), instead of refusing to start")
    _cluster_args(p)
    p.set_defaults(handler=_map)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a map against an inventory (JSON), or a model on a patch store split")
    p.add_argument("--pred", type=_path, default=None, metavar="OUT.zarr", help="map store written by geoslide map")
    p.add_argument("--labels", type=_path,
                   default=None, metavar="PATH", help="inventory polygons or a raster mask (any grid) for "
                   "--pred")
    _mask_values_arg(p)
    p.add_argument("--min-area", type=_finite, default=0.0, metavar="M2", help="minimum mapping unit for objects")
    p.add_argument("--model", type=_path, default=None, metavar="MODEL_DIR", help="model to score on --patches")
    p.add_argument("--patches", type=_path, default=None, metavar="STORE.zarr", help="patch store for --model")
    p.add_argument("--split", default="test", help="store split to score (default test)")
    p.add_argument("--csv", action="store_true", help="CSV instead of Markdown for --patches")
    p.set_defaults(handler=_evaluate)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a pipeline (pipelines/NAME.yaml): data, patches, training, evaluation")
    p.add_argument("pipeline", type=_path, metavar="PIPELINE.yaml", help="pipeline file, e.g. pipelines/demo.yaml")
    p.add_argument("--work", type=_path,
                   default=None, metavar="DIR", help="working folder, or an s3:// prefix staged in a "
                   "local copy (default: runs/<name>); on a cluster, a folder the workers see at the same path")
    _allow_assets_arg(p)
    _cluster_args(p)
    p.set_defaults(handler=_run)


def _mask_values_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask-values", default=None, metavar="BG,LS[,NODATA]",
                   help="for a raster mask: what its values mean, background,landslide[,nodata], e.g. 0,255 or "
                        "0,1,85 (default: 0/1 with 255 nodata, or 0/255)")


def _dem_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dem-stac-query", default=None, metavar="JSON",
                   help="items with an elevation band (same catalog, any grid) for slope, when the imagery has none")


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler to use (default: $DASK_SCHEDULER_ADDRESS, else local)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="start a local cluster of N processes")
    p.add_argument("--dashboard", action="store_true",
                   help="print the link of the Dask dashboard (a local --workers cluster serves one); needs "
                        "--workers or --scheduler")
    _progress_arg(p)


def _progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")


def _stac_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stac-query", default="{}", metavar="JSON",
                   help=f"STAC item-search body, e.g. '{STAC_QUERY_EXAMPLE}' (the bundled catalog's post-event "
                        "PlanetScope scene of the demo earthquake); {} matches every item")
    p.add_argument("--catalog", type=_path, default=None, metavar="URL|PATH",
                   help="STAC API URL, or static catalog path or s3:// / http(s):// URL (default: the bundled demo "
                        "catalog)")
    _allow_assets_arg(p)


def _allow_assets_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-assets", action="append", default=[], metavar="PREFIX",
                   help="also trust asset hrefs under PREFIX (a folder, s3://BUCKET[/KEY], http(s)://HOST[/PATH]); "
                        "repeatable, adds to $GEOSLIDE_ALLOW_ASSETS. By default assets must lie in the catalog's "
                        "own folder, bucket or host, or on public web hosts")


def _search(args: argparse.Namespace) -> int:
    from geoslide.catalog.search import search

    items = search(args.stac_query, args.catalog)
    if args.json:
        print(json.dumps({"type": "FeatureCollection",
                          "features": [i.to_dict(include_self_link=False) for i in items]}, indent=1))
    else:
        print("\n".join(i.id for i in items))
    return 0


def _patches(args: argparse.Namespace) -> int:
    from geoslide.catalog.search import search
    from geoslide.data.patches import PatchSpec
    from geoslide.data.trainingset import TrainingSetSpec, build_patches

    patch = PatchSpec(size=args.patch_size, stride=args.stride, empty=args.empty, keep_fraction=args.keep_fraction,
                      max_nodata=args.max_nodata, seed=args.seed)
    spec = TrainingSetSpec(bands=tuple(args.bands) if args.bands else None, derived=tuple(args.derived),
                           event=args.event, split=args.split, test_events=tuple(args.test_events), patch=patch,
                           resolution=args.resolution, mask_values=args.mask_values)
    items = search(args.stac_query, args.catalog)
    pre = search(args.pre_stac_query, args.catalog) if args.pre_stac_query else None
    dem = search(args.dem_stac_query, args.catalog) if args.dem_stac_query else None
    with _cluster(args) as client:
        store = build_patches(items, args.labels, args.out, spec, negatives=args.negatives, progress=args.progress,
                              pre_items=pre, dem_items=dem, client=client)
    print(f"{args.out}: {len(store)} patches of {store.patch_size} px, bands {', '.join(store.bands)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    if args.kind == "tiles":
        return _import_tiles(args)
    _tiles_only(args)
    from geoslide.data.importers import ImportOptions, import_dataset, parse_label_codes

    split, split_file = (None, args.split) if args.split and Path(args.split).is_file() else (args.split, None)
    options = ImportOptions(event=args.event, sensor=args.sensor, split=split or "release", seed=args.seed,
                            test_events=tuple(args.test_events), bands=tuple(args.bands) if args.bands else None,
                            units=args.units, channels=tuple(args.channels) if args.channels else None,
                            sites=args.sites, label_codes=parse_label_codes(args.label_codes),
                            patch_size=args.patch_size, to_8bit=args.to_8bit)
    store = import_dataset(args.kind, args.src, args.out, options=options, split_file=split_file,
                           progress=args.progress)
    units = f", units {', '.join(store.units)}" if store.units else ""
    print(f"{args.out}: {len(store)} patches of {store.patch_size} px, bands {', '.join(store.bands)}{units}")
    return 0


def _import_tiles(args: argparse.Namespace) -> int:
    from geoslide.data.importers.tiles import TileImportSpec, import_tiles
    from geoslide.data.tilesplit import parse_fractions
    from geoslide.errors import ConfigError

    given = [flag for flag, value in (("--units", args.units), ("--channels", args.channels), ("--sites", args.sites),
                                      ("--label-codes", args.label_codes), ("--to-8bit", args.to_8bit),
                                      ("--test-events", args.test_events)) if value]
    if given:
        raise ConfigError(f"{', '.join(given)} apply to the published datasets, not `geoslide import tiles`")
    fractions = parse_fractions(args.split_fractions)

    spec = TileImportSpec(size=args.patch_size, stride=args.stride, empty=args.empty, keep_fraction=args.keep_fraction,
                          max_nodata=args.max_nodata, seed=args.seed, mask_values=args.mask_values,
                          resolution=args.resolution, bands=tuple(args.bands) if args.bands else None,
                          nodata=args.nodata, split=args.split, fractions=fractions, event=args.event,
                          sensor=args.sensor, unpaired=args.unpaired)
    n0 = _store_size(args.out)
    store, found = import_tiles(args.src, args.out, spec, progress=args.progress)
    splits = found.plan.meta["split"].replace("", "none").value_counts()
    print(f"{args.out}: {len(store) - n0} patches of {store.patch_size} px from {found.tiles} tiles "
          f"(masks read as {found.mask_values.text()}; split {found.split}: "
          f"{', '.join(f'{k} {v}' for k, v in splits.items())}); {len(store)} patches in the store, "
          f"bands {', '.join(store.bands)}")
    return 0


def _tiles_only(args: argparse.Namespace) -> None:
    from geoslide.errors import ConfigError

    given = [flag for flag, value, default in (
        ("--mask-values", args.mask_values, None), ("--resolution", args.resolution, None),
        ("--stride", args.stride, None), ("--empty", args.empty, "keep"), ("--max-nodata", args.max_nodata, 0.5),
        ("--nodata", args.nodata, None), ("--unpaired", args.unpaired, "error"),
        ("--split-fractions", args.split_fractions, None),
    ) if value != default]
    if given:
        raise ConfigError(f"{', '.join(given)} apply to `geoslide import tiles` only; {args.kind} has fixed patches")


def _store_size(path: str) -> int:
    from geoslide.data.store import PatchStore

    store = PatchStore.open_existing(path)
    return 0 if store is None else len(store)


def _stats(args: argparse.Namespace) -> int:
    from geoslide.data.stats import format_stats, stats_csv, store_stats
    from geoslide.data.store import PatchStore

    stats = store_stats(PatchStore.open(args.store), inventory=args.inventory, mask_values=args.mask_values)
    print(stats_csv(stats) if args.csv else format_stats(stats))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from geoslide.demo.catalog import write_demo

    path = write_demo(args.out, seed=args.seed, events=args.events, sensors=args.sensors, size_m=args.size_m,
                      progress=args.progress)
    print(path)
    return 0


def _architecture(args: argparse.Namespace) -> tuple[str, dict, str | None]:
    """``--model``/``--model-params``, or those of the ``--init`` model's card."""
    from geoslide.errors import ConfigError
    from geoslide.fileio import absolute

    params = _json_option(args.model_params, "--model-params")
    if args.init is None:
        if args.model is None:
            raise ConfigError("give --model NAME (an architecture) or --init MODEL_DIR (a model to fine-tune)")
        return args.model, params, None
    from geoslide.models.card import model_location, read_card  # torch: only for a model to fine-tune

    init = str(absolute(model_location(args.init)))
    card = read_card(init)
    if (args.model or card.architecture) != card.architecture or (params and params != card.params):
        raise ConfigError(f"--init {args.init} is a {card.architecture} {card.params}; leave out --model and "
                          "--model-params (they come from the model fine-tuned)")
    return card.architecture, dict(card.params), init


def _train(args: argparse.Namespace) -> int:
    from geoslide.training.spec import TrainSpec  # checks the options before torch is imported

    model, params, init = _architecture(args)
    spec = TrainSpec(model=model, model_params=params, init=init,
                     loss=args.loss, optimiser=args.optimiser, lr=args.lr, weight_decay=args.weight_decay,
                     schedule=args.schedule, epochs=args.epochs, max_steps=args.max_steps,
                     batch_size=args.batch_size, augment=args.augment, radiometric=args.radiometric,
                     paste=args.paste,
                     balance=args.balance,
                     patience=args.patience, select=args.select, seed=args.seed, train_split=args.train_split,
                     val_split=args.val_split, val_fraction=args.val_fraction, normalise=args.normalise)
    with _cluster(args) as client:
        from geoslide.training.dispatch import train

        summary = train(args.patches, spec, args.out, progress=args.progress, client=client)
    print(json.dumps(summary, indent=1))
    return 0


def _resolution_option(text: str) -> float | str:
    """``--resolution``: metres, or ``model``."""
    return text if text == "model" else _finite(text)


def _map(args: argparse.Namespace) -> int:
    from geoslide.mapping.spec import InferenceSpec, MapSpec  # checks the options before torch is imported

    inference = InferenceSpec(chunk=args.chunk, overlap=args.overlap, batch_size=args.batch_size, device=args.device)
    if args.tiles:
        return _map_tiles(args, inference)
    if given := [o for o, v in (("--pixel-size", args.pixel_size), ("--nodata", args.nodata),
                                ("--mask-values", args.mask_values)) if v is not None]:
        from geoslide.errors import ConfigError

        raise ConfigError(f"{', '.join(given)} apply to --tiles only; STAC items give their own pixel size, nodata "
                          "and no masks")
    spec = MapSpec(out=args.out, model=args.model, vectors=args.vectors, inference=inference,
                   bands=tuple(args.bands) if args.bands else None, resolution=args.resolution, epsg=args.epsg,
                   min_area=args.min_area,
                   split=args.split_amalgamated, cog=args.cog, quicklook=args.quicklook,
                   pre_stac_query=args.pre_stac_query, dem_stac_query=args.dem_stac_query,
                   allow_mixed_dates=args.allow_mixed_dates, allow_missing_assets=args.allow_missing_assets,
                   zarr_format=args.zarr_format)
    with _cluster(args) as client:  # a bad --workers/--scheduler is refused before torch is imported
        from geoslide.mapping.job import run_map

        result = run_map(args.stac_query, spec, args.catalog, client=client, progress=args.progress)
    print(f"model: {result.model}")
    print(f"{result.out}: map store; STAC item {result.item}" + (f"; quicklook {result.quicklook}"
                                                                    if result.quicklook else ""))
    if result.summary is not None:
        from geoslide.inventory.summary import summary_markdown

        print(f"{result.vectors}: landslide polygons")
        print(summary_markdown([result.summary]))
    return 0


def _map_tiles(args: argparse.Namespace, inference) -> int:
    from geoslide.errors import ConfigError
    from geoslide.mapping.spec import TileMapSpec, check_tile_options

    if args.stac_query != "{}" or args.catalog or args.vectors or args.cog or args.pre_stac_query:
        raise ConfigError("--tiles maps plain tiles: drop --stac-query/--catalog/--vectors/--cog/--pre-stac-query")
    check_tile_options(args.resolution, args.pixel_size)  # before torch is imported and the tiles are read
    from geoslide.evaluation.tiles import map_and_score_tiles
    from geoslide.mapping.tiles import choose_tile_model
    from geoslide.models.card import model_location
    from geoslide.progress import show_progress

    bands = tuple(args.bands) if args.bands else None
    if args.model is None:
        choice = choose_tile_model(args.tiles, bands, args.pixel_size)
        model, note = choice.path, choice.reason
    else:
        model = model_location(args.model)
        note = f"model {model}"
    spec = TileMapSpec(out=args.out, model=str(model), inference=inference, mask_values=args.mask_values,
                       nodata=args.nodata, bands=bands, resolution=args.resolution, pixel_size=args.pixel_size)
    table, overall = map_and_score_tiles(args.tiles, spec, progress=show_progress(args.progress))
    share = table["landslide_pixels"].sum() / max(table["valid_pixels"].sum(), 1)
    print(f"model: {note}")
    print(f"{args.out}: {len(table)} tile masks; summary.csv ({100 * share:.2f} % landslide pixels)")
    if overall is not None:
        print(json.dumps(overall, indent=1))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from geoslide.errors import ConfigError

    if args.pred and args.labels:
        from geoslide.evaluation.score import evaluate_map

        print(json.dumps(evaluate_map(args.pred, args.labels, min_area=args.min_area, mask_values=args.mask_values),
                         indent=1))
        return 0
    if args.model and args.patches:
        from geoslide.data.store import PatchStore
        from geoslide.evaluation.score import evaluate_patches
        from geoslide.tables import markdown_table

        table = evaluate_patches(args.model, PatchStore.open(args.patches), split=args.split)
        print(table.to_csv(index=False) if args.csv else markdown_table(table))
        return 0
    raise ConfigError("give --pred OUT.zarr with --labels PATH, or --model MODEL_DIR with --patches STORE.zarr")


def _run(args: argparse.Namespace) -> int:
    from geoslide.pipeline import load_pipeline, run_pipeline

    pipeline = load_pipeline(args.pipeline)
    with _cluster(args) as client:
        report = run_pipeline(pipeline, work=args.work, progress=args.progress, client=client)
    print(report)
    return 0


def _json_option(text: str, name: str) -> dict:
    from geoslide.errors import ConfigError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON ({exc.msg}); e.g. {name} '{{\"base_filters\": 16}}'") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, got {text!r}")
    return value


def _cluster(args: argparse.Namespace):
    from geoslide.cluster import cluster_client

    return cluster_client(scheduler=args.scheduler, workers=args.workers, dashboard=args.dashboard)


#: Operating-system errors a user fixes (space, permissions, read-only or missing folders), not bugs.
_USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                          errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY, errno.EIO})
_ADVICE = {errno.ENOSPC: "free some space or write elsewhere; a rerun continues where this one stopped",
           errno.EDQUOT: "free some space or write elsewhere; a rerun continues where this one stopped",
           errno.EROFS: "the file system is read-only; write elsewhere",
           errno.EACCES: "check the permissions, or write elsewhere",
           errno.EPERM: "check the permissions, or write elsewhere"}


def _os_error(exc: OSError) -> str:
    """One line for an OSError: what failed, on which file, and what to do."""
    if exc.errno is None:  # rasterio: an asset that stopped being readable while the job ran
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"cannot read the imagery: {reason}; fix or remove the asset, then rerun (it resumes)"
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}; {_ADVICE.get(exc.errno, 'check the path')}"


def _finite(text: str) -> float:
    """A float option's value: a finite number (argparse turns the ValueError into a one-line error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _path(text: str) -> str:
    """A path or URL option's value: not empty (an empty --out would write into the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file, folder or URL")
    return text


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit 2), like every other geoslide error."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE; see PROG --help`` on one line and exit 2."""
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog="geoslide", description="Map landslides from STAC imagery at any scale.",
                     formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"geoslide {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=partial(_Parser, formatter_class=_Help))
    for add in (_add_search, _add_demo, _add_patches, _add_import, _add_stats, _add_train, _add_map, _add_evaluate,
                _add_run):
        add(sub)
    return parser


class _SiblingTaskErrors(logging.Filter):
    """Drops asyncio's "Task/Future exception was never retrieved" reports of operating-system errors.

    Zarr writes a store's keys in concurrent asyncio tasks and thread futures. When one write fails
    (a full disk), the error reaches geoslide, which reports it in one line, while the siblings that
    failed with it (the same error, or a half-moved file found in place) are collected unread and
    asyncio logs each with a traceback, sometimes after geoslide's line. Other errors still show.
    """

    _UNREAD = ("Task exception was never retrieved", "Future exception was never retrieved")

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (str(record.msg).startswith(self._UNREAD) and isinstance(error, OSError))


def _one_line_warnings(command: str) -> None:
    """Print geoslide's own warnings as one line each (``geoslide map: warning: ...``), without a source location."""
    import warnings

    from geoslide.errors import GeoslideWarning

    default = warnings.formatwarning

    def formatted(message, category, filename, lineno, line=None) -> str:
        if issubclass(category, GeoslideWarning):
            return f"geoslide {command}: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatted


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    logging.getLogger("asyncio").addFilter(_SiblingTaskErrors())
    _one_line_warnings(args.command)
    try:
        from geoslide.catalog.trust import allow_assets

        with allow_assets(getattr(args, "allow_assets", ())):
            return args.handler(args)
    except GeoslideError as exc:
        print(f"geoslide {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _USER_ERRNOS and not type(exc).__module__.startswith("rasterio"):
            raise
        print(f"geoslide {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"geoslide {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
