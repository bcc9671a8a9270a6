"""Files and object stores: every path or URL geoslide reads or writes is handled here, and only here.

An *href* is a local path, a ``file://`` URL, or an object-store URL: ``s3://BUCKET/KEY`` for
inputs and outputs, ``http(s)://`` for inputs only. :func:`location` turns one into a local
:class:`~pathlib.Path` or a checked URL string, and the other functions take either kind and keep
it (:func:`join`, :func:`with_suffix`), read (:func:`read_bytes`, :func:`fetched`, :func:`is_file`),
write (:func:`write_atomic`, :func:`write_text`), or hand an href to Zarr (:func:`zarr_store`) or
GDAL (:func:`gdal_path`). A failure a user can fix (unknown scheme, no bucket, missing credentials,
an unreachable endpoint, a write to HTTP) is a one-line :class:`~geoslide.errors.StorageError`.

Credentials and endpoints come from the environment only: s3fs (botocore) reads
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``AWS_REGION`` and ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``; GDAL's ``/vsis3/`` reads the
same keys plus ``AWS_S3_ENDPOINT`` (host[:port]), ``AWS_VIRTUAL_HOSTING`` and ``AWS_HTTPS``.

Every module that writes a finished file goes through :func:`write_atomic` (a rename into place on
disk, a single upload to an object store), so no reader sees half a file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from geoslide.errors import BusyError, StorageError

#: What :func:`location` returns: a local path, or an object-store URL.
Location = Path | str
#: URL schemes geoslide reads; the read-only ones cannot be written to.
SCHEMES = ("s3", "http", "https")
READ_ONLY = ("http", "https")
_MANGLED_URL = re.compile(r"^(s3|gs|https?|file):/[^/]")  # Path("s3://b/k") is s3:/b/k


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


def is_url(href: str | os.PathLike[str]) -> bool:
    """Whether ``href`` names an object-store or web location (any URL but ``file://``)."""
    return local_path(href) is None


def check_url(href: str, *, write: bool = False) -> str:
    """``href`` if it is a URL geoslide can use (and write to, with ``write``); else a StorageError."""
    parsed = urlparse(href)
    if parsed.scheme not in SCHEMES:
        raise StorageError(f"{href}: unknown URL scheme {parsed.scheme!r}; use a local path, file://, s3:// "
                           "or (to read) http(s)://")
    if not parsed.netloc:
        what = "bucket" if parsed.scheme == "s3" else "host"
        raise StorageError(f"{href} names no {what}; e.g. {parsed.scheme}://{what.upper()}/path")
    if write and parsed.scheme in READ_ONLY:
        raise StorageError(f"{href}: {parsed.scheme}:// is read-only here; write to a local path or s3://")
    return href


def location(href: str | os.PathLike[str], *, write: bool = False) -> Location:
    """A local Path for a path or ``file://`` URL; the checked URL (no trailing slash) otherwise."""
    path = local_path(href)
    if path is not None:
        if _MANGLED_URL.match(os.fspath(href)):
            raise StorageError(f"{os.fspath(href)} looks like a URL that lost a slash (pathlib.Path() of a URL "
                               "does that); pass it as a string, e.g. s3://BUCKET/KEY")
        return path
    return check_url(os.fspath(href), write=write).rstrip("/")


def join(href: str | os.PathLike[str], *names: str) -> Location:
    """``href / name / ...``, a Path or a URL as ``href`` is."""
    loc = location(href)
    if isinstance(loc, Path):
        return loc.joinpath(*names)
    return "/".join([loc, *names])


def with_suffix(href: str | os.PathLike[str], suffix: str) -> Location:
    """``href`` with its last suffix replaced (``OUT.zarr`` -> ``OUT.png``), a Path or a URL as ``href`` is."""
    loc = location(href)
    if isinstance(loc, Path):
        return loc.with_suffix(suffix)
    head, _, name = loc.rpartition("/")
    return f"{head}/{PurePosixPath(name).with_suffix(suffix)}"


def parent(href: str | os.PathLike[str]) -> Location:
    """The folder (or prefix) ``href`` lies in, a Path or a URL as ``href`` is."""
    loc = location(href)
    if isinstance(loc, Path):
        return loc.parent
    head, _, _ = loc.rpartition("/")
    return head if urlparse(head).netloc else loc


def name(href: str | os.PathLike[str]) -> str:
    """The last component of ``href`` (``s3://b/maps/a.zarr`` -> ``a.zarr``)."""
    loc = location(href)
    return loc.name if isinstance(loc, Path) else PurePosixPath(urlparse(loc).path).name


def absolute(href: str | os.PathLike[str]) -> str:
    """``href`` as a string that names it from anywhere: a resolved local path, or the URL."""
    loc = location(href)
    return str(loc.resolve()) if isinstance(loc, Path) else loc


# -- object stores -------------------------------------------------------------------------------


def storage_options(href: str) -> dict[str, Any]:
    """Options for fsspec for a URL: the S3 endpoint the environment names, if any.

    botocore reads ``AWS_ENDPOINT_URL(_S3)`` itself; passing it here as well makes the endpoint part
    of fsspec's filesystem cache key, so a process that changes it gets a filesystem for the new one.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if urlparse(href).scheme == "s3" and endpoint:
        return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def filesystem(href: str, *, write: bool = False) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the path on it."""
    import fsspec

    url = check_url(href, write=write)
    with translated(url):
        return fsspec.core.url_to_fs(url, **storage_options(url))


_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "NoRegionError",
                "InvalidAccessKeyId", "SignatureDoesNotMatch")
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionError",
                "ServerDisconnectedError", "ReadTimeoutError")


