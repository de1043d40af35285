"""A real ``mlflow server`` process on 127.0.0.1 for integration tests.

Usage, as a context manager::

    with MlflowServer(tmp_path) as server:
        log_forecaster(..., tracking_uri=server.uri)

or as pytest fixtures (import them into the test module)::

    from tests.integration._mlflow import mlflow_server  # noqa: F401

    def test_x(mlflow_server):
        ...  # mlflow_server.uri == "http://127.0.0.1:<port>"

The server runs with a SQLite backend store and a temporary artifact root
(``--default-artifact-root``), in its own process group so that stopping it
also stops its workers. Start-up waits for ``GET /health``; a server that dies
while starting raises with the tail of its log.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "MlflowServer",
    "free_port",
    "mlflow_server",
    "shared_server",
    "stop_process",
    "wait_http",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mlflow_exe() -> list[str]:
    # The console script next to the running interpreter (the project's venv).
    exe = Path(sys.executable).with_name("mlflow")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mlflow")
    if found:
        return [found]
    return [sys.executable, "-m", "mlflow"]


def wait_http(
    url: str,
    timeout: float = 90.0,
    *,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``url`` until it answers 200; raise ``RuntimeError`` on timeout or process exit."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(
                f"process exited with code {proc.returncode} before {url} answered:\n{tail}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s ({last}):\n{tail}")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and its children."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


class MlflowServer:
    """An ``mlflow server`` subprocess with a SQLite backend under ``root``.

    Parameters
    ----------
    root : path
        Folder for the database (``mlflow.db``), the artifacts (``artifacts/``)
        and the server log (``server.log``).
    port : int, optional
        Port on 127.0.0.1; a free one by default.
    start_timeout : float
        Seconds to wait for ``/health``.

    Attributes
    ----------
    uri : str
        ``http://127.0.0.1:<port>``, the tracking URI to give the client.
    backend_uri : str
        The SQLite URI of the backend store.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, port: int | None = None, start_timeout: float = 90.0
    ) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.uri = f"http://127.0.0.1:{self.port}"
        self.db = self.root / "mlflow.db"
        self.backend_uri = f"sqlite:///{self.db.resolve()}"
        self.artifacts = self.root / "artifacts"
        self.log = self.root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        """Start the server and wait until ``/health`` answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        cmd = [
            *_mlflow_exe(),
            "server",
            "--backend-store-uri",
            self.backend_uri,
            "--default-artifact-root",
            self.artifacts.resolve().as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            wait_http(f"{self.uri}/health", self.start_timeout, proc=self.proc, log=self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server and its workers."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SHARED: MlflowServer | None = None


def shared_server(root: str | os.PathLike[str]) -> MlflowServer:
    """One server per test process, started on first use and stopped at exit.

    A server start costs seconds (it creates and migrates its database), so
    every module of a test session shares one; tests use distinct model and
    experiment names.
    """
    global _SHARED
    if _SHARED is None or _SHARED.proc is None or _SHARED.proc.poll() is not None:
        _SHARED = MlflowServer(root).start()
        atexit.register(_SHARED.stop)
    return _SHARED


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A running tracking server (``.uri``) shared by the test session."""
    yield shared_server(tmp_path_factory.mktemp("mlflow-server"))
