"""Root cause of a cost anomaly: which dimension values moved the aggregate, in dollars.

An anomaly is flagged on an aggregate series (the hourly or daily total, one
team, one account). :func:`root_cause` explains it: for every value of every
dimension (team, project, service, account, instance type, usage type,
resource) it compares the cost *expected* in the anomalous window with the cost
*actually* observed there, and ranks the values by their contribution to the
deviation of the aggregate.

Expected cost (per value and for the aggregate)
    ``baseline="seasonal"`` (default): for every period ``t`` of the window, the
    median of the same period one, two, ... ``cycles`` seasons earlier
    (``t - k * season``; with hourly data and a 7-day season, the same hour of
    the same weekday over the previous four weeks). Lags that fall before the
    start of the history are not used; a period with no usable lag falls back to
    the trailing baseline.
    ``baseline="trailing"``: the median over the ``trailing`` periods just
    before the window, for every period of the window.
    A value absent from a baseline period counts as zero cost there, so a new
    resource is fully unexpected. Medians (the default ``statistic``) resist
    past anomalies in the baseline but are not additive: the deltas of one
    dimension need not sum to the aggregate's impact (``statistic="mean"``
    makes them sum exactly).

Ranking
    Each value's ``contribution`` is its delta (actual - expected) in the
    direction of the aggregate's deviation. Values are ranked by contribution;
    contributions within ``tie_tolerance`` of the impact of each other are
    ranked by *surprise* (the Jensen-Shannon term of the value between its
    expected and actual share of cost, Adtributor-style), which puts the most
    specific culprit (a new resource) before the broader values that contain it
    (its team, its usage type, plus some noise).

Everything is a pure function of a cost frame (pandas, the canonical columns
or any subset holding ``time_col``, ``cost_col`` and the dimensions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.exceptions import InvalidFrameError

#: Dimensions searched by default, broad to specific.
DEFAULT_DIMENSIONS: tuple[str, ...] = (
    "team",
    "project",
    "service",
    "account",
    "instance_type",
    "usage_type",
    "resource_id",
)

#: Label of a missing dimension value (untagged spend).
MISSING_VALUE = "(none)"

#: Columns of :attr:`RootCauseReport.contributions`, in order.
CONTRIBUTION_COLUMNS: tuple[str, ...] = (
    "rank",
    "dimension",
    "value",
    "expected",
    "actual",
    "delta",
    "contribution",
    "share",
    "change_pct",
    "surprise",
)

Baseline = Literal["seasonal", "trailing"]
Statistic = Literal["median", "mean"]


@dataclass(frozen=True)
class RootCauseReport:
    """Expected vs actual cost of an anomalous window, and the values that explain it.

    Attributes
    ----------
    start, end : pandas.Timestamp
        The window ``[start, end)`` (UTC, aligned to ``freq``).
    freq : str
        Period of the aggregate series (``"h"``, ``"D"``, ...).
    baseline : str
        How the expectation was formed: ``"seasonal"``, ``"trailing"``, a mix
        (``"seasonal+trailing"`` when some periods fell back) or ``"none"``
        (no history: everything is unexpected).
    expected, actual : float
        Aggregate cost expected and observed in the window (currency units).
    impact : float
        ``actual - expected``.
    contributions : pandas.DataFrame
        One row per (dimension, value) kept, ranked; columns
        :data:`CONTRIBUTION_COLUMNS`: ``delta = actual - expected``,
        ``contribution`` = delta in the direction of the impact, ``share`` =
        contribution / |impact| (NaN when the impact is 0), ``change_pct`` =
        100 * delta / expected (inf for a value with no expected cost),
        ``surprise`` >= 0.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    freq: str
    baseline: str
    expected: float
    actual: float
    impact: float
    dimensions: tuple[str, ...]
    contributions: pd.DataFrame

    def top(self, n: int = 5, dimension: str | None = None) -> pd.DataFrame:
        """The ``n`` best-ranked values, overall or within one ``dimension``."""
        df = self.contributions
        if dimension is not None:
            if dimension not in self.dimensions:
                raise ValueError(
                    f"parameter dimension must be one of {list(self.dimensions)}, got {dimension!r}"
                )
            df = df[df["dimension"] == dimension]
        return df.head(n).reset_index(drop=True)

    def culprit(self, dimension: str) -> dict[str, Any] | None:
        """The top value of ``dimension`` as a record, or None when nothing moved."""
        top = self.top(1, dimension)
        return None if top.empty else _record(top.iloc[0])

    def to_records(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` best-ranked values as JSON-ready dicts."""
        return [_record(row) for _, row in self.top(n).iterrows()]

    def to_dict(self, n: int = 5) -> dict[str, Any]:
        """Summary and the ``n`` top contributions, JSON-ready."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "freq": self.freq,
            "baseline": self.baseline,
            "expected": round(self.expected, 2),
            "actual": round(self.actual, 2),
            "impact": round(self.impact, 2),
            "root_causes": self.to_records(n),
        }


def _record(row: pd.Series) -> dict[str, Any]:
    def num(v: Any) -> float | None:
        f = float(v)
        return round(f, 4) if np.isfinite(f) else None

    return {
        "dimension": str(row["dimension"]),
        "value": str(row["value"]),
        "expected": num(row["expected"]),
        "actual": num(row["actual"]),
        "delta": num(row["delta"]),
        "share": num(row["share"]),
        "change_pct": num(row["change_pct"]),
    }


def _period_offset(freq: str) -> pd.Timedelta:
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"parameter freq must be a fixed frequency like 'h' or 'D', got {freq!r}"
        ) from exc
    if step <= pd.Timedelta(0):
        raise ValueError(f"parameter freq must be a positive frequency, got {freq!r}")
    return step


def _utc(ts: Any, name: str) -> pd.Timestamp:
    try:
        out = pd.Timestamp(ts)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"parameter {name} must be a timestamp, got {ts!r}") from exc
    if out is pd.NaT:
        raise ValueError(f"parameter {name} must be a timestamp, got {ts!r}")
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def _check_frame(frame: pd.DataFrame, cols: Sequence[str], time_col: str, cost_col: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidFrameError(
            f"expected a pandas DataFrame, got {type(frame).__name__}", frame="cost"
        )
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise InvalidFrameError(
            f"missing required column(s) {missing}; got columns {list(frame.columns)}",
            column=missing[0],
            frame="cost",
        )
    if not isinstance(frame[time_col].dtype, pd.DatetimeTZDtype):
        raise InvalidFrameError(
            f"must be a timezone-aware UTC timestamp, got dtype {frame[time_col].dtype}",
            column=time_col,
            frame="cost",
        )
    if not pd.api.types.is_numeric_dtype(frame[cost_col]):
        raise InvalidFrameError(
            f"must be numeric, got dtype {frame[cost_col].dtype}", column=cost_col, frame="cost"
        )


def where_mask(frame: pd.DataFrame, where: Mapping[str, Any] | None) -> np.ndarray:
    """Boolean mask of the rows in scope (see ``where`` in :func:`root_cause`)."""
    mask = np.ones(len(frame), dtype=bool)
    for col, val in (where or {}).items():
        if col not in frame.columns:
            raise InvalidFrameError(
                f"cannot filter on a missing column; got columns {list(frame.columns)}",
                column=col,
                frame="cost",
            )
        s = frame[col]
        if val is None or val == MISSING_VALUE:
            mask &= s.isna().to_numpy()
        elif isinstance(val, str):
            mask &= (s == val).fillna(False).to_numpy(dtype=bool)
        else:
            vals = list(val)
            m = np.array(
                s.isin([v for v in vals if v is not None and v != MISSING_VALUE]), dtype=bool
            )
            if any(v is None or v == MISSING_VALUE for v in vals):
                m |= s.isna().to_numpy()
            mask &= m
    return mask


def _surprise(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-value Jensen-Shannon term between expected shares ``p`` and actual shares ``q``."""
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        tp = np.where(p > 0, p * np.log2(p / m), 0.0)
        tq = np.where(q > 0, q * np.log2(q / m), 0.0)
    return np.nan_to_num(0.5 * (tp + tq), nan=0.0)


class _Periods:
    """Window periods, the baseline periods each one uses, and how they combine.

    All periods needed are laid out once (:attr:`needed`, sorted); the window,
    seasonal-lag and trailing periods are positions in it, so a value-by-period
    cost matrix is built with one ``bincount``.
    """

    def __init__(
        self,
        start: pd.Timestamp,
        end: pd.Timestamp,
        step: pd.Timedelta,
        history_start: pd.Timestamp,
        baseline: Baseline,
        season: pd.Timedelta,
        cycles: int,
        trailing: int,
    ) -> None:
        if end <= start:
            raise ValueError(f"parameter end must be after start, got start={start}, end={end}")
        window = pd.date_range(start, end - step, freq=step)
        w = len(window)
        if baseline == "seasonal":
            lags = [window - k * season for k in range(1, cycles + 1)]
            lag_index = lags[0].append(lags[1:])
            self.lag_ok = np.asarray(lag_index >= history_start).reshape(cycles, w)
        else:
            lag_index = pd.DatetimeIndex([], tz="UTC")
            self.lag_ok = np.zeros((0, w), dtype=bool)
        self.needs_trailing = (
            ~self.lag_ok.any(axis=0) if baseline == "seasonal" else np.ones(w, dtype=bool)
        )
        tr = pd.date_range(start - trailing * step, start - step, freq=step)
        trailing_index = tr[tr >= history_start] if self.needs_trailing.any() else tr[:0]
        if self.needs_trailing.all() and len(trailing_index) == 0:
            self.kind = "none"
        elif not self.needs_trailing.any():
            self.kind = "seasonal"
        elif self.needs_trailing.all():
            self.kind = "trailing"
        else:
            self.kind = "seasonal+trailing"
        used_lags = lag_index[self.lag_ok.reshape(-1)] if len(lag_index) else lag_index
        self.needed = window.append(used_lags).append(trailing_index).unique().sort_values()
        self.window_pos = self.needed.get_indexer(window)
        self.lag_pos = (
            np.where(self.lag_ok.reshape(-1), self.needed.get_indexer(lag_index), 0).reshape(
                self.lag_ok.shape
            )
            if len(lag_index)
            else np.zeros((0, w), dtype=np.int64)
        )
        self.trailing_pos = self.needed.get_indexer(trailing_index)

    def expected(self, mat: np.ndarray, statistic: Statistic) -> np.ndarray:
        """Expected window cost per row of ``mat`` (rows: values, columns: :attr:`needed`)."""
        n, w = mat.shape[0], len(self.window_pos)
        reduce = np.nanmedian if statistic == "median" else np.nanmean
        per_period = np.zeros((n, w))
        ok_cols = self.lag_ok.any(axis=0)
        if ok_cols.any():
            vals = mat[:, self.lag_pos]  # (n, cycles, w)
            vals = np.where(self.lag_ok[None, :, :], vals, np.nan)
            with np.errstate(all="ignore"):
                per_period[:, ok_cols] = reduce(vals[:, :, ok_cols], axis=1)
        if self.needs_trailing.any() and len(self.trailing_pos):
            per_period[:, self.needs_trailing] = reduce(mat[:, self.trailing_pos], axis=1)[:, None]
        return per_period.sum(axis=1)

    def actual(self, mat: np.ndarray) -> np.ndarray:
        return mat[:, self.window_pos].sum(axis=1)


def _value_codes(col: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes ``0..k-1`` of ``col`` at ``rows`` and the value of each code (missing last)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        raw = np.asarray(col.cat.codes)[rows].astype(np.int64)
        used, codes = np.unique(raw, return_inverse=True)
        cats = col.cat.categories
        labels = [str(cats[u]) for u in used if u >= 0]
        if used.size and used[0] < 0:  # missing sorts first: move it last
            codes = np.where(codes == 0, len(labels), codes - 1)
            labels.append(MISSING_VALUE)
        return codes.astype(np.int64).reshape(-1), labels
    codes, uniques = pd.factorize(col.iloc[rows], use_na_sentinel=True)
    labels = [str(u) for u in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(MISSING_VALUE)
    return np.asarray(codes, dtype=np.int64), labels


def root_cause(
    frame: pd.DataFrame,
    start: Any,
    end: Any | None = None,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    *,
    freq: str = "h",
    baseline: Baseline = "seasonal",
    season: str | pd.Timedelta = "7D",
    cycles: int = 4,
    trailing: int | None = None,
    statistic: Statistic = "median",
    where: Mapping[str, Any] | None = None,
    history_start: Any | None = None,
    top_per_dimension: int = 10,
    tie_tolerance: float = 0.05,
    time_col: str = "ds",
    cost_col: str = "effective_cost",
) -> RootCauseReport:
    """Rank dimension values by their contribution to an anomaly of an aggregate cost series.

    Parameters
    ----------
    frame : pandas.DataFrame
        Cost rows (long format) with ``time_col`` (UTC timestamps), ``cost_col``
        (currency units, negative allowed) and the ``dimensions`` columns
        (strings; missing = untagged, reported as ``"(none)"``). It must cover
        the window and the baseline history.
    start, end : timestamp-like
        The anomalous window ``[start, end)``; naive timestamps are taken as
        UTC. ``start`` is floored and ``end`` ceiled to ``freq``; ``end``
        defaults to one period after ``start``.
    dimensions : sequence of str
        Columns whose values are ranked.
    freq : str, default "h"
        Period of the aggregate series (``"h"`` hourly, ``"D"`` daily).
    baseline : {"seasonal", "trailing"}, default "seasonal"
        See the module docstring.
    season : str or Timedelta, default "7D"
        Season length of the seasonal baseline (same hour of the same weekday).
    cycles : int, default 4
        Past seasons whose same-period values are combined.
    trailing : int, optional
        Periods of the trailing baseline (and of the seasonal fallback);
        default one season's worth of periods.
    statistic : {"median", "mean"}, default "median"
        How baseline periods are combined.
    where : mapping, optional
        Scope of the aggregate, e.g. ``{"team": "nlp"}``; a value may be a
        list, and ``None`` or ``"(none)"`` selects missing values.
    history_start : timestamp-like, optional
        First period with data; lags before it are unusable. Default: the
        first period of ``frame`` (after ``where``).
    top_per_dimension : int, default 10
        Values kept per dimension (the largest contributions).
    tie_tolerance : float, default 0.05
        Contributions within this fraction of the impact of each other are
        ranked by surprise (the specific culprit before the broad values that
        contain it and some noise).
    time_col, cost_col : str
        Column names.

    Returns
    -------
    RootCauseReport

    Raises
    ------
    InvalidFrameError
        When a column is missing or has the wrong dtype.
    ValueError
        For an invalid parameter.
    """
    dims = list(dict.fromkeys(dimensions))
    _check_frame(frame, [time_col, cost_col, *dims], time_col, cost_col)
    if baseline not in ("seasonal", "trailing"):
        raise ValueError(f"parameter baseline must be 'seasonal' or 'trailing', got {baseline!r}")
    if statistic not in ("median", "mean"):
        raise ValueError(f"parameter statistic must be 'median' or 'mean', got {statistic!r}")
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
        raise ValueError(f"parameter cycles must be an int >= 1, got {cycles!r}")
    if (
        isinstance(top_per_dimension, bool)
        or not isinstance(top_per_dimension, int)
        or (top_per_dimension < 1)
    ):
        raise ValueError(
            f"parameter top_per_dimension must be an int >= 1, got {top_per_dimension!r}"
        )
    if not isinstance(tie_tolerance, int | float) or not 0 <= tie_tolerance < 1:
        raise ValueError(f"parameter tie_tolerance must be in [0, 1), got {tie_tolerance!r}")
    step = _period_offset(freq)
    season_td = _period_offset(season) if isinstance(season, str) else pd.Timedelta(season)
    if season_td < step or season_td % step != pd.Timedelta(0):
        raise ValueError(
            f"parameter season must be a positive multiple of freq ({freq}), got {season!r}"
        )
    n_trailing = int(season_td // step) if trailing is None else trailing
    if isinstance(n_trailing, bool) or not isinstance(n_trailing, int) or n_trailing < 1:
        raise ValueError(f"parameter trailing must be an int >= 1, got {trailing!r}")

    t0 = _utc(start, "start").floor(step)
    t1 = t0 + step if end is None else _utc(end, "end").ceil(step)
    in_scope = where_mask(frame, where)
    times = frame[time_col]
    if history_start is not None:
        hist0 = _utc(history_start, "history_start").floor(step)
    elif in_scope.any():
        hist0 = times[in_scope].min().floor(step)
    else:
        hist0 = t0
    periods = _Periods(t0, t1, step, hist0, baseline, season_td, cycles, n_trailing)
    needed = periods.needed
    in_scope &= ((times >= needed[0]) & (times < needed[-1] + step)).to_numpy()
    rows = np.flatnonzero(in_scope)
    pos = needed.get_indexer(times.iloc[rows].dt.floor(step))
    rows, pos = rows[pos >= 0], pos[pos >= 0]
    cost = frame[cost_col].iloc[rows].to_numpy(dtype=np.float64, na_value=0.0)
    n_p = len(needed)

    # The aggregate: its own expectation (a median of sums, not a sum of medians).
    total_mat = np.bincount(pos, weights=cost, minlength=n_p)[None, :]
    total_expected = float(periods.expected(total_mat, statistic)[0])
    total_actual = float(periods.actual(total_mat)[0])
    impact = total_actual - total_expected
    direction = 1.0 if impact >= 0 else -1.0

    # Per dimension, in numpy (this runs once per alert: no frame per dimension).
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("dimension", "value", "expected", "actual", "delta", "surprise")
    }
    for dim in dims:
        codes, labels = _value_codes(frame[dim], rows)
        if not labels:
            continue
        mat = np.bincount(codes * n_p + pos, weights=cost, minlength=len(labels) * n_p)
        mat = mat.reshape(len(labels), n_p)
        expected = periods.expected(mat, statistic)
        actual = periods.actual(mat)
        delta = actual - expected
        exp_tot = np.abs(expected).sum()
        act_tot = np.abs(actual).sum()
        p = np.abs(expected) / exp_tot if exp_tot > 0 else np.zeros_like(expected)
        q = np.abs(actual) / act_tot if act_tot > 0 else np.zeros_like(actual)
        surprise = _surprise(p, q)
        keep = np.flatnonzero(np.abs(delta) > 1e-9)
        # Largest contribution first, then the more surprising value.
        order = keep[np.lexsort((-surprise[keep], -(direction * delta[keep])))][:top_per_dimension]
        cols["dimension"].append(np.full(order.size, dim, dtype=object))
        cols["value"].append(np.asarray(labels, dtype=object)[order])
        cols["expected"].append(expected[order])
        cols["actual"].append(actual[order])
        cols["delta"].append(delta[order])
        cols["surprise"].append(surprise[order])
    out = pd.DataFrame(
        {
            k: (
                np.concatenate(v)
                if v
                else np.array([], dtype=object if k in ("dimension", "value") else float)
            )
            for k, v in cols.items()
        }
    )
    out["contribution"] = direction * out["delta"].to_numpy(dtype=float)
    dim_order = {d: i for i, d in enumerate(dims)}
    out["_dim"] = out["dimension"].map(dim_order)
    out = out.sort_values(["contribution", "surprise"], ascending=[False, False])
    # Near-ties in dollars (within tie_tolerance of the impact) form one group; inside a
    # group the more surprising value (the specific culprit) comes first, then the later
    # (more specific) dimension.
    tol = tie_tolerance * max(abs(impact), 1e-9)
    group = np.zeros(len(out), dtype=np.int64)
    head = np.inf
    g = -1
    for i, c in enumerate(out["contribution"].to_numpy()):
        if c < head - tol:
            g, head = g + 1, c
        group[i] = g
    out["_g"] = group
    out = out.sort_values(["_g", "surprise", "_dim"], ascending=[True, False, False])
    out = out.drop(columns=["_dim", "_g"]).reset_index(drop=True)
    out["share"] = out["contribution"] / abs(impact) if abs(impact) > 1e-12 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out["change_pct"] = np.where(
            np.abs(out["expected"]) > 1e-12,
            100.0 * out["delta"] / np.abs(out["expected"]),
            np.sign(out["delta"]) * np.inf,
        )
    out["rank"] = np.arange(1, len(out) + 1)
    return RootCauseReport(
        start=t0,
        end=t1,
        freq=freq,
        baseline=periods.kind,
        expected=total_expected,
        actual=total_actual,
        impact=impact,
        dimensions=tuple(dims),
        contributions=out[list(CONTRIBUTION_COLUMNS)],
    )


def aggregate_series(
    frame: pd.DataFrame,
    *,
    freq: str = "h",
    by: str | None = None,
    where: Mapping[str, Any] | None = None,
    start: Any | None = None,
    end: Any | None = None,
    time_col: str = "ds",
    cost_col: str = "effective_cost",
) -> pd.DataFrame:
    """Aggregate a cost frame to a series frame (``unique_id, ds, y``), zero-filled.

    Parameters
    ----------
    frame : pandas.DataFrame
        Cost rows with ``time_col``, ``cost_col`` and ``by``.
    freq : str, default "h"
        Period of the series.
    by : str, optional
        One series per value of this column (``"(none)"`` for missing values);
        default one series, ``unique_id="total"``.
    where : mapping, optional
        Filter, as in :func:`root_cause`.
    start, end : timestamp-like, optional
        Range ``[start, end)`` of the output; default from the first to the last
        period of the data. Periods without rows are 0.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, y`` sorted by ``unique_id, ds``: every series covers
        every period of the range.
    """
    cols = [time_col, cost_col] + ([by] if by else [])
    _check_frame(frame, cols, time_col, cost_col)
    step = _period_offset(freq)
    scoped = frame[where_mask(frame, where)]
    ts = scoped[time_col].dt.floor(step)
    empty = pd.DataFrame(
        {"unique_id": pd.Series([], dtype=object), "ds": pd.DatetimeIndex([], tz="UTC"), "y": []}
    )
    if start is None and not len(ts):
        return empty
    t0 = _utc(start, "start").floor(step) if start is not None else ts.min()
    t1 = _utc(end, "end").ceil(step) if end is not None else ts.max() + step
    index = pd.date_range(t0, t1 - step, freq=step)
    pos = index.get_indexer(ts)
    ok = pos >= 0
    if by:
        codes, uniques = pd.factorize(scoped[by], use_na_sentinel=True)
        labels = [str(u) for u in uniques]
        if (codes < 0).any():
            codes = np.where(codes < 0, len(labels), codes)
            labels.append(MISSING_VALUE)
    else:
        codes, labels = np.zeros(len(scoped), dtype=np.int64), ["total"]
    if not ok.any() or not labels:
        return empty
    n_p = len(index)
    y = scoped[cost_col].to_numpy(dtype=np.float64, na_value=0.0)
    mat = np.bincount(codes[ok] * n_p + pos[ok], weights=y[ok], minlength=len(labels) * n_p)
    present = np.zeros(len(labels), dtype=bool)
    present[np.unique(codes[ok])] = True
    mat = mat.reshape(len(labels), n_p)[present]
    kept = [lab for lab, p in zip(labels, present, strict=True) if p]
    long = pd.DataFrame(
        {
            "unique_id": np.repeat(np.asarray(kept, dtype=object), n_p),
            "ds": index[np.tile(np.arange(n_p), len(kept))],
            "y": mat.reshape(-1),
        }
    )
    return long.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
