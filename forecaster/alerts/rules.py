"""Alert rules from the FinOps playbook, each a small strategy behind :class:`Rule`.

* :class:`DailySpendThreshold`: daily spend above a fixed amount.
* :class:`SpendSpike`: spend up more than ``pct`` % period over period.
* :class:`IdleResources`: GPU workloads under ``threshold`` utilization for ``hours``.
* :class:`UntaggedSpend`: spend missing required tags above a share.
* :class:`SpotPolicy`: on-demand share of a scope (production) below a minimum.
* :class:`CostAnomaly`: a causal streaming detector (:mod:`models.anomaly`) over
  hourly cost per team, each flag explained by its root causes.

Budget rules live in :mod:`forecaster.alerts.budgets`. Every rule validates its
parameters in ``__init__`` (raising :class:`~features.exceptions.ConfigError`)
and is causal: each alert uses data up to the end of its period only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.exceptions import ConfigError
from forecaster.alerts.base import (
    USAGE_CATEGORIES,
    Alert,
    AlertContext,
    Rule,
    Severity,
    severity_rank,
)
from models.anomaly.base import StreamingDetector
from models.anomaly.rootcause import (
    DEFAULT_DIMENSIONS,
    MISSING_VALUE,
    RootCauseReport,
    aggregate_series,
    root_cause,
)

Compare = Literal["previous", "season"]


# -- validation helpers ---------------------------------------------------------------------
def _number(
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)):
        raise ConfigError(f"parameter {name} must be a finite number, got {value!r}")
    v = float(value)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ConfigError(
            f"parameter {name} must be {'>' if lo_open else '>='} {lo:g}, got {value!r}"
        )
    if hi is not None and v > hi:
        raise ConfigError(f"parameter {name} must be <= {hi:g}, got {value!r}")
    return v


def _int(name: str, value: Any, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ConfigError(f"parameter {name} must be an int >= {lo}, got {value!r}")
    return int(value)


def _severity(value: Any) -> Severity:
    severity_rank(value)
    return value  # type: ignore[no-any-return]


def _scope(where: Mapping[str, Any] | None) -> dict[str, str]:
    if where is None:
        return {}
    if not isinstance(where, Mapping):
        raise ConfigError(f"parameter where must be a mapping of dimension to value, got {where!r}")
    return {str(k): (MISSING_VALUE if v is None else str(v)) for k, v in where.items()}


def _freq(value: str) -> pd.Timedelta:
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(value))
    except (ValueError, TypeError):
        raise ConfigError(
            f"parameter freq must be a fixed frequency like 'h' or 'D', got {value!r}"
        ) from None
    return step


def _money(v: float, currency: str = "USD") -> str:
    sign = "-" if v < 0 else ""
    sym = "$" if currency == "USD" else f"{currency} "
    return f"{sign}{sym}{abs(v):,.2f}"


def explain(
    ctx: AlertContext,
    start: pd.Timestamp,
    end: pd.Timestamp,
    scope: Mapping[str, str],
    *,
    freq: str = "h",
    baseline: Literal["seasonal", "trailing"] = "seasonal",
    cycles: int = 4,
    trailing: int | None = None,
    season: str = "7D",
    charge_categories: Sequence[str] | None = USAGE_CATEGORIES,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    n: int = 5,
) -> tuple[tuple[dict[str, Any], ...], RootCauseReport | None]:
    """Root causes of ``[start, end)`` in ``scope`` (dimensions not in the data are skipped)."""
    step = _freq(freq)
    lookback = max(_freq(season) * cycles, step * (trailing or 1)) + step
    frame = ctx.frame(charge_categories=charge_categories, start=start - lookback, end=end)
    dims = [d for d in dimensions if d in frame.columns and d not in scope]
    if not dims or frame.empty:
        return (), None
    where = {k: (None if v == MISSING_VALUE else v) for k, v in scope.items()}
    report = root_cause(
        frame,
        start,
        end,
        dims,
        freq=freq,
        baseline=baseline,
        season=season,
        cycles=cycles,
        trailing=trailing,
        where=where,
        history_start=max(ctx.data_start, start - lookback),
    )
    return tuple(report.to_records(n)), report


def _eval_points(ctx: AlertContext) -> list[pd.Timestamp]:
    """Day ends in the report window, plus the end of the data (a live run mid-day)."""
    days = ctx.complete_periods("D")
    points = [d + pd.Timedelta(days=1) for d in days]
    if ctx.data_end > ctx.since and (not points or points[-1] != ctx.data_end):
        points.append(ctx.data_end)
    return points


def _month_bounds(t: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Calendar month ``[start, end)`` holding the instant just before ``t``."""
    inside = t - pd.Timedelta(microseconds=1)
    start = inside.normalize().replace(day=1)
    return start, start + pd.offsets.MonthBegin(1)


# -- rules -------------------------------------------------------------------------------------
class DailySpendThreshold(Rule):
    """Daily spend above ``threshold``.

    Parameters
    ----------
    threshold : float
        Amount per day (currency units, > 0).
    by : str, optional
        One check per value of this dimension (e.g. ``"team"``); default the
        whole ``where`` scope.
    where : mapping, optional
        Scope, e.g. ``{"account": "111111111111"}``.
    severity : {"info", "warning", "critical"}, default "warning"
    charge_categories : sequence of str, optional
        Charges counted (default all: the invoice view).
    """

    kind = "daily_spend"

    def __init__(
        self,
        threshold: float,
        *,
        by: str | None = None,
        where: Mapping[str, Any] | None = None,
        severity: Severity = "warning",
        charge_categories: Sequence[str] | None = None,
    ) -> None:
        self.threshold = _number("threshold", threshold, lo=0.0, lo_open=True)
        self.by = by
        self.where = _scope(where)
        self.severity = _severity(severity)
        self.charge_categories = tuple(charge_categories) if charge_categories else None

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        days = ctx.complete_periods("D")
        if not len(days):
            return []
        s = ctx.series("D", self.by, self.where or None, self.charge_categories)
        s = s[s["ds"].isin(days) & (s["y"] > self.threshold)]
        alerts = []
        for row in s.itertuples(index=False):
            scope = dict(self.where)
            if self.by:
                scope[self.by] = str(row.unique_id)
            start = pd.Timestamp(row.ds)
            end = start + pd.Timedelta(days=1)
            rcs, rep = explain(
                ctx, start, end, scope, freq="D", charge_categories=self.charge_categories
            )
            y = float(row.y)
            alerts.append(
                Alert(
                    rule=self.kind,
                    title=(
                        f"Daily spend {_money(y, ctx.currency)} above "
                        f"{_money(self.threshold, ctx.currency)} "
                        f"({', '.join(f'{k}={v}' for k, v in scope.items()) or 'all spend'}) "
                        f"on {start:%Y-%m-%d}"
                    ),
                    severity=self.severity,
                    scope=scope,
                    period_start=start,
                    period_end=end,
                    detected_at=end,
                    impact=y - self.threshold,
                    owner=ctx.owner_of(scope, rcs),
                    expected=rep.expected if rep is not None else None,
                    actual=y,
                    evidence={"threshold": self.threshold, "baseline": "same weekday, 4 weeks"},
                    root_causes=rcs,
                )
            )
        return alerts


