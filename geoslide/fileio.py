"""Files: local paths from hrefs, what is at a path, writes that never leave a half-written file.

Every module that writes a finished file (checkpoints, vectors, exports, reports) goes through
:func:`write_atomic`, and every module that turns an href into a local path through
:func:`local_path`, so both rules live in one place. :func:`exists` says whether a store (or
anything else) is already at a path or URL.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse


def local_path(href: str | os.PathLike[str]) -> Path | None:
    """The local path an href names: a plain path or a ``file://`` URL; None for other URLs.

    Parameters
    ----------
    href
        A path, a ``file://`` URL (percent-escapes decoded) or any other URL.
    """
    text = os.fspath(href)
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path))
    if "://" in text:
        return None
    return Path(text)


def write_atomic(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    The file gets the permissions the umask gives a new file (``mkstemp`` alone makes 0600, which
    workers running as another user could not read). On any error the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def exists(path: str | os.PathLike[str]) -> bool:
    """Whether something (a store, or any non-empty folder) is at ``path``.

    Parameters
    ----------
    path
        A local path, a ``file://`` URL, or another URL, which counts when a Zarr v3 group opens there.
    """
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        import zarr

        try:
            zarr.open_group(text, mode="r", zarr_format=3)
            return True
        except (FileNotFoundError, zarr.errors.GroupNotFoundError):
            return False
    p = Path(text.removeprefix("file://"))
    return p.exists() and (not p.is_dir() or any(p.iterdir()))