def _reason(exc: BaseException) -> str | None:
    """A short, fixable reason for a storage failure; None for errors callers handle (missing files)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & set(_CREDENTIALS) or any(code in str(exc) for code in _CREDENTIALS[-2:]):
        return ("no usable credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
                "and AWS_REGION, in the environment")
    if names & set(_UNREACHABLE):
        return "cannot reach the server; check the URL, AWS_ENDPOINT_URL and the network"
    if isinstance(exc, PermissionError):
        return "access denied with the credentials in the environment"
    return None


@contextlib.contextmanager
def translated(href: str) -> Iterator[None]:
    """Turn storage failures a user can fix (credentials, endpoint, access) into one-line StorageErrors."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # botocore, aiohttp and fsspec raise many types
        reason = _reason(exc)
        if reason is None:
            raise
        raise StorageError(f"{href}: {reason}") from None


def check_writable(href: str | os.PathLike[str]) -> Location:
    """The location of an output, checked before any work: a writable scheme and, on S3, a visible bucket."""
    loc = location(href, write=True)
    if isinstance(loc, Path):
        return loc
    fs, _ = filesystem(loc, write=True)
    bucket = urlparse(loc).netloc
    with translated(loc):
        try:
            fs.info(bucket)  # unlike exists(), raises when there are no credentials
            return loc
        except FileNotFoundError:
            pass
    raise StorageError(f"{loc}: bucket {bucket!r} does not exist or is not visible with these credentials; "
                       "create it first")


# -- reading ---------------------------------------------------------------------------------------


def exists(path: str | os.PathLike[str]) -> bool:
    """Whether something (a store, a file, or any non-empty folder or prefix) is at ``path``.

    Parameters
    ----------
    path
        A local path, a ``file://`` URL, or a URL (an object or objects under it as a prefix, or a
        Zarr group's ``zarr.json`` for servers that cannot list).
    """
    loc = location(path)
    if isinstance(loc, Path):
        return loc.exists() and (not loc.is_dir() or any(loc.iterdir()))
    fs, where = filesystem(loc)
    with translated(loc):
        return bool(fs.exists(where) or fs.exists(f"{where}/zarr.json"))


def lexists(href: str | os.PathLike[str]) -> bool:
    """Whether anything is at ``href``: a file, folder or object, or a link (even a broken one)."""
    loc = location(href)
    if isinstance(loc, Path):
        return os.path.lexists(loc)
    fs, where = filesystem(loc)
    with translated(loc):
        return bool(fs.exists(where))


def is_file(href: str | os.PathLike[str]) -> bool:
    """Whether a file (an object) is at ``href``."""
    loc = location(href)
    if isinstance(loc, Path):
        return loc.is_file()
    fs, where = filesystem(loc)
    with translated(loc):
        try:  # not fs.isfile(), which s3fs answers False for every error, missing credentials included
            return fs.info(where)["type"] == "file"
        except (FileNotFoundError, NotADirectoryError):
            return False


def read_bytes(href: str | os.PathLike[str]) -> bytes:
    """The bytes of the file at ``href``; FileNotFoundError if there is none."""
    loc = location(href)
    if isinstance(loc, Path):
        return loc.read_bytes()
    fs, where = filesystem(loc)
    with translated(loc):
        return fs.cat_file(where)


