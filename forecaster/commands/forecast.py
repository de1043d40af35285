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

Store mode (issue #3, hierarchical)
    ``forecaster forecast --level-by team [--level-by project ...] --horizon 90d
    --output OUT.csv [--store PATH]`` forecasts the daily cost of every node of
    the tag hierarchy ``total -> team -> project ...`` built from the store
    (:func:`features.series.hierarchy_series`), reconciled so that children sum
    to their parents (``--reconcile auto`` picks the method by backtest), and
    writes the same CSV contract; ``unique_id`` is the node path
    (``total``, ``team=nlp``, ``team=nlp/project=chatbot``). ``backtest
    --level-by ...`` prints the per-level metrics of every method and of the
    seasonal-naive anchor.

    ``--horizon`` takes steps (``90``) or a duration (``90d``, ``48h``, ``2w``)
    converted with the frequency (store mode: ``--freq``, default ``D``; file
    mode: ``--freq`` or the inferred one).

The lead registers them with ``app.command("forecast")(forecast)`` and
``app.command("backtest")(backtest)``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.exceptions import ConfigError, ForecasterError
from forecaster.commands._options import StoreOpt
from models import MODEL_NAMES, make_model
from models._frequency import as_offset, default_season_length, fixed_step
from models._panel import to_panel
from models.base import BaseForecaster
from models.metrics import evaluate

if TYPE_CHECKING:
    from models.backends import Backend

__all__ = [
    "RECONCILE_METHODS",
    "BackendOpt",
    "SchedulerAddressOpt",
    "backtest",
    "forecast",
    "parse_horizon",
    "read_series",
]

_err = Console(stderr=True)
_out = Console()
_SUFFIXES = (".csv", ".parquet", ".pq")
#: ``--reconcile`` choices (``models.hierarchy.METHODS`` plus ``auto``; kept here so the
#: CLI does not import the hierarchy module before it is used).
RECONCILE_METHODS: tuple[str, ...] = (
    "auto",
    "bottom_up",
    "top_down",
    "ols",
    "wls_struct",
    "wls_var",
    "mint_shrink",
    "none",
)
_FORECAST_COLUMNS = ["unique_id", "ds", "yhat"]
_HORIZON = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")
_HOUR, _DAY = pd.Timedelta(hours=1), pd.Timedelta(days=1)
_UNITS = {"h": _HOUR, "hour": _HOUR, "hours": _HOUR, "d": _DAY, "day": _DAY, "days": _DAY}
_UNITS |= {"w": 7 * _DAY, "week": 7 * _DAY, "weeks": 7 * _DAY}

# Options shared by ``forecast`` and ``backtest`` (and, for the backend, ``detect``).
InputOpt = Annotated[
    Path | None,
    typer.Option("--input", help="Series file (.csv or .parquet); or use --level-by."),
]
FreqOpt = Annotated[
    str | None,
    typer.Option("--freq", help="Frequency alias; inferred if omitted (store mode: D)."),
]
SeasonLengthOpt = Annotated[
    int | None,
    typer.Option("--season-length", help="Seasonal period in steps; default from the frequency."),
]
ModelOpt = Annotated[str, typer.Option("--model", help=f"One of: {', '.join(MODEL_NAMES)}.")]
IdColOpt = Annotated[str, typer.Option("--id-col", help="Series id column.")]
TimeColOpt = Annotated[str, typer.Option("--time-col", help="Timestamp column.")]
TargetColOpt = Annotated[str, typer.Option("--target-col", help="Target column.")]
NJobsOpt = Annotated[int, typer.Option("--n-jobs", help="Worker processes/threads (-1: all CPUs).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (results are reproducible).")]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend", help="local, or dask (a LocalCluster of 2 workers unless --scheduler-address)."
    ),
]
SchedulerAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler-address", help="Dask scheduler, e.g. tcp://10.0.0.5:8786 (--backend dask)."
    ),
]


