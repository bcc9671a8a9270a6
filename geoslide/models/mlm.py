"""The STAC Machine Learning Model (MLM) item of a model directory, written beside its card.

``MODEL_DIR/item.json`` describes the model in the STAC MLM extension's terms (bands, input
shape, normalisation, output classes, framework, weights with their checksum), so catalogs and
tools that know MLM find and load it, and maps link it as the model they came from. It is
written by :func:`geoslide.models.card.save_checkpoint` (so by every ``geoslide train``); for an
older directory, :func:`write_mlm_item` adds it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
import torch
from safetensors import safe_open

from geoslide._version import version
from geoslide.catalog.extensions import CLASSIFICATION_EXT, FILE_EXT, MEDIA_BY_SUFFIX, MLM_EXT, SAFETENSORS_MEDIA
from geoslide.catalog.files import file_fields
from geoslide.catalog.stacio import stac_io
from geoslide.fileio import fetched, is_file, join, list_names, name
from geoslide.models.card import CARD, WEIGHTS, ModelCard, read_card

ITEM = "item.json"
ARCHITECTURES = {"unet": "U-Net", "resunet": "ResU-Net", "attention-unet": "Attention U-Net",
                 "attention-resunet": "Attention ResU-Net", "adsms-unet": "ADSMS U-Net"}
CLASSES = [{"value": 0, "name": "background", "description": "no landslide"},
           {"value": 1, "name": "landslide", "description": "landslide (probability >= the model's threshold)"}]
IN_DIMS = ["batch", "bands", "height", "width"]
OUT_DIMS = ["batch", "channel", "height", "width"]
RASTER_V1_EXT = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
# band units where geoslide knows them: derived bands and DEMs; others keep their items' physical values
UNITS = {"slope": "deg", "elevation": "m", "ndvi": "1"}


def mlm_item(model_dir: str | os.PathLike[str], when: datetime | None = None) -> pystac.Item:
    """The MLM item of a model directory (card and weights), with hrefs relative to the directory.

    Parameters
    ----------
    model_dir
        A model directory (a folder or an ``s3://`` prefix) holding ``model.json`` and ``model.safetensors``.
    when
        The item's datetime; default: now.
    """
    card = read_card(model_dir)
    weights = join(model_dir, WEIGHTS)
    item = pystac.Item(id=f"geoslide-{Path(name(model_dir)).name}", geometry=None, bbox=None,
                       datetime=when or datetime.now(UTC), properties=_properties(card, model_dir),
                       stac_extensions=[MLM_EXT, RASTER_V1_EXT, FILE_EXT, CLASSIFICATION_EXT])
    # MLM takes the input bands' definitions from raster v1 ``raster:bands`` on the model asset
    # (STAC 1.1 core ``bands`` are not allowed in item properties)
    item.add_asset("weights", pystac.Asset(
        f"./{WEIGHTS}", title="model weights (safetensors, state_dict)", media_type=SAFETENSORS_MEDIA,
        roles=["mlm:model", "mlm:weights", "data"],
        extra_fields={"mlm:artifact_type": "safetensors.torch.save_file",
                      "raster:bands": [_band(b) for b in card.bands], **file_fields(weights)}))
    for file in sorted(list_names(model_dir)):
        suffix = Path(file).suffix
        if file not in (WEIGHTS, ITEM) and suffix in MEDIA_BY_SUFFIX and not file.startswith("."):
            role = "metadata" if file == CARD else "overview" if suffix == ".png" else "metadata"
            item.add_asset(_KEYS.get(file, Path(file).stem.replace(".", "-")), pystac.Asset(
                f"./{file}", title=_TITLES.get(file, file), media_type=MEDIA_BY_SUFFIX[suffix], roles=[role],
                extra_fields=file_fields(join(model_dir, file))))
    return item


_KEYS = {CARD: "card", "MODEL_CARD.md": "model-card"}
_TITLES = {CARD: "geoslide model card (architecture, bands, normalisation, provenance)",
           "MODEL_CARD.md": "model card: what the model is for, its data and how it was measured",
           "metrics.csv": "training and validation metrics per epoch", "training.png": "training curves"}


def write_mlm_item(model_dir: str | os.PathLike[str], when: datetime | None = None) -> str:
    """Write :func:`mlm_item` to ``MODEL_DIR/item.json``; returns its path or URL."""
    item = mlm_item(model_dir, when)
    target = str(join(model_dir, ITEM))
    pystac.write_file(item, include_self_link=False, dest_href=target, stac_io=stac_io())
    return target


def mlm_item_path(model_dir: str | os.PathLike[str]) -> str | None:
    """``MODEL_DIR/item.json`` if the directory has an MLM item, else None."""
    path = join(model_dir, ITEM)
    return str(path) if is_file(path) else None


def mlm_name(card: ModelCard, model_dir: str | os.PathLike[str]) -> str:
    """The item's ``mlm:name``: the architecture and the directory, e.g. ``unet demo``."""
    return f"geoslide {card.architecture} {Path(name(model_dir)).name}"


def _properties(card: ModelCard, model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    training = card.training or {}
    spec = training.get("spec", {}) if isinstance(training.get("spec"), dict) else {}
    props: dict[str, Any] = {
        "mlm:name": mlm_name(card, model_dir),
        "mlm:architecture": ARCHITECTURES.get(card.architecture, card.architecture),
        "mlm:tasks": ["semantic-segmentation", "segmentation"],
        "mlm:framework": "PyTorch", "mlm:framework_version": torch.__version__.split("+")[0],
        "mlm:total_parameters": _parameters(join(model_dir, WEIGHTS)), "mlm:pretrained": False,
        "mlm:accelerator": None, "mlm:accelerator_constrained": False,
        "mlm:accelerator_summary": "CPU or CUDA; geoslide picks CUDA where a worker has a GPU",
        "mlm:input": [_input(card)], "mlm:output": [_output(card)],
        "mlm:hyperparameters": {**card.params, "patch_size": card.patch_size, "threshold": card.threshold,
                                "receptive_field": card.receptive_field, **_training_hyper(spec)},
        "description": (f"{ARCHITECTURES.get(card.architecture, card.architecture)} landslide segmentation on "
                        f"{', '.join(card.bands)}; pixels with probability >= {card.threshold} are landslides."),
        "geoslide:threshold": card.threshold, "geoslide:patch_size": card.patch_size,
        "processing:software": {"geoslide": version()},
    }
    if card.resolution is not None:
        props["gsd"] = card.resolution
    if spec.get("batch_size"):
        props["mlm:batch_size_suggestion"] = int(spec["batch_size"])
    if "validation" in training:
        props["geoslide:validation"] = training["validation"]
    return props


def _training_hyper(spec: dict[str, Any]) -> dict[str, Any]:
    keys = ("loss", "optimiser", "lr", "weight_decay", "schedule", "epochs", "batch_size", "augment", "seed")
    return {k: spec[k] for k in keys if spec.get(k) is not None}


def _input(card: ModelCard) -> dict[str, Any]:
    resolution = f" at {card.resolution:g} m" if card.resolution else ""
    return {
        "name": "imagery", "bands": list(card.bands),
        "description": (f"the bands' physical values (reflectance after the items' raster:scale/offset; "
                        f"derived bands as geoslide computes them){resolution}; height and width any "
                        f"multiple the architecture needs, mapped in overlapping tiles of {card.patch_size} px"),
        "input": {"shape": [-1, len(card.bands), -1, -1], "dim_order": IN_DIMS, "data_type": "float32"},
        "value_scaling": _value_scaling(card),
        "resize_type": None,
        "pre_processing_function": {"format": "python", "expression": "geoslide.models.normalise:Normalisation.apply",
                                    "description": _NORMALISE_TEXT[card.normalise]},
    }


_NORMALISE_TEXT = {
    "fixed": "(x - mean) / std per band; NaN (nodata) becomes 0",
    "brightness": ("(x / b - mean) / std per band, b the scene's brightness (median over pixels of the mean over "
                   "bands, geoslide.models.normalise:brightness); NaN (nodata) becomes 0"),
    "scene": "(x - median) / (interquartile range / 1.349) per band of the scene; NaN (nodata) becomes 0",
}


def _value_scaling(card: ModelCard) -> list[dict[str, Any]] | None:
    """MLM's z-score per band: exact for fixed cards; scene-dependent scalings are described in pre-processing."""
    if card.normalise != "fixed":
        return None
    return [{"type": "z-score", "mean": float(m), "stddev": float(s)} for m, s in zip(card.mean, card.std, strict=True)]


def _output(card: ModelCard) -> dict[str, Any]:
    return {
        "name": "landslide", "tasks": ["semantic-segmentation"],
        "description": (f"landslide logits; sigmoid gives the probability, and probability >= {card.threshold} "
                        "the mask (1 landslide, 0 background; 255 nodata in geoslide's maps)"),
        "result": {"shape": [-1, 1, -1, -1], "dim_order": OUT_DIMS, "data_type": "float32"},
        "classification:classes": CLASSES,
        "post_processing_function": {"format": "python", "expression": "torch:sigmoid",
                                     "description": f"probability; mask = probability >= {card.threshold}"},
    }


def _band(band: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": band, "data_type": "float32"}
    if band.startswith("d_"):
        out["description"] = f"post-event minus pre-event {band[2:]}"
    elif band in UNITS:
        out["unit"] = UNITS[band]
    return out


def _parameters(weights: str | os.PathLike[str]) -> int:
    """Number of values in the safetensors file (its header only is read)."""
    with fetched(weights) as local, safe_open(str(local), framework="pt") as f:
        return sum(int(torch.Size(f.get_slice(k).get_shape()).numel()) for k in f.keys())


if __name__ == "__main__":  # python -m geoslide.models.mlm MODEL_DIR...: add the item to older directories
    import sys

    for directory in sys.argv[1:]:
        print(write_mlm_item(directory))
