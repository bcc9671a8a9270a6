"""The plot of a training log: losses and validation precision, recall and F1 per epoch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: a plot must not change a notebook's backend

from geoslide.fileio import Location, location, write_atomic


def plot_log(log: Sequence[dict[str, float]], path: str | Path) -> Location:
    """Write a two-panel PNG (a path or an ``s3://`` URL): train/val loss, and validation P/R/F1, against the epoch."""
    epochs = [r["epoch"] + 1 for r in log]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(epochs, [r["train_loss"] for r in log], label="train")
    left.plot(epochs, [r["val_loss"] for r in log], label="validation")
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    for key, label in (("val_precision", "precision"), ("val_recall", "recall"), ("val_f1", "F1")):
        right.plot(epochs, [r[key] for r in log], label=label)
    right.set(xlabel="epoch", ylim=(0, 1), title="validation (tuned threshold)")
    for ax in (left, right):
        ax.legend()
        ax.grid(alpha=0.3)
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    return location(path)
