"""A throwaway stac-fastapi-pgstac STAC API on loopback, for tests.

PostgreSQL 15 + PostGIS come from Debian (``.ci/pgstac.sh``), the server and ``pypgstac`` from a
separate venv ``tools/pgstac-venv`` (``.ci/pgstac.sh`` builds it). :func:`running_pgstac` puts it
all together: a fresh cluster in a temp dir (``initdb``), ``pypgstac migrate``, ``pypgstac load``,
``uvicorn stac_fastapi.pgstac.app:create_app --factory``; everything is stopped and deleted on
exit, also when a step or a test fails. Every wait is bounded; failures raise RuntimeError with
the last lines of the log that explains them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("GEOSLIDE_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_VENV = Path(os.environ.get("GEOSLIDE_PGSTAC_VENV", REPO / "tools" / "pgstac-venv"))
PG_SUPERUSER = "postgres"  # the database role initdb creates (not the OS user)
OS_USER = "postgres"  # the OS user that owns the cluster when the tests run as root


def missing_requirements() -> str | None:
    """Why the server cannot be started here (a skip reason), or None if it can."""
    fix = "run `bash .ci/pgstac.sh` (as root) to install them"
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).is_file():
            return f"PostgreSQL 15 server binaries not found in {PG_BIN}; {fix}"
    share = Path(os.environ.get("GEOSLIDE_PG_SHARE", "/usr/share/postgresql/15"))
    if not (share / "extension" / "postgis.control").is_file():
        return f"PostGIS for PostgreSQL 15 not found ({share}/extension/postgis.control); {fix}"
    for exe in ("python", "pypgstac", "uvicorn"):
        if not (SERVER_VENV / "bin" / exe).is_file():
            return f"stac-fastapi-pgstac server venv not found ({SERVER_VENV}/bin/{exe}); {fix}"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root but there is no OS user {OS_USER!r} to run PostgreSQL as; {fix}"
        if shutil.which("runuser") is None:
            return "running as root but `runuser` (util-linux) is missing to run PostgreSQL as non-root"
    return None


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _last_lines(text: str | bytes | None, lines: int = 25) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


@dataclass
class PgstacServer:
    """State of one throwaway PostgreSQL cluster + stac-fastapi-pgstac server."""

    workdir: Path
    pg_port: int = 0
    api_port: int = 0
    uvicorn: subprocess.Popen | None = None
    pg_started: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def datadir(self) -> Path:
        """The cluster's data directory."""
        return self.workdir / "data"

    @property
    def pg_log(self) -> Path:
        """The postmaster's log file."""
        return self.workdir / "postgres.log"

    @property
    def api_log(self) -> Path:
        """uvicorn's log file."""
        return self.workdir / "uvicorn.log"

    @property
    def dsn(self) -> str:
        """libpq connection string over TCP on loopback (trust authentication)."""
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.pg_port}/postgres"

    @property
    def url(self) -> str:
        """Root URL of the STAC API."""
        return f"http://127.0.0.1:{self.api_port}"

    # -- (a) cluster -----------------------------------------------------------------------------
    def _as_cluster_owner(self, argv: list[str]) -> list[str]:
        """Run ``argv`` as the non-root cluster owner when we are root (postgres refuses root)."""
        return ["runuser", "-u", OS_USER, "--", *argv] if os.geteuid() == 0 else argv

    def _run(self, argv: list[str], what: str, timeout: float, *, as_owner: bool = False,
             env: dict | None = None) -> subprocess.CompletedProcess:
        cmd = self._as_cluster_owner(argv) if as_owner else argv
        t0 = time.monotonic()
        try:
            done = subprocess.run(cmd, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{what} did not finish within {timeout:.0f} s:\n"
                               f"{_last_lines(exc.stdout)}\n{_last_lines(exc.stderr)}") from None
        self.timings[what] = time.monotonic() - t0
        if done.returncode != 0:
            extra = f"\n--- postgres log ---\n{_tail(self.pg_log)}" if self.pg_started or what == "pg_ctl start" else ""
            raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{_last_lines(done.stdout)}\n"
                               f"{_last_lines(done.stderr)}{extra}")
        return done

    def start_postgres(self, timeout: float = 60) -> None:
        """``initdb`` a cluster in ``workdir`` and start it on a free loopback port (socket in ``workdir``)."""
        if os.geteuid() == 0:
            shutil.chown(self.workdir, OS_USER, OS_USER)
        self._run([str(PG_BIN / "initdb"), "--pgdata", str(self.datadir), "--username", PG_SUPERUSER,
                   "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync"],
                  "initdb", timeout, as_owner=True)
        self.pg_port = free_port()
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-p {self.pg_port}", f"-c unix_socket_directories={self.workdir}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        ])
        self.pg_started = True  # from here on, teardown tries to stop it
        self._run([str(PG_BIN / "pg_ctl"), "start", "--pgdata", str(self.datadir), "--log", str(self.pg_log),
                   "--wait", "--timeout", str(int(timeout)), "--options", options],
                  "pg_ctl start", timeout + 10, as_owner=True)

    def stop_postgres(self, timeout: float = 20) -> None:
        """Stop the cluster (fast, then immediate, then SIGKILL of the postmaster)."""
        if not self.pg_started:
            return
        pg_ctl = [str(PG_BIN / "pg_ctl"), "stop", "--pgdata", str(self.datadir), "--wait",
                  "--timeout", str(int(timeout))]
        for mode in ("fast", "immediate"):
            try:
                done = subprocess.run(self._as_cluster_owner([*pg_ctl, "--mode", mode]), cwd=self.workdir,
                                      capture_output=True, timeout=timeout + 5)
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0 or not (self.datadir / "postmaster.pid").exists():
                self.pg_started = False
                return
        pid = self._postmaster_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pg_started = False

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # -- (b) schema, (c) data --------------------------------------------------------------------
    def _pypgstac(self, *args: str, what: str, timeout: float) -> None:
        exe = str(SERVER_VENV / "bin" / "pypgstac")
        self._run([exe, *args, "--dsn", self.dsn], what, timeout, env=self._env())

    def migrate(self, timeout: float = 180) -> None:
        """Install the pgstac schema (and PostGIS) with ``pypgstac migrate``."""
        self._pypgstac("migrate", what="pypgstac migrate", timeout=timeout)

    def load(self, collections: list[dict], items: list[dict], timeout: float = 60) -> None:
        """Load collections, then items, with ``pypgstac load`` from NDJSON files."""
        for table, records in (("collections", collections), ("items", items)):
            path = self.workdir / f"{table}.ndjson"
            path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
            self._pypgstac("load", table, str(path), "--method", "insert", what=f"pypgstac load {table}",
                           timeout=timeout)

    # -- (d) API -----------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PG", "POSTGRES_", "ENABLED_EXTENSIONS", "ENABLE_", "USE_API_HYDRATE"))}
        env.update({
            "PGUSER": PG_SUPERUSER, "PGPASSWORD": "unused-trust-auth", "PGHOST": "127.0.0.1",
            "PGPORT": str(self.pg_port), "PGDATABASE": "postgres",
            "STAC_FASTAPI_TITLE": "geoslide test pgstac", "STAC_FASTAPI_DESCRIPTION": "throwaway test API",
            "STAC_FASTAPI_LANDING_ID": "geoslide-test-pgstac", "STAC_FASTAPI_VERSION": "test",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def start_api(self, timeout: float = 30) -> None:
        """Start ``uvicorn stac_fastapi.pgstac.app:create_app --factory``; wait until ``/`` answers 200."""
        self.api_port = free_port()
        t0 = time.monotonic()
        with open(self.api_log, "wb") as log:
            # cwd=workdir: the server's settings also read a ``.env`` from the working directory
            self.uvicorn = subprocess.Popen(
                [str(SERVER_VENV / "bin" / "uvicorn"), "stac_fastapi.pgstac.app:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", str(self.api_port), "--log-level", "warning"],
                cwd=self.workdir, env=self._env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = t0 + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if self.uvicorn.poll() is not None:
                raise RuntimeError(f"stac-fastapi-pgstac exited with {self.uvicorn.returncode} at start:\n"
                                   f"{_tail(self.api_log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"stac-fastapi-pgstac did not answer {self.url}/ within {timeout:.0f} s:\n"
                                   f"{_tail(self.api_log)}")
            time.sleep(0.1)
        self.timings["uvicorn start"] = time.monotonic() - t0

    def stop_api(self, timeout: float = 10) -> None:
        """Stop uvicorn (SIGTERM to its session, then SIGKILL)."""
        proc, self.uvicorn = self.uvicorn, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    # -- (e) teardown ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the API and the cluster and delete ``workdir``; safe to call more than once."""
        try:
            self.stop_api()
        finally:
            try:
                self.stop_postgres()
            finally:
                shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def running_pgstac(collections: list[dict], items: list[dict]) -> Iterator[PgstacServer]:
    """A stac-fastapi-pgstac API serving ``collections`` and ``items`` (STAC dicts) on loopback.

    Yields the :class:`PgstacServer` (``.url`` is the API root). Everything is torn down on exit.
    """
    reason = missing_requirements()
    if reason:
        raise RuntimeError(reason)
    # Not under pytest's tmp_path: that is 0700 root-owned, and postgres must run as non-root.
    # A short path also keeps the unix socket name under its 107-byte limit.
    server = PgstacServer(Path(tempfile.mkdtemp(prefix="geoslide-pgstac-")))
    try:
        server.start_postgres()
        server.migrate()
        server.load(collections, items)
        server.start_api()
        yield server
    finally:
        server.close()


if __name__ == "__main__":  # manual check: python tests/pgstac_server.py COLLECTION.json... ITEMS.json
    cols = [json.loads(Path(p).read_text()) for p in sys.argv[1:-1]]
    feats = json.loads(Path(sys.argv[-1]).read_text())["features"] if len(sys.argv) > 1 else []
    with running_pgstac(cols, feats) as srv:
        print(srv.url, srv.timings, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
