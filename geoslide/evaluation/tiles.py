"""Scores and the summary table of tiles mapped by :func:`geoslide.mapping.tiles.map_tiles`.

``OUTDIR/summary.csv`` has one row per tile (pixel counts, landslide share and, where the tile
had a mask, precision, recall, F1 and IoU); with masks, ``OUTDIR/scores.json`` holds the scores
of all tiles' pixels together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from geoslide.evaluation.metrics import ConfusionMatrix
from geoslide.fileio import write_text
from geoslide.mapping.tiles import TileMapSpec, map_tiles

COUNTS = ["tn", "fp", "fn", "tp"]
SCORES = ("precision", "recall", "f1", "iou")


def map_and_score_tiles(src: str | Path, spec: TileMapSpec, progress: bool = False
                        ) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Map the tiles of ``src`` (:func:`~geoslide.mapping.tiles.map_tiles`) and write the summary beside the masks.

    Returns
    -------
    tuple
        The per-tile table (as written to ``summary.csv``) and the overall scores (None when no
        tile has a mask).
    """
    table = map_tiles(src, spec, progress=progress)
    table, overall = score_table(table)
    write_text(Path(spec.out) / "summary.csv", table.to_csv(index=False))
    if overall is not None:
        write_text(Path(spec.out) / "scores.json", json.dumps(overall, indent=1) + "\n")
    return table, overall


def score_table(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Per-tile scores from the confusion counts of the tiles that have them, and the pooled scores."""
    if "tp" not in table.columns:
        return table, None
    scored = table["tp"].notna()
    matrices = [ConfusionMatrix(row) if ok else None
                for row, ok in zip(table[COUNTS].fillna(0).astype("int64").to_numpy(), scored, strict=True)]
    for name in SCORES:
        table[name] = [getattr(m, name) if m is not None else float("nan") for m in matrices]
    pooled = sum((m for m in matrices if m is not None), ConfusionMatrix())
    return table, {**pooled.as_dict(json_safe=True), "tiles_scored": int(scored.sum())}
