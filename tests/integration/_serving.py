"""Run the serving app under a real uvicorn server on 127.0.0.1 (in a thread or a process)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.integration._mlflow import free_port, stop_process, wait_http


@contextmanager
def uvicorn_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread; yield its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def serve_process(env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """``forecaster serve`` as a subprocess with ``env`` added; yield its base URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("forecaster")
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz", 120, proc=proc, log=log)
        yield base
    finally:
        stop_process(proc)


def wait_for(fn: Any, timeout: float = 60.0, every: float = 0.2) -> Any:
    """Poll ``fn()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def get(base: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(base + path, headers=headers, timeout=30, **kw)