def parse_horizon(text: str, freq: str | pd.DateOffset | None) -> int:
    """Steps of ``--horizon``: a plain number of steps, or a duration such as ``90d``/``48h``.

    Parameters
    ----------
    text : str
        ``"90"``, ``"90d"``, ``"48h"``, ``"2w"`` (case-insensitive units).
    freq : str or pandas.DateOffset, optional
        The series frequency; needed only for a duration.

    Raises
    ------
    typer.BadParameter
        Naming ``--horizon`` when the text is not a positive count or duration, or
        the duration is not a whole number of steps of ``freq``.
    """
    m = _HORIZON.match(str(text))
    if not m:
        raise typer.BadParameter(
            f"must be a number of steps or a duration such as 90d, 48h, 2w; got {text!r}",
            param_hint="--horizon",
        )
    count, unit = int(m.group(1)), m.group(2).lower()
    if count < 1:
        raise typer.BadParameter(f"must be at least 1, got {text!r}", param_hint="--horizon")
    if not unit:
        return count
    if unit not in _UNITS:
        raise typer.BadParameter(
            f"unit must be h, d or w (hours, days, weeks), got {text!r}", param_hint="--horizon"
        )
    span = _UNITS[unit] * count
    step = fixed_step(as_offset(freq)) if freq is not None else None
    if step is None and freq is not None and as_offset(freq).freqstr.startswith("W"):
        step = pd.Timedelta(days=7)
    if step is None:
        raise typer.BadParameter(
            f"a duration ({text!r}) needs a fixed frequency such as h or D; got {freq!r}; "
            "give a number of steps instead",
            param_hint="--horizon",
        )
    steps = span / step
    if steps < 1 or steps != int(steps):
        raise typer.BadParameter(
            f"{text!r} is not a whole number of {as_offset(freq).freqstr} steps",
            param_hint="--horizon",
        )
    return int(steps)


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


def _file_or_store(input: Path | None, level_by: list[str] | None) -> bool:
    """True for store mode; checks that exactly one of ``--input``/``--level-by`` is given."""
    if input is not None and level_by:
        raise typer.BadParameter(
            "give either --input (a series file) or --level-by (the store's cost), not both",
            param_hint="--input",
        )
    if input is None and not level_by:
        raise typer.BadParameter(
            "give --input SERIES.csv (a series file) or --level-by DIMENSION "
            "(forecast the store's cost along a tag hierarchy)",
            param_hint="--input",
        )
    return input is None


def _file_steps(
    horizon: str, freq: str | None, df: pd.DataFrame, cols: tuple[str, str, str]
) -> int:
    """``--horizon`` in steps for a series file (a duration needs the frequency)."""
    try:
        return parse_horizon(horizon, None)
    except typer.BadParameter:
        if _HORIZON.match(str(horizon)) is None or freq is not None:
            return parse_horizon(horizon, freq)
    id_col, time_col, target_col = cols
    inferred = to_panel(
        df, id_col=id_col, time_col=time_col, target_col=target_col, use_exog=False
    ).freq
    return parse_horizon(horizon, inferred.freqstr)


def forecast(
    input: InputOpt = None,
    horizon: str = typer.Option(
        ..., "--horizon", help="Steps to forecast, or a duration: 90d, 48h, 2w."
    ),
    output: Path = typer.Option(..., "--output", help="Forecast CSV to write."),
    level: list[int] = typer.Option([80, 95], "--level", help="Interval level (repeatable)."),
    freq: FreqOpt = None,
    season_length: SeasonLengthOpt = None,
    model: ModelOpt = "auto",
    id_col: IdColOpt = "unique_id",
    time_col: TimeColOpt = "ds",
    target_col: TargetColOpt = "y",
    n_jobs: NJobsOpt = -1,
    seed: SeedOpt = 0,
    level_by: list[str] | None = typer.Option(
        None,
        "--level-by",
        help="Store mode: forecast the store's cost by this tag dimension (repeat for deeper "
        "levels: --level-by team --level-by project).",
    ),
    store: StoreOpt = None,
    reconcile: str = typer.Option(
        "auto", "--reconcile", help=f"Store mode: one of {', '.join(RECONCILE_METHODS)}."
    ),
    n_windows: int = typer.Option(
        3, "--n-windows", min=1, help="Store mode: backtest windows (method choice, intervals)."
    ),
    backend: BackendOpt = "local",
    scheduler_address: SchedulerAddressOpt = None,
) -> None:
    """Forecast every series of a file, or the store's cost along a tag hierarchy, with
    calibrated prediction intervals."""
    levels = _check_common(level, output, backend, scheduler_address, level_by)
    if _file_or_store(input, level_by):
        _forecast_store(
            level_by or [], store, horizon, output, levels, freq, model, reconcile, n_windows,
            n_jobs, seed,
        )  # fmt: skip
        return
    assert input is not None
    with _progress() as progress:
        df, steps, estimator = _read_file(
            progress, input, horizon, freq, (id_col, time_col, target_col),
            (model, season_length, n_jobs, seed),
        )  # fmt: skip
        with _warnings_and_errors(lambda exc: _bad_input(input, exc)):
            n_series = df[id_col].nunique()
            with (
                _step(progress, f"fitting {model} on {n_series} series ({backend})"),
                _open_backend(backend, scheduler_address) as runner,
            ):
                fc = runner.forecast(
                    estimator, df, steps, level=levels,
                    id_col=id_col, time_col=time_col, target_col=target_col,
                )  # fmt: skip
            assert isinstance(fc, pd.DataFrame)
        with _step(progress, f"writing {output.name}"):
            fc = fc.rename(columns={id_col: "unique_id", time_col: "ds"})
            _write_forecast(fc, output)
    _err.print(f"wrote {len(fc)} rows for {fc['unique_id'].nunique()} series to {output}")


