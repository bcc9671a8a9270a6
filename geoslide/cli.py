"""The ``geoslide`` command line: parse, call the library, print. No logic of its own.

Errors a user can fix (every :class:`GeoslideError`) print one line and exit with status 2.
The names an option accepts (datasets, splits, models, losses, ...) come from the library's
registries, read only when a command needs them, so that no command pays for another's imports.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, NoReturn

from geoslide._version import version
from geoslide.errors import GeoslideError

Handler = Callable[[argparse.Namespace], int]


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


def _add_named(p: argparse.ArgumentParser, *flags: str, names: _Names, **kwargs: Any) -> None:
    """``add_argument`` with ``choices=names``, set after argparse's check of the new argument (which reads them)."""
    p.add_argument(*flags, **kwargs).choices = names


class _RegistryHelp(argparse.HelpFormatter):
    """Fills ``{models}`` and ``{losses}`` in help texts from the registries, when help is printed."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        for key, names in (("{models}", _MODELS), ("{losses}", _LOSSES)):
            if text and key in text:
                text = text.replace(key, str(names))
        return text


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
    p.set_defaults(handler=_demo)


def _add_patches(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patches", help="cut imagery + inventory into a Zarr patch store (appends to an existing one)")
    _stac_args(p)
    p.add_argument("--labels", type=_path,
                   required=True, metavar="PATH", help="landslide polygons (GeoParquet/GeoJSON/GPKG; "
                   "a path or an s3:// or http(s):// URL)")
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
                   help="random: per event 60/20/20 (HR-GLDD); blocks: western quarter trains (Landslide4Sense); "
                        "events: --test-events are held out, the others train/val 3:1 (GDCLD)")
    p.add_argument("--test-events", nargs="+", default=[], metavar="EVENT", help="events held out by --split events")
    p.add_argument("--pre-stac-query", default=None, metavar="JSON",
                   help="pre-event items (same catalog): append post - pre difference bands d_<band>")
    _dem_arg(p)
    p.add_argument("--event", default=None, help="event name (default: the items' geoslide:event)")
    p.add_argument("--seed", type=int, default=0, help="seed for random choices")
    _cluster_args(p)
    p.set_defaults(handler=_patches)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a published landslide dataset into a patch store")
    _add_named(p, "kind", names=_IMPORTERS, help="dataset format")
    p.add_argument("src", type=_path, help="folder of the downloaded dataset")
    p.add_argument("--out", type=_path, required=True, metavar="STORE.zarr", help="patch store to create or append to")
    p.add_argument("--event", default=None, help="event name stored with the patches")
    p.add_argument("--sensor", default=None, help="sensor name stored with the patches")
    p.set_defaults(handler=_import)


def _add_stats(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="statistics of a patch store (landslide ratio, band means, areas)")
    p.add_argument("store", type=_path, metavar="STORE.zarr", help="patch store")
    p.add_argument("--inventory", type=_path,
                   default=None, metavar="PATH", help="polygons for landslide counts and areas")
    p.add_argument("--csv", action="store_true", help="print CSV instead of Markdown tables")
    p.set_defaults(handler=_stats)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a segmentation model on a patch store", formatter_class=_RegistryHelp)
    p.add_argument("--patches", type=_path,
                   required=True, metavar="STORE.zarr", help="patch store with train/val splits (a path "
                   "or s3:// URL)")
    p.add_argument("--model", type=_path, required=True, metavar="NAME", help="architecture: {models}")
    p.add_argument("--out", type=_path,
                   required=True, metavar="MODEL_DIR", help="model directory or s3:// prefix (resumed if "
                   "it holds a run)")
    p.add_argument("--model-params", default="{}", metavar="JSON",
                   help='architecture options, e.g. \'{"base_filters": 16}\'')
    p.add_argument("--loss", default="dice", help="{losses}; plain losses also join with +, e.g. focal+dice")
    _add_named(p, "--optimiser", names=_OPTIMISERS, default="adam")
    p.add_argument("--lr", type=_finite, default=5e-4, help="learning rate (default 5e-4)")
    p.add_argument("--weight-decay", type=_finite, default=0.0)
    _add_named(p, "--schedule", names=_SCHEDULES, default="constant")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    p.add_argument("--batch-size", type=int, default=16, help="global batch (split over workers)")
    p.add_argument("--balance", action="store_true", help="class-balanced sampling of patches with landslides")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no flips/rotations")
    p.add_argument("--patience", type=int, default=10, help="early stopping on validation F1 (epochs)")
    p.add_argument("--seed", type=int, default=0)
    _cluster_args(p)
    p.set_defaults(handler=_train)


def _add_map(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="map landslides in STAC imagery with a model (tiled inference to Zarr)")
    _stac_args(p)
    p.add_argument("--model", type=_path, default=None, metavar="MODEL_DIR",
                   help="model directory, a path or an s3:// or http(s):// URL (default: the bundled demo model)")
    p.add_argument("--out", type=_path,
                   required=True, metavar="OUT.zarr", help="map store, a path or s3:// URL; the item, "
                   "quicklook and COGs go beside it (an unfinished one is resumed)")
    p.add_argument("--vectors", type=_path, default=None, metavar="OUT.parquet", help="also write landslide polygons "
                   "(GeoParquet + GeoJSON in WGS84; a path or s3:// URL) and print the event summary")
    p.add_argument("--min-area", type=_finite, default=0.0, metavar="M2", help="minimum mapping unit for --vectors")
    p.add_argument("--split-amalgamated", action="store_true", help="split merged landslides in --vectors")
    p.add_argument("--chunk", type=int, default=1024, metavar="PX", help="chunk side for inference (default 1024)")
    p.add_argument("--overlap", type=int, default=None, metavar="PX", help="context per side (default: from the model)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--resolution", type=_finite, default=None, help="target pixel size (default: the items')")
    p.add_argument("--epsg", type=int, default=None, help="target CRS (needed when items differ in CRS)")
    p.add_argument("--cog", action="store_true", help="also export probability and mask as COGs")
    p.add_argument("--no-quicklook", dest="quicklook", action="store_false", help="skip the quicklook PNG")
    p.add_argument("--pre-stac-query", default=None, metavar="JSON",
                   help="pre-event items (same catalog), for a model of post - pre bands d_<band>")
    _dem_arg(p)
    p.add_argument("--allow-mixed-dates", action="store_true",
                   help="mosaic items of different geoslide:phase or dates over 30 days apart (refused otherwise)")
    _cluster_args(p)
    p.set_defaults(handler=_map)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a map against an inventory (JSON), or a model on a patch store split")
    p.add_argument("--pred", type=_path, default=None, metavar="OUT.zarr", help="map store written by geoslide map")
    p.add_argument("--labels", type=_path, default=None, metavar="PATH", help="inventory polygons for --pred")
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


def _dem_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dem-stac-query", default=None, metavar="JSON",
                   help="items with an elevation band (same catalog, any grid) for slope, when the imagery has none")


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler to use (default: $DASK_SCHEDULER_ADDRESS, else local)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="start a local cluster of N processes")


def _stac_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stac-query", default="{}", metavar="JSON",
                   help='STAC item-search body, e.g. \'{"collections": ["demo-quake"], "datetime": "2025-06-01/.."}\'')
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
                           event=args.event, split=args.split, test_events=tuple(args.test_events), patch=patch)
    items = search(args.stac_query, args.catalog)
    pre = search(args.pre_stac_query, args.catalog) if args.pre_stac_query else None
    dem = search(args.dem_stac_query, args.catalog) if args.dem_stac_query else None
    with _cluster(args) as client:
        store = build_patches(items, args.labels, args.out, spec, negatives=args.negatives, progress=True,
                              pre_items=pre, dem_items=dem, client=client)
    print(f"{args.out}: {len(store)} patches of {store.patch_size} px, bands {', '.join(store.bands)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from geoslide.data.importers import import_dataset

    store = import_dataset(args.kind, args.src, args.out, event=args.event, sensor=args.sensor, progress=True)
    print(f"{args.out}: {len(store)} patches of {store.patch_size} px, bands {', '.join(store.bands)}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from geoslide.data.stats import format_stats, stats_csv, store_stats
    from geoslide.data.store import PatchStore

    stats = store_stats(PatchStore.open(args.store), inventory=args.inventory)
    print(stats_csv(stats) if args.csv else format_stats(stats))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from geoslide.demo.catalog import write_demo

    path = write_demo(args.out, seed=args.seed, events=args.events, sensors=args.sensors, size_m=args.size_m,
                      progress=True)
    print(path)
    return 0


def _train(args: argparse.Namespace) -> int:
    from geoslide.training import TrainSpec, train

    spec = TrainSpec(model=args.model, model_params=_json_option(args.model_params, "--model-params"),
                     loss=args.loss, optimiser=args.optimiser, lr=args.lr, weight_decay=args.weight_decay,
                     schedule=args.schedule, epochs=args.epochs, max_steps=args.max_steps,
                     batch_size=args.batch_size, augment=args.augment, balance=args.balance,
                     patience=args.patience, seed=args.seed)
    summary = train(args.patches, spec, args.out, scheduler=args.scheduler, workers=args.workers, progress=True)
    print(json.dumps(summary, indent=1))
    return 0


def _map(args: argparse.Namespace) -> int:
    from geoslide.mapping.job import MapSpec, run_map
    from geoslide.mapping.tiling import InferenceSpec

    inference = InferenceSpec(chunk=args.chunk, overlap=args.overlap, batch_size=args.batch_size, device=args.device)
    spec = MapSpec(out=args.out, model=args.model, vectors=args.vectors, inference=inference,
                   resolution=args.resolution, epsg=args.epsg, min_area=args.min_area,
                   split=args.split_amalgamated, cog=args.cog, quicklook=args.quicklook,
                   pre_stac_query=args.pre_stac_query, dem_stac_query=args.dem_stac_query,
                   allow_mixed_dates=args.allow_mixed_dates)
    with _cluster(args) as client:
        result = run_map(args.stac_query, spec, args.catalog, client=client, progress=True)
    print(f"{result.out}: map store; STAC item {result.item}" + (f"; quicklook {result.quicklook}"
                                                                    if result.quicklook else ""))
    if result.summary is not None:
        from geoslide.inventory.summary import summary_markdown

        print(f"{result.vectors}: landslide polygons")
        print(summary_markdown([result.summary]))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from geoslide.errors import ConfigError

    if args.pred and args.labels:
        from geoslide.evaluation.score import evaluate_map

        print(json.dumps(evaluate_map(args.pred, args.labels, min_area=args.min_area), indent=1))
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
        report = run_pipeline(pipeline, work=args.work, progress=True, client=client)
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

    return cluster_client(scheduler=args.scheduler, workers=args.workers)


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
    parser = _Parser(prog="geoslide", description="Map landslides from STAC imagery at any scale.")
    parser.add_argument("--version", action="version", version=f"geoslide {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_search, _add_demo, _add_patches, _add_import, _add_stats, _add_train, _add_map, _add_evaluate,
                _add_run):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        from geoslide.catalog.trust import allow_assets

        with allow_assets(getattr(args, "allow_assets", ())):
            return args.handler(args)
    except GeoslideError as exc:
        print(f"geoslide {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"geoslide {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
