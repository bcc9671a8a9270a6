"""Model checkpoints: weights in safetensors plus a JSON card; loading never unpickles.

A :class:`ResolvedModel` is a model directory whose card has been read once (with the size
multiple of its architecture), for code that loads the weights elsewhere (inference workers).

Layout of a model directory::

    MODEL_DIR/model.safetensors   tensors of ``model.state_dict()``
    MODEL_DIR/model.json          :class:`ModelCard` (architecture, bands, normalisation, ...)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch import nn

from geoslide.errors import ModelError
from geoslide.fileio import absolute, is_file, join, makedirs, read_bytes, read_text, write_atomic, write_text
from geoslide.models.registry import build_model, size_multiple

WEIGHTS = "model.safetensors"
CARD = "model.json"
FORMAT = "geoslide-model/1"


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
    patch_size
        Patch size the model was trained on (pixels).
    resolution
        Ground sampling distance of the training data (metres); None if mixed or unknown.
    threshold
        Probability at and above which a pixel is mapped as landslide.
    receptive_field
        Pixels of input one output pixel sees (width of the square window), for inference overlap.
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
    threshold: float = 0.5
    receptive_field: int | None = None
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

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {"format": FORMAT, **asdict(self)}

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
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(f"model card is incomplete: {exc}") from exc


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
    }
    wanted = {"architecture": "a model name", "params": "an object", "bands": "a non-empty list of band names",
              "mean": "a list of numbers", "std": "a list of numbers", "patch_size": "a positive integer",
              "resolution": "a positive number of metres or null", "threshold": "a number",
              "receptive_field": "a positive integer or null", "training": "an object"}
    for key, ok in problems.items():
        if not ok:
            value = getattr(card, key)
            shown = json.dumps(list(value) if isinstance(value, tuple) else value, default=str)[:80]
            raise ModelError(f"model card '{key}' must be {wanted[key]}, got {shown}; fix model.json or retrain")


def save_checkpoint(model: nn.Module, card: ModelCard, out_dir: str | Path) -> Path | str:
    """Write weights and card into ``out_dir`` (a folder or an ``s3://`` prefix), each file atomically."""
    makedirs(out_dir)
    state = cpu_state(model)
    write_atomic(join(out_dir, WEIGHTS), lambda p: save_file(state, p, metadata={"format": FORMAT}))
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


def load_weights(model_dir: str | Path, card: ModelCard, device: str | torch.device = "cpu") -> nn.Module:
    """The model ``card`` describes with the safetensors weights of ``model_dir``, in eval mode.

    Parameters
    ----------
    model_dir
        The model directory holding the weights.
    card
        Its card, already read (see :func:`read_card`).
    device
        Torch device to load onto.
    """
    weights = join(model_dir, WEIGHTS)
    if not is_file(weights):
        raise ModelError(f"{model_dir} has a card but no {WEIGHTS}; the checkpoint is incomplete")
    model = build_model(card.architecture, len(card.bands), **card.params)
    try:
        model.load_state_dict(load_safetensors(read_bytes(weights)))
    except RuntimeError as exc:
        raise ModelError(f"weights in {weights} do not fit {card.architecture} {card.params}: {exc}") from exc
    return model.to(device).eval()


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
    """

    path: str
    card: ModelCard
    multiple: int


def resolve_model(model_dir: str | Path) -> ResolvedModel:
    """Read a model directory's card (a folder or a URL) and learn its size multiple, without loading weights."""
    card = read_card(model_dir)
    return ResolvedModel(absolute(model_dir), card, card_multiple(card))


def card_multiple(card: ModelCard) -> int:
    """The size multiple of the card's architecture, built without weights on the meta device."""
    with torch.device("meta"):
        try:
            model = build_model(card.architecture, len(card.bands), **card.params)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model card params {json.dumps(card.params)[:80]} do not build {card.architecture}: "
                             f"{str(exc).splitlines()[0][:120]}") from None
        return size_multiple(model)


def bundled_model_path() -> Path:
    """The demo model shipped with geoslide (trained by ``pipelines/demo.yaml``)."""
    path = Path(__file__).resolve().parents[1] / "_models" / "demo"
    if (path / CARD).is_file():
        return path
    raise ModelError("the bundled demo model is missing from this installation; pass --model MODEL_DIR")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The (unwrapped) model's state dict as contiguous CPU tensors, ready for safetensors."""
    return {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