def _check_common(
    level: list[int],
    output: Path | None,
    backend: str,
    scheduler_address: str | None,
    level_by: list[str] | None,
) -> list[int]:
    """The checks ``forecast`` and ``backtest`` make first; returns the sorted levels."""
    levels = _check_levels(level)
    if output is not None and output.parent and not output.parent.exists():
        raise typer.BadParameter(
            f"{output}: folder {output.parent} does not exist", param_hint="--output"
        )
    _check_backend(backend, scheduler_address, level_by)
    return levels


def _read_file(
    progress: Progress,
    input: Path,
    horizon: str,
    freq: str | None,
    cols: tuple[str, str, str],
    model_args: tuple[str, int | None, int, int],
) -> tuple[pd.DataFrame, int, BaseForecaster]:
    """File mode: the series, ``--horizon`` in steps and the model to run.

    ``model_args`` is ``(model, season_length, n_jobs, seed)``.
    """
    with _step(progress, f"reading {input.name}"):
        df = read_series(input, *cols)
    try:
        steps = _file_steps(horizon, freq, df, cols)
    except ForecasterError as exc:
        raise _bad_input(input, exc) from None
    model, season_length, n_jobs, seed = model_args
    return df, steps, _build_model(model, steps, freq, season_length, n_jobs, seed)


