"""The steps of a pipeline run: data, training, evaluation report (see :mod:`geoslide.pipeline.config`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from geoslide.catalog.search import search
from geoslide.data.store import PatchStore
from geoslide.errors import ConfigError, LabelError
from geoslide.fileio import write_text
from geoslide.pipeline.config import DemoStep, ImplantStep, Pipeline, Scene, Source
from geoslide.pipeline.modelcard import write_model_card
from geoslide.pipeline.report import metric_columns, plot_f1
from geoslide.pipeline.workdir import discard_partial, mark_done, marked_done, resolve
from geoslide.tables import markdown_table


def build_data(pipeline: Pipeline, root: Path, progress: bool, client: Any = None) -> PatchStore:
    """Demo events, imports and patches into the pipeline's store (skipped when already complete).

    An unfinished store is resumed: imports and patch builds skip what they committed before.
    """
    store = Path(resolve(root, pipeline.store))
    if marked_done(store):
        check_unseen(pipeline, PatchStore.open(store))
        return PatchStore.open(store)
    for step in pipeline.demo:
        _demo(step, root, progress)
    for step in pipeline.implant:
        _implant(step, root)
    from geoslide.data.importers import import_dataset

    for step in pipeline.imports:
        options = step.options
        if options.sites is not None:
            options = replace(options, sites=resolve(root, options.sites))
        import_dataset(step.kind, resolve(root, step.src), store, options=options, progress=progress)
    if pipeline.patches:
        _patches(pipeline, root, store, progress, client)
    mark_done(store)
    check_unseen(pipeline, PatchStore.open(store))
    return PatchStore.open(store)


def check_unseen(pipeline: Pipeline, store: PatchStore) -> None:
    """Refuse unseen events of the evaluate step that no patch of the store belongs to."""
    unseen = pipeline.evaluate.unseen_events if pipeline.evaluate else ()
    events = set(store.meta()["event"])
    if missing := [e for e in unseen if e not in events]:
        raise ConfigError(f"evaluate.unseen_events {missing} match no patch; the store's events are "
                          f"{sorted(events)} (HR-GLDD: name sites with the import's sites table)")


def _demo(step: DemoStep, root: Path, progress: bool) -> None:
    from geoslide.demo.catalog import write_demo

    out = Path(resolve(root, step.out))
    if marked_done(out):
        return
    discard_partial(out, root)
    write_demo(out, seed=step.seed, events=list(step.events), sensors=list(step.sensors) if step.sensors else None,
               size_m=step.size_m, progress=progress)
    mark_done(out)


def _implant(step: ImplantStep, root: Path) -> None:
    from geoslide.demo.implanted import write_implanted

    out = Path(resolve(root, step.out))
    if marked_done(out):
        return
    discard_partial(out, root)
    write_implanted(out, step.backgrounds, step.spec, seed=step.seed)
    mark_done(out)


def _patches(pipeline: Pipeline, root: Path, store: Path, progress: bool, client: Any) -> None:
    from geoslide.data.trainingset import build_patches

    for source in pipeline.patches.sources:
        catalog = resolve(root, source.catalog)
        items = search(source.stac_query, catalog)
        pre = search(source.pre_stac_query, catalog) if source.pre_stac_query else None
        build_patches(items, labels_path(source, root), store, pipeline.patches.training_set, progress=progress,
                      pre_items=pre, client=client)


def labels_path(source: Source | Scene, root: Path) -> str:
    """The inventory file of a source: a path, or the label asset of the item a STAC query finds."""
    if isinstance(source.labels, str):
        return resolve(root, source.labels)
    items = search(source.labels, resolve(root, source.catalog))
    for asset in items[0].assets.values():
        if "labels" in (asset.roles or []) and asset.href.endswith((".parquet", ".geojson", ".gpkg")):
            return asset.get_absolute_href()
    raise LabelError(f"item {items[0].id} has no label asset (role 'labels', GeoParquet/GeoJSON/GPKG)")


def train_all(pipeline: Pipeline, store: PatchStore, root: Path, progress: bool, client: Any = None
              ) -> dict[str, Path]:
    """Train every model (resuming unfinished ones), on ``client``'s workers if given; returns model folders."""
    from geoslide.training import TrainSpec, train

    out = {}
    for run in pipeline.models:
        model_dir = root / "models" / run.name
        if not marked_done(model_dir):
            spec = TrainSpec.from_dict({**pipeline.train, **run.options})
            train(store.path, spec, model_dir, progress=progress, client=client)
            mark_done(model_dir)
        out[run.name] = model_dir
    return out


