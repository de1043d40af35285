"""Reconciliation: coherence, closed-form small cases, MinT shrinkage and method choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.exceptions import ConfigError, NotFittedError
from features.series import HierarchySeries, hierarchy_from_frame
from models.base import Bands, BaseForecaster, SeriesPanel
from models.baselines import Naive, SeasonalNaive
from models.hierarchy import (
    METHODS,
    HierarchicalForecaster,
    forecast_hierarchy,
    reconcile,
    reconciliation_matrix,
    shrink_covariance,
)

# total = A + B
S2 = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])


def _fleet(days: int = 150, seed: int = 0) -> HierarchySeries:
    """Two teams, three projects: weekly seasonality, growth and noise (daily, UTC)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2025-01-01", periods=days, freq="D", tz="UTC")
    t = np.arange(days)
    rows = []
    for team, project, level in (("nlp", "chat", 50.0), ("nlp", "llm", 30.0), ("cv", "vit", 20.0)):
        y = level * (1 + 0.002 * t) + 5 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 2, days)
        rows.append(pd.DataFrame({"ds": ds, "team": team, "project": project, "y": y}))
    return hierarchy_from_frame(pd.concat(rows), ["team", "project"])


def _coherent(hs: HierarchySeries, values: np.ndarray) -> float:
    """Largest gap between a node and the sum of its bottom series."""
    s = hs.S.toarray()
    return float(np.max(np.abs(s @ values[hs.bottom_mask] - values)))


# --------------------------------------------------------------------------- numpy core
def test_ols_on_a_two_child_hierarchy_matches_the_closed_form() -> None:
    # Incoherence d = 10 - (4 + 5) = 1 is split equally over the three nodes.
    out = reconcile(S2, np.array([[10.0], [4.0], [5.0]]), "ols")
    np.testing.assert_allclose(out[:, 0], [10 - 1 / 3, 4 + 1 / 3, 5 + 1 / 3], atol=1e-12)


def test_wls_var_splits_the_incoherence_in_proportion_to_the_variances() -> None:
    # Residual variances 1 (total), 4 (A), 5 (B): the total keeps most of its forecast.
    rng = np.random.default_rng(1)
    res = rng.standard_normal((20_000, 3))
    res = (res - res.mean(0)) / res.std(0) * np.sqrt([1.0, 4.0, 5.0])
    out = reconcile(S2, np.array([[10.0], [4.0], [5.0]]), "wls_var", residuals=res)
    var = np.mean(res**2, axis=0)
    d = 1.0
    want = [10 - d * var[0] / var.sum(), 4 + d * var[1] / var.sum(), 5 + d * var[2] / var.sum()]
    np.testing.assert_allclose(out[:, 0], want, atol=1e-9)


def test_mint_matches_the_textbook_formula_on_a_known_covariance() -> None:
    rng = np.random.default_rng(2)
    s = np.vstack([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], np.eye(3)])  # total, A+B, A, B, C
    # Correlated residuals: the shrunk covariance is what P must be built from.
    mix = rng.standard_normal((5, 5))
    res = rng.standard_normal((400, 5)) @ mix
    w, lam = shrink_covariance(res)
    assert 0.0 <= lam <= 1.0
    winv = np.linalg.inv(w)
    want = np.linalg.inv(s.T @ winv @ s) @ s.T @ winv
    got = reconciliation_matrix(s, "mint_shrink", residuals=res)
    np.testing.assert_allclose(got, want, atol=1e-8)
    # Unbiasedness: P S = I, so coherent forecasts pass through unchanged.
    np.testing.assert_allclose(got @ s, np.eye(3), atol=1e-9)


def test_shrinkage_intensity_follows_the_true_correlation() -> None:
    rng = np.random.default_rng(3)
    independent = rng.standard_normal((2000, 6))
    _, lam_ind = shrink_covariance(independent)
    common = rng.standard_normal((2000, 1))
    correlated = common + 0.1 * rng.standard_normal((2000, 6))
    _, lam_cor = shrink_covariance(correlated)
    assert lam_ind > 0.5  # nothing to keep: shrink towards the diagonal
    assert lam_cor < 0.05  # strong correlations are kept
    with pytest.raises(ConfigError, match="at least 2"):
        shrink_covariance(independent[:1])


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("none",)])
def test_every_method_is_coherent(method: str) -> None:
    rng = np.random.default_rng(4)
    s = np.vstack([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], np.eye(3)])
    yhat = rng.uniform(1, 10, (6, 4))
    res = rng.standard_normal((50, 6))
    hist = np.abs(rng.standard_normal((6, 30))) + 1
    hist = s @ hist[3:]
    out = reconcile(s, yhat, method, residuals=res, history=hist)
    np.testing.assert_allclose(s @ out[3:], out, atol=1e-9)


