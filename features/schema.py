"""Canonical frames and their validation.

Four long-format frames travel between the stages (see DESIGN.md):

* **cost**: one row per charge period and key, with FinOps dimensions and costs.
* **utilization**: ``ds, workload_id`` with used and requested resources.
* **series**: ``unique_id, ds, y`` plus optional exogenous columns.
* **forecast**: ``unique_id, ds, yhat, lo_80, hi_80, lo_95, hi_95``.

:func:`validate_frame` is the one entry point; it raises
:class:`~features.exceptions.InvalidFrameError` naming the column and rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from features.exceptions import InvalidFrameError

FrameKind = Literal["cost", "utilization", "series", "forecast"]

#: FinOps dimensions carried by every cost row (strings, ``None`` when unknown).
DIMENSIONS: tuple[str, ...] = (
    "provider",
    "account",
    "region",
    "cluster",
    "service",
    "team",
    "project",
    "environment",
    "cost_center",
    "owner",
    "instance_type",
    "resource_id",
    "usage_type",
    "pricing_category",
    "purchase_option",
    "charge_category",
)

#: Cost columns (float64, billing currency). Negative values (credits, refunds) are valid.
COST_COLUMNS: tuple[str, ...] = ("effective_cost", "billed_cost", "list_cost")

#: Column order of the cost frame.
COST_FRAME_COLUMNS: tuple[str, ...] = (
    "ds",
    "ds_end",
    *DIMENSIONS,
    *COST_COLUMNS,
    "usage_quantity",
    "usage_unit",
    "currency",
    "tags",
    "extras",
    "source",
    "line_id",
)

#: Column order of the utilization frame.
UTILIZATION_FRAME_COLUMNS: tuple[str, ...] = (
    "ds",
    "workload_id",
    "cluster",
    "team",
    "kind",
    "instance_type",
    "cpu_used",
    "cpu_requested",
    "memory_used_gib",
    "memory_requested_gib",
    "gpu_used",
    "gpu_requested",
    "gpu_memory_used_gib",
    "gpu_memory_total_gib",
    "replicas",
)
UTILIZATION_NUMERIC: tuple[str, ...] = UTILIZATION_FRAME_COLUMNS[6:]

SERIES_FRAME_COLUMNS: tuple[str, ...] = ("unique_id", "ds", "y")
FORECAST_FRAME_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "ds",
    "yhat",
    "lo_80",
    "hi_80",
    "lo_95",
    "hi_95",
)

#: The valid domain of a cost row; readers reject rows outside it, row by row, with a reason.
#: Costs must be finite with ``|cost| <= MAX_ABS_COST`` (negative costs are valid data);
#: charge periods must lie in ``[MIN_TIMESTAMP, MAX_TIMESTAMP)`` (UTC) and end no earlier
#: than they start.
MAX_ABS_COST: float = 1e12
MIN_TIMESTAMP: str = "2000-01-01"
MAX_TIMESTAMP: str = "2100-01-01"

#: Allowed values of ``charge_category`` (FOCUS 1.x ChargeCategory).
CHARGE_CATEGORIES: frozenset[str] = frozenset({"Usage", "Purchase", "Tax", "Credit", "Adjustment"})
#: Allowed values of ``purchase_option``.
PURCHASE_OPTIONS: frozenset[str] = frozenset({"on_demand", "spot", "committed", "other"})


def interval_columns(levels: Iterable[int]) -> list[str]:
    """Return ``lo_L, hi_L`` column names for each interval level, in order."""
    cols: list[str] = []
    for level in validate_levels(levels):
        cols += [f"lo_{level}", f"hi_{level}"]
    return cols


def validate_levels(levels: Iterable[int | float]) -> list[int]:
    """Validate interval levels once, for every model.

    Returns the levels as sorted unique ints. Raises ``ValueError`` when a level
    is not in (0, 100).
    """
    out = []
    for lv in levels:
        if not isinstance(lv, int | float | np.integer | np.floating) or isinstance(lv, bool):
            raise ValueError(f"parameter level must contain numbers, got {lv!r}")
        if not 0 < float(lv) < 100 or float(lv) != int(lv):
            raise ValueError(f"parameter level must contain integers in (0, 100), got {lv!r}")
        out.append(int(lv))
    return sorted(set(out))


def _bad_rows(mask: pd.Series | np.ndarray) -> list[int]:
    arr = np.asarray(mask, dtype=bool)
    return [int(i) for i in np.flatnonzero(arr)]


def _require(df: pd.DataFrame, cols: Sequence[str], kind: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InvalidFrameError(
            f"missing required column(s) {missing}; got columns {list(df.columns)}",
            column=missing[0],
            frame=kind,
        )


def _check_utc(df: pd.DataFrame, col: str, kind: str) -> None:
    s = df[col]
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        raise InvalidFrameError(
            f"must be a timezone-aware UTC timestamp, got dtype {s.dtype}",
            column=col,
            frame=kind,
        )
    if str(s.dt.tz) != "UTC":
        raise InvalidFrameError(f"must be in UTC, got timezone {s.dt.tz}", column=col, frame=kind)
    rows = _bad_rows(s.isna())
    if rows:
        raise InvalidFrameError("contains missing timestamps", column=col, rows=rows, frame=kind)


def _check_numeric(
    df: pd.DataFrame, col: str, kind: str, *, allow_nan: bool, non_negative: bool = False
) -> None:
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        raise InvalidFrameError(f"must be numeric, got dtype {s.dtype}", column=col, frame=kind)
    values = s.to_numpy(dtype="float64", na_value=np.nan)
    if not allow_nan:
        rows = _bad_rows(np.isnan(values))
        if rows:
            raise InvalidFrameError("contains NaN", column=col, rows=rows, frame=kind)
    rows = _bad_rows(np.isinf(values))
    if rows:
        raise InvalidFrameError("contains infinite values", column=col, rows=rows, frame=kind)
    if non_negative:
        rows = _bad_rows(values < 0)
        if rows:
            raise InvalidFrameError("must be >= 0", column=col, rows=rows, frame=kind)


def validate_frame(
    df: pd.DataFrame,
    kind: FrameKind,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
    levels: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Check that ``df`` follows the canonical contract of ``kind``.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame to check. It is not modified.
    kind : {"cost", "utilization", "series", "forecast"}
        Which contract to apply.
    id_col, time_col, target_col : str
        Column names for series and forecast frames (users bring their own data).
    levels : sequence of int, optional
        Interval levels a forecast frame must carry; default ``(80, 95)``.

    Returns
    -------
    pandas.DataFrame
        The same frame, for chaining.

    Raises
    ------
    InvalidFrameError
        Naming the column and the offending row positions.
    """
    if not isinstance(df, pd.DataFrame):
        raise InvalidFrameError(f"expected a pandas DataFrame, got {type(df).__name__}", frame=kind)
    if kind == "cost":
        _require(df, ("ds", *COST_COLUMNS, "charge_category"), kind)
        _check_utc(df, "ds", kind)
        for col in COST_COLUMNS:
            _check_numeric(df, col, kind, allow_nan=col == "list_cost")
        cats = df["charge_category"]
        rows = _bad_rows(~cats.isin(CHARGE_CATEGORIES))
        if rows:
            raise InvalidFrameError(
                f"must be one of {sorted(CHARGE_CATEGORIES)}, got {cats.iloc[rows[0]]!r}",
                column="charge_category",
                rows=rows,
                frame=kind,
            )
        if "purchase_option" in df.columns:
            po = df["purchase_option"]
            rows = _bad_rows(po.notna() & ~po.isin(PURCHASE_OPTIONS))
            if rows:
                raise InvalidFrameError(
                    f"must be one of {sorted(PURCHASE_OPTIONS)}, got {po.iloc[rows[0]]!r}",
                    column="purchase_option",
                    rows=rows,
                    frame=kind,
                )
    elif kind == "utilization":
        _require(df, ("ds", "workload_id"), kind)
        _check_utc(df, "ds", kind)
        rows = _bad_rows(df["workload_id"].isna())
        if rows:
            raise InvalidFrameError(
                "contains missing ids", column="workload_id", rows=rows, frame=kind
            )
        for col in UTILIZATION_NUMERIC:
            if col in df.columns:
                _check_numeric(df, col, kind, allow_nan=True, non_negative=True)
        dup = df.duplicated(["workload_id", "ds"], keep="first")
        rows = _bad_rows(dup)
        if rows:
            raise InvalidFrameError(
                "duplicated (workload_id, ds) pairs", column="ds", rows=rows, frame=kind
            )
    elif kind == "series":
        _require(df, (id_col, time_col, target_col), kind)
        _check_utc(df, time_col, kind)
        rows = _bad_rows(df[id_col].isna())
        if rows:
            raise InvalidFrameError("contains missing ids", column=id_col, rows=rows, frame=kind)
        _check_numeric(df, target_col, kind, allow_nan=True)
        rows = _bad_rows(df.duplicated([id_col, time_col], keep="first"))
        if rows:
            raise InvalidFrameError(
                f"duplicated ({id_col}, {time_col}) pairs", column=time_col, rows=rows, frame=kind
            )
    elif kind == "forecast":
        lv = validate_levels(levels if levels is not None else (80, 95))
        _require(df, (id_col, time_col, "yhat", *interval_columns(lv)), kind)
        _check_utc(df, time_col, kind)
        _check_numeric(df, "yhat", kind, allow_nan=False)
        for col in interval_columns(lv):
            _check_numeric(df, col, kind, allow_nan=False)
        yhat = df["yhat"].to_numpy(dtype=float)
        inner_lo, inner_hi = yhat, yhat
        # Intervals must be nested: lo_95 <= lo_80 <= yhat <= hi_80 <= hi_95.
        for level in lv:
            lo = df[f"lo_{level}"].to_numpy(dtype=float)
            hi = df[f"hi_{level}"].to_numpy(dtype=float)
            tol = 1e-9 * (1.0 + np.abs(yhat))
            rows = _bad_rows(lo > inner_lo + tol)
            if rows:
                raise InvalidFrameError(
                    "interval not nested (lower bound above the inner one)",
                    column=f"lo_{level}",
                    rows=rows,
                    frame=kind,
                )
            rows = _bad_rows(hi < inner_hi - tol)
            if rows:
                raise InvalidFrameError(
                    "interval not nested (upper bound below the inner one)",
                    column=f"hi_{level}",
                    rows=rows,
                    frame=kind,
                )
            inner_lo, inner_hi = lo, hi
    else:
        raise ValueError(
            f"parameter kind must be one of cost, utilization, series, forecast, got {kind!r}"
        )
    return df


def empty_cost_frame() -> pd.DataFrame:
    """Return an empty cost frame with the canonical columns and dtypes."""
    data: dict[str, pd.Series] = {}
    for col in COST_FRAME_COLUMNS:
        if col in ("ds", "ds_end"):
            data[col] = pd.Series([], dtype="datetime64[us, UTC]")
        elif col in (*COST_COLUMNS, "usage_quantity"):
            data[col] = pd.Series([], dtype="float64")
        else:
            data[col] = pd.Series([], dtype="object")
    return pd.DataFrame(data)
