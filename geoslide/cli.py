"""The ``geoslide`` command line: parse, call the library, print. No logic of its own.

Errors a user can fix (every :class:`GeoslideError`) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from geoslide.errors import GeoslideError

Handler = Callable[[argparse.Namespace], int]


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search a STAC catalog; prints item ids, one a line")
    _stac_args(p)
    p.add_argument("--json", action="store_true", help="print the matching items as a GeoJSON FeatureCollection")
    p.set_defaults(handler=_search)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="write a synthetic landslide event catalog (COGs + STAC + inventory)")
    p.add_argument("--out", required=True, type=Path, help="output folder (created; must be empty if it exists)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--events", nargs="+", default=["demo-quake", "demo-storm"], metavar="EVENT",
                   help="events to generate: demo-quake, demo-storm, tiny (default: demo-quake demo-storm)")
    p.add_argument("--sensors", nargs="+", default=None, metavar="SENSOR",
                   help="sensors to simulate (default: all: uav, planetscope, sentinel2)")
    p.add_argument("--size-m", type=float, default=None, metavar="M",
                   help="side of each event's square domain in metres (default: the event's own, 3000 m for "
                        "demo-quake); landslide counts scale with the area")
    p.set_defaults(handler=_demo)


def _add_patches(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patches", help="cut imagery + inventory into a Zarr patch store (appends to an existing one)")
    _stac_args(p)
    p.add_argument("--labels", required=True, metavar="PATH", help="landslide polygons (GeoParquet/GeoJSON/GPKG)")
    p.add_argument("--out", required=True, metavar="STORE.zarr", help="patch store to create or append to")
    p.add_argument("--patch-size", type=int, default=128, metavar="N", help="patch side in pixels (default 128)")
    p.add_argument("--stride", type=int, default=None, metavar="N", help="step between patches (default: patch size)")
    p.add_argument("--bands", nargs="+", default=None, help="bands by common name or asset key (default: all shared)")
    p.add_argument("--derived", nargs="+", default=[], choices=["ndvi", "slope"], help="derived bands to append")
    p.add_argument("--empty", choices=["drop", "keep", "fraction"], default="drop",
                   help="patches without landslides: drop (HR-GLDD), keep, or keep a fraction (GDCLD)")
    p.add_argument("--keep-fraction", type=float, default=0.1, metavar="F", help="share of empty patches kept")
    p.add_argument("--negatives", default=None, metavar="PATH",
                   help="polygons of hand-picked negative areas (roads, rivers, ...) whose patches are kept")
    p.add_argument("--max-nodata", type=float, default=0.0, metavar="F", help="drop patches with more nodata")
    p.add_argument("--split", choices=["random", "blocks", "events", "none"], default="random",
                   help="random: per event 60/20/20 (HR-GLDD); blocks: western quarter trains (Landslide4Sense); "
                        "events: --test-events are held out, the others train/val 3:1 (GDCLD)")
    p.add_argument("--test-events", nargs="+", default=[], metavar="EVENT", help="events held out by --split events")
    p.add_argument("--pre-stac-query", default=None, metavar="JSON",
                   help="pre-event items (same catalog): append post - pre difference bands d_<band>")
    p.add_argument("--event", default=None, help="event name (default: the items' geoslide:event)")
    p.add_argument("--seed", type=int, default=0, help="seed for random choices")
    p.set_defaults(handler=_patches)


def _add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import a published landslide dataset into a patch store")
    p.add_argument("kind", choices=["landslide4sense", "hr-gldd", "gdcld"], help="dataset format")
    p.add_argument("src", help="folder of the downloaded dataset")
    p.add_argument("--out", required=True, metavar="STORE.zarr", help="patch store to create or append to")
    p.add_argument("--event", default=None, help="event name stored with the patches")
    p.add_argument("--sensor", default=None, help="sensor name stored with the patches")
    p.set_defaults(handler=_import)


def _add_stats(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="statistics of a patch store (landslide ratio, band means, areas)")
    p.add_argument("store", metavar="STORE.zarr", help="patch store")
    p.add_argument("--inventory", default=None, metavar="PATH", help="polygons for landslide counts and areas")
    p.add_argument("--csv", action="store_true", help="print CSV instead of Markdown tables")
    p.set_defaults(handler=_stats)


def _stac_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stac-query", default="{}", metavar="JSON",
                   help='STAC item-search body, e.g. \'{"collections": ["demo-quake"], "datetime": "2025-06-01/.."}\'')
    p.add_argument("--catalog", default=None, metavar="URL|PATH",
                   help="STAC API URL or static catalog path (default: the bundled demo catalog)")


def _search(args: argparse.Namespace) -> int:
    from geoslide.stac import search

    items = search(args.stac_query, args.catalog)
    if args.json:
        print(json.dumps({"type": "FeatureCollection",
                          "features": [i.to_dict(include_self_link=False) for i in items]}, indent=1))
    else:
        print("\n".join(i.id for i in items))
    return 0


def _patches(args: argparse.Namespace) -> int:
    from geoslide.patches import PatchSpec
    from geoslide.stac import search
    from geoslide.trainingset import TrainingSetSpec, build_patches

    patch = PatchSpec(size=args.patch_size, stride=args.stride, empty=args.empty, keep_fraction=args.keep_fraction,
                      max_nodata=args.max_nodata, seed=args.seed)
    spec = TrainingSetSpec(bands=tuple(args.bands) if args.bands else None, derived=tuple(args.derived),
                           event=args.event, split=args.split, test_events=tuple(args.test_events), patch=patch)
    items = search(args.stac_query, args.catalog)
    pre = search(args.pre_stac_query, args.catalog) if args.pre_stac_query else None
    store = build_patches(items, args.labels, args.out, spec, negatives=args.negatives, progress=True, pre_items=pre)
    print(f"{args.out}: {len(store)} patches of {store.patch_size} px, bands {', '.join(store.bands)}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from geoslide.importers import import_dataset

    store = import_dataset(args.kind, args.src, args.out, event=args.event, sensor=args.sensor, progress=True)
    print(f"{args.out}: {len(store)} patches of {store.patch_size} px, bands {', '.join(store.bands)}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from geoslide.stats import format_stats, stats_csv, store_stats
    from geoslide.store import PatchStore

    stats = store_stats(PatchStore.open(args.store), inventory=args.inventory)
    print(stats_csv(stats) if args.csv else format_stats(stats))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from geoslide.demo.catalog import write_demo

    path = write_demo(args.out, seed=args.seed, events=args.events, sensors=args.sensors, size_m=args.size_m,
                      progress=True)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="geoslide", description="Map landslides from STAC imagery at any scale.")
    parser.add_argument("--version", action="version", version=f"geoslide {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_search, _add_demo, _add_patches, _add_import, _add_stats):
        add(sub)
    return parser


def _version() -> str:
    from geoslide import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except GeoslideError as exc:
        print(f"geoslide {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"geoslide {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