def test_bottom_up_equals_the_sum_and_bad_arguments_are_named() -> None:
    yhat = np.array([[99.0, 98.0], [4.0, 1.0], [5.0, 2.0]])
    np.testing.assert_array_equal(reconcile(S2, yhat, "bottom_up"), [[9, 3], [4, 1], [5, 2]])
    with pytest.raises(ConfigError, match="method"):
        reconciliation_matrix(S2, "magic")
    with pytest.raises(ConfigError, match="residuals"):
        reconciliation_matrix(S2, "mint_shrink")
    with pytest.raises(ConfigError, match="history"):
        reconciliation_matrix(S2, "top_down")
    with pytest.raises(ConfigError, match="identity"):
        reconciliation_matrix(np.ones((2, 2)), "bottom_up")


# --------------------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def fitted() -> tuple[HierarchySeries, HierarchicalForecaster]:
    hs = _fleet()
    est = HierarchicalForecaster(
        base=SeasonalNaive(), horizon=14, n_windows=3, step=7, n_jobs=1
    ).fit(hs)
    return hs, est


def test_predict_is_coherent_for_every_method(
    fitted: tuple[HierarchySeries, HierarchicalForecaster],
) -> None:
    hs, est = fitted
    for method in est.methods_:
        fc = est.predict(14, method=method)
        assert list(fc.columns) == ["unique_id", "ds", "yhat", "lo_80", "hi_80", "lo_95", "hi_95"]
        assert fc["ds"].iloc[0] == hs.ds[-1] + pd.Timedelta(days=1)
        v = fc["yhat"].to_numpy().reshape(len(hs.ids), 14)
        if method != "none":
            assert _coherent(hs, v) < 1e-9, method
        assert (fc["lo_95"] <= fc["lo_80"]).all() and (fc["lo_80"] <= fc["yhat"]).all()
        assert (fc["yhat"] <= fc["hi_80"]).all() and (fc["hi_80"] <= fc["hi_95"]).all()


def test_bottom_up_forecast_is_the_sum_of_the_base_bottom_forecasts(
    fitted: tuple[HierarchySeries, HierarchicalForecaster],
) -> None:
    hs, est = fitted
    bu = est.predict(14, method="bottom_up")["yhat"].to_numpy().reshape(len(hs.ids), 14)
    base = est.predict(14, method="none")["yhat"].to_numpy().reshape(len(hs.ids), 14)
    np.testing.assert_allclose(bu[hs.bottom_mask], base[hs.bottom_mask], atol=1e-12)
    np.testing.assert_allclose(bu[0], base[hs.bottom_mask].sum(axis=0), atol=1e-9)


def test_auto_picks_the_lowest_mean_wape_and_records_the_backtest(
    fitted: tuple[HierarchySeries, HierarchicalForecaster],
) -> None:
    hs, est = fitted
    table = est.backtest_
    assert set(table["level"]) == {"total", "team", "project", "mean"}
    assert set(table["method"]) == set(est.methods_)
    means = table[(table["level"] == "mean") & (table["method"] != "none")]
    assert est.method_ == means.sort_values("wape").iloc[0]["method"]
    # The first window only provides past residuals for the covariance of the others.
    assert est.scored_windows_ == [1, 2]
    assert est.backtest_forecasts_["bottom_up"].shape == (len(hs.ids), 2, 14)
    # Backtest forecasts are coherent window by window.
    for w in range(2):
        assert _coherent(hs, est.backtest_forecasts_["mint_shrink"][:, w]) < 1e-9
    assert len(est.cutoffs_) == 2 and est.cutoffs_[-1] == hs.ds[-15]


def test_method_choice_follows_the_data() -> None:
    """Two projects whose noise cancels in the team total: top-down beats bottom-up."""
    rng = np.random.default_rng(5)
    days = 120
    ds = pd.date_range("2025-01-01", periods=days, freq="D", tz="UTC")
    e = rng.normal(0, 10, days)
    df = pd.concat(
        [
            pd.DataFrame({"ds": ds, "team": "t", "project": "a", "y": 100 + e}),
            pd.DataFrame({"ds": ds, "team": "t", "project": "b", "y": 100 - e}),
        ]
    )
    hs = hierarchy_from_frame(df, ["team", "project"])
    est = HierarchicalForecaster(
        base=Naive(), candidates=("bottom_up", "top_down"), horizon=14, n_windows=3, n_jobs=1
    ).fit(hs)
    assert est.method_ == "top_down"
    wape = est.backtest_.set_index(["level", "method"])["wape"]
    assert wape[("project", "top_down")] < wape[("project", "bottom_up")]


def test_intervals_are_roughly_calibrated_on_noise() -> None:
    hs = _fleet(days=240, seed=6)
    est = HierarchicalForecaster(
        base=SeasonalNaive(), horizon=14, n_windows=6, step=14, n_jobs=1
    ).fit(hs)
    cov = est.backtest_.set_index(["level", "method"])["coverage_80"]
    # Cross-fitted coverage of the 80% intervals over 6 windows: near 80.
    assert 65 <= cov[("mean", est.method_)] <= 95


