"""The ``forecaster`` command line (Typer)."""

from __future__ import annotations

import typer

from forecaster import __version__
from forecaster.commands import (
    alerts,
    data,
    demo,
    detect,
    experiment,
    forecast,
    ingest_live,
    models_cmd,
    optimize,
    place,
)
from forecaster.commands import report as report_cmd
from forecaster.commands import scenario as scenario_cmd
from forecaster.commands import serve as serve_cmd
from forecaster.commands import tune as tune_cmd

app = typer.Typer(
    name="forecaster",
    help="FinOps forecasting and recommendations for AI container workloads on AWS ECS and EKS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ingest_live.register(data.ingest_app)
app.add_typer(data.ingest_app, name="ingest")
app.command("tags")(data.tags)
app.command("showback")(data.showback)
app.command("demo")(demo.demo)
app.command("run")(demo.run)
app.command("forecast")(forecast.forecast)
app.command("backtest")(forecast.backtest)
app.command("detect")(detect.detect)
app.command("alerts")(alerts.alerts)
app.add_typer(alerts.policy_app, name="policy")
app.command("feedback")(alerts.feedback)
app.command("place")(place.place)
app.command("pack")(optimize.pack)
app.command("rightsize")(optimize.rightsize)
app.command("plan")(optimize.plan)
app.command("report")(report_cmd.report)
app.add_typer(scenario_cmd.scenario_app, name="scenario")
app.command("serve")(serve_cmd.serve)
app.add_typer(models_cmd.models_app, name="models")
app.command("tune")(tune_cmd.tune)
app.add_typer(experiment.experiment_app, name="experiment")


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """FinOps forecasting and recommendations for AI container workloads."""


if __name__ == "__main__":  # pragma: no cover
    app()