class SpendSpike(Rule):
    """Spend up more than ``pct`` % period over period.

    Parameters
    ----------
    pct : float, default 50
        Increase that fires, in percent of the comparison period.
    by : str, optional, default "team"
        One check per value of this dimension (``None``: the whole scope).
    freq : str, default "D"
        Period (``"D"``, ``"h"``, ``"7D"``).
    compare : {"previous", "season"}, default "previous"
        Against the previous period, or the same period one ``season`` earlier
        (same weekday last week: no Monday-after-weekend alerts).
    season : str, default "7D"
    min_impact : float, default 100
        Minimum increase in currency units (small series are noisy in percent).
    where : mapping, optional
    severity : {"info", "warning", "critical"}, optional
        Default: "critical" when the increase is at least 10x ``min_impact``,
        else "warning".
    charge_categories : sequence of str, default ("Usage",)
    """

    kind = "spend_spike"

    def __init__(
        self,
        pct: float = 50.0,
        *,
        by: str | None = "team",
        freq: str = "D",
        compare: Compare = "previous",
        season: str = "7D",
        min_impact: float = 100.0,
        where: Mapping[str, Any] | None = None,
        severity: Severity | None = None,
        charge_categories: Sequence[str] | None = USAGE_CATEGORIES,
    ) -> None:
        self.pct = _number("pct", pct, lo=0.0, lo_open=True)
        self.by = by
        self.freq = freq
        step = _freq(freq)
        if compare not in ("previous", "season"):
            raise ConfigError(f"parameter compare must be 'previous' or 'season', got {compare!r}")
        self.compare = compare
        self.season = season
        season_td = _freq(season)
        if compare == "season" and (season_td < step or season_td % step != pd.Timedelta(0)):
            raise ConfigError(
                f"parameter season must be a multiple of freq ({freq}), got {season!r}"
            )
        self.min_impact = _number("min_impact", min_impact, lo=0.0)
        self.where = _scope(where)
        self.severity = None if severity is None else _severity(severity)
        self.charge_categories = tuple(charge_categories) if charge_categories else None

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        step = _freq(self.freq)
        periods = ctx.complete_periods(self.freq)
        if not len(periods):
            return []
        lag = step if self.compare == "previous" else _freq(self.season)
        s = ctx.series(self.freq, self.by, self.where or None, self.charge_categories)
        prev = s.assign(ds=s["ds"] + lag).rename(columns={"y": "prev"})
        cur = s[s["ds"].isin(periods) & (s["ds"] - lag >= ctx.data_start.floor(step))]
        m = cur.merge(prev, on=["unique_id", "ds"], how="left").fillna({"prev": 0.0})
        inc = m["y"] - m["prev"]
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(m["prev"] > 0, 100.0 * inc / m["prev"], np.inf)
        fire = (inc >= self.min_impact) & (inc > 0) & (pct > self.pct)
        alerts = []
        for row, p in zip(m[fire].itertuples(index=False), pct[fire.to_numpy()], strict=True):
            scope = dict(self.where)
            if self.by:
                scope[self.by] = str(row.unique_id)
            start = pd.Timestamp(row.ds)
            end = start + step
            if self.compare == "previous":
                rcs, _ = explain(
                    ctx,
                    start,
                    end,
                    scope,
                    freq=self.freq,
                    baseline="trailing",
                    trailing=1,
                    charge_categories=self.charge_categories,
                    season=self.freq,
                )
            else:
                rcs, _ = explain(
                    ctx,
                    start,
                    end,
                    scope,
                    freq=self.freq,
                    cycles=1,
                    season=self.season,
                    charge_categories=self.charge_categories,
                )
            impact = float(row.y - row.prev)
            sev = self.severity or (
                "critical" if impact >= 10 * max(self.min_impact, 1.0) else "warning"
            )
            label = ", ".join(f"{k}={v}" for k, v in scope.items()) or "all spend"
            pct_txt = "new spend" if not math.isfinite(p) else f"+{p:.0f}%"
            alerts.append(
                Alert(
                    rule=self.kind,
                    title=(
                        f"Spend spike {pct_txt} ({_money(impact, ctx.currency)}) in {label}, "
                        f"{start:%Y-%m-%d %H:%M} vs "
                        f"{'previous period' if self.compare == 'previous' else 'a season earlier'}"
                    ),
                    severity=sev,
                    scope=scope,
                    period_start=start,
                    period_end=end,
                    detected_at=end,
                    impact=impact,
                    owner=ctx.owner_of(scope, rcs),
                    expected=float(row.prev),
                    actual=float(row.y),
                    evidence={
                        "pct_change": None if not math.isfinite(p) else round(float(p), 2),
                        "threshold_pct": self.pct,
                        "compare": self.compare,
                        "freq": self.freq,
                    },
                    root_causes=rcs,
                )
            )
        return alerts


def _gpu_prices() -> dict[str, float]:
    """On-demand list price per GPU-hour by instance type, from the optimizer catalog."""
    from optimizer.catalog import load_catalog

    out = {}
    for it in load_catalog().instances.values():
        if it.gpus:
            out[it.name] = it.on_demand_usd_per_hour / it.gpus
    return out