def read_text(href: str | os.PathLike[str]) -> str:
    """The UTF-8 text of the file at ``href``."""
    return read_bytes(href).decode("utf-8")


def version(href: str | os.PathLike[str]) -> str:
    """A token that changes when the file at ``href`` does: its mtime, or its ETag; empty if missing."""
    loc = location(href)
    if isinstance(loc, Path):
        return str(loc.stat().st_mtime_ns) if loc.exists() else ""
    fs, where = filesystem(loc)
    with translated(loc):
        try:
            info = fs.info(where)
        except FileNotFoundError:
            return ""
    return str(info.get("ETag") or info.get("LastModified") or info.get("mtime") or info.get("size"))


def list_names(href: str | os.PathLike[str]) -> list[str]:
    """Names of the entries directly under a folder or prefix (empty if there is none)."""
    loc = location(href)
    if isinstance(loc, Path):
        return sorted(p.name for p in loc.iterdir()) if loc.is_dir() else []
    fs, where = filesystem(loc)
    with translated(loc):
        try:
            return sorted(PurePosixPath(p).name for p in fs.ls(where, detail=False, refresh=True))
        except FileNotFoundError:
            return []


@contextlib.contextmanager
def fetched(href: str | os.PathLike[str]) -> Iterator[Path]:
    """A local path holding the file at ``href``: the file itself, or a temporary download of it."""
    loc = location(href)
    if isinstance(loc, Path):
        yield loc
        return
    fs, where = filesystem(loc)
    with tempfile.TemporaryDirectory(prefix="geoslide-fetch-") as tmp:
        local = Path(tmp) / (name(loc) or "object")
        with translated(loc):
            fs.get_file(where, str(local))
        yield local


# -- writing ---------------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike[str], write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary local file, then move it to ``path`` in one step.

    On disk the temporary file lies beside ``path`` and is renamed into place; it gets the
    permissions the umask gives a new file (``mkstemp`` alone makes 0600, which workers running as
    another user could not read). For a URL it lies in a temporary folder under the target's own
    name (so writers that read the extension work) and is uploaded as one object. On any error
    the temporary file is removed and ``path`` is left as it was.
    """
    loc = location(path, write=True)
    if not isinstance(loc, Path):
        _upload_atomic(loc, write)
        return
    check_not_link(loc)
    fd, tmp = tempfile.mkstemp(dir=loc.parent, prefix=f".{loc.name}.")
    os.close(fd)
    try:
        write(tmp)
        _sync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, loc)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sync(path: str) -> None:
    """Flush a written file to disk, so that a full disk shows here and not after the rename."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_not_link(href: str | os.PathLike[str]) -> None:
    """A StorageError if ``href`` is a symbolic link: geoslide neither writes through nor replaces one."""
    loc = location(href)
    if isinstance(loc, Path) and loc.is_symlink():
        raise StorageError(f"{loc} is a symbolic link; geoslide does not write through or replace links: "
                           "remove it or choose another output path")


