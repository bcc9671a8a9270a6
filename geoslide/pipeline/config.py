"""Pipelines: a seed paper's protocol (or the demo) as one YAML file, run step by step.

Steps, each skipped when its output is complete (so a rerun resumes)::

    demo      synthesise events into static catalogs (one per seed)  (optional)
    implant   real background scenes with implanted scars, as static catalogs  (optional)
    imports   import published datasets into the patch store    (optional)
    patches   cut STAC imagery + inventories into the store     (optional)
    datasets  other datasets, each in its own store, to train on or test on   (optional)
    models    train each model (geoslide.training), or a random forest      (one or more)
    evaluate  patch tables (mixed / per event / per sensor / event x sensor / unseen events /
              validation), single- vs multi-source and cross-dataset tables, dataset tables
              (study area, landslides, band means per split), and whole scenes mapped with
              `geoslide map` and scored against their inventories

Relative paths in the file are taken from the working folder (``--work``, default ``runs/<name>``);
``catalog: null`` is the bundled demo catalog. Unknown keys are errors.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from geoslide.data.importers._common import ImportOptions
from geoslide.data.importers.tiles import TileImportSpec
from geoslide.data.patches import PatchSpec
from geoslide.data.trainingset import TrainingSetSpec
from geoslide.demo.backgrounds import Background
from geoslide.demo.implant import ImplantSpec
from geoslide.demo.implanted import ImplantedSpec
from geoslide.demo.radiometry import Radiometry
from geoslide.errors import ConfigError


@dataclass(frozen=True)
class DemoStep:
    """Synthetic events written by ``geoslide demo``."""

    out: str
    seed: int = 1
    events: tuple[str, ...] = ("demo-quake", "demo-storm")
    sensors: tuple[str, ...] | None = None
    size_m: float | None = None


@dataclass(frozen=True)
class ImplantStep:
    """Real backgrounds with implanted scars, written as a static catalog (:mod:`geoslide.demo.implanted`).

    Background paths are taken from the folder ``geoslide run`` is started in (they are inputs, not outputs).
    """

    out: str
    spec: ImplantedSpec
    backgrounds: tuple[Background, ...]
    seed: int = 0


@dataclass(frozen=True)
class Source:
    """Items (a STAC query on a catalog) and their inventory: a path, or a STAC query for the label item."""

    stac_query: dict[str, Any]
    labels: str | dict[str, Any]
    catalog: str | None = None
    pre_stac_query: dict[str, Any] | None = None


@dataclass(frozen=True)
class PatchesStep:
    """Patch store built from STAC sources (``geoslide patches``)."""

    sources: tuple[Source, ...]
    training_set: TrainingSetSpec


@dataclass(frozen=True)
class ImportStep:
    """A published dataset imported into the patch store (``geoslide import``).

    In the YAML, the keys of :class:`~geoslide.data.importers.ImportOptions` (``event``, ``sensor``,
    ``split``, ``bands``, ``units``, ``channels``, ``sites``, ``label_codes`` as ``{85: 1}``,
    ``patch_size``, ``to_8bit``, ...) sit beside ``kind`` and ``src``; for ``kind: tiles`` (a folder
    of the user's tiles, as ``geoslide import tiles``; a relative ``src`` starts in the folder you run
    from, as implant backgrounds do) those of
    :class:`~geoslide.data.importers.tiles.TileImportSpec` (``size``, ``stride``, ``resolution``,
    ``mask_values``, ``split``, ``event``, ``sensor``, ...), kept in ``tiles``.
    """

    kind: str
    src: str
    options: ImportOptions = field(default_factory=ImportOptions)
    tiles: TileImportSpec | None = None


@dataclass(frozen=True)
class Dataset:
    """Another dataset in its own store (``datasets/<name>.zarr``): imported and/or cut from STAC sources."""

    name: str
    imports: tuple[ImportStep, ...] = ()
    patches: PatchesStep | None = None


@dataclass(frozen=True)
class ModelRun:
    """One model to train: a name for its folder, training options over the shared ones, the dataset it trains on.

    ``dataset`` None trains on the pipeline's store; else on the named entry of ``datasets``.
    ``model: random-forest`` is the shallow per-pixel baseline (options: see
    :class:`geoslide.training.forest.ForestSpec`).
    """

    name: str
    options: dict[str, Any]
    dataset: str | None = None


@dataclass(frozen=True)
class Scene:
    """A whole scene to map and score against its inventory."""

    name: str
    stac_query: dict[str, Any]
    labels: str | dict[str, Any]
    catalog: str | None = None


@dataclass(frozen=True)
class CrossTest:
    """Every model tested on another dataset's split (GDCLD Table 9), grouped by ``by`` columns."""

    dataset: str
    split: str = "test"
    by: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvaluateStep:
    """What to report; see the module docstring.

    ``by`` takes metadata columns and crossings such as ``event*sensor``. ``validation`` adds the
    tables on the validation split. ``tables`` adds dataset tables: ``dataset`` (patches, study area
    in km2, landslides and their areas per event) and ``band-means`` (per split: landslide share and
    mean of every band over landslide and background pixels).
    """

    split: str = "test"
    by: tuple[str, ...] = ("event", "sensor")
    unseen_events: tuple[str, ...] = ()
    validation: bool = False
    val_split: str = "val"
    cross: tuple[CrossTest, ...] = ()
    tables: tuple[str, ...] = ()
    scenes: tuple[Scene, ...] = ()
    min_area: float = 0.0
    chunk: int = 1024


