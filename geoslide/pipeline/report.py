"""Evaluation reports: Markdown and CSV tables and a bar chart of F1 per group and model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure  # no pyplot: a report must not change a notebook's backend

from geoslide.fileio import write_atomic

METRICS = ("precision", "recall", "f1", "iou", "miou")

def metric_columns(frame: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """The identifying columns ``keep`` followed by the pixel metrics present in ``frame``."""
    return frame[[*keep, *[m for m in METRICS if m in frame.columns]]]


def plot_f1(frame: pd.DataFrame, path: str | Path, label: str = "table", title: str = "F1 per evaluation") -> Path:
    """Bar chart of F1: one group of bars per row label, one bar per model."""
    rows = frame.assign(row=frame[label] + ": " + frame["value"].astype(str))
    pivot = rows.pivot_table(index="row", columns="model", values="f1", sort=False)
    fig = Figure(figsize=(max(6, 0.9 * len(pivot) * max(1, pivot.shape[1]) ** 0.5), 4), layout="constrained")
    ax = fig.subplots()
    pivot.plot.bar(ax=ax, rot=30, ylim=(0, 1), title=title)
    ax.set_ylabel("F1")
    ax.set_xlabel("")
    ax.grid(axis="y", alpha=0.3)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    return Path(path)
