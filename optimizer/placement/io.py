"""CSV readers for the openb node and pod formats, with file/row/column errors.

Every value is read as text and validated by :mod:`optimizer.placement.records`; a bad value
raises :class:`~features.exceptions.IngestError` naming the file, the 1-based line (header =
line 1) and the column. Nothing is dropped silently: a file is accepted whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.exceptions import IngestError, InvalidFrameError
from optimizer.placement.records import Cluster, PodStream


def read_csv_text(path: str | Path) -> pd.DataFrame:
    """Read a CSV file with every cell as a string (empty cells -> ``""``).

    Raises
    ------
    IngestError
        The file is missing, empty or not parseable as CSV.
    """
    p = Path(path)
    if not p.exists():
        raise IngestError("file not found", path=str(p))
    if p.is_dir():
        raise IngestError("expected a CSV file, got a folder", path=str(p))
    if p.stat().st_size == 0:
        raise IngestError("file is empty (0 bytes)", path=str(p))
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IngestError(f"unreadable CSV ({first})", path=str(p)) from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _reraise(exc: InvalidFrameError, path: Path) -> IngestError:
    row = exc.rows[0] + 2 if exc.rows else None  # header is line 1
    message = str(exc).split(": ", 1)[-1] if exc.column or exc.rows else str(exc)
    more = f" ({len(exc.rows)} rows in all)" if len(exc.rows) > 1 else ""
    return IngestError(message + more, path=str(path), row=row, column=exc.column)


def read_nodes(path: str | Path) -> tuple[pd.DataFrame, Cluster]:
    """Read and validate an openb node list (``sn,cpu_milli,memory_mib,gpu,model``).

    Returns
    -------
    frame : DataFrame
        The raw text frame.
    cluster : Cluster

    Raises
    ------
    IngestError
        With the file, line and column of the first bad value.
    """
    df = read_csv_text(path)
    try:
        return df, Cluster.from_frame(df)
    except InvalidFrameError as exc:
        raise _reraise(exc, Path(path)) from exc


def read_pods(path: str | Path, *, frame: str = "pods") -> tuple[pd.DataFrame, PodStream]:
    """Read and validate an openb pod list (rows in file order = arrival order).

    Parameters
    ----------
    path : path-like
        CSV with ``name,cpu_milli,memory_mib,num_gpu,gpu_milli`` and optionally ``gpu_spec``;
        other columns are ignored.
    frame : str
        ``pods`` or ``profile`` (used in messages).

    Raises
    ------
    IngestError
        With the file, line and column of the first bad value.
    """
    df = read_csv_text(path)
    try:
        return df, PodStream.from_frame(df, frame=frame)
    except InvalidFrameError as exc:
        raise _reraise(exc, Path(path)) from exc
