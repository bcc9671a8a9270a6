"""The working folder of a pipeline run: paths in it, and which step outputs are complete.

A step that finishes writing ``PATH`` leaves a marker ``PATH.done``; an output without its marker
is unfinished and is removed before the step runs again.

A working folder on an object store (``--work s3://BUCKET/run``) is staged: the steps run in a
local copy of it (downloaded first, so a run resumes from what is there), which is uploaded back
after each step and at the end, also when a step fails. The copy lies in a temporary folder named
after the URL, the same in every run, because the map stores' fingerprints hold the model's path;
the local disk must hold the working folder, and one URL takes one run at a time per machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from geoslide.errors import OutputError
from geoslide.fileio import check_writable, download_tree, local_path, upload_tree

DONE = ".done"
#: The file that marks a folder as a geoslide working folder (written when the folder is taken).
MARKER = ".geoslide-work"


@contextlib.contextmanager
def staged(work: str | Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """The local folder steps write into, and a function that saves it.

    For a local ``work`` that is the folder itself and saving does nothing; for a URL it is a local
    copy of what is there, which saving (and the end of the run, even a failed one) uploads back.
    """
    where = check_writable(work)
    if isinstance(where, Path):
        claim_local(where)
        yield where, lambda: None
        return
    root = Path(tempfile.gettempdir()) / f"geoslide-work-{hashlib.sha256(where.encode()).hexdigest()[:16]}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    try:
        manifest = download_tree(where, root)

        def save() -> None:
            nonlocal manifest
            manifest = upload_tree(root, where, manifest)

        try:
            yield root, save
        except BaseException:
            with contextlib.suppress(Exception):  # keep what is done for a resume; the step's error wins
                save()
            raise
        save()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def claim_local(folder: Path) -> None:
    """Create ``folder`` as a working folder, or check that an existing one is one (never a user's folder).

    A working folder carries :data:`MARKER`; one from before the marker existed is known by its
    ``.done`` step markers. An empty folder is taken; a file, or a folder of other files, is an OutputError.
    """
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--work {folder} is a file; give a folder for the pipeline's outputs")
    if folder.is_dir() and not (folder / MARKER).exists():
        names = [p.name for p in folder.iterdir()]
        if names and not any(n.endswith(DONE) for n in names):
            raise OutputError(f"--work {folder} holds files geoslide did not write ({', '.join(sorted(names)[:3])}"
                              f"{', ...' if len(names) > 3 else ''}); give a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).touch()


def resolve(root: Path, path: str | None) -> str | None:
    """``path`` relative to the working folder (absolute paths and URLs unchanged)."""
    local = None if path is None else local_path(path)
    if local is None or local.is_absolute():
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
