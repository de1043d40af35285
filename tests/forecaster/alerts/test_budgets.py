"""Budgets: consumption thresholds and an honest month-end forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from features.exceptions import ConfigError
from forecaster.alerts.base import AlertContext
from forecaster.alerts.budgets import (
    Budget,
    BudgetForecast,
    BudgetThreshold,
    Projection,
    RunRateProjector,
    SpendProjector,
    budget_rules,
)
from tests.forecaster.alerts.builders import cost_frame

DAILY = 672.0  # cost_frame(): 2 x 24 x (10 + 4)


def daily_frame(values: np.ndarray, start: str = "2025-01-01") -> pd.DataFrame:
    """Hourly rows spreading each day's spend evenly (one team)."""
    ds = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=24 * len(values), freq="h")
    return pd.DataFrame(
        {
            "ds": ds,
            "team": "alpha",
            "charge_category": "Usage",
            "effective_cost": np.repeat(values / 24.0, 24),
        }
    )


def test_threshold_fires_at_the_crossing_hour_once_per_month() -> None:
    df = cost_frame(days=40)
    budget = Budget("all", 10 * DAILY)  # 80 % reached after 8 days, 100 % after 10
    alerts = BudgetThreshold(budget).evaluate(AlertContext(df, since="2025-01-01"))
    got = [(a.evidence["threshold"], a.detected_at) for a in alerts]
    # 40 days: January crosses both, February (9 days of data) only 80 %.
    assert got == [
        (0.8, pd.Timestamp("2025-01-09 00:00", tz="UTC")),
        (1.0, pd.Timestamp("2025-01-11 00:00", tz="UTC")),
        (0.8, pd.Timestamp("2025-02-09 00:00", tz="UTC")),
    ]
    assert [a.severity for a in alerts] == ["warning", "critical", "warning"]
    assert alerts[0].actual == pytest.approx(8 * DAILY)
    assert alerts[0].id != alerts[2].id  # one alert per month and threshold
    # A run during February still reports February's crossing, not January's.
    feb = BudgetThreshold(budget).evaluate(AlertContext(df, since="2025-02-09 12:00"))
    assert [(a.evidence["threshold"], a.period_start.month) for a in feb] == [(0.8, 2)]
    assert (
        BudgetThreshold(Budget("big", 100 * DAILY)).evaluate(AlertContext(df, since="2025-01-01"))
        == []
    )


def test_threshold_scope_and_owner() -> None:
    df = cost_frame(days=10)
    b = Budget("beta", 5 * 2 * 24 * 4.0, scope={"team": "beta"}, thresholds=(1.0,))
    alerts = BudgetThreshold(b).evaluate(
        AlertContext(df, since="2025-01-01", owners={"beta": "b@x"})
    )
    assert len(alerts) == 1 and alerts[0].owner == "b@x"
    assert alerts[0].detected_at == pd.Timestamp("2025-01-06", tz="UTC")


def test_budget_validation() -> None:
    with pytest.raises(ConfigError, match="amount"):
        Budget("x", 0)
    with pytest.raises(ConfigError, match="name"):
        Budget("", 10)
    with pytest.raises(ConfigError, match="forecast_probability"):
        Budget("x", 10, forecast_probability=1.5)
    assert [r.kind for r in budget_rules([Budget("x", 1.0, forecast_probability=None)])] == [
        "budget_consumed"
    ]


def test_projection_matches_the_normal_approximation() -> None:
    p = Projection(
        spent=15000,
        rate=1000,
        sd_day=100,
        n_rate=7,
        as_of=pd.Timestamp("2025-01-16", tz="UTC"),
        period_end=pd.Timestamp("2025-02-01", tz="UTC"),
    )
    assert p.remaining_days == 16
    assert p.total_mean == pytest.approx(31000)
    sd = np.sqrt(100**2 * (16 + 16**2 / 7))
    assert p.prob_exceed(31000) == pytest.approx(0.5)
    assert p.prob_exceed(31000 + sd) == pytest.approx(norm.sf(1.0))
    assert p.total_quantile(0.9) == pytest.approx(31000 + sd * norm.ppf(0.9))
    # Median crossing of $28,000: 13 days after the 16th -> end of Jan 28.
    assert p.exceed_date(28000) == pd.Timestamp("2025-01-29", tz="UTC")
    assert p.exceed_date(50000) is None


