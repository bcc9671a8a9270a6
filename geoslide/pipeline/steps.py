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
from geoslide.pipeline.config import DemoStep, ImplantStep, ImportStep, PatchesStep, Pipeline, Scene, Source
from geoslide.pipeline.modelcard import write_model_card
from geoslide.pipeline.report import metric_columns, plot_f1
from geoslide.pipeline.scoring import Scorer, dataset_store
from geoslide.pipeline.workdir import discard_partial, mark_done, marked_done, resolve
from geoslide.tables import markdown_table


def build_data(pipeline: Pipeline, root: Path, progress: bool, client: Any = None) -> PatchStore:
    """Demo events, implanted scenes, imports and patches into the pipeline's store; ``datasets`` into theirs.

    An unfinished store is resumed: imports and patch builds skip what they committed before.
    """
    for step in pipeline.demo:
        _demo(step, root, progress)
    for step in pipeline.implant:
        _implant(step, root)
    for dataset in pipeline.datasets:
        _build_store(Path(root / "datasets" / f"{dataset.name}.zarr"), dataset.imports, dataset.patches, root,
                     progress, client)
    store = _build_store(Path(resolve(root, pipeline.store)), pipeline.imports, pipeline.patches, root, progress,
                         client)
    check_unseen(pipeline, store)
    return store


def _build_store(store: Path, imports: tuple[ImportStep, ...], patches: PatchesStep | None, root: Path,
                 progress: bool, client: Any) -> PatchStore:
    """One store from imports and STAC patches (skipped when complete; an unfinished one is resumed)."""
    if marked_done(store):
        return PatchStore.open(store)
    from geoslide.data.importers import import_dataset

    for step in imports:
        if step.tiles is not None:
            from geoslide.data.importers.tiles import import_tiles

            import_tiles(step.src, store, step.tiles, progress=progress)  # relative: from where you run, as backgrounds
            continue
        options = step.options
        if options.sites is not None:
            options = replace(options, sites=resolve(root, options.sites))
        import_dataset(step.kind, resolve(root, step.src), store, options=options, progress=progress)
    if patches:
        _patches(patches, root, store, progress, client)
    mark_done(store)
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


