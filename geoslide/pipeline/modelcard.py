"""MODEL_CARD.md beside each trained model: what it is for, its inputs, and how it was measured.

The machine-readable card is ``model.json`` (:class:`geoslide.models.card.ModelCard`); this is the
same for people, plus the pipeline's description and the model's rows of the pipeline report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from geoslide.fileio import write_text
from geoslide.models.card import ModelCard, read_card
from geoslide.models.choice import training_range
from geoslide.pipeline.report import metric_columns
from geoslide.tables import markdown_table

CARD_MD = "MODEL_CARD.md"


def write_model_card(model_dir: Path, pipeline_name: str, description: str, rows: pd.DataFrame,
                     source: str | None = None) -> Path:
    """Write ``MODEL_CARD.md`` into ``model_dir`` from its card and its rows of the report."""
    card = read_card(model_dir)
    parts = [f"# {pipeline_name}: {card.architecture}\n", description.strip() + "\n" if description else "",
             "## Inputs\n", _inputs(card), "## Training\n", _training(card),
             "## Measured\n", _measured(rows)]
    if source:
        parts += ["## Reproduce\n", f"```bash\ngeoslide run {source}\n```\n"]
    path = model_dir / CARD_MD
    write_text(path, "\n".join(parts))
    return path


UNITS_FREE = {"brightness": "each scene is divided by its brightness: 8-bit, reflectance and counts alike",
              "scene": "each scene is normalised per band by its own median and spread"}


def _inputs(card: ModelCard) -> str:
    span = training_range(card)
    trained = card.training.get("units")
    if isinstance(trained, list):
        trained = ", ".join(dict.fromkeys(str(u) for u in trained))
    units = trained or "as the training values below (physical values after raster:scale)"
    if card.normalise != "fixed":
        units = f"any ({UNITS_FREE[card.normalise]})" + (f"; trained on {trained}" if trained else "")
    stats = pd.DataFrame({"band": card.bands, "training mean": card.mean, "training std": card.std})
    lines = [f"- bands, in order: {', '.join(card.bands)}",
             f"- pixel size: {_span(span)}; patch size {card.patch_size} px; receptive field "
             f"{card.receptive_field or 'global'} px",
             f"- units: {units}",
             f"- normalisation: {card.normalise} (see geoslide.models.normalise)",
             f"- landslide where probability >= {card.threshold:g}", ""]
    return "\n".join(lines) + markdown_table(stats) + "\n"


def _training(card: ModelCard) -> str:
    spec = card.training.get("spec", {})
    keys = ("loss", "optimiser", "lr", "weight_decay", "schedule", "epochs", "batch_size", "augment")
    lines = [f"- architecture {card.architecture} {card.params}",
             f"- {card.training.get('n_train', '?')} training patches; "
             + ", ".join(f"{k} {spec[k]}" for k in keys if k in spec)]
    return "\n".join(lines) + "\n"


def _measured(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "Not measured.\n"
    parts = []
    for table, frame in rows.groupby("table", sort=False):
        extra = [c for c in ("false_alarm_share", "detected_share", "n_false") if c in frame and frame[c].notna().any()]
        parts += [f"### {table}\n", markdown_table(pd.concat([metric_columns(frame, ["value"]), frame[extra]], axis=1))]
    return "\n".join(parts)


def _span(span: tuple[float, float] | None) -> str:
    if span is None:
        return "unknown"
    return f"{span[0]:g} m" if span[0] == span[1] else f"{span[0]:.3g}-{span[1]:.3g} m"