def test_parameters_and_state_are_checked() -> None:
    hs = _fleet(days=60)
    with pytest.raises(NotFittedError, match="fit"):
        HierarchicalForecaster().predict(3)
    with pytest.raises(ConfigError, match="method"):
        HierarchicalForecaster(method="magic").fit(hs)
    with pytest.raises(ConfigError, match="candidates"):
        HierarchicalForecaster(candidates=("none",)).fit(hs)
    with pytest.raises(ConfigError, match="n_windows"):
        HierarchicalForecaster(n_windows=0).fit(hs)
    with pytest.raises(ConfigError):
        HierarchicalForecaster(base=3).fit(hs)  # type: ignore[arg-type]
    # Too short for the backtest: said plainly.
    with pytest.raises(Exception, match="time steps"):
        HierarchicalForecaster(base=Naive(), horizon=30, n_windows=3).fit(_fleet(days=40))


def test_short_history_shortens_the_backtest_and_says_so() -> None:
    est = HierarchicalForecaster(base=Naive(), horizon=60, n_windows=2, step=7).fit(_fleet(70))
    assert est.backtest_horizon_ < 60
    assert any("shortened" in n for n in est.notes_)
    fc = est.predict()
    assert len(fc) == 60 * 6


def test_cross_validation_refits_at_every_cutoff() -> None:
    hs = _fleet(days=120)
    est = HierarchicalForecaster(base=Naive(), horizon=7, n_windows=2, step=7)
    cv = est.cross_validation(hs, h=7, n_windows=2, methods=["bottom_up", "none"])
    assert set(cv["method"]) == {"bottom_up", "none"}
    assert cv["cutoff"].nunique() == 2
    assert len(cv) == 2 * 2 * len(hs.ids) * 7
    frame = hs.frame().set_index(["unique_id", "ds"])["y"]
    keys = list(zip(cv["unique_id"], cv["ds"], strict=True))
    np.testing.assert_allclose(cv["y"], frame.loc[keys].to_numpy())


def test_forecast_hierarchy_returns_the_result_frames() -> None:
    hs = _fleet(days=120)
    fc, bt = forecast_hierarchy(hs, horizon=14, model="seasonal_naive", n_windows=2, n_jobs=1)
    assert list(fc.columns) == [
        "level", "unique_id", "ds", "yhat", "lo_80", "hi_80", "lo_95", "hi_95", "model",
    ]  # fmt: skip
    assert list(bt.columns) == [
        "level", "model", "horizon_days", "wape", "smape", "mase", "bias",
        "coverage_80", "coverage_95", "msis",
    ]  # fmt: skip
    assert fc.attrs["meta"]["reconciliation"] in METHODS
    assert set(fc["level"]) == {"total", "team", "project"}
    assert len(fc) == 14 * len(hs.ids)
    assert bt["horizon_days"].eq(14).all()


class _RecentMedian(BaseForecaster):
    """Median of the last week: a non-linear base, so its forecasts are not coherent."""

    name = "recent_median"

    def _fit(self, panel: SeriesPanel) -> None:
        self._panel = panel

    def _update(self, panel: SeriesPanel) -> None:
        self._panel = panel

    def _predict(
        self, h: int, levels: list[int], future_exog: dict[str, np.ndarray] | None
    ) -> tuple[np.ndarray, Bands]:
        mean = np.repeat(np.median(self._panel.matrix(7), axis=1)[:, None], h, axis=1)
        return mean, {lv: (mean - 1.0, mean + 1.0) for lv in levels}


def test_backtest_windows_do_not_see_the_future() -> None:
    """A window's reconciled forecast depends only on data up to its cutoff."""
    hs = _fleet(days=120)
    est = HierarchicalForecaster(base=_RecentMedian(), horizon=14, n_windows=3, step=7)
    est.fit(hs)
    first_scored = est.scored_windows_[0]
    cutoff = est.cutoffs_[0]
    # Change every bottom series after that cutoff (and rebuild the sums).
    later = hs.ds > cutoff
    frame = hs.frame()
    bottom = frame[frame["level"] == "project"].merge(hs.nodes, on=["unique_id", "level"])
    bottom.loc[bottom["ds"].isin(hs.ds[later]), "y"] *= 3.0
    changed = hierarchy_from_frame(bottom[["ds", "team", "project", "y"]], ["team", "project"])
    est2 = HierarchicalForecaster(base=_RecentMedian(), horizon=14, n_windows=3, step=7)
    est2.fit(changed)
    assert est2.scored_windows_[0] == first_scored
    for method in ("mint_shrink", "wls_var", "top_down"):
        np.testing.assert_allclose(
            est2.backtest_forecasts_[method][:, 0], est.backtest_forecasts_[method][:, 0]
        )