def test_forecast_probability_is_sane_on_synthetic_spend() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(1000.0, 100.0, 45)  # Dec 17 .. Jan 30
    df = daily_frame(values, start="2024-12-17")
    ctx = AlertContext(df, as_of="2025-01-16", since="2025-01-15")
    spent_jan = values[15:30].sum()
    for amount, lo, hi in [(31000, 0.25, 0.75), (36000, 0.0, 0.02), (27000, 0.98, 1.0)]:
        rule = BudgetForecast(Budget("b", amount, forecast_probability=0.01))
        proj, spent = rule.project_at(ctx, ctx.data_end)
        assert spent == pytest.approx(spent_jan)
        assert proj is not None and lo <= proj.prob_exceed(amount) <= hi, amount
    alerts = BudgetForecast(Budget("b", 27000, forecast_probability=0.9)).evaluate(ctx)
    assert len(alerts) == 1
    a = alerts[0]
    assert a.rule == "budget_forecast" and a.severity == "critical" and a.probability > 0.98  # type: ignore[operator]
    assert (
        "will be exceeded on 2025-01-27" in a.title or "will be exceeded on 2025-01-28" in a.title
    )
    assert BudgetForecast(Budget("b", 36000, forecast_probability=0.5)).evaluate(ctx) == []


def test_forecast_is_calibrated_on_independent_days() -> None:
    """Across 300 simulated months, predicted probabilities match outcome frequencies."""
    rng = np.random.default_rng(42)
    proj = RunRateProjector()
    preds, hits = [], []
    as_of = pd.Timestamp("2025-01-11", tz="UTC")
    end = pd.Timestamp("2025-02-01", tz="UTC")
    for _ in range(300):
        mu, sd = rng.uniform(500, 1500), rng.uniform(20, 200)
        hist = rng.normal(mu, sd, 28)  # Dec 14 .. Jan 10
        future = rng.normal(mu, sd, 21)
        spent = hist[-10:].sum()
        p = proj.project(pd.Series(hist), spent, as_of, end)
        assert p is not None
        budget = p.total_mean + rng.normal(0, 1) * sd * 6
        preds.append(p.prob_exceed(budget))
        hits.append(spent + future.sum() > budget)
    preds_a, hits_a = np.array(preds), np.array(hits, dtype=float)
    brier = np.mean((preds_a - hits_a) ** 2)
    assert brier < 0.8 * np.mean((hits_a.mean() - hits_a) ** 2)  # beats climatology
    for lo, hi in [(0.0, 0.3), (0.3, 0.7), (0.7, 1.0)]:
        sel = (preds_a >= lo) & (preds_a < hi)
        if sel.sum() >= 20:
            assert abs(preds_a[sel].mean() - hits_a[sel].mean()) < 0.15


def test_projector_needs_history_and_can_be_replaced() -> None:
    assert (
        RunRateProjector().project(
            pd.Series([1.0, 2.0]),
            0.0,
            pd.Timestamp("2025-01-03", tz="UTC"),
            pd.Timestamp("2025-02-01", tz="UTC"),
        )
        is None
    )

    class Flat:
        def project(self, daily, spent, as_of, period_end):  # type: ignore[no-untyped-def]
            return Projection(spent, 10_000.0, 0.0, 7, as_of, period_end)

    assert isinstance(Flat(), SpendProjector)
    df = cost_frame(days=20)
    ctx = AlertContext(df, since="2025-01-19")
    alerts = BudgetForecast(Budget("b", 50_000), projector=Flat()).evaluate(ctx)
    assert len(alerts) == 1 and alerts[0].probability == 1.0
    with pytest.raises(ConfigError, match="projector"):
        BudgetForecast(Budget("b", 1.0), projector=object())  # type: ignore[arg-type]