@contextmanager
def _warnings_and_errors(
    bad: Callable[[ForecasterError], typer.BadParameter],
) -> Iterator[None]:
    """Show the block's UserWarnings once each after it; a ForecasterError becomes ``bad(exc)``.

    The warnings are recorded rather than printed as they come so that they do not
    break the progress display (and repeats across series show once).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except ForecasterError as exc:
            raise bad(exc) from None
    _show_warnings(caught)


def _write_forecast(fc: pd.DataFrame, output: Path) -> None:
    fc = fc.copy()
    fc["ds"] = fc["ds"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    fc.to_csv(output, index=False)


def backtest(
    input: InputOpt = None,
    horizon: str = typer.Option(
        ..., "--horizon", help="Steps per window, or a duration: 30d, 48h, 2w."
    ),
    n_windows: int = typer.Option(3, "--n-windows", min=1, help="Windows per series."),
    step: int | None = typer.Option(None, "--step", min=1, help="Steps between cutoffs."),
    model: ModelOpt = "auto",
    output: Path | None = typer.Option(None, "--output", help="Write the metrics as CSV."),
    level: list[int] = typer.Option([80, 95], "--level", help="Interval level (repeatable)."),
    freq: FreqOpt = None,
    season_length: SeasonLengthOpt = None,
    id_col: IdColOpt = "unique_id",
    time_col: TimeColOpt = "ds",
    target_col: TargetColOpt = "y",
    n_jobs: NJobsOpt = -1,
    seed: SeedOpt = 0,
    max_rows: int = typer.Option(20, "--max-rows", help="Series rows shown in the table."),
    level_by: list[str] | None = typer.Option(
        None,
        "--level-by",
        help="Store mode: backtest the store's cost along this tag hierarchy (repeatable).",
    ),
    store: StoreOpt = None,
    backend: BackendOpt = "local",
    scheduler_address: SchedulerAddressOpt = None,
) -> None:
    """Rolling-origin backtest of a model: prints (and optionally writes) its metrics."""
    levels = _check_common(level, output, backend, scheduler_address, level_by)
    if _file_or_store(input, level_by):
        _backtest_store(
            level_by or [], store, horizon, n_windows, step, model, output, levels, freq,
            n_jobs, seed,
        )  # fmt: skip
        return
    assert input is not None
    with _progress() as progress:
        df, steps, estimator = _read_file(
            progress, input, horizon, freq, (id_col, time_col, target_col),
            (model, season_length, n_jobs, seed),
        )  # fmt: skip
        with (
            _warnings_and_errors(lambda exc: _bad_input(input, exc)),
            _step(progress, f"backtesting {model}: {n_windows} windows of {steps}"),
            _open_backend(backend, scheduler_address) as runner,
        ):
            cv = runner.cross_validation(
                estimator, df, steps, n_windows, step, level=levels,
                id_col=id_col, time_col=time_col, target_col=target_col,
            )  # fmt: skip
            assert isinstance(cv, pd.DataFrame)
            panel = to_panel(
                df, id_col=id_col, time_col=time_col, target_col=target_col, freq=freq,
                use_exog=False,
            )  # fmt: skip
        m = season_length or default_season_length(panel.freq)
        table = evaluate(cv, df, m, levels, id_col=id_col, time_col=time_col, target_col=target_col)
    _print_metrics(table, id_col, model, n_windows, steps, max_rows)
    if output is not None:
        table.to_csv(output, index=False)
        _err.print(f"wrote metrics for {len(table) - 1} series to {output}")


# --------------------------------------------------------------------------- store mode
def _store_hierarchy(
    level_by: list[str], store: Path | None, freq: str | None, progress: Progress
) -> Any:
    """The hierarchy of the store's cost, or a one-line error naming the option."""
    from features.exceptions import StoreError
    from features.series import hierarchy_series
    from features.store import Store
    from forecaster.config import get_settings

    path = get_settings(store=store).store_path
    with _step(progress, f"aggregating {path.name} by {' / '.join(level_by)}"):
        try:
            with Store(path, read_only=True) as st:
                hs = hierarchy_series(st, level_by, freq or "D")
        except StoreError as exc:
            raise typer.BadParameter(str(exc), param_hint="--store") from None
        except ConfigError as exc:
            hint = "--freq" if "freq" in str(exc) else "--level-by"
            raise typer.BadParameter(str(exc), param_hint=hint) from None
    for note in hs.notes:
        _err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    return hs


def _check_store_options(model: str, reconcile: str, n_jobs: int) -> None:
    if model not in MODEL_NAMES:
        raise typer.BadParameter(
            f"must be one of {', '.join(sorted(MODEL_NAMES))}, got {model!r}", param_hint="--model"
        )
    if reconcile not in RECONCILE_METHODS:
        raise typer.BadParameter(
            f"must be one of {', '.join(RECONCILE_METHODS)}, got {reconcile!r}",
            param_hint="--reconcile",
        )
    if n_jobs == 0:
        raise typer.BadParameter("must be a non-zero integer, got 0", param_hint="--n-jobs")


def _forecast_hierarchy(
    progress: Progress,
    level_by: list[str],
    store: Path | None,
    freq: str | None,
    step_text: Callable[[int], str],
    **kwargs: Any,
) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """Store mode: the hierarchy and ``forecast_hierarchy(hs, **kwargs)`` (forecast, backtest).

    ``step_text(n)`` labels the progress step for ``n`` series; an error names ``--horizon``.
    """
    from models.hierarchy import forecast_hierarchy

    hs = _store_hierarchy(level_by, store, freq, progress)
    with (
        _warnings_and_errors(lambda exc: typer.BadParameter(str(exc), param_hint="--horizon")),
        _step(progress, step_text(len(hs.ids))),
    ):
        fc, bt = forecast_hierarchy(hs, **kwargs)
    return hs, fc, bt


