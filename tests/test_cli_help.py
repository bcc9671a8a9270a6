"""What a person sees: help texts with defaults and a working example, progress only when watched, the dashboard."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import urllib.request
from pathlib import Path

import pytest

from geoslide import search
from geoslide.cli import STAC_QUERY_EXAMPLE, build_parser, main
from geoslide.cluster import cluster_client
from geoslide.errors import ClusterError
from geoslide.progress import watching

GEOSLIDE = Path(sys.executable).with_name("geoslide")
TINY_DEMO = ["demo", "--events", "tiny", "--sensors", "planetscope"]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_stac_query_example_of_the_help_matches_bundled_items(capsys):
    help_text = " ".join(_subparsers()["search"].format_help().split())
    assert f"e.g. '{STAC_QUERY_EXAMPLE}'" in help_text  # whole, not broken at hyphens
    assert main(["search", "--stac-query", STAC_QUERY_EXAMPLE]) == 0
    ids = capsys.readouterr().out.split()
    assert ids == [i.id for i in search(json.loads(STAC_QUERY_EXAMPLE))] == ["demo-quake-planetscope-post"]


def test_every_option_with_a_value_shows_its_default():
    checked = 0
    for name, parser in _subparsers().items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.default in (None, False, "==SUPPRESS=="):
                continue
            block = " ".join(formatter._format_action(action).split())
            assert "default" in block, f"geoslide {name} {action.option_strings[0]}: {block}"
            checked += 1
    assert checked > 15


def _run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run geoslide with stderr on a pseudo-terminal (stdout piped); returns the status and what the terminal got."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))  # a new pty is 0 x 0
    proc = subprocess.Popen([str(GEOSLIDE), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=follower,
                            stdin=subprocess.DEVNULL)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        seen += chunk
    proc.stdout.read()
    os.close(leader)
    return proc.wait(timeout=120), seen.decode(errors="replace")


def test_progress_shows_on_a_terminal_and_not_in_a_pipe(tmp_path):
    status, terminal = _run_on_a_terminal([*TINY_DEMO, "--out", "shown"], tmp_path)
    assert status == 0 and "geoslide demo:" in terminal and "100%" in terminal
    piped = subprocess.run([str(GEOSLIDE), *TINY_DEMO, "--out", "piped"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert piped.returncode == 0 and "%|" not in piped.stderr, piped.stderr
    forced = subprocess.run([str(GEOSLIDE), *TINY_DEMO, "--out", "forced", "--progress"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0 and "100%" in forced.stderr
    status, terminal = _run_on_a_terminal([*TINY_DEMO, "--out", "quiet", "--no-progress"], tmp_path)
    assert status == 0 and "%|" not in terminal


def test_a_file_or_a_closed_stream_is_not_watched_a_terminal_is(monkeypatch, tmp_path):
    with (tmp_path / "log").open("w") as log:
        monkeypatch.setattr(sys, "stderr", log)
        assert not watching()
    assert not watching()  # closed
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert watching()
    os.close(leader)


def test_dashboard_link_of_a_local_cluster_is_printed_and_served(capsys):
    with cluster_client(workers=1, dashboard=True) as client:
        line = capsys.readouterr().err.strip()
        assert line.startswith("Dask dashboard: http://")
        url = line.removeprefix("Dask dashboard: ")
        assert url == client.dashboard_link
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and b"Dask" in page.read()


def test_dashboard_without_a_cluster_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with pytest.raises(ClusterError, match="--workers N or --scheduler"), cluster_client(dashboard=True):
        pass
    done = subprocess.run([str(GEOSLIDE), "map", "--out", "m.zarr", "--dashboard"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "dashboard needs a cluster" in done.stderr and not (tmp_path / "m.zarr").exists()
