"""Monthly budgets: consumption thresholds and "will exceed on DATE with probability P".

:class:`BudgetThreshold` fires the hour month-to-date spend crosses a share of
the budget (80 %, 100 %). :class:`BudgetForecast` projects the month's total
from the month-to-date spend and a :class:`SpendProjector`, and fires when the
probability of exceeding the budget reaches ``min_probability``.

The default projector, :class:`RunRateProjector`, is deliberately simple and
honest: the daily run rate is the mean of the last ``rate_days`` complete days;
the day-to-day spread is the standard deviation of each day's departure from
the mean of the ``rate_days`` days before it, over the last ``spread_days``.
Under a normal approximation the spend over the ``R`` remaining days is
``N(R * rate, R * sd**2 + R**2 * sd**2 / rate_days)``: the first term is the
daily noise, the second the uncertainty of the run rate itself. A better
forecaster from :mod:`models` can replace it behind the same small protocol.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from features.exceptions import ConfigError
from forecaster.alerts.base import Alert, AlertContext, Rule, Severity, severity_rank
from forecaster.alerts.rules import _eval_points, _money, _month_bounds, _number, _scope, explain

_DAY = pd.Timedelta(days=1)
#: Standard normal (stdlib: no scipy import for one distribution).
_STD_NORMAL = NormalDist()


@dataclass(frozen=True)
class Budget:
    """A monthly budget for a scope of spend.

    Parameters
    ----------
    name : str
        Identifier (appears in alert ids).
    amount : float
        Monthly amount (currency units, > 0).
    scope : mapping of str to str
        Dimension values the budget covers (``{"team": "nlp"}``); empty = all spend.
    thresholds : sequence of float, default (0.8, 1.0)
        Consumed shares that alert (0.8 = 80 % of the budget).
    forecast_probability : float, optional, default 0.5
        Probability of exceeding the budget that raises a forecast alert
        (``None``: no forecast alert).
    owner : str, optional
        Who owns the budget (default: the scope's team).
    charge_categories : sequence of str, optional
        Charges counted (default all: what the invoice shows).
    """

    name: str
    amount: float
    scope: Mapping[str, str] = field(default_factory=dict)
    thresholds: tuple[float, ...] = (0.8, 1.0)
    forecast_probability: float | None = 0.5
    owner: str | None = None
    charge_categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"parameter name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "amount", _number("amount", self.amount, lo=0.0, lo_open=True))
        object.__setattr__(self, "scope", _scope(self.scope))
        th = tuple(
            sorted({_number("thresholds", t, lo=0.0, lo_open=True) for t in self.thresholds})
        )
        object.__setattr__(self, "thresholds", th)
        if self.forecast_probability is not None:
            p = _number(
                "forecast_probability", self.forecast_probability, lo=0.0, hi=1.0, lo_open=True
            )
            object.__setattr__(self, "forecast_probability", p)
        if self.charge_categories is not None:
            object.__setattr__(self, "charge_categories", tuple(self.charge_categories))

    @property
    def where(self) -> dict[str, Any] | None:
        return dict(self.scope) or None

    @property
    def label(self) -> str:
        s = ", ".join(f"{k}={v}" for k, v in self.scope.items()) or "all spend"
        return f"{self.name} ({s})"


def _month_to_date(ctx: AlertContext, budget: Budget) -> pd.Series:
    """Hourly spend of the budget's scope (UTC hour index, zero-filled)."""
    s = ctx.series("h", None, budget.where, budget.charge_categories)
    return pd.Series(s["y"].to_numpy(), index=pd.DatetimeIndex(s["ds"]))


def _owner(ctx: AlertContext, budget: Budget) -> str | None:
    return budget.owner or ctx.owner_of(budget.scope)


class BudgetThreshold(Rule):
    """Month-to-date spend crossed ``threshold`` x the budget (one alert per month and threshold).

    Parameters
    ----------
    budget : Budget
    severity : {"info", "warning", "critical"}, optional
        Default: "critical" for thresholds >= 1, else "warning".
    """

    kind = "budget_consumed"

    def __init__(self, budget: Budget, *, severity: Severity | None = None) -> None:
        if not isinstance(budget, Budget):
            raise ConfigError(f"parameter budget must be a Budget, got {type(budget).__name__}")
        self.budget = budget
        if severity is not None:
            severity_rank(severity)
        self.severity = severity

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        b = self.budget
        hourly = _month_to_date(ctx, b)
        hourly = hourly[hourly.index + pd.Timedelta(hours=1) <= ctx.data_end]
        if hourly.empty:
            return []
        month = hourly.index.tz_localize(None).to_period("M")
        cum = hourly.groupby(month).cumsum()
        alerts = []
        for m in pd.unique(month):
            sel = cum[month == m]
            m0, m1 = _month_bounds(sel.index[0] + pd.Timedelta(hours=1))
            current = m0 <= ctx.data_end - pd.Timedelta(hours=1) < m1
            for th in b.thresholds:
                over = np.flatnonzero(sel.to_numpy() >= th * b.amount)
                if over.size == 0:
                    continue
                hour = sel.index[over[0]]
                detected = hour + pd.Timedelta(hours=1)
                if not (ctx.in_window(detected) or (current and detected <= ctx.data_end)):
                    continue
                spent = float(sel.iloc[over[0]])
                sev: Severity = self.severity or ("critical" if th >= 1.0 else "warning")
                alerts.append(
                    Alert(
                        rule=self.kind,
                        title=(
                            f"Budget {b.label}: {100 * spent / b.amount:.0f}% consumed "
                            f"({_money(spent, ctx.currency)} of {_money(b.amount, ctx.currency)}) "
                            f"on {hour:%Y-%m-%d}, threshold {100 * th:.0f}%"
                        ),
                        severity=sev,
                        scope=b.scope,
                        period_start=m0,
                        period_end=m1,
                        detected_at=detected,
                        impact=max(spent - b.amount, 0.0),
                        owner=_owner(ctx, b),
                        expected=th * b.amount,
                        actual=spent,
                        evidence={
                            "budget": b.name,
                            "amount": b.amount,
                            "threshold": th,
                            "consumed_share": round(spent / b.amount, 6),
                            "crossed_at": detected.isoformat(),
                        },
                        key_extra=f"{b.name}|{th:g}",
                    )
                )
        return alerts


@dataclass(frozen=True)
class Projection:
    """Distribution of the period's total (normal approximation).

    The spend over the next ``d`` days is ``N(d * rate, v(d))`` with
    ``v(d) = inflation * sd_day**2 * (d + d**2 / n_rate)``: daily noise plus the
    uncertainty of the run rate itself, inflated for day-to-day persistence.

    Attributes
    ----------
    spent : float
        Spend so far in the period.
    rate : float
        Expected spend per day from now on.
    sd_day : float
        Day-to-day standard deviation.
    n_rate : int
        Days the rate was estimated from.
    as_of, period_end : pandas.Timestamp
    inflation : float, default 1
        Variance inflation for autocorrelated days, ``(1 + rho) / (1 - rho)``.
    """

    spent: float
    rate: float
    sd_day: float
    n_rate: int
    as_of: pd.Timestamp
    period_end: pd.Timestamp
    inflation: float = 1.0

    def _moments(self, days: float) -> tuple[float, float]:
        mean = self.spent + days * self.rate
        var = self.inflation * self.sd_day**2 * (days + days**2 / max(self.n_rate, 1))
        return mean, math.sqrt(max(var, 0.0))

    @property
    def remaining_days(self) -> float:
        return max((self.period_end - self.as_of) / _DAY, 0.0)

    @property
    def total_mean(self) -> float:
        """Expected total at the end of the period."""
        return self._moments(self.remaining_days)[0]

    def total_quantile(self, q: float) -> float:
        """Quantile ``q`` of the total at the end of the period."""
        mean, sd = self._moments(self.remaining_days)
        if sd <= 0:
            return mean
        if not 0.0 < q < 1.0:  # the bounds of the distribution, as scipy's ppf gives
            return -math.inf if q <= 0.0 else math.inf
        return float(mean + sd * _STD_NORMAL.inv_cdf(q))

    def prob_exceed(self, amount: float, days: float | None = None) -> float:
        """Probability that spend so far plus ``days`` more days exceeds ``amount``."""
        d = self.remaining_days if days is None else min(max(days, 0.0), self.remaining_days)
        mean, sd = self._moments(d)
        if sd <= 0:
            return 1.0 if mean > amount else 0.0
        return float(_STD_NORMAL.cdf(-(amount - mean) / sd))

    def exceed_date(self, amount: float, probability: float = 0.5) -> pd.Timestamp | None:
        """First day end by which ``P(spend > amount) >= probability`` (None: not this period)."""
        if self.spent > amount:
            return self.as_of
        day_ends = pd.date_range(self.as_of.floor("D") + _DAY, self.period_end, freq="D")
        for t in day_ends:
            if self.prob_exceed(amount, (t - self.as_of) / _DAY) >= probability:
                return t
        return None


@runtime_checkable
class SpendProjector(Protocol):
    """Projects the rest of a period's spend; plug a better forecaster in behind it."""

    def project(
        self,
        daily: pd.Series,
        spent: float,
        as_of: pd.Timestamp,
        period_end: pd.Timestamp,
    ) -> Projection | None:
        """Project spend from ``as_of`` to ``period_end``.

        Parameters
        ----------
        daily : pandas.Series
            Spend of complete days before ``as_of`` (UTC day index), oldest first.
        spent : float
            Spend from the start of the period to ``as_of``.
        as_of, period_end : pandas.Timestamp

        Returns
        -------
        Projection or None
            None when there is too little history to say anything.
        """
        ...


@dataclass(frozen=True)
class RunRateProjector:
    """Run rate with a normal interval from the daily spread.

    The rate is the mean of the last ``rate_days`` complete days. Over the last
    ``spread_days`` days, ``sd_day`` is the standard deviation of the days
    around their mean and ``rho`` the lag-1 autocorrelation of those deviations
    (clipped to [0, 0.9]): spend persists (a training job runs for days), so
    both the run rate and the sum of the coming days vary more than for
    independent days, by the factor ``(1 + rho) / (1 - rho)``.

    Parameters
    ----------
    rate_days : int, default 7
        Complete days whose mean is the run rate (a whole week: no weekday bias).
    spread_days : int, default 28
        Days for the spread and the autocorrelation.
    min_days : int, default 3
        Fewer complete days of history: no projection.
    """

    rate_days: int = 7
    spread_days: int = 28
    min_days: int = 3

    def project(
        self,
        daily: pd.Series,
        spent: float,
        as_of: pd.Timestamp,
        period_end: pd.Timestamp,
    ) -> Projection | None:
        y = np.asarray(daily, dtype=np.float64)
        y = y[np.isfinite(y)][-self.spread_days :]
        if y.size < max(self.min_days, 2):
            return None
        k = min(self.rate_days, y.size)
        rate = float(y[-k:].mean())
        dev = y - y.mean()
        sd = float(np.std(dev, ddof=1))
        rho = 0.0
        if y.size >= 5 and sd > 0:
            a, b = dev[:-1], dev[1:]
            denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
            rho = float((a * b).sum() / denom) if denom > 0 else 0.0
            rho = min(max(rho, 0.0), 0.9)
        return Projection(
            spent=float(spent),
            rate=rate,
            sd_day=sd,
            n_rate=k,
            as_of=as_of,
            period_end=period_end,
            inflation=(1.0 + rho) / (1.0 - rho),
        )


class BudgetForecast(Rule):
    """ "Budget X will be exceeded on DATE with probability P" (one alert per month and severity).

    At each day end in the report window (and at the end of the data), the
    month's spend is projected by ``projector`` from the complete days before
    that instant; the alert fires when ``P(total > amount)`` reaches the
    budget's ``forecast_probability`` while the budget is not yet exceeded.
    DATE is the first day by which the budget is exceeded with probability
    0.5 (the median crossing), or with ``forecast_probability`` when the median
    path stays under the budget. Severity: "critical" from P >= 0.9, else
    "warning" (a sharpening forecast is sent again).

    Parameters
    ----------
    budget : Budget
    projector : SpendProjector, default RunRateProjector()
    history_days : int, default 35
        Complete days handed to the projector.
    run_rate_categories : sequence of str, default ("Usage",)
        Charges the projector extrapolates. Monthly fees, taxes, credits and
        adjustments already posted count in the month-to-date spend but are not
        extrapolated day by day (they would inflate the run rate).
    """

    kind = "budget_forecast"

    def __init__(
        self,
        budget: Budget,
        *,
        projector: SpendProjector | None = None,
        history_days: int = 35,
        run_rate_categories: Sequence[str] | None = ("Usage",),
    ) -> None:
        if not isinstance(budget, Budget):
            raise ConfigError(f"parameter budget must be a Budget, got {type(budget).__name__}")
        self.budget = budget
        self.projector: SpendProjector = projector if projector is not None else RunRateProjector()
        if not isinstance(self.projector, SpendProjector):
            raise ConfigError(
                "parameter projector must have a project(daily, spent, as_of, period_end) method"
            )
        if isinstance(history_days, bool) or not isinstance(history_days, int) or history_days < 1:
            raise ConfigError(f"parameter history_days must be an int >= 1, got {history_days!r}")
        self.history_days = history_days
        self.run_rate_categories = tuple(run_rate_categories) if run_rate_categories else None

    def project_at(self, ctx: AlertContext, t: pd.Timestamp) -> tuple[Projection | None, float]:
        """Projection of the budget's month at instant ``t`` and the month-to-date spend."""
        b = self.budget
        hourly = _month_to_date(ctx, b)
        m0, m1 = _month_bounds(t)
        spent = float(hourly[(hourly.index >= m0) & (hourly.index < t)].sum())
        cats = b.charge_categories
        if self.run_rate_categories is not None:
            cats = tuple(c for c in self.run_rate_categories if cats is None or c in cats)
        s = ctx.series("h", None, b.where, cats)
        rr = pd.Series(s["y"].to_numpy(), index=pd.DatetimeIndex(s["ds"]))
        day0 = t.floor("D")
        first = max(day0 - self.history_days * _DAY, ctx.data_start.ceil("D"))
        hist = rr[(rr.index >= first) & (rr.index < day0)]
        daily = hist.groupby(hist.index.floor("D")).sum()
        return self.projector.project(daily, spent, t, m1), spent

    def evaluate(self, ctx: AlertContext) -> list[Alert]:
        b = self.budget
        if b.forecast_probability is None:
            return []
        alerts: dict[str, Alert] = {}
        for t in _eval_points(ctx):
            proj, spent = self.project_at(ctx, t)
            if proj is None or spent > b.amount or proj.remaining_days <= 0:
                continue
            p = proj.prob_exceed(b.amount)
            if p < b.forecast_probability:
                continue
            date = proj.exceed_date(b.amount, 0.5) or proj.exceed_date(
                b.amount, b.forecast_probability
            )
            m0, m1 = _month_bounds(t)
            sev: Severity = "critical" if p >= 0.9 else "warning"
            total = proj.total_mean
            lo, hi = proj.total_quantile(0.1), proj.total_quantile(0.9)
            when = (
                f"{(date - pd.Timedelta(seconds=1)):%Y-%m-%d}"
                if date is not None
                else "by month end"
            )
            alert = Alert(
                rule=self.kind,
                title=(
                    f"Budget {b.label} will be exceeded on {when} with probability {p:.0%}: "
                    f"month-end {_money(total, ctx.currency)} "
                    f"(80% interval {_money(lo, ctx.currency)} to {_money(hi, ctx.currency)}) "
                    f"vs {_money(b.amount, ctx.currency)}"
                ),
                severity=sev,
                scope=b.scope,
                period_start=m0,
                period_end=m1,
                detected_at=t,
                impact=max(total - b.amount, 0.0),
                owner=_owner(ctx, b),
                expected=b.amount,
                actual=total,
                probability=p,
                evidence={
                    "budget": b.name,
                    "amount": b.amount,
                    "spent_to_date": round(spent, 2),
                    "run_rate_per_day": round(proj.rate, 2),
                    "sd_per_day": round(proj.sd_day, 2),
                    "variance_inflation": round(proj.inflation, 3),
                    "remaining_days": round(proj.remaining_days, 3),
                    "month_end_mean": round(total, 2),
                    "month_end_p10": round(lo, 2),
                    "month_end_p90": round(hi, 2),
                    "exceed_date": date.isoformat() if date is not None else None,
                    "as_of": t.isoformat(),
                    "method": type(self.projector).__name__,
                },
                key_extra=f"{b.name}|{sev}",
            )
            if alert.id in alerts:
                continue
            day0 = t.floor("D")
            if "team" not in b.scope and day0 > m0:
                # Who spends more this month than over the 28 days before it.
                rcs, _ = explain(
                    ctx,
                    m0,
                    day0,
                    b.scope,
                    freq="D",
                    baseline="trailing",
                    trailing=28,
                    charge_categories=b.charge_categories,
                    dimensions=("team", "project", "service", "account"),
                    n=3,
                )
                alert = dataclasses.replace(alert, root_causes=rcs)
            alerts[alert.id] = alert
        return list(alerts.values())


def budget_rules(budgets: Sequence[Budget], projector: SpendProjector | None = None) -> list[Rule]:
    """Threshold and forecast rules for every budget."""
    rules: list[Rule] = []
    for b in budgets:
        rules.append(BudgetThreshold(b))
        if b.forecast_probability is not None:
            rules.append(BudgetForecast(b, projector=projector))
    return rules