class IdleResources(Rule):
    """GPU workloads whose utilization stays under ``threshold`` for ``hours``.

    Utilization at an hour is ``sum(gpu_used) / sum(gpu_requested)`` over the
    workload's last ``hours`` observed hours (hours without requested GPUs are
    skipped: a stopped notebook is not idle, it is off). The alert fires the
    first hour that ratio is below ``threshold``; the idle streak it starts is
    one alert (same id) for as long as it lasts. The impact is the idle GPU
    time of the streak so far, ``sum(gpu_requested - gpu_used)``, priced at the
    on-demand list price per GPU-hour of the workload's instance type.

    Parameters
    ----------
    threshold : float, default 0.2
        Utilization (fraction of requested GPUs) below which a workload is idle.
    hours : int, default 24
        Length of the idle stretch (``days * 24``).
    exclude_kinds : sequence of str
        Workload kinds to skip (``"notebook"``).
    max_gap_hours : int, default 24
        A workload with no requested GPUs for longer than this was off: the
        utilization window restarts after the gap.
    min_waste : float, default 0
        Minimum impact (currency units) to alert.
    prices : mapping of str to float, optional
        Price per GPU-hour by instance type (default: the optimizer catalog's
        on-demand list prices).
    severity : {"info", "warning", "critical"}, default "warning"
    """

    kind = "idle_resource"

    def __init__(
        self,
        threshold: float = 0.2,
        *,
        hours: int = 24,
        exclude_kinds: Sequence[str] = (),
        min_waste: float = 0.0,
        prices: Mapping[str, float] | None = None,
        severity: Severity = "warning",
        max_gap_hours: int = 24,
    ) -> None:
        self.threshold = _number("threshold", threshold, lo=0.0, hi=1.0, lo_open=True)
        self.hours = _int("hours", hours)
        self.max_gap_hours = _int("max_gap_hours", max_gap_hours)
        self.exclude_kinds = tuple(exclude_kinds)
        self.min_waste = _number("min_waste", min_waste, lo=0.0)
        self.prices = dict(prices) if prices is not None else None
        self.severity = _severity(severity)

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        u = ctx.utilization
        if u is None or u.empty or "gpu_requested" not in u.columns:
            return []
        u = u[(u["gpu_requested"] > 0) & u["gpu_used"].notna()]
        if self.exclude_kinds and "kind" in u.columns:
            u = u[~u["kind"].isin(list(self.exclude_kinds))]
        if u.empty:
            return []
        prices = self.prices if self.prices is not None else _gpu_prices()
        u = u.sort_values(["workload_id", "ds"], kind="stable")
        alerts = []
        step = pd.Timedelta(hours=1)
        for wid, g in u.groupby("workload_id", sort=True):
            used = g["gpu_used"].to_numpy(dtype=float)
            req = g["gpu_requested"].to_numpy(dtype=float)
            if used.size < self.hours:
                continue
            ds = pd.DatetimeIndex(g["ds"])
            h = self.hours
            # Windows never span a gap longer than max_gap_hours: a workload that was off
            # for a day starts afresh (old idle hours do not taint a new job).
            step_h = np.diff(ds.to_numpy()).astype("timedelta64[s]").astype(np.float64) / 3600.0
            gap = np.r_[True, step_h > self.max_gap_hours]
            seg = np.cumsum(gap)
            pos_in_seg = np.arange(used.size) - np.flatnonzero(gap)[seg - 1]
            cu = np.concatenate([[0.0], np.cumsum(used)])
            cr = np.concatenate([[0.0], np.cumsum(req)])
            ratio = np.full(used.size, np.nan)
            ok = pos_in_seg >= h - 1
            idx = np.flatnonzero(ok)
            ratio[idx] = (cu[idx + 1] - cu[idx + 1 - h]) / (cr[idx + 1] - cr[idx + 1 - h])
            idle = ratio < self.threshold
            starts = np.flatnonzero(idle & ~np.r_[False, idle[:-1]] | (idle & gap))
            for i in starts:
                end_i = i
                while end_i + 1 < idle.size and idle[end_i + 1] and not gap[end_i + 1]:
                    end_i += 1
                detected = ds[i] + step
                ongoing = end_i == idle.size - 1 and ds[end_i] + step >= ctx.data_end - step
                if not (ctx.in_window(detected) or (ongoing and detected <= ctx.data_end)):
                    continue
                first = i - h + 1
                idle_gpu_h = float((req[first : end_i + 1] - used[first : end_i + 1]).sum())
                itype = str(g["instance_type"].iloc[end_i]) if "instance_type" in g else ""
                price = prices.get(itype)
                waste = idle_gpu_h * price if price is not None else float("nan")
                if price is not None and waste < self.min_waste:
                    continue
                team = (
                    str(g["team"].iloc[end_i])
                    if "team" in g and pd.notna(g["team"].iloc[end_i])
                    else None
                )
                scope = {"workload_id": str(wid)}
                if team:
                    scope["team"] = team
                streak_h = int(end_i - first + 1)
                alerts.append(
                    Alert(
                        rule=self.kind,
                        title=(
                            f"Idle GPUs: {wid} at {100 * float(ratio[i]):.0f}% GPU utilization "
                            f"for {h}h+ ({idle_gpu_h:,.0f} idle GPU-hours"
                            + (
                                f", {_money(waste, ctx.currency)} at on-demand list price)"
                                if price is not None
                                else ")"
                            )
                        ),
                        severity=self.severity,
                        scope=scope,
                        period_start=ds[first],
                        period_end=detected,
                        detected_at=detected,
                        impact=waste if price is not None else 0.0,
                        owner=ctx.owner_of(scope),
                        expected=self.threshold,
                        actual=float(ratio[end_i]),
                        evidence={
                            "utilization_at_detection": round(float(ratio[i]), 4),
                            "utilization_latest": round(float(ratio[end_i]), 4),
                            "threshold": self.threshold,
                            "window_hours": h,
                            "streak_observed_hours": streak_h,
                            "streak_last_hour": ds[end_i].isoformat(),
                            "idle_gpu_hours": round(idle_gpu_h, 2),
                            "instance_type": itype,
                            "price_per_gpu_hour": price,
                            "ongoing": bool(ongoing),
                        },
                    )
                )
        return alerts