def _forecast_store(
    level_by: list[str],
    store: Path | None,
    horizon: str,
    output: Path,
    levels: list[int],
    freq: str | None,
    model: str,
    reconcile: str,
    n_windows: int,
    n_jobs: int,
    seed: int,
) -> None:
    _check_store_options(model, reconcile, n_jobs)
    steps = parse_horizon(horizon, freq or "D")
    with _progress() as progress:
        hs, fc, bt = _forecast_hierarchy(
            progress, level_by, store, freq,
            lambda n: f"forecasting {n} series ({model}, reconcile {reconcile})",
            horizon=steps, method=reconcile, model=model, n_windows=n_windows, level=levels,
            anchor=False, n_jobs=n_jobs, seed=seed,
        )  # fmt: skip
        n = len(hs.ids)
        with _step(progress, f"writing {output.name}"):
            cols = _FORECAST_COLUMNS + [f"{p}_{lv}" for lv in levels for p in ("lo", "hi")]
            _write_forecast(fc[cols], output)
    meta = fc.attrs["meta"]
    for note in meta["notes"][len(hs.notes) :]:
        _err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    chosen = bt[bt["model"] == meta["model_name"] + "/" + meta["reconciliation"]]
    summary = ", ".join(f"{r.level} {r.wape:.1f}%" for r in chosen.itertuples())
    _err.print(
        f"reconciliation: {meta['reconciliation']} (backtest WAPE by level: {summary}); "
        f"wrote {len(fc)} rows for {n} series to {output}",
        highlight=False,
        soft_wrap=True,
    )


def _backtest_store(
    level_by: list[str],
    store: Path | None,
    horizon: str,
    n_windows: int,
    step: int | None,
    model: str,
    output: Path | None,
    levels: list[int],
    freq: str | None,
    n_jobs: int,
    seed: int,
) -> None:
    _check_store_options(model, "auto", n_jobs)
    if levels != [80, 95]:
        raise typer.BadParameter(
            "store mode reports coverage of the 80 and 95% intervals; leave --level out",
            param_hint="--level",
        )
    steps = parse_horizon(horizon, freq or "D")
    with _progress() as progress:
        _, fc, bt = _forecast_hierarchy(
            progress, level_by, store, freq,
            lambda n: f"backtesting {n} series: {n_windows} windows",
            horizon=steps, model=model, n_windows=n_windows, step=step, anchor=True,
            n_jobs=n_jobs, seed=seed,
        )  # fmt: skip
    meta = fc.attrs["meta"]
    table = Table(
        title=f"hierarchical backtest: {n_windows} windows x {meta['backtest_horizon']} steps; "
        f"chosen {bt.attrs['meta']['chosen']}"
    )
    for col in bt.columns:
        table.add_column(col, justify="left" if col in ("level", "model") else "right")
    chosen = bt.attrs["meta"]["chosen"]
    for r in bt.itertuples(index=False):
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in r]
        table.add_row(*cells, style="bold" if r.model == chosen else None)
    _out.print(table)
    for note in meta["notes"]:
        _err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if output is not None:
        bt.to_csv(output, index=False)
        _err.print(f"wrote {len(bt)} metric rows to {output}")


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


# ------------------------------------------------------------------ backends (issue 10)
def _check_backend(backend: str, scheduler_address: str | None, level_by: list[str] | None) -> None:
    from models.backends import BACKENDS

    if backend not in BACKENDS:
        raise typer.BadParameter(
            f"must be one of {', '.join(BACKENDS)}, got {backend!r}", param_hint="--backend"
        )
    if scheduler_address and backend != "dask":
        raise typer.BadParameter(
            f"is only used with --backend dask, got {scheduler_address!r}",
            param_hint="--scheduler-address",
        )
    if backend != "local" and level_by:
        raise typer.BadParameter(
            "store mode (--level-by) runs locally; use --backend dask with --input",
            param_hint="--backend",
        )


def _open_backend(backend: str, scheduler_address: str | None) -> Backend:
    from models.backends import get_backend

    try:
        return get_backend(backend, scheduler_address)
    except ConfigError as exc:
        hint = "--scheduler-address" if scheduler_address else "--backend"
        raise typer.BadParameter(str(exc), param_hint=hint) from None
