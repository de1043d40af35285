"""Process-parallel map over series, layered so the caller's API never changes.

Per-series statistical models run one task per chunk of series in joblib's
``loky`` process pool; ``n_jobs=1`` runs in-process (tests, small inputs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from features.exceptions import ConfigError

T = TypeVar("T")
R = TypeVar("R")


def resolve_n_jobs(n_jobs: int | None) -> int:
    """Return the number of workers: ``-1`` means every CPU, ``-2`` all but one.

    Raises
    ------
    ConfigError
        When ``n_jobs`` is 0 or not an int.
    """
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0:
        raise ConfigError(f"parameter n_jobs must be a non-zero integer, got {n_jobs!r}")
    cpus = os.cpu_count() or 1
    if n_jobs < 0:
        return max(cpus + 1 + n_jobs, 1)
    return n_jobs


def _run_chunk(func: Callable[..., R], chunk: Sequence[Any], args: tuple[Any, ...]) -> list[R]:
    # Small per-series linear algebra is fastest single-threaded; multi-threaded BLAS
    # on a busy machine made statsmodels fits 10-30x slower.
    with threadpool_limits(limits=1):
        return [func(item, *args) for item in chunk]


def parallel_map(
    func: Callable[..., R],
    items: Sequence[Any],
    n_jobs: int | None,
    *args: Any,
    min_items_per_job: int = 4,
) -> list[R]:
    """Return ``[func(item, *args) for item in items]``, computed in worker processes.

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled).
    items : sequence
        One item per series.
    n_jobs : int or None
        Workers; ``-1`` for every CPU. Small inputs run in-process.
    *args
        Extra arguments passed to every call.
    min_items_per_job : int
        Below ``n_jobs * min_items_per_job`` items, run in-process.
    """
    workers = min(resolve_n_jobs(n_jobs), max(len(items) // max(min_items_per_job, 1), 1))
    if workers <= 1:
        return _run_chunk(func, items, args)
    n_chunks = min(len(items), workers * 4)
    bounds = [round(i * len(items) / n_chunks) for i in range(n_chunks + 1)]
    chunks = [items[bounds[i] : bounds[i + 1]] for i in range(n_chunks)]
    results = Parallel(n_jobs=workers, backend="loky")(
        delayed(_run_chunk)(func, chunk, args) for chunk in chunks
    )
    return [r for part in results for r in part]
