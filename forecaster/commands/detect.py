"""``forecaster detect``: causal anomaly detection on a series file.

Contract (issue #5)
    Input: a CSV or parquet file with columns ``unique_id, ds, y`` (names can
    be changed with ``--id-col``, ``--time-col``, ``--target-col``; other
    columns are ignored). Output: a CSV with exactly the columns
    ``unique_id, ds, y, score, is_anomaly``, one row per input row, in input
    order; ``ds`` is written as it was read, ``score`` is in [0, 1] and
    ``is_anomaly`` is 0 or 1. Rows with an empty ``y`` get score 0 and
    is_anomaly 0. Detection is causal: each series is processed in
    ``(ds, input row)`` order and a row only depends on the rows of its series
    before it, so running on a prefix of a time-ordered file gives the same
    rows for that prefix. Bad input exits with code 2 and a message naming the
    file, row (CSV: line number, header = line 1; parquet: 0-based row) and
    column.

The lead registers it with ``app.command("detect")(detect)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer

from features.exceptions import ForecasterError, IngestError
from forecaster.commands.forecast import BackendOpt, SchedulerAddressOpt
from models.anomaly import DEFAULT_DETECTOR, OUTPUT_COLUMNS, detect_series, make_detector
from models.anomaly.base import StreamingDetector
from models.anomaly.frame import detector_names

#: Strings read as a missing ``y`` (an empty cell is missing too).
_MISSING = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A", "null", "NULL", "None"})


def _row_label(pos: int, csv: bool) -> int:
    """Row as reported to users: CSV line (header = 1) or 0-based parquet row."""
    return pos + 2 if csv else pos


def read_series_file(
    path: Path, *, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y"
) -> tuple[pd.DataFrame, pd.Series]:
    """Read and validate a series file for detection.

    Parameters
    ----------
    path : Path
        ``.csv`` (comma separated, header row) or ``.parquet`` file.
    id_col, time_col, target_col : str
        Column names in the file.

    Returns
    -------
    frame : pandas.DataFrame
        Columns ``id_col`` (as read), ``time_col`` (UTC timestamps; naive
        values are taken as UTC) and ``target_col`` (float64, NaN = missing).
    ds_text : pandas.Series
        ``time_col`` as it should be written back (the original CSV text).

    Raises
    ------
    IngestError
        Naming the file, the first offending row and the column.
    """
    name = str(path)
    if not path.exists():
        raise IngestError("file not found", path=name)
    if path.is_dir():
        raise IngestError("expected a file, got a folder", path=name)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise IngestError(
            f"expected a .csv or .parquet file, got {suffix or 'no suffix'!r}", path=name
        )
    if path.stat().st_size == 0:
        raise IngestError("file is empty (0 bytes)", path=name)
    csv = suffix == ".csv"
    try:
        if csv:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        else:
            raw = pd.read_parquet(path)
    except Exception as exc:  # pandas / pyarrow raise many types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IngestError(f"cannot read file ({first})", path=name) from exc
    missing = [c for c in (id_col, time_col, target_col) if c not in raw.columns]
    if missing:
        raise IngestError(
            f"missing required column (got columns {list(raw.columns)})",
            path=name,
            column=missing[0],
        )

    ids = raw[id_col]
    bad = ids.isna().to_numpy() | (ids.astype(str).str.strip() == "").to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise IngestError("missing series id", path=name, row=_row_label(pos, csv), column=id_col)

    ds_raw = raw[time_col]
    if isinstance(ds_raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(ds_raw):
        ds = pd.to_datetime(ds_raw, utc=True)
        bad_ds = ds.isna().to_numpy()
    else:
        text = ds_raw.astype(str).str.strip()
        # ISO 8601 is the fast path; anything else is parsed element by element.
        ds = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        retry = ds.isna().to_numpy()
        if retry.any():
            ds = ds.copy()
            ds[retry] = pd.to_datetime(text[retry], utc=True, errors="coerce", format="mixed")
        bad_ds = ds.isna().to_numpy() | ds_raw.isna().to_numpy()
    if bad_ds.any():
        pos = int(np.flatnonzero(bad_ds)[0])
        shown = ds_raw.iloc[pos]
        raise IngestError(
            f"not a timestamp: {shown!r}", path=name, row=_row_label(pos, csv), column=time_col
        )

    y_raw = raw[target_col]
    if csv:
        text = y_raw.astype(str).str.strip()
        is_missing = text.isin(_MISSING).to_numpy()
        y = pd.to_numeric(text.where(~is_missing, None), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        bad_y = np.isnan(y) & ~is_missing
        if bad_y.any():
            pos = int(np.flatnonzero(bad_y)[0])
            raise IngestError(
                f"not a number: {y_raw.iloc[pos]!r}",
                path=name,
                row=_row_label(pos, csv),
                column=target_col,
            )
    else:
        if pd.api.types.is_bool_dtype(y_raw) or not (
            pd.api.types.is_numeric_dtype(y_raw) or y_raw.isna().all()
        ):
            coerced = pd.to_numeric(y_raw, errors="coerce")
            bad_y = (coerced.isna() & y_raw.notna()).to_numpy()
            if not bad_y.any():  # e.g. a boolean column
                bad_y = np.ones(len(y_raw), dtype=bool)
            pos = int(np.flatnonzero(bad_y)[0])
            raise IngestError(
                f"not a number: {y_raw.iloc[pos]!r} (column dtype {y_raw.dtype})",
                path=name,
                row=pos,
                column=target_col,
            )
        y = y_raw.to_numpy(dtype=np.float64, na_value=np.nan)
    bad_y = np.isinf(y)
    if bad_y.any():
        pos = int(np.flatnonzero(bad_y)[0])
        raise IngestError(
            f"not a finite number: {y_raw.iloc[pos]!r}",
            path=name,
            row=_row_label(pos, csv),
            column=target_col,
        )
    frame = pd.DataFrame({id_col: ids.to_numpy(), time_col: ds, target_col: y})
    ds_text = ds_raw.reset_index(drop=True) if csv else ds.reset_index(drop=True)
    return frame, ds_text


def detect(
    input: Path = typer.Option(
        ..., "--input", help="Series file (.csv or .parquet) with unique_id, ds, y."
    ),
    output: Path = typer.Option(
        ..., "--output", help="Where to write the flags CSV (unique_id, ds, y, score, is_anomaly)."
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Alert threshold on the score, in (0, 1] (default: the detector's own).",
    ),
    detector: str = typer.Option(
        DEFAULT_DETECTOR,
        "--detector",
        help=f"Detector: {', '.join(detector_names())} (default: {DEFAULT_DETECTOR}, our best).",
    ),
    id_col: str = typer.Option("unique_id", "--id-col", help="Series id column in the input."),
    time_col: str = typer.Option("ds", "--time-col", help="Timestamp column in the input."),
    target_col: str = typer.Option("y", "--target-col", help="Value column in the input."),
    backend: BackendOpt = "local",
    scheduler_address: SchedulerAddressOpt = None,
) -> None:
    """Flag anomalies in every series of a file, causally (a point only sees its past)."""
    from forecaster.console import err, fail

    try:
        det = make_detector(detector, threshold)
    except ValueError as exc:
        fail(str(exc))
    try:
        frame, ds_text = read_series_file(
            input, id_col=id_col, time_col=time_col, target_col=target_col
        )
        if backend == "local" and scheduler_address is None:
            flags = detect_series(
                frame, det, id_col=id_col, time_col=time_col, target_col=target_col
            )
        else:
            flags = _detect_on_backend(
                backend, scheduler_address, det, frame, (id_col, time_col, target_col)
            )
    except ForecasterError as exc:
        fail(str(exc))
    result = pd.DataFrame(
        {
            OUTPUT_COLUMNS[0]: flags[id_col].to_numpy(),
            OUTPUT_COLUMNS[1]: ds_text.to_numpy(),
            OUTPUT_COLUMNS[2]: flags[target_col].to_numpy(),
            OUTPUT_COLUMNS[3]: flags["score"].to_numpy(),
            OUTPUT_COLUMNS[4]: flags["is_anomaly"].to_numpy(),
        }
    )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(output, index=False)
    except OSError as exc:
        fail(f"file {output}: cannot write output ({exc.strerror or exc})")
    n_series = int(result[OUTPUT_COLUMNS[0]].nunique())
    n_flags = int(result[OUTPUT_COLUMNS[4]].sum())
    err.print(
        f"{det.name}: {len(result):,} rows, {n_series:,} series, {n_flags:,} anomalies "
        f"(threshold {det.threshold_:g}) -> {output}",
        highlight=False,
    )


def _detect_on_backend(
    backend: str,
    scheduler_address: str | None,
    det: StreamingDetector,
    frame: pd.DataFrame,
    cols: tuple[str, str, str],
) -> pd.DataFrame:
    """Score on a backend (issue 10): same rows, same order, series spread over workers."""
    from models.backends import get_backend

    id_col, time_col, target_col = cols
    with get_backend(backend, scheduler_address) as runner:
        flags = runner.detect(det, frame, id_col=id_col, time_col=time_col, target_col=target_col)
    assert isinstance(flags, pd.DataFrame)
    return flags
