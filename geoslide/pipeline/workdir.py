"""The working folder of a pipeline run: paths in it, and which step outputs are complete.

A step that finishes writing ``PATH`` leaves a marker ``PATH.done``; an output without its marker
is unfinished and is removed before the step runs again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DONE = ".done"


def resolve(root: Path, path: str | None) -> str | None:
    """``path`` relative to the working folder (absolute paths and URLs unchanged)."""
    if path is None or "://" in path or Path(path).is_absolute():
        return path
    return str(root / path)


def marked_done(path: Path) -> bool:
    """Whether the step that writes ``path`` finished (its marker file exists)."""
    return path.with_name(path.name + DONE).exists()


def mark_done(path: Path) -> None:
    """Record that the step writing ``path`` finished."""
    path.with_name(path.name + DONE).touch()


def discard_partial(path: Path, root: Path) -> None:
    """Remove an unfinished output of a step, only if it lies inside the working folder."""
    if path.exists() and not marked_done(path) and root.resolve() in path.resolve().parents:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