def evaluate_all(pipeline: Pipeline, store: PatchStore, models: dict[str, Path], root: Path, progress: bool,
                 client: Any = None) -> str:
    """Patch tables and scene scores (maps on ``client``'s workers if given); writes report.md, .csv, .png."""
    step = pipeline.evaluate
    tables = [_patch_rows(step, store, name, path) for name, path in models.items()]
    tables += [_scene_rows(scene, name, path, root, step, progress, client) for scene in step.scenes
               for name, path in models.items()]
    rows = pd.concat(tables, ignore_index=True)
    write_text(root / "report.csv", rows.to_csv(index=False))
    plot_f1(rows, root / "report.png", title=f"{pipeline.name}: F1")
    text = _markdown(pipeline, rows)
    write_text(root / "report.md", text)
    for name, path in models.items():
        write_model_card(Path(path), pipeline.name, pipeline.description, rows[rows["model"] == name],
                         pipeline.source)
    return text


def _patch_rows(step, store: PatchStore, name: str, model_dir: Path) -> pd.DataFrame:
    from geoslide.evaluation.score import evaluate_patches

    frame = evaluate_patches(model_dir, store, split=step.split, by=step.by)
    frame["table"] = [_patch_table(g, v, step.unseen_events) for g, v in zip(frame["group"], frame["value"],
                                                                             strict=True)]
    if step.unseen_events:
        frame = pd.concat([frame, _unseen_total(model_dir, store, step)], ignore_index=True)
    return frame.assign(model=name)


def _patch_table(group: str, value: str, unseen: tuple[str, ...]) -> str:
    if group == "mixed":
        return "test patches, mixed" if not unseen else "test patches, all events"
    if group == "event":
        return "unseen event" if value in unseen else "per event"
    return f"per {group}"


def _unseen_total(model_dir: Path, store: PatchStore, step) -> pd.DataFrame:
    from geoslide.evaluation.score import evaluate_patches

    frame = evaluate_patches(model_dir, store, split=step.split, by=("unseen",), unseen=step.unseen_events)
    frame = frame[frame["group"] == "unseen"].copy()
    frame["table"] = ["unseen events, together" if v == "yes" else "seen events, mixed" for v in frame["value"]]
    return frame


def _scene_rows(scene: Scene, name: str, model_dir: Path, root: Path, step, progress: bool, client: Any
                ) -> pd.DataFrame:
    from geoslide.evaluation.score import evaluate_map
    from geoslide.mapping.job import MapSpec, run_map
    from geoslide.mapping.tiling import InferenceSpec

    out = root / "maps" / f"{_slug(scene.name)}--{name}.zarr"
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = MapSpec(out=str(out), model=str(model_dir), vectors=str(out.with_suffix(".parquet")),
                   inference=InferenceSpec(chunk=step.chunk), min_area=step.min_area, event=scene.name)
    run_map(scene.stac_query, spec, resolve(root, scene.catalog), client=client, progress=progress)
    scores = evaluate_map(out, labels_path(scene, root), min_area=step.min_area)
    return pd.DataFrame([{"table": "whole scene", "group": "scene", "value": scene.name, "model": name, **scores}])


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")


def _markdown(pipeline: Pipeline, rows: pd.DataFrame) -> str:
    parts = [f"# {pipeline.name}\n", pipeline.description.strip() + "\n" if pipeline.description else ""]
    for table, frame in rows.groupby("table", sort=False):
        keep = ["model", "value"] + (["patches"] if "patches" in frame and frame["patches"].notna().all() else [])
        extra = [c for c in ("false_alarm_share", "detected_share", "n_false", "area_error_rel")
                 if c in frame and frame[c].notna().any()]
        parts += [f"## {table}\n", markdown_table(pd.concat([metric_columns(frame, keep), frame[extra]], axis=1))]
    return "\n".join(parts)
