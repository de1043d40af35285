"""Helpers shared by the benchmark scripts: repository paths, git commit, results files.

Every benchmark prints its anchors next to us from the same run and writes
``benchmarks/results/<name>.json`` through :func:`write_result`, which records
the git commit, the time and the machine.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def git_commit() -> str:
    """Return ``HEAD``'s commit hash (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        dirty = ""
    return f"{head}+dirty" if dirty else head


def machine() -> dict[str, Any]:
    """CPU count, processor, platform and load average at the time of the run."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_1m": round(load[0], 2),
    }


def resolve_data(arg: str | Path, marker: str) -> Path:
    """Return the data folder: ``arg`` as given, else relative to the repository root.

    Parameters
    ----------
    arg : str or Path
        The ``--data`` option.
    marker : str
        A sub-folder that must exist in it (``"m4"``, ``"nab"``...).

    Raises
    ------
    SystemExit
        When neither location holds ``marker``.
    """
    path = Path(arg)
    if (path / marker).is_dir():
        return path
    alt = (ROOT / arg).resolve()
    if (alt / marker).is_dir():
        return alt
    raise SystemExit(f"error: no {marker}/ folder under {path} or {alt} (use --data)")


def write_result(name: str, payload: dict[str, Any], path: Path | None = None) -> Path:
    """Write ``payload`` plus commit, time and machine to ``benchmarks/results/<name>.json``."""
    out = path or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "commit": git_commit(),
        "utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **payload,
    }
    out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    return out


@dataclass
class Timing:
    """Wall-clock and CPU seconds (this process plus finished child processes)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


def _cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def timed() -> Iterator[Timing]:
    """Measure a block: ``with timed() as t: ...`` then ``t.wall_s``, ``t.cpu_s``.

    CPU time of worker processes counts once they have exited (joblib's
    reusable pool keeps them alive, so it can be undercounted).
    """
    t = Timing()
    w0, c0 = time.perf_counter(), _cpu_now()
    try:
        yield t
    finally:
        t.wall_s = time.perf_counter() - w0
        t.cpu_s = _cpu_now() - c0
