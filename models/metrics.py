"""Forecast accuracy metrics (point and interval), per series and aggregated.

Point metrics: sMAPE, MASE, WAPE, RMSSE, bias. Interval metrics: coverage,
scaled pinball loss and MSIS. OWA compares sMAPE and MASE with the Naive2
benchmark of the M4 competition.

Definitions (``y`` actual, ``f`` forecast, ``n`` points of one series):

* sMAPE = ``mean(200 |y - f| / (|y| + |f|))`` in percent (0/0 counts as 0);
* MASE = ``mean|y - f| / mean|y_t - y_{t-m}|``, the scale from the training
  part with ``m`` the season length (``m = 1`` if the training part is
  shorter than ``m + 1``);
* WAPE = ``100 sum|y - f| / sum|y|`` in percent;
* RMSSE = ``sqrt(mean((y - f)^2) / mean((y_t - y_{t-1})^2))`` (M5);
* bias = ``100 sum(f - y) / sum|y|`` in percent (positive: over-forecast);
* coverage_L = percent of actuals inside ``[lo_L, hi_L]``;
* pinball_L = mean pinball loss of ``lo_L`` and ``hi_L`` as quantiles
  ``(1 - L/100)/2`` and ``1 - (1 - L/100)/2``, divided by the MASE scale;
* MSIS = ``mean(U - L + 2/a (L - y) 1{y < L} + 2/a (y - U) 1{y > U})`` divided
  by the MASE scale, with ``a = 0.05`` and the 95 % interval (Gneiting and
  Raftery 2007; M4);
* OWA = ``(sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2`` on the aggregates;
  the defaults are the M4 Hourly Naive2 values (18.383, 2.395).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.exceptions import InvalidFrameError
from features.schema import validate_levels
from models._panel import normalize_timestamps

__all__ = [
    "M4_HOURLY_NAIVE2_MASE",
    "M4_HOURLY_NAIVE2_SMAPE",
    "bias",
    "coverage",
    "evaluate",
    "mase",
    "msis",
    "owa",
    "pinball_loss",
    "rmsse",
    "seasonal_scale",
    "smape",
    "wape",
]

#: Naive2 on the M4 Hourly test set (M4 README / published results).
M4_HOURLY_NAIVE2_SMAPE = 18.383
M4_HOURLY_NAIVE2_MASE = 2.395


def _arr(x: object) -> np.ndarray:
    return np.asarray(x, dtype=float)


def smape(y: object, yhat: object) -> float:
    """Symmetric MAPE in percent, ``mean(200 |y - f| / (|y| + |f|))``; 0/0 counts as 0."""
    y, f = _arr(y), _arr(yhat)
    denom = np.abs(y) + np.abs(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(denom > 0, 200.0 * np.abs(y - f) / denom, 0.0)
    return float(np.mean(terms))


def seasonal_scale(y_train: object, season_length: int, order: int = 1) -> float:
    """Mean of ``|y_t - y_{t-m}|**order`` over the training part.

    Uses ``m = 1`` when the training part is shorter than ``m + 1``; returns NaN
    for a single observation.
    """
    y = _arr(y_train)
    m = season_length if len(y) > season_length else 1
    if len(y) <= m:
        return float("nan")
    return float(np.mean(np.abs(y[m:] - y[:-m]) ** order))


def mase(y: object, yhat: object, y_train: object, season_length: int) -> float:
    """Mean absolute scaled error (M4): ``mean|y - f| / mean|y_t - y_{t-m}|``."""
    scale = seasonal_scale(y_train, season_length)
    return float(np.mean(np.abs(_arr(y) - _arr(yhat))) / scale)


def wape(y: object, yhat: object) -> float:
    """Weighted absolute percentage error in percent, ``100 sum|y - f| / sum|y|``."""
    y, f = _arr(y), _arr(yhat)
    return float(100.0 * np.sum(np.abs(y - f)) / np.sum(np.abs(y)))


def rmsse(y: object, yhat: object, y_train: object) -> float:
    """Root mean squared scaled error (M5), scaled by one-step naive in-sample MSE."""
    scale = seasonal_scale(y_train, 1, order=2)
    return float(np.sqrt(np.mean((_arr(y) - _arr(yhat)) ** 2) / scale))


def bias(y: object, yhat: object) -> float:
    """Forecast bias in percent of the actual volume, ``100 sum(f - y) / sum|y|``."""
    y, f = _arr(y), _arr(yhat)
    return float(100.0 * np.sum(f - y) / np.sum(np.abs(y)))


def coverage(y: object, lo: object, hi: object) -> float:
    """Percent of actuals inside ``[lo, hi]``."""
    y = _arr(y)
    return float(100.0 * np.mean((y >= _arr(lo)) & (y <= _arr(hi))))


def pinball_loss(y: object, q_pred: object, quantile: float) -> float:
    """Mean pinball loss of a quantile forecast ``q_pred`` at ``quantile`` in (0, 1)."""
    diff = _arr(y) - _arr(q_pred)
    return float(np.mean(np.maximum(quantile * diff, (quantile - 1) * diff)))


def msis(
    y: object,
    lo: object,
    hi: object,
    y_train: object,
    season_length: int,
    alpha: float = 0.05,
) -> float:
    """Mean scaled interval score (M4) of the ``1 - alpha`` interval ``[lo, hi]``."""
    y, lo_, hi_ = _arr(y), _arr(lo), _arr(hi)
    score = (
        (hi_ - lo_) + (2.0 / alpha) * (lo_ - y) * (y < lo_) + (2.0 / alpha) * (y - hi_) * (y > hi_)
    )
    return float(np.mean(score) / seasonal_scale(y_train, season_length))


def owa(
    smape_value: float,
    mase_value: float,
    naive2_smape: float = M4_HOURLY_NAIVE2_SMAPE,
    naive2_mase: float = M4_HOURLY_NAIVE2_MASE,
) -> float:
    """Overall weighted average relative to Naive2 (M4)."""
    return 0.5 * (smape_value / naive2_smape + mase_value / naive2_mase)


def _scales(
    train: pd.DataFrame, keys: pd.DataFrame, season_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """MASE and RMSSE scales for every (id, cutoff) pair in ``keys``."""
    mase_s = np.full(len(keys), np.nan)
    rmsse_s = np.full(len(keys), np.nan)
    groups = {k: g for k, g in train.groupby("_id", sort=False)}
    for i, (uid, cutoff) in enumerate(zip(keys["_id"], keys["_cutoff"], strict=True)):
        g = groups.get(uid)
        if g is None:
            continue
        y = g["_y"].to_numpy(dtype=float)
        if cutoff is not None and not pd.isna(cutoff):
            y = y[g["_ds"].to_numpy() <= np.datetime64(cutoff.tz_convert(None))]
        mase_s[i] = seasonal_scale(y, season_length)
        rmsse_s[i] = seasonal_scale(y, 1, order=2)
    return mase_s, rmsse_s


def evaluate(
    cv_df: pd.DataFrame,
    train_df: pd.DataFrame,
    season_length: int,
    levels: Sequence[int] = (80, 95),
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
    naive2_smape: float = M4_HOURLY_NAIVE2_SMAPE,
    naive2_mase: float = M4_HOURLY_NAIVE2_MASE,
) -> pd.DataFrame:
    """Score forecasts against actuals, per series and overall.

    Parameters
    ----------
    cv_df : pandas.DataFrame
        Forecasts with actuals: ``id_col, time_col, y, yhat`` and ``lo_L, hi_L``
        for each level, plus ``cutoff`` when several windows were evaluated
        (the output of ``cross_validation``).
    train_df : pandas.DataFrame
        Series frame with the history (``id_col, time_col, target_col``); for
        each series and cutoff only rows up to the cutoff give the scales. May
        be the full frame the windows were cut from.
    season_length : int
        Seasonal period of the MASE and MSIS scales.
    levels : sequence of int
        Interval levels to score (coverage and pinball; MSIS needs 95).
    id_col, time_col, target_col : str
        Column names.
    naive2_smape, naive2_mase : float
        Naive2 references for OWA (default: M4 Hourly).

    Returns
    -------
    pandas.DataFrame
        One row per series then a last row ``id_col == "ALL"``. Columns:
        ``id_col, n, smape, mase, wape, rmsse, bias``, then ``coverage_L`` and
        ``pinball_L`` per level, ``msis`` (when 95 is a level) and ``owa``
        (aggregate row only). sMAPE, MASE, RMSSE, pinball and MSIS aggregate as
        means of the per-series values (M4); WAPE, bias and coverage pool all
        points.
    """
    levels = validate_levels(levels)
    need = [id_col, time_col, "y", "yhat", *[f"{p}_{lv}" for lv in levels for p in ("lo", "hi")]]
    missing = [c for c in need if c not in cv_df.columns]
    if missing:
        raise InvalidFrameError(
            f"missing required column(s) {missing}; got columns {list(cv_df.columns)}",
            column=missing[0],
            frame="cross-validation",
        )
    for c in (id_col, time_col, target_col):
        if c not in train_df.columns:
            raise InvalidFrameError(
                f"missing required column {c!r}; got columns {list(train_df.columns)}",
                column=c,
                frame="series",
            )
    cv = pd.DataFrame(
        {
            "_id": cv_df[id_col].to_numpy(),
            "_cutoff": (
                normalize_timestamps(cv_df["cutoff"], "cutoff")
                if "cutoff" in cv_df.columns
                else pd.Series([pd.NaT] * len(cv_df))
            ),
            "y": cv_df["y"].to_numpy(dtype=float),
            "yhat": cv_df["yhat"].to_numpy(dtype=float),
        }
    )
    for lv in levels:
        cv[f"lo_{lv}"] = cv_df[f"lo_{lv}"].to_numpy(dtype=float)
        cv[f"hi_{lv}"] = cv_df[f"hi_{lv}"].to_numpy(dtype=float)
    train = pd.DataFrame(
        {
            "_id": train_df[id_col].to_numpy(),
            "_ds": normalize_timestamps(train_df[time_col], time_col).dt.tz_convert(None),
            "_y": pd.to_numeric(train_df[target_col], errors="coerce").to_numpy(dtype=float),
        }
    ).sort_values(["_id", "_ds"], kind="stable")
    keys = cv[["_id", "_cutoff"]].drop_duplicates().reset_index(drop=True)
    has_cutoff = "cutoff" in cv_df.columns
    if not has_cutoff:
        keys["_cutoff"] = None
    mase_s, rmsse_s = _scales(train, keys, season_length)
    keys["_mase_scale"] = mase_s
    keys["_rmsse_scale"] = rmsse_s
    if has_cutoff:
        cv = cv.merge(keys, on=["_id", "_cutoff"], how="left")
    else:
        cv = cv.merge(keys.drop(columns="_cutoff"), on="_id", how="left")

    y, f = cv["y"].to_numpy(), cv["yhat"].to_numpy()
    err = f - y
    denom = np.abs(y) + np.abs(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv["_smape"] = np.where(denom > 0, 200.0 * np.abs(err) / denom, 0.0)
        cv["_ase"] = np.abs(err) / cv["_mase_scale"].to_numpy()
        cv["_sse"] = err**2 / cv["_rmsse_scale"].to_numpy()
    cv["_abs"] = np.abs(err)
    cv["_err"] = err
    cv["_absy"] = np.abs(y)
    for lv in levels:
        lo, hi = cv[f"lo_{lv}"].to_numpy(), cv[f"hi_{lv}"].to_numpy()
        a = 1 - lv / 100
        cv[f"_cov{lv}"] = ((y >= lo) & (y <= hi)).astype(float)
        q_lo, q_hi = a / 2, 1 - a / 2
        pin = 0.5 * (
            np.maximum(q_lo * (y - lo), (q_lo - 1) * (y - lo))
            + np.maximum(q_hi * (y - hi), (q_hi - 1) * (y - hi))
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            cv[f"_pin{lv}"] = pin / cv["_mase_scale"].to_numpy()
            if lv == 95:
                score = (hi - lo) + (2 / a) * (lo - y) * (y < lo) + (2 / a) * (y - hi) * (y > hi)
                cv["_msis"] = score / cv["_mase_scale"].to_numpy()

    g = cv.groupby("_id", sort=True)
    per = pd.DataFrame({"n": g.size()})
    per["smape"] = g["_smape"].mean()
    per["mase"] = g["_ase"].mean()
    per["wape"] = 100 * g["_abs"].sum() / g["_absy"].sum()
    per["rmsse"] = np.sqrt(g["_sse"].mean())
    per["bias"] = 100 * g["_err"].sum() / g["_absy"].sum()
    for lv in levels:
        per[f"coverage_{lv}"] = 100 * g[f"_cov{lv}"].mean()
        per[f"pinball_{lv}"] = g[f"_pin{lv}"].mean()
    if 95 in levels:
        per["msis"] = g["_msis"].mean()
    per = per.replace([np.inf, -np.inf], np.nan)

    total: dict[str, float] = {"n": float(len(cv))}
    total["smape"] = float(per["smape"].mean())
    total["mase"] = float(per["mase"].mean())
    total["wape"] = float(100 * cv["_abs"].sum() / cv["_absy"].sum())
    total["rmsse"] = float(per["rmsse"].mean())
    total["bias"] = float(100 * cv["_err"].sum() / cv["_absy"].sum())
    for lv in levels:
        total[f"coverage_{lv}"] = float(100 * cv[f"_cov{lv}"].mean())
        total[f"pinball_{lv}"] = float(per[f"pinball_{lv}"].mean())
    if 95 in levels:
        total["msis"] = float(per["msis"].mean())
    total["owa"] = owa(total["smape"], total["mase"], naive2_smape, naive2_mase)
    per["owa"] = np.nan
    out = per.reset_index().rename(columns={"_id": id_col})
    all_row = pd.DataFrame([{id_col: "ALL", **total}])
    out = pd.concat([out.astype({id_col: object}), all_row], ignore_index=True)
    out["n"] = out["n"].astype(int)
    return out
