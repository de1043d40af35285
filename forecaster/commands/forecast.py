"""``forecaster forecast`` and ``forecaster backtest``: forecasts with intervals from a file.

Contract (issue #3)
    Input: a CSV or parquet file with columns ``unique_id, ds, y`` (names can
    be changed with ``--id-col``, ``--time-col``, ``--target-col``; other
    numeric columns are used as exogenous regressors by models that take them
    only when future values are known, so the CLI ignores them). ``ds`` must be
    parseable (naive values are taken as UTC); the frequency is inferred unless
    ``--freq`` is given.

    ``forecast`` writes a CSV with exactly the columns
    ``unique_id, ds, yhat, lo_80, hi_80, lo_95, hi_95`` (one ``lo_L, hi_L``
    pair per ``--level``), ``horizon`` rows per series, ``ds`` in ISO 8601 UTC.
    With only ``--input``, ``--horizon`` and ``--output`` it runs the best
    configuration (``--model auto``) with 80 and 95 % intervals.

    ``backtest`` runs a rolling-origin evaluation (``--n-windows`` windows of
    ``--horizon`` steps at the end of each series), prints the metrics table
    (sMAPE, MASE, WAPE, RMSSE, bias, coverage, pinball, MSIS) and writes it as
    CSV with ``--output``.

    Bad input exits with code 2 and one line naming the file, the series and
    the column. Progress goes to stderr.

The lead registers them with ``app.command("forecast")(forecast)`` and
``app.command("backtest")(backtest)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.exceptions import ConfigError, ForecasterError
from models import MODEL_NAMES, make_model
from models._frequency import as_offset, default_season_length
from models._panel import to_panel
from models.base import BaseForecaster
from models.metrics import evaluate

__all__ = ["backtest", "forecast", "read_series"]

_err = Console(stderr=True)
_out = Console()
_SUFFIXES = (".csv", ".parquet", ".pq")


def read_series(path: Path, id_col: str, time_col: str, target_col: str) -> pd.DataFrame:
    """Read a series file (CSV or parquet) and check that the named columns exist.

    Returns
    -------
    pandas.DataFrame
        The file as read; ``id_col`` as string.

    Raises
    ------
    typer.BadParameter
        Naming the file and the problem (missing, unreadable, missing column).
    """
    name = str(path)
    if not path.exists():
        raise typer.BadParameter(f"{name}: file not found", param_hint="--input")
    if path.is_dir():
        raise typer.BadParameter(f"{name}: expected a file, got a folder", param_hint="--input")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise typer.BadParameter(
            f"{name}: expected a .csv or .parquet file, got {suffix or 'no suffix'!r}",
            param_hint="--input",
        )
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype={id_col: str})
        else:
            df = pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise typer.BadParameter(f"{name}: cannot read: {first}", param_hint="--input") from None
    missing = [c for c in (id_col, time_col, target_col) if c not in df.columns]
    if missing:
        raise typer.BadParameter(
            f"{name}: missing column(s) {missing}; got {list(df.columns)} "
            "(use --id-col/--time-col/--target-col)",
            param_hint="--input",
        )
    if len(df) == 0:
        raise typer.BadParameter(f"{name}: no data rows", param_hint="--input")
    df[id_col] = df[id_col].astype(str)
    return df[[id_col, time_col, target_col]]


@contextmanager
def _step(progress: Progress, text: str) -> Iterator[None]:
    task = progress.add_task(text, total=None)
    try:
        yield
    finally:
        progress.update(task, completed=1, total=1)
        progress.stop_task(task)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=_err,
        transient=False,
    )


def _build_model(
    model: str,
    horizon: int,
    freq: str | None,
    season_length: int | None,
    n_jobs: int,
    seed: int,
) -> BaseForecaster:
    if model not in MODEL_NAMES:
        raise typer.BadParameter(
            f"must be one of {', '.join(sorted(MODEL_NAMES))}, got {model!r}", param_hint="--model"
        )
    if freq is not None:
        try:
            as_offset(freq)
        except ConfigError:
            raise typer.BadParameter(
                f"must be a pandas frequency alias such as h, D, W, MS; got {freq!r}",
                param_hint="--freq",
            ) from None
    if season_length is not None and season_length < 1:
        raise typer.BadParameter(
            f"must be a positive integer, got {season_length}", param_hint="--season-length"
        )
    if n_jobs == 0:
        raise typer.BadParameter("must be a non-zero integer, got 0", param_hint="--n-jobs")
    return make_model(
        model,
        freq=freq,
        season_length=season_length,
        horizon=horizon,
        n_jobs=n_jobs,
        seed=seed,
    )


def _bad_input(path: Path, exc: Exception) -> typer.BadParameter:
    return typer.BadParameter(f"{path}: {exc}", param_hint="--input")


def _show_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen = set()
    for w in caught:
        msg = str(w.message)
        if msg in seen or not issubclass(w.category, UserWarning):
            continue
        seen.add(msg)
        _err.print(f"[yellow]warning:[/] {msg}", highlight=False, soft_wrap=True)


def _check_levels(level: list[int]) -> list[int]:
    bad = [lv for lv in level if not 0 < lv < 100]
    if bad or not level:
        raise typer.BadParameter(
            f"each level must be an integer in (0, 100), got {level}", param_hint="--level"
        )
    return sorted(set(level))


def forecast(
    input: Path = typer.Option(..., "--input", help="Series file (.csv or .parquet)."),
    horizon: int = typer.Option(..., "--horizon", min=1, help="Steps to forecast."),
    output: Path = typer.Option(..., "--output", help="Forecast CSV to write."),
    level: list[int] = typer.Option([80, 95], "--level", help="Interval level (repeatable)."),
    freq: str | None = typer.Option(None, "--freq", help="Frequency alias; inferred if omitted."),
    season_length: int | None = typer.Option(
        None, "--season-length", help="Seasonal period in steps; default from the frequency."
    ),
    model: str = typer.Option("auto", "--model", help=f"One of: {', '.join(MODEL_NAMES)}."),
    id_col: str = typer.Option("unique_id", "--id-col", help="Series id column."),
    time_col: str = typer.Option("ds", "--time-col", help="Timestamp column."),
    target_col: str = typer.Option("y", "--target-col", help="Target column."),
    n_jobs: int = typer.Option(-1, "--n-jobs", help="Worker processes/threads (-1: all CPUs)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (results are reproducible)."),
) -> None:
    """Forecast every series of a file with calibrated prediction intervals."""
    levels = _check_levels(level)
    if output.parent and not output.parent.exists():
        raise typer.BadParameter(
            f"{output}: folder {output.parent} does not exist", param_hint="--output"
        )
    estimator = _build_model(model, horizon, freq, season_length, n_jobs, seed)
    with _progress() as progress:
        with _step(progress, f"reading {input.name}"):
            df = read_series(input, id_col, time_col, target_col)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with _step(progress, f"fitting {model} on {df[id_col].nunique()} series"):
                    estimator.fit(df, id_col=id_col, time_col=time_col, target_col=target_col)
                with _step(progress, f"forecasting {horizon} steps"):
                    fc = estimator.predict(horizon, level=levels)
            except ForecasterError as exc:
                raise _bad_input(input, exc) from None
        _show_warnings(caught)
        with _step(progress, f"writing {output.name}"):
            fc = fc.rename(columns={id_col: "unique_id", time_col: "ds"})
            fc["ds"] = fc["ds"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            fc.to_csv(output, index=False)
    _err.print(f"wrote {len(fc)} rows for {fc['unique_id'].nunique()} series to {output}")


def backtest(
    input: Path = typer.Option(..., "--input", help="Series file (.csv or .parquet)."),
    horizon: int = typer.Option(..., "--horizon", min=1, help="Steps per window."),
    n_windows: int = typer.Option(3, "--n-windows", min=1, help="Windows per series."),
    step: int | None = typer.Option(None, "--step", min=1, help="Steps between cutoffs."),
    model: str = typer.Option("auto", "--model", help=f"One of: {', '.join(MODEL_NAMES)}."),
    output: Path | None = typer.Option(None, "--output", help="Write the metrics as CSV."),
    level: list[int] = typer.Option([80, 95], "--level", help="Interval level (repeatable)."),
    freq: str | None = typer.Option(None, "--freq", help="Frequency alias; inferred if omitted."),
    season_length: int | None = typer.Option(
        None, "--season-length", help="Seasonal period in steps; default from the frequency."
    ),
    id_col: str = typer.Option("unique_id", "--id-col", help="Series id column."),
    time_col: str = typer.Option("ds", "--time-col", help="Timestamp column."),
    target_col: str = typer.Option("y", "--target-col", help="Target column."),
    n_jobs: int = typer.Option(-1, "--n-jobs", help="Worker processes/threads (-1: all CPUs)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (results are reproducible)."),
    max_rows: int = typer.Option(20, "--max-rows", help="Series rows shown in the table."),
) -> None:
    """Rolling-origin backtest of a model: prints (and optionally writes) its metrics."""
    levels = _check_levels(level)
    if output is not None and output.parent and not output.parent.exists():
        raise typer.BadParameter(
            f"{output}: folder {output.parent} does not exist", param_hint="--output"
        )
    estimator = _build_model(model, horizon, freq, season_length, n_jobs, seed)
    with _progress() as progress:
        with _step(progress, f"reading {input.name}"):
            df = read_series(input, id_col, time_col, target_col)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with _step(progress, f"backtesting {model}: {n_windows} windows of {horizon}"):
                    cv = estimator.cross_validation(
                        df,
                        h=horizon,
                        n_windows=n_windows,
                        step=step,
                        level=levels,
                        id_col=id_col,
                        time_col=time_col,
                        target_col=target_col,
                    )
                    panel = to_panel(
                        df,
                        id_col=id_col,
                        time_col=time_col,
                        target_col=target_col,
                        freq=freq,
                        use_exog=False,
                    )
            except ForecasterError as exc:
                raise _bad_input(input, exc) from None
        _show_warnings(caught)
        m = season_length or default_season_length(panel.freq)
        table = evaluate(cv, df, m, levels, id_col=id_col, time_col=time_col, target_col=target_col)
    _print_metrics(table, id_col, model, n_windows, horizon, max_rows)
    if output is not None:
        table.to_csv(output, index=False)
        _err.print(f"wrote metrics for {len(table) - 1} series to {output}")


def _print_metrics(
    table: pd.DataFrame, id_col: str, model: str, n_windows: int, horizon: int, max_rows: int
) -> None:
    total = table[table[id_col] == "ALL"]
    per = table[table[id_col] != "ALL"]
    # The terminal shows the headline metrics; the CSV (--output) has them all.
    keep = [c for c in table.columns if not c.startswith("pinball_")]
    shown = pd.concat([total, per.head(max_rows)])[keep]
    out = Table(title=f"backtest of {model}: {n_windows} windows x {horizon} steps")
    for col in shown.columns:
        out.add_column(str(col), justify="left" if col == id_col else "right")
    for _, row in shown.iterrows():
        cells = []
        for col in shown.columns:
            v = row[col]
            if col == id_col or col == "n":
                cells.append(str(v))
            elif pd.isna(v):
                cells.append("-")
            else:
                cells.append(f"{float(v):.2f}")
        out.add_row(*cells, style="bold" if row[id_col] == "ALL" else None)
    if len(per) > max_rows:
        out.caption = f"{len(per) - max_rows} more series not shown (use --output)"
    _out.print(out)
