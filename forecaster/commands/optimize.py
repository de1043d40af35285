"""``forecaster pack``, ``forecaster rightsize`` and ``forecaster plan``.

Plain Typer-annotated functions; :mod:`forecaster.cli` registers them. Bad input exits
with code 2 and a message naming the file, row (1-based line, header = line 1) and column.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from features.exceptions import ForecasterError, IngestError
from forecaster.console import err, fail, frame_table, out, print_json

ITEM_KEYS = ("item", "count")
BIN_KEYS = ("bin_type", "cost", "max_count")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise IngestError("file not found", path=str(path))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise IngestError("file is empty", path=str(path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise IngestError(f"not a readable CSV: {exc}", path=str(path)) from None
    df.columns = [str(c).strip() for c in df.columns]
    dup = [c for c in df.columns if list(df.columns).count(c) > 1]
    if dup:
        raise IngestError("duplicated column", path=str(path), column=dup[0])
    return df


def _number(
    df: pd.DataFrame,
    col: str,
    path: Path,
    *,
    integer: bool = False,
    allow_empty: bool = False,
) -> np.ndarray:
    values = np.empty(len(df))
    for i, raw in enumerate(df[col].tolist()):
        text = str(raw).strip()
        if text == "" and allow_empty:
            values[i] = np.nan
            continue
        try:
            v = float(text)
        except ValueError:
            raise IngestError(
                f"must be a number, got {text!r}", path=str(path), row=i + 2, column=col
            ) from None
        if not math.isfinite(v):
            raise IngestError(
                f"must be a finite number, got {text!r}", path=str(path), row=i + 2, column=col
            )
        if v < 0:
            raise IngestError(f"must be >= 0, got {text!r}", path=str(path), row=i + 2, column=col)
        if integer and v != int(v):
            raise IngestError(
                f"must be a whole number, got {text!r}", path=str(path), row=i + 2, column=col
            )
        values[i] = v
    return values


def _names(df: pd.DataFrame, col: str, path: Path) -> list[str]:
    names = [str(v).strip() for v in df[col].tolist()]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if not n:
            raise IngestError("must not be empty", path=str(path), row=i + 2, column=col)
        if n in seen:
            raise IngestError(
                f"duplicate name {n!r} (first on row {seen[n] + 2})",
                path=str(path),
                row=i + 2,
                column=col,
            )
        seen[n] = i
    return names


def read_pack_inputs(items_path: Path, bins_path: Path) -> tuple[list[Any], list[Any], list[str]]:
    """Read and validate the ``pack`` CSV contract.

    Returns
    -------
    tuple
        ``(items, bin types, dimension names)`` for :func:`optimizer.packing.solve`.

    Raises
    ------
    IngestError
        Naming the file, row and column of the first problem.
    """
    from optimizer.packing import BinType, Item

    items_df = _read_csv(items_path)
    bins_df = _read_csv(bins_path)
    for df, path, keys in ((items_df, items_path, ITEM_KEYS), (bins_df, bins_path, BIN_KEYS[:2])):
        for k in keys:
            if k not in df.columns:
                raise IngestError(
                    f"missing required column; got columns {list(df.columns)}",
                    path=str(path),
                    column=k,
                )
    dims = [c for c in items_df.columns if c not in ITEM_KEYS]
    bin_dims = [c for c in bins_df.columns if c not in BIN_KEYS]
    if not dims:
        raise IngestError(
            "needs at least one resource dimension column besides item,count",
            path=str(items_path),
        )
    for c in dims:
        if c not in bin_dims:
            raise IngestError(
                "dimension column of the items file is missing here", path=str(bins_path), column=c
            )
    for c in bin_dims:
        if c not in dims:
            raise IngestError(
                "dimension column of the bins file is missing here", path=str(items_path), column=c
            )
    item_names = _names(items_df, "item", items_path)
    counts = _number(items_df, "count", items_path, integer=True)
    sizes = np.column_stack([_number(items_df, c, items_path) for c in dims])
    bin_names = _names(bins_df, "bin_type", bins_path)
    costs = _number(bins_df, "cost", bins_path)
    caps = np.column_stack([_number(bins_df, c, bins_path) for c in dims])
    if "max_count" in bins_df.columns:
        maxc = _number(bins_df, "max_count", bins_path, integer=True, allow_empty=True)
    else:
        maxc = np.full(len(bins_df), np.nan)
    if len(bins_df) == 0:
        raise IngestError("needs at least one bin type row", path=str(bins_path))
    slack = 1e-9 * np.maximum(np.abs(caps), 1.0)
    fits = np.all(sizes[:, None, :] <= (caps + slack)[None, :, :], axis=2)
    fits &= ~(maxc == 0)[None, :]
    for i in np.flatnonzero(~fits.any(axis=1) & (counts > 0)):
        over = [c for j, c in enumerate(dims) if sizes[i, j] > caps[:, j].max() + slack[:, j].max()]
        col = over[0] if over else dims[0]
        raise IngestError(
            f"item {item_names[i]!r} fits no bin type (no bin type holds all of its sizes)",
            path=str(items_path),
            row=int(i) + 2,
            column=col,
        )
    items = [
        Item(n, tuple(float(v) for v in sizes[i]), int(counts[i])) for i, n in enumerate(item_names)
    ]
    bins = [
        BinType(
            n,
            tuple(float(v) for v in caps[j]),
            float(costs[j]),
            None if np.isnan(maxc[j]) else int(maxc[j]),
        )
        for j, n in enumerate(bin_names)
    ]
    return items, bins, dims


def pack(
    items: Path = typer.Option(
        ..., "--items", help="CSV: item,count plus one column per dimension."
    ),
    bins: Path = typer.Option(
        ..., "--bins", help="CSV: bin_type,cost[,max_count] plus the same dimension columns."
    ),
    output: Path = typer.Option(..., "--output", help="Plan CSV: bin_id,bin_type,item,count."),
    time_limit: float = typer.Option(
        9.0, "--time-limit", help="Seconds for the solver (9 s keeps a run under 10 s)."
    ),
) -> None:
    """Pack items into the cheapest bins (multi-dimensional vector bin packing)."""
    from optimizer.packing import solve

    if not (math.isfinite(time_limit) and time_limit > 0):
        fail(f"parameter --time-limit must be a positive number, got {time_limit!r}")
    try:
        item_list, bin_list, dims = read_pack_inputs(items, bins)
        plan = solve(item_list, bin_list, time_limit=time_limit, dimensions=dims)
    except ForecasterError as exc:
        fail(str(exc))
    if plan.status == "infeasible":
        left = ", ".join(f"{n} x{c}" for n, c in plan.unplaced[:5])
        fail(f"max_count limits leave copies unplaced ({left}); nothing was written")
    frame = plan.assignment_frame()
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False)
    err.print(
        f"{plan.n_bins} bins, cost {plan.total_cost:,.4f}, lower bound {plan.lower_bound:,.4f}, "
        f"gap {plan.gap:.2%}, {plan.status} ({plan.method}, {plan.seconds:.2f} s) -> {output}",
        highlight=False,
    )


def _read_utilization(path: Path) -> pd.DataFrame:
    from features.schema import validate_frame

    if not path.exists():
        raise IngestError("file not found", path=str(path))
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise IngestError(f"cannot read: {exc}", path=str(path)) from None
    if "ds" not in df.columns:
        raise IngestError("missing required column", path=str(path), column="ds")
    if not isinstance(df["ds"].dtype, pd.DatetimeTZDtype):
        try:
            df["ds"] = pd.to_datetime(df["ds"], utc=True)
        except (ValueError, TypeError) as exc:
            raise IngestError(f"not a timestamp: {exc}", path=str(path), column="ds") from None
    else:
        df["ds"] = df["ds"].dt.tz_convert("UTC")
    validate_frame(df, "utilization")
    return df


def rightsize(
    utilization: Path = typer.Argument(..., help="Utilization frame (parquet or CSV)."),
    policy: str = typer.Option(
        "vpa", "--policy", help="vpa (P90+15% CPU, P99.5+20% memory) or risk."
    ),
    catalog: Path | None = typer.Option(
        None, "--catalog", help="Catalog JSON (default: packaged)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the recommendations as JSON."),
    output: Path | None = typer.Option(None, "--output", help="Write the recommendations (CSV)."),
    top: int = typer.Option(20, "--top", help="Rows shown in the table."),
) -> None:
    """Recommend per-replica CPU, memory and GPU requests with savings and risk."""
    from optimizer.catalog import load_catalog
    from optimizer.rightsizing import rightsize as run_rightsize
    from optimizer.rightsizing import risk_budgeted, vpa_like

    if policy not in ("vpa", "risk"):
        fail(f"parameter --policy must be vpa or risk, got {policy!r}")
    try:
        df = _read_utilization(utilization)
        cat = load_catalog(catalog)
        recs = run_rightsize(df, cat, vpa_like() if policy == "vpa" else risk_budgeted())
    except ForecasterError as exc:
        fail(str(exc))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        recs.to_csv(output, index=False)
    if as_json:
        print_json(
            {
                "policy": policy,
                "workloads": len(recs),
                "saving_usd_per_month": float(recs["saving_usd_per_month"].sum()),
                "recommendations": recs.to_dict(orient="records"),
            }
        )
        return
    shown = recs[
        [
            "workload_id",
            "cpu_request",
            "cpu_recommended",
            "memory_request_gib",
            "memory_recommended_gib",
            "gpu_request",
            "gpu_recommendation",
            "risk",
            "saving_usd_per_month",
        ]
    ].copy()
    for c in ("cpu_request", "cpu_recommended", "memory_request_gib", "memory_recommended_gib"):
        shown[c] = shown[c].round(2)
    shown["risk"] = shown["risk"] * 100
    out.print(
        frame_table(
            shown,
            f"Right-sizing ({policy}): {len(recs)} workloads, "
            f"${recs['saving_usd_per_month'].sum():,.0f}/month",
            money=("saving_usd_per_month",),
            pct=("risk",),
            max_rows=top,
        )
    )


def plan(
    utilization: Path = typer.Argument(..., help="Utilization frame (parquet or CSV)."),
    quantile: float = typer.Option(0.9, "--quantile", help="Replica demand quantile."),
    grow: list[str] = typer.Option([], "--grow", help="TEAM=FACTOR, e.g. nlp=1.3 (repeatable)."),
    spot_kind: list[str] = typer.Option([], "--spot-kind", help="Move a workload kind to Spot."),
    mig: bool = typer.Option(False, "--mig", help="Turn on MIG for fractional GPU requests."),
    on_demand_floor: float = typer.Option(
        0.3, "--on-demand-floor", help="On-demand share for production."
    ),
    catalog: Path | None = typer.Option(
        None, "--catalog", help="Catalog JSON (default: packaged)."
    ),
    time_limit: float = typer.Option(5.0, "--time-limit", help="Seconds per packing."),
    as_json: bool = typer.Option(False, "--json", help="Print the plans as JSON."),
    output: Path | None = typer.Option(None, "--output", help="Write the node list (CSV)."),
) -> None:
    """Plan the cheapest fleet for the workloads, and a what-if scenario beside it."""
    from optimizer.catalog import load_catalog
    from optimizer.fleet import FleetConfig, Scenario, workloads_from_frame
    from optimizer.fleet import plan as run_plan

    growth: dict[str, float] = {}
    for g in grow:
        key, _, val = g.partition("=")
        try:
            growth[key.strip()] = float(val)
        except ValueError:
            fail(f"parameter --grow must look like TEAM=FACTOR, got {g!r}")
    try:
        df = _read_utilization(utilization)
        cat = load_catalog(catalog)
        workloads = workloads_from_frame(df, quantile=quantile)
        cfg = FleetConfig(on_demand_floor=on_demand_floor, time_limit=time_limit)
        base = run_plan(workloads, cat, config=cfg)
        plans = [base]
        if growth or spot_kind or mig:
            scen = Scenario("what-if", growth=growth, spot_kinds=tuple(spot_kind), use_mig=mig)
            plans.append(run_plan(workloads, cat, scenario=scen, config=cfg))
    except ForecasterError as exc:
        fail(str(exc))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        nodes = pd.concat([p.nodes().assign(scenario=p.scenario) for p in plans], ignore_index=True)
        nodes.to_csv(output, index=False)
    if as_json:
        print_json({"plans": [p.summary() for p in plans]})
        return
    for p in plans:
        s = p.summary()
        out.print(
            frame_table(
                p.nodes(),
                f"Fleet plan [{p.scenario}]: ${s['total_usd_per_hour']:,.2f}/h "
                f"(${s['total_usd_per_month']:,.0f}/month), gap {p.gap:.2%}",
                money=("usd_per_hour",),
            )
        )
