"""Real servers on loopback for the tests: an S3 API (moto), HTTP with ranges (nginx), a Dask cluster.

Both are separate processes started from installed programs, bound to 127.0.0.1 on a free port,
and stopped when the context ends. The Dask cluster is ``dask scheduler`` + ``dask worker``
processes, started the way the Helm chart starts them, and this process never holds a client of
it (a default client would hide code that relies on one). :func:`s3_environment` gives the variables with which boto3,
s3fs and GDAL (``/vsis3/``) all talk to the loopback S3 server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MOTO = Path(sys.executable).with_name("moto_server")
DASK = Path(sys.executable).with_name("dask")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    """Return once something accepts connections on ``port``; fail if ``process`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def s3_environment(endpoint: str) -> dict[str, str]:
    """Variables that point boto3, s3fs and GDAL at an S3 API on ``endpoint`` (``http://127.0.0.1:PORT``)."""
    host = endpoint.removeprefix("http://")
    return {
        "AWS_ACCESS_KEY_ID": "geoslide-test", "AWS_SECRET_ACCESS_KEY": "geoslide-test",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint,
        # GDAL's /vsis3/ reads its own variables
        "AWS_S3_ENDPOINT": host, "AWS_VIRTUAL_HOSTING": "FALSE", "AWS_HTTPS": "NO",
    }


@contextlib.contextmanager
def running_s3() -> Iterator[str]:
    """A moto S3 API server on loopback; yields its endpoint URL."""
    if not MOTO.exists():
        raise RuntimeError(f"{MOTO} is missing; install the test extras (moto[server])")
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)
        log.close()


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ image/tiff tif tiff; application/json json; application/geo+json geojson; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ autoindex off; }}
    }}
}}
"""


@contextlib.contextmanager
def running_nginx(root: str | os.PathLike[str]) -> Iterator[str]:
    """nginx serving the folder ``root`` (range requests included) on loopback; yields its base URL."""
    if not Path(NGINX).exists():
        raise RuntimeError("nginx is missing; install Debian's nginx-light (bash .ci/nginx.sh)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="geoslide-nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=Path(root).resolve()))
        process = subprocess.Popen([NGINX, "-c", str(conf), "-p", prefix], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process, "nginx")
            yield f"http://127.0.0.1:{port}"
        finally:
            _stop(process)


def _wait_for_workers(address: str, n: int, timeout: float = 90.0) -> None:
    """Ask the scheduler from a separate process, so that this process never holds a client."""
    code = ("from distributed import Client; "
            f"c = Client({address!r}, timeout=30, set_as_default=False); c.wait_for_workers({n}, timeout={timeout}); "
            "c.close()")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=timeout + 30)


@contextlib.contextmanager
def running_dask(workdir: str | os.PathLike[str], workers: int = 2, threads: int = 1) -> Iterator[str]:
    """``dask scheduler`` and ``dask worker --nworkers N`` on loopback; yields the scheduler's address.

    Logs and spill go to ``workdir``; the workers' working directory is ``workdir/worker-cwd``, so a
    relative path that reaches them unresolved names a file that is not there.
    """
    port, workdir = free_port(), Path(workdir)
    cwd = workdir / "worker-cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"], stdout=(workdir / "scheduler.log").open("w"),
                              stderr=subprocess.STDOUT, env=env)]
    try:
        wait_for_port(port, procs[0], "dask scheduler")
        procs.append(subprocess.Popen([str(DASK), "worker", address, "--nworkers", str(workers), "--nthreads",
                                       str(threads), "--memory-limit", "0", "--local-directory",
                                       str(workdir / "scratch")],
                                      stdout=(workdir / "worker.log").open("w"), stderr=subprocess.STDOUT, env=env,
                                      cwd=cwd))
        _wait_for_workers(address, workers)
        yield address
    finally:
        for process in reversed(procs):
            _stop(process)