class UntaggedSpend(Rule):
    """Spend missing required tags above ``max_share`` of taggable spend.

    Parameters
    ----------
    max_share : float, default 0.05
        Allowed untagged share, in [0, 1).
    required : sequence of str, default ("team",)
        Cost-frame dimensions every row must carry.
    period : {"month", "day"}, default "month"
        ``"month"``: the month-to-date share, checked at every day end; one
        alert per month. ``"day"``: each day on its own.
    severity : {"info", "warning", "critical"}, default "warning"
    charge_categories : sequence of str, default ("Usage",)
        Spend that can carry a tag (monthly fees, taxes and credits cannot).
    """

    kind = "untagged_spend"

    def __init__(
        self,
        max_share: float = 0.05,
        *,
        required: Sequence[str] = ("team",),
        period: Literal["month", "day"] = "month",
        severity: Severity = "warning",
        charge_categories: Sequence[str] = USAGE_CATEGORIES,
    ) -> None:
        self.charge_categories = tuple(charge_categories)
        self.max_share = _number("max_share", max_share, lo=0.0, hi=1.0)
        if isinstance(required, str) or not required:
            raise ConfigError(
                f"parameter required must be a non-empty list of dimensions, got {required!r}"
            )
        self.required = tuple(required)
        if period not in ("month", "day"):
            raise ConfigError(f"parameter period must be 'month' or 'day', got {period!r}")
        self.period = period
        self.severity = _severity(severity)

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        df = ctx.frame(charge_categories=self.charge_categories)
        missing_dims = [d for d in self.required if d not in df.columns]
        if missing_dims:
            raise ConfigError(f"untagged rule: the cost frame has no column {missing_dims[0]!r}")
        if df.empty:
            return []
        untagged = np.zeros(len(df), dtype=bool)
        for d in self.required:
            untagged |= df[d].isna().to_numpy()
        hourly = (
            pd.DataFrame(
                {
                    "ds": pd.DatetimeIndex(df["ds"]).floor("h"),  # tz-aware, no object array
                    "total": df["effective_cost"].to_numpy(),
                    "untagged": np.where(untagged, df["effective_cost"].to_numpy(), 0.0),
                }
            )
            .groupby("ds")
            .sum()
        )
        hourly.index = pd.DatetimeIndex(hourly.index)
        alerts: list[Alert] = []
        done: set[str] = set()
        for t in _eval_points(ctx):
            if self.period == "month":
                start, end = _month_bounds(t)
            else:
                start, end = t - pd.Timedelta(days=1), t
                if t != t.normalize():
                    continue
            sel = hourly[(hourly.index >= start) & (hourly.index < t)]
            total, unt = float(sel["total"].sum()), float(sel["untagged"].sum())
            if total <= 0 or unt / total <= self.max_share:
                continue
            key = start.isoformat()
            if key in done:
                continue
            done.add(key)
            rcs = self._breakdown(df[untagged], start, t)
            share = unt / total
            when = "month to date" if self.period == "month" else f"on {start:%Y-%m-%d}"
            alerts.append(
                Alert(
                    rule=self.kind,
                    title=(
                        f"Untagged spend {100 * share:.1f}% of {_money(total, ctx.currency)} "
                        f"({when}) "
                        f"above {100 * self.max_share:.1f}% (missing {', '.join(self.required)})"
                    ),
                    severity=self.severity,
                    scope={},
                    period_start=start,
                    period_end=end,
                    detected_at=t,
                    impact=unt - self.max_share * total,
                    owner=ctx.owner_of({"team": MISSING_VALUE}),
                    expected=self.max_share * total,
                    actual=unt,
                    evidence={
                        "untagged_share": round(share, 6),
                        "max_share": self.max_share,
                        "taggable_spend": round(total, 2),
                        "required": list(self.required),
                        "as_of": t.isoformat(),
                    },
                    root_causes=rcs,
                )
            )
        return alerts

    @staticmethod
    def _breakdown(
        df: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
    ) -> tuple[dict[str, Any], ...]:
        """Largest untagged spend by service, account and resource in ``[start, end)``."""
        sel = df[(df["ds"] >= start) & (df["ds"] < end)]
        total = float(sel["effective_cost"].sum())
        out: list[dict[str, Any]] = []
        for dim in ("resource_id", "service", "account"):
            if dim not in sel.columns:
                continue
            g = sel.groupby(sel[dim].astype(object).fillna(MISSING_VALUE))["effective_cost"].sum()
            for val, cost in g.sort_values(ascending=False).head(2).items():
                out.append(
                    {
                        "dimension": dim,
                        "value": str(val),
                        "expected": 0.0,
                        "actual": round(float(cost), 4),
                        "delta": round(float(cost), 4),
                        "share": round(float(cost) / total, 4) if total else None,
                        "change_pct": None,
                    }
                )
        return tuple(sorted(out, key=lambda r: -float(r["actual"]))[:5])


class SpotPolicy(Rule):
    """At least ``min_on_demand_share`` of a scope's compute capacity on on-demand.

    Capacity is measured by list (on-demand equivalent) cost over the trailing
    ``window_days`` of compute rows (``instance_type`` set) bought as
    ``on_demand``, ``committed`` (Savings Plans / RIs: on-demand capacity) or
    ``spot``, so cheaper spot hours are not under-counted. One alert per month
    while the policy is violated.

    Parameters
    ----------
    min_on_demand_share : float, default 0.3
    where : mapping, default {"environment": "prod"}
    window_days : int, default 7
    severity : {"info", "warning", "critical"}, default "warning"
    """

    kind = "spot_policy"

    def __init__(
        self,
        min_on_demand_share: float = 0.3,
        *,
        where: Mapping[str, Any] | None = None,
        window_days: int = 7,
        severity: Severity = "warning",
    ) -> None:
        self.min_on_demand_share = _number(
            "min_on_demand_share", min_on_demand_share, lo=0.0, hi=1.0
        )
        self.where = _scope(where if where is not None else {"environment": "prod"})
        self.window_days = _int("window_days", window_days)
        self.severity = _severity(severity)

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        df = ctx.frame(self.where or None, charge_categories=USAGE_CATEGORIES)
        if df.empty or "purchase_option" not in df.columns:
            return []
        if "instance_type" in df.columns:
            df = df[df["instance_type"].notna()]
        df = df[df["purchase_option"].isin(["on_demand", "committed", "spot"])]
        if df.empty:
            return []
        cap = df["list_cost"] if "list_cost" in df.columns else df["effective_cost"]
        cap = cap.where(cap.notna() & (cap > 0), df["effective_cost"])
        hourly = (
            pd.DataFrame(
                {
                    "ds": pd.DatetimeIndex(df["ds"]).floor("h"),  # tz-aware, no object array
                    "od": np.where(df["purchase_option"] != "spot", cap, 0.0),
                    "all": cap.to_numpy(),
                }
            )
            .groupby("ds")
            .sum()
        )
        hourly.index = pd.DatetimeIndex(hourly.index)
        alerts: list[Alert] = []
        done: set[str] = set()
        label = ", ".join(f"{k}={v}" for k, v in self.where.items()) or "all spend"
        win = pd.Timedelta(days=self.window_days)
        for t in _eval_points(ctx):
            if t - win < ctx.data_start:
                continue
            sel = hourly[(hourly.index >= t - win) & (hourly.index < t)]
            total = float(sel["all"].sum())
            if total <= 0:
                continue
            share = float(sel["od"].sum()) / total
            if share >= self.min_on_demand_share:
                continue
            m0, m1 = _month_bounds(t)
            if m0.isoformat() in done:
                continue
            done.add(m0.isoformat())
            alerts.append(
                Alert(
                    rule=self.kind,
                    title=(
                        f"Spot policy: on-demand share {100 * share:.1f}% of compute capacity in "
                        f"{label} (last {self.window_days} days) below "
                        f"{100 * self.min_on_demand_share:.0f}%"
                    ),
                    severity=self.severity,
                    scope=self.where,
                    period_start=m0,
                    period_end=m1,
                    detected_at=t,
                    impact=0.0,
                    owner=ctx.owner_of(self.where),
                    expected=self.min_on_demand_share,
                    actual=share,
                    evidence={
                        "on_demand_share": round(share, 6),
                        "min_on_demand_share": self.min_on_demand_share,
                        "window_days": self.window_days,
                        "capacity_list_cost": round(total, 2),
                        "as_of": t.isoformat(),
                    },
                )
            )
        return alerts


