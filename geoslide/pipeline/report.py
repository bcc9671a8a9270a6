"""Evaluation reports: Markdown and CSV tables and a bar chart of F1 per group and model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

METRICS = ("precision", "recall", "f1", "iou", "miou")
COUNTS = ("patches", "tn", "fp", "fn", "tp", "pixels_valid", "n_inventory", "n_detected", "n_mapped", "n_false",
          "count")


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a GitHub Markdown table; floats rounded, NaN as ``n/a``."""
    def cell(value: Any) -> str:
        if value is pd.NA:
            return "n/a"
        if isinstance(value, float | np.floating):
            return "n/a" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    frame = frame.astype({c: "Int64" for c in frame.columns if c in COUNTS})
    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |", "|---" * len(frame.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def metric_columns(frame: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """The identifying columns ``keep`` followed by the pixel metrics present in ``frame``."""
    return frame[[*keep, *[m for m in METRICS if m in frame.columns]]]


def plot_f1(frame: pd.DataFrame, path: str | Path, label: str = "table", title: str = "F1 per evaluation") -> Path:
    """Bar chart of F1: one group of bars per row label, one bar per model."""
    rows = frame.assign(row=frame[label] + ": " + frame["value"].astype(str))
    pivot = rows.pivot_table(index="row", columns="model", values="f1", sort=False)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(pivot) * max(1, pivot.shape[1]) ** 0.5), 4),
                           constrained_layout=True)
    pivot.plot.bar(ax=ax, rot=30, ylim=(0, 1), title=title)
    ax.set_ylabel("F1")
    ax.set_xlabel("")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