@dataclass(frozen=True)
class Pipeline:
    """A whole protocol; see the module docstring."""

    name: str
    description: str = ""
    store: str = "patches.zarr"
    demo: tuple[DemoStep, ...] = ()
    implant: tuple[ImplantStep, ...] = ()
    imports: tuple[ImportStep, ...] = ()
    patches: PatchesStep | None = None
    datasets: tuple[Dataset, ...] = ()
    train: dict[str, Any] = field(default_factory=dict)
    models: tuple[ModelRun, ...] = ()
    evaluate: EvaluateStep = field(default_factory=EvaluateStep)
    source: str | None = None


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and check a pipeline YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no pipeline file {path}; see pipelines/ for examples")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of pipeline keys")
    return replace(parse_pipeline(data), source=str(path))


def parse_pipeline(data: dict[str, Any]) -> Pipeline:
    """Build a :class:`Pipeline` from a mapping, refusing unknown keys at every level."""
    data = _known(data, Pipeline, "pipeline")
    if "name" not in data:
        raise ConfigError("the pipeline needs a name")
    out: dict[str, Any] = {k: data[k] for k in ("name", "description", "store", "train") if k in data}
    check_types(Pipeline, {k: v for k, v in out.items() if k != "train"}, "pipeline")
    demos = data.get("demo", [])
    out["demo"] = tuple(_build(DemoStep, d, "demo", tuples=("events", "sensors"))
                        for d in (demos if isinstance(demos, list) else [demos]))
    out["implant"] = tuple(_implant(d) for d in data.get("implant", []))
    out["imports"] = tuple(_import_step(d) for d in data.get("imports", []))
    if "patches" in data:
        out["patches"] = _patches(data["patches"])
    out["datasets"] = tuple(_dataset(d) for d in data.get("datasets", []))
    out["models"] = tuple(_model(d) for d in data.get("models", []))
    if not out["models"]:
        raise ConfigError("the pipeline lists no models; add e.g. models: [{name: unet, model: unet}]")
    if "evaluate" in data:
        out["evaluate"] = _evaluate(data["evaluate"])
    if not (out.get("patches") or out["imports"]):
        raise ConfigError("the pipeline has no training data; give patches: or imports:")
    _check_train(out.get("train", {}), out["models"])
    _check_names(out)
    return Pipeline(**out)