def spread_hourly(df: pd.DataFrame, max_hours: int = 48) -> pd.DataFrame:
    """Spread rows longer than an hour (daily storage, data transfer) evenly over their hours.

    Rows need ``ds_end``; rows of more than ``max_hours`` (monthly fees) stay whole.
    Returns ``ds`` (hourly), ``effective_cost`` and the other columns of ``df``.
    """
    if "ds_end" not in df.columns or df.empty:
        return df
    hours = ((df["ds_end"] - df["ds"]) / pd.Timedelta(hours=1)).to_numpy()
    hours = np.where(np.isfinite(hours), np.rint(hours), 1).astype(np.int64)
    long = (hours > 1) & (hours <= max_hours)
    if not long.any():
        return df
    idx = np.flatnonzero(long)
    reps = hours[idx]
    rows = df.iloc[np.repeat(idx, reps)].copy()
    offset = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    rows["ds"] = rows["ds"] + pd.to_timedelta(offset, unit="h")
    rows["effective_cost"] = rows["effective_cost"].to_numpy() / np.repeat(reps, reps)
    return pd.concat([df[~long], rows], ignore_index=True)


def hourly_cost_detector() -> StreamingDetector:
    """The detector :class:`CostAnomaly` uses by default, tuned for hourly cost series."""
    from models.anomaly import NoveltyDetector

    return NoveltyDetector(
        local_window=168, mean_window=6, lookback=6, cooldown=48, season=24, season_width=1
    )


class CostAnomaly(Rule):
    """Causal streaming detection on hourly cost per team (and the total), with root causes.

    Every series is streamed through the detector from the start of the data;
    a flag at hour ``t`` uses values up to ``t`` only. Daily charges (storage,
    data transfer) are spread over their 24 hours first (:func:`spread_hourly`),
    and hours of known events are hidden from the detector (planned activity
    is neither alerted on nor learnt as normal). Each flag becomes an
    alert whose expected/actual/impact come from :func:`root_cause` on the
    flagged hour (same hour of the same weekday over four weeks).

    Parameters
    ----------
    by : str, default "team"
        One series per value (``None``: only the total).
    include_total : bool, default True
        Also watch the total.
    detector : callable returning a StreamingDetector, optional
        Default :func:`hourly_cost_detector`.
    min_impact : float, default 5
        Minimum excess over expected in the flagged hour (currency units).
    direction : {"up", "both"}, default "up"
        Drops in cost are not FinOps alerts unless "both".
    critical_impact, warning_impact : float
        Severity by projected daily impact (hourly excess x 24).
    charge_categories : sequence of str, default ("Usage",)
        Monthly fees, taxes and credits are not usage anomalies.
    warmup : str, default "7D"
        No alerts in the first ``warmup`` of the data (the detector learns, but
        the same-weekday baseline that prices an alert needs a week of history).
    """

    kind = "cost_anomaly"

    def __init__(
        self,
        *,
        by: str | None = "team",
        include_total: bool = True,
        detector: Callable[[], StreamingDetector] | None = None,
        min_impact: float = 5.0,
        direction: Literal["up", "both"] = "up",
        critical_impact: float = 1000.0,
        warning_impact: float = 100.0,
        charge_categories: Sequence[str] | None = USAGE_CATEGORIES,
        warmup: str = "7D",
    ) -> None:
        self.by = by
        self.warmup = warmup
        _freq(warmup)
        self.include_total = bool(include_total)
        if by is None and not include_total:
            raise ConfigError("parameters by and include_total leave no series to watch")
        self.detector = detector if detector is not None else hourly_cost_detector
        self.min_impact = _number("min_impact", min_impact, lo=0.0)
        if direction not in ("up", "both"):
            raise ConfigError(f"parameter direction must be 'up' or 'both', got {direction!r}")
        self.direction = direction
        self.critical_impact = _number("critical_impact", critical_impact, lo=0.0)
        self.warning_impact = _number("warning_impact", warning_impact, lo=0.0)
        self.charge_categories = tuple(charge_categories) if charge_categories else None

    def flags(self, ctx: AlertContext) -> pd.DataFrame:
        """Detector output over the whole data: ``unique_id, ds, y, score, is_anomaly``."""
        from models.anomaly import detect_series

        # Daily charges (storage, data transfer) are spread over their hours: otherwise
        # every midnight looks like a spike and hides level shifts during the day.
        frame = spread_hourly(ctx.frame(charge_categories=self.charge_categories))
        start, end = ctx.data_start.floor("h"), ctx.data_end.ceil("h")
        if frame.empty or end <= start:
            return pd.DataFrame(columns=["unique_id", "ds", "y", "score", "is_anomaly"])
        frame = frame[(frame["ds"] >= start) & (frame["ds"] < end)]
        parts = []
        if self.by is not None:
            parts.append(aggregate_series(frame, freq="h", by=self.by, start=start, end=end))
        if self.include_total:
            parts.append(
                aggregate_series(frame, freq="h", start=start, end=end).assign(
                    unique_id="__total__"
                )
            )
        series = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        series = series[series["ds"] + pd.Timedelta(hours=1) <= ctx.data_end].copy()
        # Planned activity (known events) is not observed: the detector neither alerts on
        # it nor learns it as normal (NaN leaves a series' state untouched).
        for ev in ctx.known_events:
            if ev.rules is not None and self.kind not in ev.rules:
                continue
            if ev.scope and set(ev.scope) != {self.by}:
                continue
            hide = ((series["ds"] >= ev.start) & (series["ds"] < ev.end)).to_numpy()
            if ev.scope:
                hide = hide & (series["unique_id"] == ev.scope[str(self.by)]).to_numpy()
            series.loc[hide, "y"] = np.nan
        if series.empty:
            return series.assign(score=[], is_anomaly=[])
        return detect_series(series, self.detector())

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        flags = self.flags(ctx)
        if flags.empty:
            return []
        step = pd.Timedelta(hours=1)
        hit = flags[(flags["is_anomaly"] == 1)]
        hit = hit[hit["ds"] >= ctx.data_start + _freq(self.warmup)]
        hit = hit[[ctx.in_window(t + step) for t in hit["ds"]]]
        alerts = []
        for row in hit.itertuples(index=False):
            uid = str(row.unique_id)
            scope = {} if uid == "__total__" else {str(self.by): uid}
            start = pd.Timestamp(row.ds)
            rcs, rep = explain(
                ctx, start, start + step, scope, charge_categories=self.charge_categories
            )
            if rep is None:
                continue
            impact = rep.impact
            if self.direction == "up" and impact < self.min_impact:
                continue
            if self.direction == "both" and abs(impact) < self.min_impact:
                continue
            daily = 24.0 * impact
            sev: Severity = (
                "critical"
                if abs(daily) >= self.critical_impact
                else "warning"
                if abs(daily) >= self.warning_impact
                else "info"
            )
            label = ", ".join(f"{k}={v}" for k, v in scope.items()) or "all spend"
            top = rcs[0] if rcs else None
            because = ""
            if top:
                top_delta = _money(float(top["delta"] or 0), ctx.currency)
                because = f"; top cause {top['dimension']}={top['value']} (+{top_delta})"
            actual_h = _money(rep.actual, ctx.currency)
            expected_h = _money(rep.expected, ctx.currency)
            alerts.append(
                Alert(
                    rule=self.kind,
                    title=(
                        f"Cost anomaly in {label} at {start:%Y-%m-%d %H:00}: "
                        f"{actual_h}/h vs {expected_h}/h expected{because}"
                    ),
                    severity=sev,
                    scope=scope,
                    period_start=start,
                    period_end=start + step,
                    detected_at=start + step,
                    impact=impact,
                    owner=ctx.owner_of(scope, rcs),
                    expected=rep.expected,
                    actual=rep.actual,
                    probability=float(row.score),
                    evidence={
                        "score": round(float(row.score), 4),
                        "series": uid,
                        "baseline": rep.baseline,
                        "projected_daily_impact": round(daily, 2),
                    },
                    root_causes=rcs,
                )
            )
        return alerts


