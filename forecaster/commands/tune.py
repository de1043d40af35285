"""``forecaster tune``: an Optuna study on daily cost per team, scored by rolling-origin WAPE.

Contract (issue #6)
    ``forecaster tune [--trials N] [--timeout S] [--store PATH] [--study lgbm|stat]
    [--study-name NAME] [--register] [--json]``

    Reads daily effective cost per team from the store, scores the model
    family's defaults and then ``N`` Optuna trials (TPE with a seed, median
    pruning after the first fold) on the same rolling origins, each trial a
    nested MLflow run. The study lives in ``FORECASTER_DATA_DIR/optuna/studies.db``
    so rerunning the same command resumes it. Prints default and best WAPE and
    the best configuration; ``--register`` refits the best configuration on all
    the data, registers it (alias ``challenger``) and promotes it to
    ``champion`` when its backtest beats the current champion by ``--margin``.

    Exit codes: 0 done; 2 bad input (missing store, bad option); 1 registry
    failure with ``--register`` (the study itself is kept).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from features.exceptions import ForecasterError, TrackingError
from forecaster.commands._options import JsonOpt, StoreOpt
from forecaster.config import get_settings
from forecaster.console import err, fail, out, print_json, progress

if TYPE_CHECKING:
    from experiments.tuning import TuneResult

__all__ = ["tune"]


#: ``--tracking-uri`` of the MLflow commands that track and register (tune, experiment).
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else embedded SQLite).",
    ),
]


def tune(
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Finished trials wanted in the study.")
    ] = 20,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="Stop starting trials after S seconds.")
    ] = None,
    store: StoreOpt = None,
    study: Annotated[
        str,
        typer.Option("--study", help="Search space: lgbm (params + features) or stat (ETS/ARIMA)."),
    ] = "lgbm",
    study_name: Annotated[
        str | None,
        typer.Option("--study-name", help="Study name in the storage (same name resumes)."),
    ] = None,
    horizon: Annotated[
        int, typer.Option("--horizon", min=1, help="Days per backtest window.")
    ] = 14,
    n_windows: Annotated[int, typer.Option("--n-windows", min=1, help="Rolling origins.")] = 4,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the TPE sampler and the models.")
    ] = 0,
    n_jobs: Annotated[int, typer.Option("--n-jobs", help="Threads per model fit.")] = 1,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Register the best configuration.")
    ] = False,
    name: Annotated[str, typer.Option("--name", help="Registered model name.")] = "team-daily",
    margin: Annotated[
        float,
        typer.Option(
            "--margin", min=0.0, max=0.99, help="Relative gain needed to replace the champion."
        ),
    ] = 0.0,
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tune a forecaster on the store's daily cost per team (Optuna + MLflow)."""
    from experiments.data import load_team_daily
    from experiments.tuning import STUDIES, register_best
    from experiments.tuning import tune as run_study

    if study not in STUDIES:
        raise typer.BadParameter(
            f"must be one of {', '.join(STUDIES)}, got {study!r}", param_hint="--study"
        )
    settings = get_settings(store=store)
    path = Path(settings.store_path)
    try:
        df = load_team_daily(path)
    except ForecasterError as exc:
        fail(str(exc))
    err.print(
        f"tuning [bold]{study}[/] on {df['unique_id'].nunique()} team series x "
        f"{df.groupby('unique_id').size().max()} days from {path} "
        f"({n_windows} windows of {horizon} days)"
    )
    best = [math.inf]
    with progress(enabled=not as_json) as bar:
        task = bar.add_task("defaults", total=trials + 1)

        def on_trial(info: dict) -> None:
            value = info.get("value")
            if value is not None and info["state"] in ("COMPLETE", "DEFAULT"):
                best[0] = min(best[0], float(value))
            label = "defaults" if info["state"] == "DEFAULT" else f"trial {info.get('number')}"
            bar.update(
                task,
                advance=1,
                description=f"{label} {info['state'].lower()} · best WAPE {best[0]:.2f}%",
            )

        try:
            result = run_study(
                df,
                study=study,
                study_name=study_name,
                n_trials=trials,
                timeout=timeout,
                h=horizon,
                n_windows=n_windows,
                seed=seed,
                n_jobs=n_jobs,
                data_dir=settings.data_dir,
                tracking_uri=tracking_uri,
                callback=on_trial,
            )
        except ForecasterError as exc:
            fail(str(exc))
        bar.update(task, completed=trials + 1)
    code = 0
    if register:
        try:
            register_best(
                df,
                result,
                name=name,
                h=horizon,
                n_windows=n_windows,
                seed=seed,
                n_jobs=n_jobs,
                margin=margin,
                tracking_uri=tracking_uri,
                data_dir=settings.data_dir,
            )
        except TrackingError as exc:
            err.print(
                f"[bold red]registration failed:[/] {exc}; the study is kept in {result.storage}"
            )
            code = 1
    if as_json:
        print_json(result.to_dict())
    else:
        _print(result)
    if code:
        raise typer.Exit(code)


def _print(r: TuneResult) -> None:
    from rich.table import Table

    table = Table(title=f"study {r.study_name} ({r.study})", title_justify="left")
    table.add_column("configuration")
    table.add_column("backtest WAPE", justify="right")
    table.add_row("defaults", f"{r.default_score:.3f}%")
    best = f"best (trial {r.best_trial})" if r.best_trial >= 0 else "best (the defaults)"
    table.add_row(best, f"{r.best_score:.3f}%")
    out.print(table)
    out.print(
        f"improvement {r.improvement_pct:.1f}% · trials {r.n_trials} ({r.n_complete} complete, "
        f"{r.n_pruned} pruned, {r.n_failed} failed) · {r.seconds:.0f} s"
    )
    out.print(f"best configuration: {r.best_config}")
    if r.tracking_offline:
        out.print("[yellow]MLflow tracking failed; trial records were kept locally[/]")
    else:
        out.print(f"MLflow run {r.mlflow_run_id}; Optuna storage {r.storage}")
    if r.registered:
        reg = r.registered
        verdict = "champion" if reg["promoted"] else "challenger"
        out.print(f"registered {reg['name']} v{reg['version']} as {verdict}: {reg['reason']}")