def _known(data: Any, cls: type, where: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    allowed = {f.name for f in fields(cls)} | set(extra)
    if unknown := sorted(set(data) - allowed):
        raise ConfigError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")
    return data


def _fits(value: Any, hint: Any) -> bool:
    """Whether a YAML value has the type a dataclass field is annotated with (unknown forms pass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin in (tuple, list):
        item = args[0] if args else Any
        return isinstance(value, list | tuple) and all(_fits(v, item) for v in value)
    simple = {type(None): lambda v: v is None, bool: lambda v: isinstance(v, bool),
              int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
              str: lambda v: isinstance(v, str), dict: lambda v: isinstance(v, dict)}
    check = simple.get(origin or hint)
    return True if check is None else check(value)


def check_types(cls: type, data: dict[str, Any], where: str) -> None:
    """Refuse, in one line, a value whose type does not fit ``cls``'s annotation of its key."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that cannot be resolved here: the constructor checks
        return
    for key, value in data.items():
        if key in hints and not _fits(value, hints[key]):
            raise ConfigError(f"{where}.{key} must be {_describe(hints[key])}, got {value!r}")


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
             type(None): "null"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (tuple, list):
        return "a list"
    return names.get(hint, str(hint).replace("typing.", ""))


def _build(cls: type, data: Any, where: str, tuples: tuple[str, ...] = ()) -> Any:
    data = dict(_known(data, cls, where))
    check_types(cls, data, where)
    for key in tuples:
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _import_step(data: Any) -> ImportStep:
    if isinstance(data, dict) and data.get("kind") == "tiles":
        return _tiles_step(data)
    option_keys = tuple(f.name for f in fields(ImportOptions))
    data = dict(_known(data, ImportStep, "imports", extra=option_keys))
    if "kind" not in data or "src" not in data:
        raise ConfigError("each entry of imports needs kind and src, e.g. {kind: landslide4sense, src: data/l4s}")
    options = {k: data[k] for k in option_keys if k in data}
    for key in ("test_events", "bands", "channels"):
        if options.get(key) is not None:
            options[key] = tuple(options[key])
    if isinstance(options.get("label_codes"), dict):
        options["label_codes"] = tuple((int(k), int(v)) for k, v in options["label_codes"].items())
    if "options" in data:
        raise ConfigError("imports: give the import options beside kind and src, not under options")
    try:
        return ImportStep(str(data["kind"]), str(data["src"]), ImportOptions(**options))
    except TypeError as exc:
        raise ConfigError(f"imports: {exc}") from exc


def _tiles_step(data: dict[str, Any]) -> ImportStep:
    """``{kind: tiles, src: DIR, ...}``: a folder of the user's tiles, with the options of :class:`TileImportSpec`."""
    option_keys = tuple(f.name for f in fields(TileImportSpec))
    data = dict(_known(data, ImportStep, "imports", extra=option_keys))
    if "src" not in data:
        raise ConfigError("imports: a tiles entry needs src, e.g. {kind: tiles, src: data/my-tiles, resolution: 1.0}")
    options = {k: data[k] for k in option_keys if k in data}
    for key in ("bands", "fractions"):
        if options.get(key) is not None:
            options[key] = tuple(options[key])
    try:
        return ImportStep("tiles", str(data["src"]), tiles=TileImportSpec(**options))
    except TypeError as exc:
        raise ConfigError(f"imports: {exc}") from exc


def _patches(data: Any) -> PatchesStep:
    patch_keys = tuple(f.name for f in fields(PatchSpec))
    set_keys = tuple(f.name for f in fields(TrainingSetSpec) if f.name != "patch")
    data = _known(data, PatchesStep, "patches", extra=("patch_size",) + patch_keys + set_keys)
    sources = tuple(_build(Source, s, "patches.sources") for s in data.get("sources", []))
    if not sources:
        raise ConfigError("patches: needs at least one entry under sources (stac_query + labels)")
    patch = {k: data[k] for k in patch_keys if k in data and k != "size"}
    patch["size"] = data.get("patch_size", data.get("size", 128))
    check_types(PatchSpec, patch, "patches")
    options = {k: tuple(data[k]) if k in ("bands", "derived", "test_events") and isinstance(data[k], list)
               else data[k] for k in set_keys if k in data}
    check_types(TrainingSetSpec, options, "patches")
    return PatchesStep(sources, TrainingSetSpec(patch=PatchSpec(**patch), **options))


def _implant(data: Any) -> ImplantStep:
    scar_keys = tuple(f.name for f in fields(ImplantSpec))
    spec_keys = tuple(f.name for f in fields(ImplantedSpec) if f.name not in ("implant", "radiometry"))
    data = _known(data, ImplantStep, "implant", extra=scar_keys + spec_keys + ("radiometry",))
    if not data.get("backgrounds"):
        raise ConfigError("implant: needs backgrounds (a list of {path, bands, scale})")
    backgrounds = tuple(_build(Background, b, "implant.backgrounds", tuples=("bands", "files"))
                        for b in data["backgrounds"])
    scars = _build(ImplantSpec, {k: data[k] for k in scar_keys if k in data}, "implant", tuples=("tone",))
    options = {k: tuple(data[k]) if k in ("bands", "resolution") else data[k] for k in spec_keys if k in data}
    radiometry = _build(Radiometry, data.get("radiometry") or {}, "implant.radiometry",
                        tuples=("gain", "haze", "gamma", "sensor_noise", "sharpen", "white", "display_gamma"))
    try:
        spec = ImplantedSpec(implant=scars, radiometry=radiometry, **options)
    except TypeError as exc:
        raise ConfigError(f"implant: {exc}") from exc
    return ImplantStep(str(data.get("out", spec.name)), spec, backgrounds, int(data.get("seed", 0)))


def _dataset(data: Any) -> Dataset:
    data = _known(data, Dataset, "datasets")
    if "name" not in data:
        raise ConfigError("each entry of datasets needs a name (models and evaluate.cross refer to it)")
    imports = tuple(_import_step(d) for d in data.get("imports", []))
    patches = _patches(data["patches"]) if "patches" in data else None
    if not (imports or patches):
        raise ConfigError(f"dataset {data['name']!r} has no data; give imports: or patches:")
    return Dataset(str(data["name"]), imports, patches)


def _model(data: Any) -> ModelRun:
    if not isinstance(data, dict) or "name" not in data:
        raise ConfigError("each entry of models needs a name (its folder) and training options, e.g. model: unet")
    options = {k: v for k, v in data.items() if k not in ("name", "dataset")}
    return ModelRun(str(data["name"]), options, data.get("dataset"))


TABLES = ("dataset", "band-means")


def _evaluate(data: Any) -> EvaluateStep:
    data = dict(_known(data, EvaluateStep, "evaluate"))
    check_types(EvaluateStep, {k: v for k, v in data.items() if k != "scenes"}, "evaluate")
    data["scenes"] = tuple(_build(Scene, s, "evaluate.scenes") for s in data.get("scenes", []))
    data["cross"] = tuple(_build(CrossTest, c, "evaluate.cross", tuples=("by",)) for c in data.get("cross", []))
    for key in ("by", "unseen_events", "tables"):
        if key in data:
            data[key] = tuple(data[key])
    if unknown := sorted(set(data.get("tables", ())) - set(TABLES)):
        raise ConfigError(f"unknown table(s) {unknown} in evaluate.tables; choose from {list(TABLES)}")
    return EvaluateStep(**data)


def _check_train(shared: dict[str, Any], models: tuple[ModelRun, ...]) -> None:
    from geoslide.training.forest import FOREST, ForestSpec  # torch loads when a pipeline is checked
    from geoslide.training.spec import TrainSpec

    if not isinstance(shared, dict):
        raise ConfigError(f"train must be a mapping of training options, got {shared!r}")
    for run in models:
        if run.options.get("model") == FOREST:
            ForestSpec.from_dict(run.options)
        else:
            options = {**shared, **run.options}
            check_types(TrainSpec, options, f"models[{run.name}]" if run.options else "train")
            TrainSpec.from_dict(options)


def _check_names(out: dict[str, Any]) -> None:
    """Models and cross tests must name datasets that exist; model names must be unique."""
    names = {d.name for d in out["datasets"]}
    if len(names) != len(out["datasets"]):
        raise ConfigError("two datasets share a name; give each a different name")
    runs = [m.name for m in out["models"]]
    if len(set(runs)) != len(runs):
        raise ConfigError(f"two models share a name in {runs}; each needs its own folder")
    wanted = [m.dataset for m in out["models"] if m.dataset] + [c.dataset for c in out.get("evaluate",
                                                                                      EvaluateStep()).cross]
    if missing := sorted(set(wanted) - names):
        raise ConfigError(f"dataset(s) {missing} are not under datasets: (it has {sorted(names)}); add them")
