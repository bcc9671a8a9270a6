"""Model checkpoints: weights in safetensors plus a JSON card; loading never unpickles.

A :class:`ResolvedModel` is a model directory whose card has been read once (with the size
multiple of its architecture), for code that loads the weights elsewhere (inference workers).

Layout of a model directory::

    MODEL_DIR/model.safetensors   tensors of ``model.state_dict()``
    MODEL_DIR/model.json          :class:`ModelCard` (architecture, bands, normalisation, ...)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from geoslide.errors import ModelError
from geoslide.fileio import absolute, join, makedirs, read_bytes, read_text, write_atomic, write_text
from geoslide.models.normalise import MODES
from geoslide.models.registry import build_model, size_multiple

WEIGHTS = "model.safetensors"
DATA_SHA256 = "data_sha256"  # safetensors metadata: SHA-256 of the tensor bytes, checked on load
CARD = "model.json"
FORMAT = "geoslide-model/1"
MIN_MAPPING_PIXELS = 4
"""Pixels (at the model's resolution) in the default minimum mapping unit: a 2 x 2 block, so that
single pixels and pairs, which no landslide inventory maps, are not reported as landslides."""


@dataclass(frozen=True)
class ModelCard:
    """What a model needs to be rebuilt and fed: architecture, inputs, normalisation, provenance.

    Parameters
    ----------
    architecture
        Registered model name (see :func:`geoslide.models.model_names`).
    params
        Builder options (``base_filters``, ``depth``, ...).
    bands
        Input band names, in order.
    mean, std
        Per-band normalisation applied as ``(x - mean) / std`` before the model.
    normalise
        Where mean and std come from when the model is used: ``fixed``, the card's own (the training
        patches' statistics); ``brightness``, the card's times each scene's brightness; ``scene``,
        each scene's median and spread per band, the card's values being the training average, for
        reference. Scene statistics come from a sample: in training of the source item's patches,
        in mapping of the imagery. See :mod:`geoslide.models.normalise`.
    patch_size
        Patch size the model was trained on (pixels).
    resolution
        Ground sampling distance of the training data (metres); None if mixed or unknown.
    resolution_range
        Smallest and largest ground sampling distance of the training data (metres), None if unknown.
    threshold
        Probability at and above which a pixel is mapped as landslide.
    receptive_field
        Pixels of input one output pixel sees (width of the square window), for inference overlap.
    min_area
        Minimum mapping unit in m2: maps made with the model drop smaller landslides from their
        polygons unless told otherwise (``--min-area``). Training sets it to
        :data:`MIN_MAPPING_PIXELS` pixels at ``resolution`` (:func:`default_min_area`); None in
        older cards, when the map falls back to that many of its own pixels.
    training
        Free-form provenance: data, epochs, loss, optimiser, validation metrics.
    """

    architecture: str
    params: dict[str, Any]
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    patch_size: int
    resolution: float | None = None
    resolution_range: tuple[float, float] | None = None
    threshold: float = 0.5
    receptive_field: int | None = None
    min_area: float | None = None
    normalise: str = "fixed"
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_types(self)
        n = len(self.bands)
        if len(self.mean) != n or len(self.std) != n:
            raise ModelError(f"model card has {n} bands but {len(self.mean)} means and {len(self.std)} stds")
        if any(s <= 0 for s in self.std):
            raise ModelError("model card has a non-positive std; recompute the normalisation")
        if not 0.0 < self.threshold < 1.0:
            raise ModelError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.min_area is not None and not self.min_area >= 0:
            raise ModelError(f"min_area must be >= 0 m2, got {self.min_area}")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists); ``normalise`` is left out when ``fixed``, as older cards have it."""
        data = asdict(self)
        if data["normalise"] == "fixed":
            del data["normalise"]
        return {"format": FORMAT, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        """Parse a card; refuses other formats and unknown keys."""
        if not isinstance(data, dict):
            raise ModelError(f"a model card is a JSON object, not a {type(data).__name__}")
        data = dict(data)
        if data.pop("format", None) != FORMAT:
            raise ModelError(f"not a geoslide model card (expected format {FORMAT!r})")
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ModelError(f"model card has unknown keys {unknown}; was it written by a newer geoslide?")
        for key in ("bands", "mean", "std"):
            if not isinstance(data.get(key, []), list):
                raise ModelError(f"model card '{key}' must be a list, got {json.dumps(data[key])}")
            data[key] = tuple(data.get(key, ()))
        if data.get("resolution_range") is not None:
            data["resolution_range"] = tuple(data["resolution_range"])
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(f"model card is incomplete: {exc}") from exc


def default_min_area(resolution: float | None) -> float | None:
    """The default minimum mapping unit (m2): :data:`MIN_MAPPING_PIXELS` pixels of ``resolution`` metres.

    None when the resolution is unknown (training data of mixed resolutions).
    """
    return None if resolution is None else MIN_MAPPING_PIXELS * float(resolution) ** 2


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_types(card: ModelCard) -> None:
    """One-line ModelErrors for fields of the wrong JSON type (a hand-edited or foreign model.json)."""
    problems = {
        "architecture": isinstance(card.architecture, str),
        "params": isinstance(card.params, dict),
        "bands": bool(card.bands) and all(isinstance(b, str) and b for b in card.bands),
        "mean": all(_is_number(v) for v in card.mean),
        "std": all(_is_number(v) for v in card.std),
        "patch_size": _is_count(card.patch_size),
        "resolution": card.resolution is None or (_is_number(card.resolution) and card.resolution > 0),
        "threshold": _is_number(card.threshold),
        "receptive_field": card.receptive_field is None or _is_count(card.receptive_field),
        "training": isinstance(card.training, dict),
        "min_area": card.min_area is None or (_is_number(card.min_area) and card.min_area >= 0),
        "normalise": card.normalise in MODES,
        "resolution_range": card.resolution_range is None or (
            len(card.resolution_range) == 2 and all(_is_number(v) and v > 0 for v in card.resolution_range)),
    }
    wanted = {"architecture": "a model name", "params": "an object", "bands": "a non-empty list of band names",
              "mean": "a list of numbers", "std": "a list of numbers", "patch_size": "a positive integer",
              "resolution": "a positive number of metres or null", "threshold": "a number",
              "receptive_field": "a positive integer or null", "training": "an object",
              "min_area": "a non-negative number of m2 or null",
              "normalise": f"one of {', '.join(MODES)}",
              "resolution_range": "two positive numbers of metres or null"}
    for key, ok in problems.items():
        if not ok:
            value = getattr(card, key)
            shown = json.dumps(list(value) if isinstance(value, tuple) else value, default=str)[:80]
            raise ModelError(f"model card '{key}' must be {wanted[key]}, got {shown}; fix model.json or retrain")


def save_checkpoint(model: nn.Module, card: ModelCard, out_dir: str | Path) -> Path | str:
    """Write weights and card into ``out_dir`` (a folder or an ``s3://`` prefix), each file atomically."""
    makedirs(out_dir)
    state = cpu_state(model)
    data = save_safetensors(state, metadata={"format": FORMAT})
    data = canonical_safetensors(data, {DATA_SHA256: hashlib.sha256(data[_data_start(data):]).hexdigest()})
    write_atomic(join(out_dir, WEIGHTS), lambda p: Path(p).write_bytes(data))
    write_text(join(out_dir, CARD), json.dumps(card.to_json(), indent=2) + "\n")
    return join(out_dir)


def read_card(model_dir: str | Path) -> ModelCard:
    """Read the JSON card of a model directory (a folder or a URL)."""
    path = join(model_dir, CARD)
    try:
        text = read_text(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ModelError(f"{model_dir} is not a model directory (no {CARD}); train one with `geoslide train`") from None
    try:
        return ModelCard.from_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc


def load_checkpoint(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelCard]:
    """Rebuild the model from its card and load the safetensors weights, in eval mode."""
    card = read_card(model_dir)
    return load_weights(model_dir, card, device), card


def load_weights(model_dir: str | Path, card: ModelCard, device: str | torch.device = "cpu", digest: str = ""
                 ) -> nn.Module:
    """The model ``card`` describes with the safetensors weights of ``model_dir``, in eval mode.

    Parameters
    ----------
    model_dir
        The model directory holding the weights.
    card
        Its card, already read (see :func:`read_card`).
    device
        Torch device to load onto.
    digest
        The SHA-256 the weights must have (:attr:`ResolvedModel.digest`); empty to take any.
    """
    weights = join(model_dir, WEIGHTS)
    data = weight_bytes(model_dir)
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise ModelError(f"{weights} changed while this map was being made; rerun it with a new --out (the model "
                         "is part of what the map store records)")
    _check_data_digest(data, weights)
    model = build_model(card.architecture, len(card.bands), **card.params)
    try:
        tensors = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own SafetensorError on corrupt or truncated files
        raise ModelError(f"{weights} is not a readable safetensors file ({exc}); retrain or copy the model "
                         "again") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise ModelError(f"weights in {weights} do not fit {card.architecture} {card.params}: "
                         f"{str(exc).splitlines()[0]}") from None
    return model.to(device).eval()


def canonical_safetensors(data: bytes, metadata: dict[str, str] | None = None) -> bytes:
    """The same safetensors file with ``metadata`` added and its JSON header's keys sorted.

    Equal weights give equal bytes: safetensors writes ``__metadata__`` in hash-map order, which
    changes from call to call. Tensor offsets count from the end of the header, so the header may
    be rewritten; it is padded with spaces to a multiple of 8 bytes, as safetensors pads it.
    """
    start = _data_start(data)
    header = json.loads(data[8:start])
    header["__metadata__"] = {**header.get("__metadata__", {}), **(metadata or {})}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text = text.ljust(-(-len(text) // 8) * 8)
    return len(text).to_bytes(8, "little") + text + data[start:]


def _data_start(data: bytes) -> int:
    """Where the tensor bytes of a safetensors file start (after the 8-byte length and the JSON header)."""
    return 8 + int.from_bytes(data[:8], "little")


def _check_data_digest(data: bytes, weights: str | Path) -> None:
    """A ModelError if the file's header records a SHA-256 of its tensor bytes that they no longer have.

    Files written before geoslide recorded it (the header lacks it) are not checked.
    """
    try:
        header = json.loads(data[8:_data_start(data)])
    except (ValueError, UnicodeDecodeError):
        raise ModelError(f"{weights} is not a readable safetensors file (bad header); retrain or copy the model "
                         "again") from None
    expected = (header.get("__metadata__") or {}).get(DATA_SHA256) if isinstance(header, dict) else None
    if expected and hashlib.sha256(data[_data_start(data):]).hexdigest() != expected:
        raise ModelError(f"{weights} is corrupt (its tensors do not match the checksum written with them); retrain "
                         "or copy the model again")


def weight_bytes(model_dir: str | Path) -> bytes:
    """The bytes of a model directory's weights file; a ModelError if there is none."""
    weights = join(model_dir, WEIGHTS)
    try:
        return read_bytes(weights)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ModelError(f"{model_dir} has a card but no {WEIGHTS}; the checkpoint is incomplete") from None


@dataclass(frozen=True)
class ResolvedModel:
    """A model directory read once: its absolute path, its card and its size multiple, no weights.

    Made on the client (:func:`resolve_model`) and passed down to inference and into its task
    graph, so workers only load the weights.

    Parameters
    ----------
    path
        The model directory, resolved to an absolute path, or its URL.
    card
        Its card.
    multiple
        The factor input heights and widths must be a multiple of (see :func:`geoslide.models.size_multiple`).
    digest
        SHA-256 of the weights file when they were checked (:func:`resolve_model` with ``check=True``);
        workers refuse weights that differ. Empty: not checked.
    """

    path: str
    card: ModelCard
    multiple: int
    digest: str = ""

    @property
    def identity(self) -> str:
        """What the model is, by content: architecture, weights digest and card digest (16 hex digits each)."""
        card = hashlib.sha256(json.dumps(self.card.to_json(), sort_keys=True).encode()).hexdigest()
        return f"{self.card.architecture}:weights-sha256={self.digest[:16]}:card-sha256={card[:16]}"


def resolve_model(model_dir: str | Path, check: bool = False) -> ResolvedModel:
    """Read a model directory's card (a folder or a URL) and learn its size multiple.

    With ``check`` the weights are read and loaded here, on the CPU, so that a missing, truncated or
    corrupt file is a ModelError before anything is written, and their SHA-256 is recorded.
    """
    card = read_card(model_dir)
    digest = ""
    if check:
        data = weight_bytes(model_dir)
        load_weights(model_dir, card, "cpu")
        digest = hashlib.sha256(data).hexdigest()
    return ResolvedModel(absolute(model_dir), card, card_multiple(card), digest)


def card_multiple(card: ModelCard) -> int:
    """The size multiple of the card's architecture, built without weights on the meta device."""
    with torch.device("meta"):
        try:
            model = build_model(card.architecture, len(card.bands), **card.params)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model card params {json.dumps(card.params)[:80]} do not build {card.architecture}: "
                             f"{str(exc).splitlines()[0][:120]}") from None
        return size_multiple(model)


BUNDLED = Path(__file__).resolve().parents[1] / "_models"
"""Folder of the models shipped with geoslide, one sub-folder each."""


def bundled_model_path(name: str = "demo") -> Path:
    """A model shipped with geoslide: ``demo`` (trained by ``pipelines/demo.yaml``) or one of :func:`bundled_names`."""
    path = BUNDLED / name
    if (path / CARD).is_file():
        return path
    raise ModelError(f"there is no bundled model {name!r} in this installation; bundled: {bundled_names()}, "
                     "or pass --model MODEL_DIR")


def model_location(model: str | Path) -> str | Path:
    """A model directory given by path or URL, or by the name of a bundled model (``rgb``, ``demo``, ...).

    A path that exists wins over a bundled name; a bare name that is neither is an error naming both.
    """
    text = str(model)
    if "://" in text or Path(text).exists() or ("/" in text or "\\" in text):
        return model
    if text in bundled_names():
        return BUNDLED / text
    raise ModelError(f"{text} is neither a model directory nor a bundled model ({', '.join(bundled_names())}); "
                     "give a folder written by `geoslide train`")


def bundled_names(root: Path = BUNDLED) -> list[str]:
    """Names of the bundled models (the model folders under ``root``)."""
    return sorted(p.name for p in root.iterdir() if (p / CARD).is_file()) if root.is_dir() else []


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The (unwrapped) model's state dict as contiguous CPU tensors, ready for safetensors."""
    return {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
