"""geoslide.fileio: hrefs keep their kind, GDAL paths, one-line errors, and reads and writes on a real S3 API."""

from __future__ import annotations

from pathlib import Path

import pytest

from geoslide.errors import StorageError
from geoslide.fileio import (
    absolute,
    check_writable,
    exists,
    fetched,
    gdal_path,
    is_file,
    join,
    list_names,
    location,
    name,
    parent,
    read_bytes,
    read_text,
    remove,
    version,
    with_suffix,
    write_atomic,
    write_text,
)


def test_paths_and_urls_keep_their_kind(tmp_path):
    assert location("file:///data/a%20b.zarr") == Path("/data/a b.zarr")
    assert join(tmp_path, "m", "model.json") == tmp_path / "m" / "model.json"
    assert with_suffix(tmp_path / "quake.zarr", ".png") == tmp_path / "quake.png"
    assert join("s3://bkt/models/demo/", "model.json") == "s3://bkt/models/demo/model.json"
    assert with_suffix("s3://bkt/maps.v2/quake.zarr", ".probability.tif") == "s3://bkt/maps.v2/quake.probability.tif"
    assert name("s3://bkt/maps/quake.zarr") == "quake.zarr" and name(tmp_path / "x.parquet") == "x.parquet"
    assert parent("s3://bkt/run/last") == "s3://bkt/run" and parent("s3://bkt/top") == "s3://bkt"
    assert absolute("https://host/cat/catalog.json") == "https://host/cat/catalog.json"
    assert absolute(Path("rel")) == str(Path("rel").resolve())


@pytest.mark.parametrize(("href", "expected"), [
    ("/data/a.tif", "/data/a.tif"),
    ("file:///data/a%20b.tif", "/data/a b.tif"),
    ("s3://bkt/cat/a.tif", "/vsis3/bkt/cat/a.tif"),
    ("gs://bkt/a.tif", "/vsigs/bkt/a.tif"),
    ("http://127.0.0.1:8080/cat/a.tif", "/vsicurl/http://127.0.0.1:8080/cat/a.tif"),
    ("https://host/a.tif?x=1", "/vsicurl/https://host/a.tif?x=1"),
])
def test_gdal_paths(href, expected):
    assert gdal_path(href) == expected


@pytest.mark.parametrize(("href", "write", "message"), [
    ("foo://bkt/a.zarr", False, "unknown URL scheme 'foo'"),
    ("s3:///a.zarr", False, "names no bucket"),
    ("s3://", False, "names no bucket"),
    ("https://host/out.zarr", True, "read-only"),
    (str(Path("s3://bkt/a.zarr")), False, "lost a slash"),
])
def test_bad_urls_are_one_line_storage_errors(href, write, message):
    with pytest.raises(StorageError, match=message) as caught:
        location(href, write=write)
    assert "\n" not in str(caught.value)


def test_files_round_trip_on_s3(s3_bucket):
    card = join(s3_bucket, "run", "model.json")
    assert not exists(join(s3_bucket, "run")) and not is_file(card) and version(card) == ""
    write_text(card, '{"a": 1}')
    first = version(card)
    assert read_text(card) == '{"a": 1}' and is_file(card) and exists(join(s3_bucket, "run")) and first
    write_atomic(join(s3_bucket, "run", "w.bin"), lambda tmp: Path(tmp).write_bytes(b"\x00\x01"))
    assert read_bytes(join(s3_bucket, "run", "w.bin")) == b"\x00\x01"
    assert list_names(join(s3_bucket, "run")) == ["model.json", "w.bin"]
    write_text(card, '{"a": 2}')
    assert version(card) != first
    with fetched(card) as local:
        assert local.name == "model.json" and local.read_text() == '{"a": 2}'
    assert not local.exists()
    remove(join(s3_bucket, "run", "w.bin"))
    remove(join(s3_bucket, "run", "w.bin"))  # a missing file is no error
    assert list_names(join(s3_bucket, "run")) == ["model.json"]


def test_a_failed_upload_leaves_the_object_as_it_was(s3_bucket):
    target = join(s3_bucket, "x.txt")
    write_text(target, "old")

    def fail(tmp):
        Path(tmp).write_text("half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert read_text(target) == "old"


def test_outputs_need_an_existing_bucket(s3_bucket):
    assert check_writable(join(s3_bucket, "m.zarr")) == f"{s3_bucket}/m.zarr"
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        check_writable("s3://no-such-bucket/m.zarr")
    with pytest.raises(FileNotFoundError):
        read_bytes("s3://no-such-bucket/m.json")


def test_an_output_lock_stops_a_second_process_and_is_gone_afterwards(tmp_path):
    import subprocess
    import sys

    from geoslide.errors import BusyError
    from geoslide.fileio import output_lock

    out = tmp_path / "new" / "deeper" / "m.zarr"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from geoslide.fileio import output_lock\n"
        f"with output_lock({str(out)!r}):\n    print('held', flush=True); sys.stdin.readline()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match=rf"another geoslide process \(pid {holder.pid}\) is writing"):
            with output_lock(out):
                pass
    finally:
        holder.communicate("\n", timeout=60)
    assert not (tmp_path / "new").exists()  # the folders made for the lock were empty and are gone
    with output_lock(out), output_lock(out):  # reentrant in one process
        assert (out.parent / ".m.zarr.lock").is_file()
    assert not (out.parent / ".m.zarr.lock").exists()


def test_write_atomic_neither_replaces_nor_follows_a_link(tmp_path):
    from geoslide.errors import StorageError
    from geoslide.fileio import write_text

    target = tmp_path / "theirs.txt"
    target.write_text("theirs")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    with pytest.raises(StorageError, match="symbolic link"):
        write_text(link, "{}")
    assert link.is_symlink() and target.read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out.json", "theirs.txt"]
