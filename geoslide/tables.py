"""Markdown tables of scores and counts, for the CLI, reports and summaries."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

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


def short_number(value: float | None, scale: float = 1.0) -> str:
    """``value * scale`` to 4 significant digits, or 2 decimals from 10^4 on; None and NaN as ``n/a``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value * scale:.4g}" if abs(value * scale) < 1e4 else f"{value * scale:.2f}"
