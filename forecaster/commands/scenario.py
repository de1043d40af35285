"""``forecaster scenario run`` and ``forecaster scenario compare``: what-if scenarios.

A scenario is a YAML file of drivers (growth per team, new workloads, Spot share per
workload class, GPU sharing, right-sizing, Savings Plan); see
``examples/scenarios/*.yaml`` and :mod:`optimizer.scenarios` for what each driver does.
Both commands read the baseline (forecast, fleet) from the store and print monthly cost
with 80 % intervals and the capacity needed, side by side with the baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.exceptions import ConfigError, ForecasterError
from forecaster.commands._options import JsonOpt, StoreOpt
from forecaster.config import get_settings
from forecaster.console import err, fail, frame_table, out, print_json

if TYPE_CHECKING:
    import pandas as pd

    from optimizer.scenarios import ScenarioResult

scenario_app = typer.Typer(
    help="What-if scenarios: growth, new workloads, Spot, GPU sharing, right-sizing, commitments.",
    no_args_is_help=True,
)

ScenarioFiles = Annotated[
    list[Path],
    typer.Argument(help="Scenario YAML files (see examples/scenarios/).", show_default=False),
]
TimeLimitOpt = Annotated[
    float,
    typer.Option(
        "--time-limit", min=0.05, max=600.0, help="Seconds for each fleet packing (per group)."
    ),
]
SaveOpt = Annotated[
    bool,
    typer.Option(
        "--save", help="Store the results as scenario_monthly / scenario_capacity (for the report)."
    ),
]


def _run_all(
    paths: list[Path], store: Path | None, save: bool, time_limit: float = 1.0
) -> list[ScenarioResult]:
    """Load the specs (all of them first, so a bad file fails fast), run them with the baseline."""
    from features.store import Store
    from forecaster.scenarios_io import baseline_from_store, save_results
    from optimizer.fleet import FleetConfig
    from optimizer.scenarios import baseline_result, load_scenario, run_scenario

    specs = [load_scenario(p) for p in paths]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"scenario names must be unique, repeated: {dup}")
    settings = get_settings(store=store)
    with Store(settings.store_path, read_only=not save) as st:
        base = baseline_from_store(st)
        horizon = max((s.horizon_months or 0) for s in specs) or None
        cfg = FleetConfig(time_limit=time_limit)
        results = [baseline_result(base, horizon_months=horizon, config=cfg)]
        results += [run_scenario(s, base, config=cfg) for s in specs]
        if save:
            save_results(st, results)
    return results


def side_by_side(results: list[ScenarioResult]) -> pd.DataFrame:
    """Monthly cost per scenario as ``cost [lo_80 - hi_80]`` strings, one column each."""
    from optimizer.scenarios import compare

    wide = compare(results)
    table = wide[["month"]].copy()
    table["month"] = [m if isinstance(m, str) else m.strftime("%Y-%m") for m in wide["month"]]
    for r in results:
        n = r.name
        table[n] = [
            f"${c:,.0f} [{lo:,.0f}–{hi:,.0f}]"
            for c, lo, hi in zip(wide[n], wide[f"{n}_lo_80"], wide[f"{n}_hi_80"], strict=True)
        ]
    return table


def _print(results: list[ScenarioResult]) -> None:
    from optimizer.scenarios import compare_capacity

    out.print(frame_table(side_by_side(results), "Monthly cost, USD [80 % interval]", max_rows=40))
    cap = compare_capacity(results)
    out.print(frame_table(cap, "Capacity at peak demand (nodes; GPUs)", max_rows=60))
    summary = [
        {
            "scenario": r.name,
            "total_cost": r.summary["total_cost"],
            "vs_baseline": r.summary["total_cost"] - results[0].summary["total_cost"],
            "gpus": r.summary["gpus"],
            "nodes": r.summary["nodes"],
            "spot_share_pct": r.summary["spot_share_pct"],
        }
        for r in results
    ]
    import pandas as pd

    out.print(
        frame_table(
            pd.DataFrame(summary),
            "Summary over the horizon",
            money=("total_cost", "vs_baseline"),
            pct=("spot_share_pct",),
        )
    )
    for note in dict.fromkeys(n for r in results for n in r.notes):
        err.print(f"[dim]{note}[/]", highlight=False)


def _json(results: list[ScenarioResult]) -> dict[str, Any]:
    def records(df: pd.DataFrame) -> list[dict[str, Any]]:
        d = df.copy()
        if "month" in d:
            d["month"] = [str(m)[:7] for m in d["month"]]
        return [{k: v for k, v in r.items()} for r in d.to_dict("records")]

    return {
        "scenarios": [
            {
                "name": r.name,
                "summary": r.summary,
                "monthly": records(r.monthly),
                "capacity": records(r.capacity),
                "notes": list(r.notes),
            }
            for r in results
        ]
    }


def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    save: SaveOpt = False,
    time_limit: TimeLimitOpt = 1.0,
) -> None:
    """Run one scenario and print it beside the baseline."""
    try:
        results = _run_all([scenario], store, save, time_limit)
    except ForecasterError as exc:
        fail(str(exc))
    if as_json:
        print_json(_json(results))
        return
    _print(results)


def compare_cmd(
    scenarios: ScenarioFiles,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    save: SaveOpt = False,
    time_limit: TimeLimitOpt = 1.0,
) -> None:
    """Run several scenarios and compare them side by side with the baseline."""
    try:
        results = _run_all(list(scenarios), store, save, time_limit)
    except ForecasterError as exc:
        fail(str(exc))
    if as_json:
        print_json(_json(results))
        return
    _print(results)


scenario_app.command("run")(run)
scenario_app.command("compare")(compare_cmd)