def _patches(step: PatchesStep, root: Path, store: Path, progress: bool, client: Any) -> None:
    from geoslide.data.trainingset import build_patches

    for source in step.sources:
        catalog = resolve(root, source.catalog)
        items = search(source.stac_query, catalog)
        pre = search(source.pre_stac_query, catalog) if source.pre_stac_query else None
        build_patches(items, labels_path(source, root), store, step.training_set, progress=progress,
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
    """Train every network (resuming unfinished ones), on ``client``'s workers if given; returns model folders.

    Each trains on its ``dataset`` (the pipeline's store by default). The random forest is trained
    when it is evaluated (see :mod:`geoslide.pipeline.scoring`) and has no folder.
    """
    from geoslide.training import TrainSpec, train
    from geoslide.training.forest import FOREST

    out = {}
    for run in pipeline.models:
        if run.options.get("model") == FOREST:
            continue
        model_dir = root / "models" / run.name
        if not marked_done(model_dir):
            spec = TrainSpec.from_dict({**pipeline.train, **run.options})
            train(dataset_store(pipeline, root, run.dataset).path, spec, model_dir, progress=progress, client=client)
            mark_done(model_dir)
        out[run.name] = model_dir
    return out


def evaluate_all(pipeline: Pipeline, store: PatchStore, models: dict[str, Path], root: Path, progress: bool,
                 client: Any = None) -> str:
    """Every table of the protocol (maps on ``client``'s workers if given); writes report.md, .csv, .png.

    Metric tables go to ``report.csv`` (one row per table, model and group); dataset tables to
    ``report-<table>.csv``.
    """
    from geoslide.pipeline.comparisons import cross_rows, source_rows
    from geoslide.pipeline.datatables import dataset_tables

    step = pipeline.evaluate
    scorers = _scorers(pipeline, models, root)
    tables = [_patch_rows(step, store, scorer) for scorer in scorers]
    if step.validation:
        tables += [_split_rows(store, scorer, step.val_split, step.by, "validation") for scorer in scorers]
    tables += [source_rows(pipeline, store, scorers), cross_rows(pipeline, root, scorers)]
    tables += [_scene_rows(scene, name, path, root, step, progress, client) for scene in step.scenes
               for name, path in models.items()]
    rows = pd.concat([t for t in tables if len(t)], ignore_index=True)
    trained = {run.name: run.dataset or pipeline.name for run in pipeline.models}
    rows["trained_on"] = rows["model"].map(trained)
    write_text(root / "report.csv", rows.to_csv(index=False))
    plot_f1(rows, root / "report.png", title=f"{pipeline.name}: F1")
    extra = dataset_tables(step.tables, store)
    for name, frame in extra.items():
        write_text(root / f"report-{name}.csv", frame.to_csv(index=False))
    text = _markdown(pipeline, rows, extra)
    write_text(root / "report.md", text)
    for name, path in models.items():
        write_model_card(Path(path), pipeline.name, pipeline.description, rows[rows["model"] == name],
                         pipeline.source)
    return text


def _scorers(pipeline: Pipeline, models: dict[str, Path], root: Path) -> list[Scorer]:
    from geoslide.training.forest import FOREST, ForestSpec

    out = []
    for run in pipeline.models:
        if run.options.get("model") == FOREST:
            out.append(Scorer(run.name, forest_spec=ForestSpec.from_dict(run.options),
                              train_store=dataset_store(pipeline, root, run.dataset)))
        else:
            out.append(Scorer(run.name, model_dir=models[run.name]))
    return out


def _split_rows(store: PatchStore, scorer: Scorer, split: str, by: tuple[str, ...], label: str,
                unseen: tuple[str, ...] = ()) -> pd.DataFrame:
    from geoslide.evaluation.score import grouped_scores

    rows, counts = scorer.counts(store, split)
    frame = grouped_scores(store.meta(), rows, counts, by, unseen)
    frame["table"] = [f"{label} patches, mixed" if g == "mixed" else f"{label} per {g.replace('*', ' x ')}"
                      for g in frame["group"]]
    return frame.assign(model=scorer.name, split=split)


def _patch_rows(step, store: PatchStore, scorer: Scorer) -> pd.DataFrame:
    from geoslide.evaluation.score import grouped_scores

    rows, counts = scorer.counts(store, step.split)
    frame = grouped_scores(store.meta(), rows, counts, step.by, step.unseen_events)
    frame["table"] = [_patch_table(g, v, step.unseen_events) for g, v in zip(frame["group"], frame["value"],
                                                                             strict=True)]
    if step.unseen_events:
        total = grouped_scores(store.meta(), rows, counts, ("unseen",), step.unseen_events)
        total = total[total["group"] == "unseen"].copy()
        total["table"] = ["unseen events, together" if v == "yes" else "seen events, mixed" for v in total["value"]]
        frame = pd.concat([frame, total], ignore_index=True)
    return frame.assign(model=scorer.name, split=step.split)


def _patch_table(group: str, value: str, unseen: tuple[str, ...]) -> str:
    if group == "mixed":
        return "test patches, mixed" if not unseen else "test patches, all events"
    if group == "event":
        return "unseen event" if value in unseen else "per event"
    return f"per {group.replace('*', ' x ')}"


def _scene_rows(scene: Scene, name: str, model_dir: Path, root: Path, step, progress: bool, client: Any
                ) -> pd.DataFrame:
    from geoslide.evaluation.score import evaluate_map
    from geoslide.mapping.job import MapSpec, run_map
    from geoslide.mapping.spec import InferenceSpec

    out = root / "maps" / f"{_slug(scene.name)}--{name}.zarr"
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = MapSpec(out=str(out), model=str(model_dir), vectors=str(out.with_suffix(".parquet")),
                   inference=InferenceSpec(chunk=step.chunk), min_area=step.min_area, event=scene.name)
    run_map(scene.stac_query, spec, resolve(root, scene.catalog), client=client, progress=progress)
    scores = evaluate_map(out, labels_path(scene, root), min_area=step.min_area)
    return pd.DataFrame([{"table": "whole scene", "group": "scene", "value": scene.name, "model": name, **scores}])


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")


ID_COLUMNS = ("source", "trained_on", "tested_on", "model", "value")


def _markdown(pipeline: Pipeline, rows: pd.DataFrame, extra: dict[str, pd.DataFrame]) -> str:
    parts = [f"# {pipeline.name}\n", pipeline.description.strip() + "\n" if pipeline.description else ""]
    several = rows["trained_on"].nunique() > 1
    for table, frame in rows.groupby("table", sort=False):
        keep = [c for c in ID_COLUMNS if c in frame and frame[c].notna().all()
                and (c != "trained_on" or several or table.startswith("cross"))]
        keep += ["patches"] if "patches" in frame and frame["patches"].notna().all() else []
        more = [c for c in ("false_alarm_share", "detected_share", "n_false", "area_error_rel")
                if c in frame and frame[c].notna().any()]
        parts += [f"## {table}\n", markdown_table(pd.concat([metric_columns(frame, keep), frame[more]], axis=1))]
    for name, frame in extra.items():
        parts += [f"## {name}\n", markdown_table(frame)]
    return "\n".join(parts)