# -- cost changes per workload -----------------------------------------------------------------
#: Dimensions that key :class:`CostChange`'s series, broad to specific.
CHANGE_KEYS: tuple[str, ...] = ("cluster", "team", "project", "workload_id")


def _codes(col: pd.Series) -> np.ndarray:
    """Integer codes of a column (-1 for missing), through a categorical."""
    if not isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype("category")
    return np.asarray(col.cat.codes, dtype=np.int64)


def _trailing_max(a: np.ndarray, window: int) -> np.ndarray:
    """Max of ``a[:, t - window + 1 : t + 1]`` for every ``t`` (zeros before the start)."""
    from scipy.ndimage import maximum_filter1d

    if window <= 1:
        return a.copy()
    return np.asarray(
        maximum_filter1d(
            a, size=window, axis=1, origin=(window - 1) // 2, mode="constant", cval=0.0
        )
    )


def _lag(a: np.ndarray, k: int, fill: float) -> np.ndarray:
    """``a`` shifted ``k`` steps later along axis 1 (``out[:, t] = a[:, t - k]``)."""
    out = np.full_like(a, fill)
    if k < a.shape[1]:
        out[:, k:] = a[:, : a.shape[1] - k]
    return out


class CostChange(Rule):
    """Cost level changes per workload, found in their first hours.

    A forgotten GPU node, a traffic spike or a bigger model shows up in the hourly
    cost of one workload long before it moves a team's daily total. This rule
    watches hourly usage cost per *workload*: ``cluster, team, project`` and the
    workload of the split cost allocation (an EKS pod's deployment, an ECS task's
    service, the ``workload_id`` column of :func:`forecaster.alerts.engine.load_context`);
    rows of no workload (whole nodes) are keyed by their ``fallback`` dimension
    (instance type) instead. Hourly rows only: daily storage and transfer charges
    are not level changes of compute.

    At every hour ``t`` each series is compared with its *envelope* ``E_t``: the
    highest cost it had at the same time of day (``+- neighbours`` hours) on each
    of the previous ``history_days`` days, zero for a series with no spend then.
    The excess ``x_t = y_t - E_t`` fires when it holds for ``persist``
    consecutive hours above all of

    * the largest excess of the series over the ``record_days`` days before those
      hours: a training project whose jobs come and go alerts only on a job
      bigger than any in weeks, a steady service on any clear rise;
    * ``rel`` times the envelope (noise is proportional), and
    * ``min_excess`` per hour,

    and the projected daily impact, ``24 x`` the mean excess of those hours, is
    at least ``min_daily_impact`` (a *burst*). A small shift of an always-on
    service is never far above its envelope but stays above it: it fires too
    when the series had spend in every hour of the ``history_days`` before, and
    each of the last ``sustain_hours`` hours is above the envelope, by
    ``sustain_rel`` of it and ``sustain_daily_impact`` per day on average (a
    *shift*). An episode gives one alert; the series then stays quiet for
    ``cooldown_hours`` (the incident is not re-announced). No alert in the first
    ``history_days`` of the data (the envelope is not known yet).

    The defaults were set on the demo fleet (see ``benchmarks/demo_detection.py``):
    every injected anomaly found 2 hours after its start, 0.2 false alerts per
    team per week.

    Parameters
    ----------
    keys : sequence of str, default :data:`CHANGE_KEYS`
        Dimensions of a series (those missing from the cost frame are skipped).
    fallback : str, optional, default "instance_type"
        Dimension keying the rows with no ``workload_id``.
    history_days : int, default 14
    neighbours : int, default 1
    record_days : int, default 90
    persist : int, default 2
        Hours the excess must last (detection latency, in hours).
    rel : float, default 0.25
    min_excess : float, default 0.5
        Currency units per hour.
    min_daily_impact : float, default 48
        Currency units per day (48 = two dollars an hour, all day).
    cooldown_hours : int, default 24
    sustain_hours : int, default 2
        Hours of a shift (0: bursts only).
    sustain_rel : float, default 0.05
    sustain_daily_impact : float, default 5
    critical_impact, warning_impact : float, default 1000, 100
        Severity by projected daily impact.
    charge_categories : sequence of str, default ("Usage",)
    """

    kind = "cost_change"

    def __init__(
        self,
        *,
        keys: Sequence[str] = CHANGE_KEYS,
        fallback: str | None = "instance_type",
        history_days: int = 14,
        neighbours: int = 1,
        record_days: int = 90,
        persist: int = 2,
        rel: float = 0.25,
        min_excess: float = 0.5,
        min_daily_impact: float = 48.0,
        cooldown_hours: int = 24,
        sustain_hours: int = 2,
        sustain_rel: float = 0.05,
        sustain_daily_impact: float = 5.0,
        critical_impact: float = 1000.0,
        warning_impact: float = 100.0,
        charge_categories: Sequence[str] | None = USAGE_CATEGORIES,
    ) -> None:
        if isinstance(keys, str) or not keys:
            raise ConfigError(
                f"parameter keys must be a non-empty list of dimensions, got {keys!r}"
            )
        self.keys = tuple(keys)
        self.fallback = fallback
        self.history_days = _int("history_days", history_days)
        self.neighbours = _int("neighbours", neighbours, lo=0)
        if self.neighbours > 11:
            raise ConfigError(f"parameter neighbours must be <= 11, got {neighbours!r}")
        self.record_days = _int("record_days", record_days)
        self.persist = _int("persist", persist)
        self.rel = _number("rel", rel, lo=0.0)
        self.min_excess = _number("min_excess", min_excess, lo=0.0)
        self.min_daily_impact = _number("min_daily_impact", min_daily_impact, lo=0.0)
        self.cooldown_hours = _int("cooldown_hours", cooldown_hours, lo=0)
        self.sustain_hours = _int("sustain_hours", sustain_hours, lo=0)
        self.sustain_rel = _number("sustain_rel", sustain_rel, lo=0.0)
        self.sustain_daily_impact = _number("sustain_daily_impact", sustain_daily_impact, lo=0.0)
        self.critical_impact = _number("critical_impact", critical_impact, lo=0.0)
        self.warning_impact = _number("warning_impact", warning_impact, lo=0.0)
        self.charge_categories = tuple(charge_categories) if charge_categories else None

    # -- series ------------------------------------------------------------------------------
    def series(
        self, ctx: AlertContext
    ) -> tuple[np.ndarray, list[dict[str, str]], pd.Timestamp] | None:
        """Hourly cost matrix ``(n_series, n_hours)``, the scope of each row, and hour 0."""
        df = ctx.frame(charge_categories=self.charge_categories)
        if df.empty:
            return None
        step = pd.Timedelta(hours=1)
        if "ds_end" in df.columns:
            dur = (df["ds_end"] - df["ds"]).to_numpy()
            hourly = ~(dur > np.timedelta64(3600, "s"))  # NaT (no end) counts as hourly
            df = df[hourly]
        t0 = ctx.data_start.floor(step)
        n_hours = int((ctx.data_end.ceil(step) - t0) / step)
        if df.empty or n_hours <= 0:
            return None
        hour = ((df["ds"] - t0) // step).to_numpy(dtype=np.int64)
        dims = [d for d in self.keys if d in df.columns and d != "workload_id"]
        parts = [_codes(df[d]) for d in dims]
        unit_dim: list[str] = []
        if "workload_id" in self.keys and "workload_id" in df.columns:
            wl = _codes(df["workload_id"])
            if self.fallback and self.fallback in df.columns:
                fb = _codes(df[self.fallback])
                unit = np.where(wl >= 0, wl, -2 - fb)  # fallback values on negative codes
            else:
                unit = wl
            parts.append(unit)
            unit_dim = ["workload_id"]
        elif self.fallback and self.fallback in df.columns:
            parts.append(_codes(df[self.fallback]))
            unit_dim = [self.fallback]
        # Rows attributable to nothing (no cluster, workload or instance type: commitment
        # fees, support) are account-level charges, not a workload's level.
        known = np.zeros(len(df), dtype=bool) if parts else np.ones(len(df), dtype=bool)
        for p in parts:
            known |= p >= 0
        parts = [p[known] for p in parts]
        hour = hour[known]
        df = df[known]
        key = np.zeros(len(df), dtype=np.int64)
        for p in parts:
            lo = int(p.min()) if p.size else 0
            key = key * (int(p.max()) - lo + 2 if p.size else 1) + (p - lo)
        codes, uniq = pd.factorize(key)
        n_series = len(uniq)
        ok = (hour >= 0) & (hour < n_hours)
        flat = np.bincount(
            codes[ok] * n_hours + hour[ok],
            weights=df["effective_cost"].to_numpy(dtype=np.float64)[ok],
            minlength=n_series * n_hours,
        )
        matrix = flat.reshape(n_series, n_hours)
        # Scope of each series from its first row.
        first = np.unique(codes, return_index=True)[1]
        rows = df.iloc[first]
        scopes: list[dict[str, str]] = []
        for i in range(n_series):
            row = rows.iloc[i]
            scope = {d: _scope_value(row[d]) for d in dims}
            if unit_dim == ["workload_id"]:
                if pd.notna(row["workload_id"]):
                    scope["workload_id"] = str(row["workload_id"])
                elif self.fallback and self.fallback in df.columns:
                    scope[self.fallback] = _scope_value(row[self.fallback])
            elif unit_dim:
                scope[unit_dim[0]] = _scope_value(row[unit_dim[0]])
            scopes.append(scope)
        return matrix, scopes, t0

    def scores(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Envelope, excess, threshold and firing hours of an hourly matrix (pure numpy).

        Returns a dict of ``(n_series, n_hours)`` arrays: ``envelope``, ``excess``,
        ``threshold``, ``mean_excess`` (over the last ``persist`` hours) and ``fire``.
        Hours without ``history_days`` of history never fire.
        """
        t_len = y.shape[1]
        nb = y.copy()
        for j in range(1, self.neighbours + 1):
            nb = np.maximum(nb, _lag(y, j, 0.0))
            # The hour after (t - 24k + j) is still in the past for every k >= 1.
            nb = np.maximum(nb, np.pad(y[:, j:], ((0, 0), (0, j))))
        env = np.zeros_like(y)
        for k in range(1, self.history_days + 1):
            env = np.maximum(env, _lag(nb, 24 * k, 0.0))
        excess = y - env
        p = self.persist
        record = _lag(_trailing_max(np.maximum(excess, 0.0), 24 * self.record_days), p, 0.0)
        threshold = np.maximum(np.maximum(record, self.rel * env), self.min_excess)
        low = excess.copy()
        total = excess.copy()
        for j in range(1, p):
            lagged = _lag(excess, j, -np.inf)
            low = np.minimum(low, lagged)
            total = total + np.where(np.isfinite(lagged), lagged, 0.0)
        mean_excess = total / p
        fire = (low > threshold) & (24.0 * mean_excess >= self.min_daily_impact)
        # A small shift is never far above the envelope, but it stays above it: every one
        # of the last sustain_hours hours above the envelope, by sustain_rel on average.
        h = self.sustain_hours
        sustained = np.zeros_like(fire)
        if h:
            above = (excess > 0).astype(np.int64)
            c_above = np.cumsum(above, axis=1)
            c_ex = np.cumsum(excess, axis=1)
            c_env = np.cumsum(env, axis=1)
            n_above = c_above - _lag(c_above, h, 0)
            s_ex = (c_ex - _lag(c_ex, h, 0.0)) / h
            s_env = (c_env - _lag(c_env, h, 0.0)) / h
            # Only for always-on series (spend in every hour of the history before those
            # hours): a batch job that runs long is not a shift of a service's level.
            c_off = np.cumsum(y <= 0, axis=1)
            span = 24 * self.history_days
            off = _lag(c_off - _lag(c_off, span, 0), h, 0)
            sustained = (
                (off == 0)
                & (n_above == h)
                & (s_ex >= self.sustain_rel * s_env)
                & (24.0 * s_ex >= self.sustain_daily_impact)
            )
            mean_excess = np.where(fire | ~sustained, mean_excess, s_ex)
            sustained[:, : min(t_len, 24 * self.history_days + self.neighbours + h - 1)] = False
        fire[:, : min(t_len, 24 * self.history_days + self.neighbours + p - 1)] = False
        fire = fire | sustained
        return {
            "envelope": env,
            "excess": excess,
            "threshold": threshold,
            "mean_excess": mean_excess,
            "fire": fire,
        }

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        built = self.series(ctx)
        if built is None:
            return []
        y, scopes, t0 = built
        sc = self.scores(y)
        fire = sc["fire"]
        step = pd.Timedelta(hours=1)
        alerts: list[Alert] = []
        rows_i, cols_t = np.nonzero(fire)
        order = np.lexsort((cols_t, rows_i))
        last: dict[int, int] = {}
        for i, t in zip(rows_i[order], cols_t[order], strict=True):
            i, t = int(i), int(t)
            prev = last.get(i)
            if prev is not None and (t - prev <= self.cooldown_hours or fire[i, t - 1]):
                if fire[i, t - 1]:
                    last[i] = t  # the same episode goes on: the cooldown runs from its end
                continue
            last[i] = t
            detected = t0 + (t + 1) * step
            if not ctx.in_window(detected):
                continue
            alerts.append(self._alert(ctx, scopes[i], y[i], sc, i, t, t0))
        return alerts

    def _alert(
        self,
        ctx: AlertContext,
        scope: dict[str, str],
        y: np.ndarray,
        sc: dict[str, np.ndarray],
        i: int,
        t: int,
        t0: pd.Timestamp,
    ) -> Alert:
        step = pd.Timedelta(hours=1)
        p = self.persist
        start = t0 + (t - p + 1) * step
        end = t0 + (t + 1) * step
        per_hour = float(sc["mean_excess"][i, t])
        daily = 24.0 * per_hour
        actual = float(y[max(t - p + 1, 0) : t + 1].mean())
        expected = float(sc["envelope"][i, max(t - p + 1, 0) : t + 1].mean())
        rcs, _ = explain(
            ctx,
            start,
            end,
            scope,
            freq="h",
            baseline="trailing",
            trailing=24,
            season="h",
            cycles=1,
            charge_categories=self.charge_categories,
        )
        sev: Severity = (
            "critical"
            if daily >= self.critical_impact
            else "warning"
            if daily >= self.warning_impact
            else "info"
        )
        # A workload id already names its cluster and namespace.
        label = (
            f"workload {scope['workload_id']}"
            if "workload_id" in scope
            else ", ".join(f"{k}={v}" for k, v in scope.items()) or "all spend"
        )
        new = expected <= 0
        what = "New spend" if new else "Cost up"
        vs = (
            ""
            if new
            else f" vs at most {_money(expected, ctx.currency)}/h in {self.history_days} days"
        )
        return Alert(
            rule=self.kind,
            title=(
                f"{what} in {label} since {start:%Y-%m-%d %H:00}: "
                f"{_money(actual, ctx.currency)}/h{vs} "
                f"(+{_money(per_hour, ctx.currency)}/h, ~{_money(daily, ctx.currency)}/day)"
            ),
            severity=sev,
            scope=scope,
            period_start=start,
            period_end=end,
            detected_at=end,
            impact=daily,
            owner=ctx.owner_of(scope, rcs),
            expected=expected,
            actual=actual,
            evidence={
                "excess_per_hour": round(per_hour, 4),
                "projected_daily_impact": round(daily, 2),
                "threshold_per_hour": round(float(sc["threshold"][i, t]), 4),
                "envelope_days": self.history_days,
                "persist_hours": p,
            },
            root_causes=rcs,
        )


def _scope_value(v: Any) -> str:
    return (
        MISSING_VALUE
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA
        else str(v)
    )
