"""``forecaster experiment run NAME`` and ``forecaster experiment list``.

Contract (issue #6)
    ``run`` executes a named, versioned definition from ``experiments/configs``
    (or a YAML path): optional tuning, rolling-origin backtest with metrics per
    hierarchy level, fit, forecast, MLflow run, registration and guarded
    promotion. Prints the metrics and the registered version; ``--json`` prints
    the result object. A tracking failure does not fail the command: it says so
    and keeps the record locally. Bad definitions exit 2 naming file and key.
"""

from __future__ import annotations

from typing import Annotated

import typer

from features.exceptions import ForecasterError
from forecaster.commands._options import JsonOpt
from forecaster.commands.tune import TrackingUriOpt
from forecaster.config import get_settings
from forecaster.console import err, fail, out, print_json

__all__ = ["experiment_app"]

experiment_app = typer.Typer(
    help="Named, versioned experiment definitions (experiments/configs/*.yaml).",
    no_args_is_help=True,
)


@experiment_app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """List the experiment definitions."""
    from experiments.runner import list_experiments

    try:
        items = list_experiments()
    except ForecasterError as exc:
        fail(str(exc))
    if as_json:
        print_json({"experiments": items})
        return
    for item in items:
        out.print(f"[bold]{item['name']}[/] v{item['version']}: {item['description']}")


@experiment_app.command("run")
def run_cmd(
    name: Annotated[str, typer.Argument(help="Experiment name (or a YAML file).")],
    register: Annotated[
        bool | None,
        typer.Option(
            "--register/--no-register", help="Override the definition's register section."
        ),
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a named experiment: backtest, fit, forecast, track, register, promote."""
    from experiments.runner import run_experiment

    settings = get_settings()
    err.print(f"running experiment [bold]{name}[/] (data dir {settings.data_dir})")
    try:
        result = run_experiment(
            name, data_dir=settings.data_dir, tracking_uri=tracking_uri, register=register
        )
    except ForecasterError as exc:
        fail(str(exc))
    if as_json:
        print_json(result.to_dict())
        return
    m = result.metrics
    out.print(
        f"{result.name} v{result.version}: {result.n_series} series, {result.n_rows} rows, "
        f"dataset {result.dataset_digest}"
    )
    shown = [
        k for k in ("wape", "smape", "mase", "coverage_80", "coverage_95", "total.wape") if k in m
    ]
    out.print("  " + "  ".join(f"{k}={m[k]:.3f}" for k in shown))
    if result.tuning:
        t = result.tuning
        out.print(f"  tuning: default WAPE {t['default_score']:.3f} -> best {t['best_score']:.3f}")
    if result.tracking_offline:
        out.print("[yellow]MLflow tracking failed; the record was kept locally[/]")
    else:
        out.print(f"  MLflow run {result.mlflow_run_id}")
    if result.registered:
        r = result.registered
        state = "champion" if r.get("promoted") else "challenger"
        out.print(f"  registered {r['name']} v{r['version']} ({state}): {r.get('reason', '')}")
