"""``forecaster models list|promote|rollback``: the MLflow model registry from the shell.

Contract (issue #6)
    ``forecaster models list [--json]`` prints every registered model with its
    versions, aliases (``champion``, ``challenger``), backtest metrics and the
    last promotion decision; ``--json`` prints ``{"models": [...]}`` (see
    :func:`models.registry.list_models`).

    ``forecaster models promote NAME VERSION [--metric wape] [--margin 0.02]``
    promotes through the guardrail (lower metric is better); ``--force``
    promotes without comparing (a partial backtest is still refused). Exit 1
    when the version is kept as challenger.

    ``forecaster models rollback NAME`` moves ``champion`` back to the
    previous champion.

    The registry is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the
    embedded SQLite under ``FORECASTER_DATA_DIR/mlflow``. Bad input (unknown
    model or version) exits 2; an unreachable registry exits 1.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from features.exceptions import ConfigError, ForecasterError, StoreError, TrackingError
from forecaster.commands._options import JsonOpt
from forecaster.config import get_settings
from forecaster.console import err, fail, out, print_json

__all__ = ["models_app"]

models_app = typer.Typer(
    help="The model registry: list versions, promote a challenger, roll back the champion.",
    no_args_is_help=True,
)

TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking/registry URI (default: MLFLOW_TRACKING_URI, else embedded SQLite).",
    ),
]


def _uri(tracking_uri: str | None) -> str:
    from models.tracking import resolve_tracking_uri

    return resolve_tracking_uri(tracking_uri, data_dir=get_settings().data_dir)


def _guard(exc: ForecasterError) -> None:
    # Registry down is not the user's input: exit 1; a wrong name or version: exit 2.
    fail(str(exc), code=1 if isinstance(exc, TrackingError | StoreError) else 2)


@models_app.command("list")
def list_cmd(tracking_uri: TrackingOpt = None, as_json: JsonOpt = False) -> None:
    """List registered models with versions, aliases and backtest metrics."""
    from models.registry import list_models

    try:
        models = list_models(_uri(tracking_uri))
    except ForecasterError as exc:
        _guard(exc)
    if as_json:
        print_json({"models": models})
        return
    if not models:
        out.print(
            "no registered models yet (train with `forecaster demo` or `forecaster tune --register`)"
        )
        return
    from rich.table import Table

    for m in models:
        table = Table(title=f"{m['name']}", title_justify="left")
        for col in ("version", "aliases", "metrics", "backtest", "created", "last decision"):
            table.add_column(col)
        for v in m["versions"]:
            table.add_row(
                v["version"],
                ", ".join(v["aliases"]),
                _metrics_text(v["metrics"]),
                v["backtest_status"],
                v["created"][:19].replace("T", " "),
                v["promotion"] or "",
            )
        out.print(table)


def _metrics_text(metrics: dict[str, Any]) -> str:
    keys = sorted(metrics, key=lambda k: (k != "wape", k))[:4]
    return " ".join(f"{k}={metrics[k]:.3g}" if metrics[k] is not None else f"{k}=nan" for k in keys)


@models_app.command("promote")
def promote_cmd(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version to promote.")],
    metric: Annotated[
        str, typer.Option("--metric", help="Backtest metric compared (lower is better).")
    ] = "wape",
    margin: Annotated[
        float,
        typer.Option("--margin", min=0.0, max=0.99, help="Relative gain needed over the champion."),
    ] = 0.0,
    force: Annotated[bool, typer.Option("--force", help="Promote without the comparison.")] = False,
    tracking_uri: TrackingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote a version to champion if its backtest beats the champion's by the margin."""
    from models.registry import promote_if_better, set_champion

    try:
        if force:
            decision = set_champion(
                name,
                version,
                reason="promoted by hand (--force)",
                metric=metric,
                tracking_uri=_uri(tracking_uri),
            )
        else:
            decision = promote_if_better(
                name, version, metric=metric, margin=margin, tracking_uri=_uri(tracking_uri)
            )
    except (ConfigError, TrackingError, StoreError) as exc:
        _guard(exc)
    if as_json:
        print_json({"name": name, "version": version, **decision.__dict__})
    elif decision.promoted:
        out.print(f"[green]{name} v{version} is champion[/]: {decision.reason}")
    else:
        err.print(f"[yellow]{name} v{version} stays challenger[/]: {decision.reason}")
    if not decision.promoted:
        raise typer.Exit(1)


@models_app.command("rollback")
def rollback_cmd(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    tracking_uri: TrackingOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move champion back to the previous champion."""
    from models.registry import rollback

    try:
        ref = rollback(name, tracking_uri=_uri(tracking_uri))
    except ForecasterError as exc:
        _guard(exc)
    if as_json:
        print_json(
            {
                "name": ref.name,
                "version": ref.version,
                "run_id": ref.run_id,
                "aliases": list(ref.aliases),
            }
        )
    else:
        out.print(f"{name}: champion is version {ref.version} again")