def _upload_atomic(url: str, write: Callable[[str], object]) -> None:
    fs, where = filesystem(url, write=True)
    with tempfile.TemporaryDirectory(prefix="geoslide-upload-") as tmp:
        local = Path(tmp) / (name(url) or "object")
        write(str(local))
        with translated(url):
            fs.put_file(str(local), where)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(href: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``href`` atomically."""
    write_atomic(href, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def makedirs(href: str | os.PathLike[str]) -> None:
    """Create the folder ``href`` and its parents on disk; nothing on an object store (it has no folders)."""
    loc = location(href, write=True)
    if isinstance(loc, Path):
        loc.mkdir(parents=True, exist_ok=True)


def remove_tree(href: str | os.PathLike[str]) -> None:
    """Delete the folder (or every object under the prefix) ``href``, if there is one."""
    loc = location(href, write=True)
    if isinstance(loc, Path):
        if loc.is_dir() and not loc.is_symlink():
            shutil.rmtree(loc)
        else:
            loc.unlink(missing_ok=True)
        return
    fs, where = filesystem(loc, write=True)
    with translated(loc), contextlib.suppress(FileNotFoundError):
        fs.rm(where, recursive=True)


def remove(href: str | os.PathLike[str]) -> None:
    """Delete the file at ``href``, if there is one."""
    loc = location(href, write=True)
    if isinstance(loc, Path):
        loc.unlink(missing_ok=True)
        return
    fs, where = filesystem(loc, write=True)
    with translated(loc), contextlib.suppress(FileNotFoundError):
        fs.rm_file(where)


# -- one writer per output -----------------------------------------------------------------------


@contextlib.contextmanager
def output_lock(href: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the lock of an output while writing it; a BusyError at once if another process holds it.

    On disk the lock is ``fcntl.flock`` on a hidden sibling file ``.NAME.lock`` (removed when
    released; the kernel drops the lock of a killed process). Locks are reentrant within a process,
    so a library call inside a locked command takes the same lock again. Object stores (``s3://``)
    have no lock: two writers of one ``s3://`` output are not detected there.
    """
    loc = location(href, write=True)
    if not isinstance(loc, Path):
        yield
        return
    key = str(loc.absolute())
    with _HELD_LOCK:
        held = _HELD.get(key, 0)
        _HELD[key] = held + 1
    try:
        if held:
            yield
            return
        lock = loc.parent / f".{loc.name}.lock"
        made = [p for p in (lock.parent, *lock.parent.parents) if not p.exists()]  # deepest first
        fd = _acquire(lock, loc)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
            os.close(fd)
            for folder in made:  # folders made for the lock that the run left empty
                try:
                    folder.rmdir()
                except OSError:
                    break
    finally:
        with _HELD_LOCK:
            _HELD[key] -= 1
            if not _HELD[key]:
                del _HELD[key]


_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def _acquire(lock: Path, target: Path) -> int:
    """An open descriptor holding ``flock`` on ``lock`` (the file that is at that path now)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise BusyError(f"another geoslide process ({_holder(lock)}) is writing {target}; wait for it to "
                            "finish, or write elsewhere") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder removed the file between our open and flock: take the new one
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _holder(lock: Path) -> str:
    try:
        return lock.read_text().strip() or "pid unknown"
    except OSError:
        return "pid unknown"


# -- folders mirrored to object stores --------------------------------------------------------------

#: What :func:`upload_tree` has uploaded: relative path -> (size, mtime in ns) of the local file then.
Manifest = dict[str, tuple[int, int]]


def _local_files(root: Path) -> Manifest:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def download_tree(url: str, root: Path) -> Manifest:
    """Copy every object under the prefix ``url`` into the folder ``root``; returns what is now mirrored."""
    fs, where = filesystem(url)
    with translated(url):
        remote = [p for p in fs.find(where) if p != where]
        locals_ = [root / p[len(where) + 1:] for p in remote]
        for path in locals_:
            path.parent.mkdir(parents=True, exist_ok=True)
        if remote:
            fs.get(remote, [str(p) for p in locals_])
    return _local_files(root)


def upload_tree(root: Path, url: str, uploaded: Manifest) -> Manifest:
    """Bring the prefix ``url`` up to date with the folder ``root``; returns the new manifest.

    Files new or changed (size or mtime) since ``uploaded`` are uploaded, objects of files removed
    since are deleted, and nothing else is touched.
    """
    fs, where = filesystem(url, write=True)
    now = _local_files(root)
    changed = [rel for rel, stamp in now.items() if uploaded.get(rel) != stamp]
    gone = [f"{where}/{rel}" for rel in uploaded if rel not in now]
    with translated(url):
        if changed:
            fs.put([str(root / rel) for rel in changed], [f"{where}/{rel}" for rel in changed])
        if gone:
            fs.rm(gone)
    return now


# -- other libraries -------------------------------------------------------------------------------


def zarr_store(href: str | os.PathLike[str], *, read_only: bool = True) -> Any:
    """What ``zarr.open_group`` / ``xarray.open_zarr`` should open: a local path, or an fsspec store."""
    loc = location(href, write=not read_only)
    if isinstance(loc, Path):
        return str(loc)
    from zarr.storage import FsspecStore

    with translated(loc):
        return FsspecStore.from_url(loc, storage_options=storage_options(loc), read_only=read_only)


def gdal_path(href: str | os.PathLike[str]) -> str:
    """A path GDAL opens: local paths as they are, ``/vsis3/`` for S3, ``/vsicurl/`` (ranges) for HTTP.

    ``file://`` URLs become paths, and ``gs://`` becomes ``/vsigs/`` (GDAL reads GCS itself).
    """
    parsed = urlparse(os.fspath(href))
    if parsed.scheme in ("s3", "gs") and parsed.netloc:
        return f"/vsi{parsed.scheme}/{parsed.netloc}{parsed.path}"
    loc = location(href)
    return str(loc) if isinstance(loc, Path) else f"/vsicurl/{loc}"
