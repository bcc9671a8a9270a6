"""STAC file extension fields of a written output: its size and a multihash of its bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from geoslide.fileio import filesystem, local_path

SHA256_MULTIHASH = "1220"  # multihash prefix: sha2-256 (0x12), 32-byte digest (0x20)
BLOCK = 1 << 20


def file_fields(href: str | os.PathLike[str]) -> dict[str, Any]:
    """``file:size`` and ``file:checksum`` (sha2-256 multihash, hex) of a file; ``file:size`` alone for a folder.

    A folder (a Zarr store) has no single checksum; its size is the sum of its files'. Works on
    local paths and object-store URLs (the bytes are streamed, not held in memory).
    """
    path = local_path(href)
    if path is not None:
        return _local_fields(path)
    fs, where = filesystem(os.fspath(href))
    if fs.isdir(where):
        return {"file:size": int(fs.du(where, total=True))}
    digest = hashlib.sha256()
    with fs.open(where, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return {"file:size": int(fs.size(where)), "file:checksum": SHA256_MULTIHASH + digest.hexdigest()}


def _local_fields(path: Path) -> dict[str, Any]:
    if path.is_dir():
        return {"file:size": sum(p.stat().st_size for p in path.rglob("*") if p.is_file())}
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return {"file:size": path.stat().st_size, "file:checksum": SHA256_MULTIHASH + digest.hexdigest()}
