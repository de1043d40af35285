"""Hierarchical series frames from the store: cost along a tag hierarchy.

``hierarchy_series(store, levels=("team", "project", "service"), freq="D")``
aggregates the store's ``cost`` table into one series per node of the
hierarchy ``total -> team -> project -> service``:

* the bottom level (every distinct ``team/project/service`` path) is summed in
  DuckDB SQL over the normalised tag values (:func:`features.tags.create_normalised_view`,
  so ``ML-Platform`` and ``mlplatform`` are one team); every aggregate level is
  the summing matrix ``S`` times the bottom series, so children sum to parents
  exactly;
* spend without a value for a level is kept as an explicit ``(untagged)`` node
  (``team=(untagged)``, ``team=nlp/project=(untagged)``), so the ``total``
  series equals the store total: nothing is dropped silently;
* buckets are UTC periods (``date_trunc`` of the UTC timestamp, whatever the
  session time zone); a charge whose period spans several buckets (a monthly
  tax, support fee or credit) is spread over them in proportion to the overlap,
  which keeps its total and avoids a spike on the first of the month;
* the data end is the latest ``ds_end`` of the usage-granularity rows (charge
  periods of at most one day); the trailing bucket that it cuts is incomplete,
  so it is dropped and the note in :attr:`HierarchySeries.notes` says how much
  spend that was. Every bucket from the first charge to the last complete one
  is present, zero where nothing was charged.

Unique ids read like paths: ``total``, ``team=nlp``, ``team=nlp/project=chatbot``,
``team=nlp/project=chatbot/service=AmazonEKS``. The node table holds the
dimension values, so ids never need parsing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.exceptions import ConfigError, InvalidFrameError, StoreError
from features.store import Store
from features.tagkeys import KEY_ALIASES, canonical_tag_key
from features.tags import GROUPABLE, create_normalised_view

__all__ = [
    "FREQS",
    "TOTAL",
    "UNTAGGED",
    "HierarchySeries",
    "hierarchy_from_frame",
    "hierarchy_series",
    "resolve_levels",
]

#: Id and level name of the root node.
TOTAL = "total"
#: Value of a dimension for spend that carries no value for it.
UNTAGGED = "(untagged)"
#: Supported bucket frequencies: pandas alias -> (DuckDB date_trunc unit, DuckDB interval).
FREQS: dict[str, tuple[str, str]] = {
    "h": ("hour", "INTERVAL 1 HOUR"),
    "D": ("day", "INTERVAL 1 DAY"),
    "W-MON": ("week", "INTERVAL 7 DAY"),
    "MS": ("month", "INTERVAL 1 MONTH"),
}
_FREQ_ALIASES = {"h": "h", "H": "h", "1h": "h", "D": "D", "1D": "D", "d": "D"}
_FREQ_ALIASES |= {"W": "W-MON", "W-MON": "W-MON", "MS": "MS", "M": "MS"}
_COST_COLUMNS = ("effective_cost", "billed_cost", "list_cost")


@dataclass(frozen=True)
class HierarchySeries:
    """Series of every node of a hierarchy on one common time grid.

    Attributes
    ----------
    levels : tuple of str
        Dimensions from the top down (``("team", "project", "service")``).
    freq : str
        Pandas frequency alias of the grid (``"D"``, ``"h"``, ``"W-MON"``, ``"MS"``).
    nodes : pandas.DataFrame
        One row per node in hierarchy order (``total`` first, then each level
        sorted): ``unique_id, level, parent`` and one column per dimension of
        ``levels`` (``None`` below the node's own level).
    values : numpy.ndarray, shape (n_nodes, n_times)
        The series, rows in ``nodes`` order.
    ds : pandas.DatetimeIndex
        The time grid (UTC, bucket starts).
    S : scipy.sparse.csr_matrix, shape (n_nodes, n_bottom)
        Summing matrix: ``values == S @ values[bottom rows]``.
    info : dict
        Accounting: ``store_total``, ``series_total``, ``dropped_partial``
        (spend in the trailing incomplete bucket), ``outside_window`` (spend
        before ``start`` or after ``end``), ``partial_bucket`` (its start, or
        ``None``), ``data_end``, ``cost_column``.
    notes : list of str
        Human-readable notes (what was dropped and why).
    """

    levels: tuple[str, ...]
    freq: str
    nodes: pd.DataFrame
    values: np.ndarray
    ds: pd.DatetimeIndex
    S: sp.csr_matrix
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ accessors
    @property
    def ids(self) -> np.ndarray:
        """Node ids in hierarchy order, shape ``(n_nodes,)``."""
        return self.nodes["unique_id"].to_numpy()

    @property
    def node_levels(self) -> np.ndarray:
        """Level name of every node (``total`` or a dimension), shape ``(n_nodes,)``."""
        return self.nodes["level"].to_numpy()

    @property
    def level_names(self) -> list[str]:
        """``["total", *levels]``."""
        return [TOTAL, *self.levels]

    @property
    def bottom_mask(self) -> np.ndarray:
        """Boolean mask of the bottom-level nodes, shape ``(n_nodes,)``."""
        return self.node_levels == self.levels[-1]

    @property
    def bottom_ids(self) -> np.ndarray:
        return self.ids[self.bottom_mask]

    @property
    def tags(self) -> dict[str, np.ndarray]:
        """Level name -> ids of its nodes (the ``tags`` of hierarchicalforecast)."""
        return {lv: self.ids[self.node_levels == lv] for lv in self.level_names}

    def frame(self, *, with_level: bool = True) -> pd.DataFrame:
        """Long frame of every node: ``[level,] unique_id, ds, y``, hierarchy order."""
        n, t = self.values.shape
        out = pd.DataFrame(
            {
                "unique_id": np.repeat(self.ids, t),
                "ds": pd.DatetimeIndex(np.tile(self.ds.tz_convert(None).to_numpy(), n)).tz_localize(
                    "UTC"
                ),
                "y": self.values.reshape(-1),
            }
        )
        if with_level:
            out.insert(0, "level", np.repeat(self.node_levels, t))
        return out

    def bottom(self) -> pd.DataFrame:
        """Series frame ``unique_id, ds, y`` of the bottom level only."""
        f = self.frame(with_level=True)
        return f[f["level"] == self.levels[-1]].drop(columns="level").reset_index(drop=True)

    def truncate(self, n_drop: int) -> HierarchySeries:
        """The same hierarchy without its last ``n_drop`` time steps (a backtest cutoff)."""
        if n_drop < 0 or n_drop >= len(self.ds):
            raise ConfigError(
                f"parameter n_drop must be in [0, {len(self.ds) - 1}], got {n_drop!r}"
            )
        keep = len(self.ds) - n_drop
        return HierarchySeries(
            levels=self.levels,
            freq=self.freq,
            nodes=self.nodes,
            values=self.values[:, :keep],
            ds=self.ds[:keep],
            S=self.S,
            info=dict(self.info),
            notes=list(self.notes),
        )


def resolve_levels(levels: Sequence[str]) -> tuple[str, ...]:
    """Map level names (tag spellings such as ``Team`` accepted) to cost-frame dimensions.

    Raises
    ------
    ConfigError
        When a level is not a groupable dimension or is repeated.
    """
    if isinstance(levels, str):
        levels = (levels,)
    out: list[str] = []
    for lv in levels:
        key = canonical_tag_key(str(lv))
        dim = KEY_ALIASES.get(key, key)
        if dim not in GROUPABLE:
            raise ConfigError(
                f"parameter levels must name dimensions among {list(GROUPABLE)}, got {lv!r}"
            )
        if dim in out:
            raise ConfigError(f"parameter levels must not repeat a dimension, got {list(levels)}")
        out.append(dim)
    if not out:
        raise ConfigError("parameter levels must name at least one dimension, got []")
    return tuple(out)


def _resolve_freq(freq: str) -> str:
    try:
        return _FREQ_ALIASES[freq]
    except (KeyError, TypeError):
        raise ConfigError(
            f"parameter freq must be one of {sorted(set(_FREQ_ALIASES.values()))}, got {freq!r}"
        ) from None


def _node_id(dims: Sequence[str], values: Sequence[str]) -> str:
    return "/".join(f"{d}={v}" for d, v in zip(dims, values, strict=True)) or TOTAL


def _build(
    bottom: pd.DataFrame,
    levels: tuple[str, ...],
    grid: pd.DatetimeIndex,
    freq: str,
) -> tuple[pd.DataFrame, np.ndarray, sp.csr_matrix]:
    """Nodes, dense values and ``S`` from bottom rows ``bucket, <levels>, y``."""
    paths = bottom[list(levels)].drop_duplicates().sort_values(list(levels)).reset_index(drop=True)
    n_bottom = len(paths)
    path_idx = {tuple(r): i for i, r in enumerate(paths.itertuples(index=False, name=None))}
    t_idx = grid.get_indexer(pd.DatetimeIndex(bottom["bucket"]))
    if (t_idx < 0).any():
        bad = bottom["bucket"].iloc[int(np.flatnonzero(t_idx < 0)[0])]
        raise InvalidFrameError(f"bucket {bad} is off the {freq} grid", column="ds", frame="series")
    b_idx = np.array(
        [path_idx[tuple(r)] for r in bottom[list(levels)].itertuples(index=False, name=None)],
        dtype=np.int64,
    )
    dense = np.zeros((n_bottom, len(grid)))
    np.add.at(dense, (b_idx, t_idx), bottom["y"].to_numpy(dtype=float))
    # Charges that cancel (usage covered by a commitment) leave float dust such as 1e-13;
    # rounding to 1e-8 USD makes such a series exactly zero (a zero MASE scale, not 1e-13).
    dense = np.round(dense, 8)

    node_rows: list[dict[str, Any]] = []
    s_rows: list[np.ndarray] = []
    node_rows.append({"unique_id": TOTAL, "level": TOTAL, "parent": None})
    s_rows.append(np.arange(n_bottom))
    for depth in range(1, len(levels) + 1):
        dims = levels[:depth]
        groups = paths.groupby(list(dims), sort=True).indices
        for key, members in groups.items():
            vals = key if isinstance(key, tuple) else (key,)
            row: dict[str, Any] = {
                "unique_id": _node_id(dims, vals),
                "level": levels[depth - 1],
                "parent": _node_id(dims[:-1], vals[:-1]),
            }
            row.update(dict(zip(dims, vals, strict=True)))
            node_rows.append(row)
            s_rows.append(np.sort(np.asarray(members)))
    nodes = pd.DataFrame(node_rows)
    for d in levels:
        if d not in nodes.columns:
            nodes[d] = None
        nodes[d] = nodes[d].astype(object).where(nodes[d].notna(), None)
    nodes = nodes[["unique_id", "level", "parent", *levels]]
    # The bottom block is in `paths` order, so S ends with the identity.
    indptr = np.cumsum([0, *[len(r) for r in s_rows]])
    indices = np.concatenate(s_rows) if s_rows else np.zeros(0, dtype=np.int64)
    S = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(s_rows), n_bottom))
    values = np.asarray(S @ dense)
    return nodes, values, S


def hierarchy_from_frame(
    df: pd.DataFrame,
    levels: Sequence[str],
    *,
    freq: str = "D",
    time_col: str = "ds",
    target_col: str = "y",
) -> HierarchySeries:
    """Build a hierarchy from a frame of bottom-level rows (no store needed).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per charge or per bottom series and time: ``time_col``, one
        column per level and ``target_col``. Missing level values become
        ``(untagged)``; rows are summed per bucket (UTC ``freq`` periods).
    levels : sequence of str
        Column names, top down.
    freq : {"h", "D", "W", "MS"}

    Returns
    -------
    HierarchySeries
        Grid from the first to the last bucket present (no partial-bucket logic:
        the caller's rows are taken as complete).
    """
    freq = _resolve_freq(freq)
    levels = tuple(levels)
    if not levels:
        raise ConfigError("parameter levels must name at least one column, got []")
    missing = [c for c in (time_col, target_col, *levels) if c not in df.columns]
    if missing:
        raise InvalidFrameError(
            f"missing required column(s) {missing}; got columns {list(df.columns)}",
            column=missing[0],
            frame="series",
        )
    if df.empty:
        raise InvalidFrameError("no rows to build a hierarchy from", frame="series")
    ts = pd.to_datetime(df[time_col], utc=True)
    bucket = ts.dt.tz_convert(None).dt.to_period(_period_alias(freq)).dt.start_time
    bottom = pd.DataFrame({"bucket": bucket.to_numpy()})
    for d in levels:
        bottom[d] = (
            df[d]
            .astype(object)
            .where(df[d].notna() & (df[d].astype(str) != ""), UNTAGGED)
            .astype(str)
            .to_numpy()
        )
    bottom["y"] = pd.to_numeric(df[target_col], errors="coerce").to_numpy(dtype=float)
    if bottom["y"].isna().any():
        row = int(np.flatnonzero(bottom["y"].isna().to_numpy())[0])
        raise InvalidFrameError(
            f"non-numeric or missing value at row {row}",
            column=target_col,
            rows=[row],
            frame="series",
        )
    bottom = bottom.groupby(["bucket", *levels], as_index=False)["y"].sum()
    grid = pd.date_range(bottom["bucket"].min(), bottom["bucket"].max(), freq=freq)
    nodes, values, S = _build(bottom, levels, grid, freq)
    total = float(bottom["y"].sum())
    return HierarchySeries(
        levels=levels,
        freq=freq,
        nodes=nodes,
        values=values,
        ds=grid.tz_localize("UTC"),
        S=S,
        info={
            "store_total": total,
            "series_total": float(values[0].sum()),
            "dropped_partial": 0.0,
            "outside_window": 0.0,
            "partial_bucket": None,
            "data_end": None,
            "cost_column": target_col,
        },
    )


def _period_alias(freq: str) -> str:
    return {"h": "h", "D": "D", "W-MON": "W-SUN", "MS": "M"}[freq]


def _ts(value: object, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        t = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise ConfigError(f"parameter {name} must be a timestamp, got {value!r}") from None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def hierarchy_series(
    store: Store,
    levels: Sequence[str] = ("team", "project", "service"),
    freq: str = "D",
    start: object = None,
    end: object = None,
    *,
    cost_column: str = "effective_cost",
    aliases: dict[str, dict[str, str]] | None = None,
    spread: bool = True,
) -> HierarchySeries:
    """Aggregate the store's cost into the series of every node of a tag hierarchy.

    Parameters
    ----------
    store : Store
        The DuckDB store (its ``cost`` table).
    levels : sequence of str
        Dimensions from the top down; tag spellings (``Team``, ``app``) are accepted.
    freq : {"D", "h", "W", "MS"}
        Bucket size; buckets are UTC periods (weeks start on Monday).
    start, end : timestamp-like, optional
        Keep buckets starting in ``[start, end)`` (naive values are UTC). The
        spend of other buckets is counted in ``info["outside_window"]``.
    cost_column : {"effective_cost", "billed_cost", "list_cost"}
    aliases : dict, optional
        Tag value aliases per dimension (see :func:`features.tags.normalisation_map`).
    spread : bool
        Spread charges whose period covers several buckets over them (default);
        with ``False`` each charge stays in the bucket of its start.

    Returns
    -------
    HierarchySeries

    Raises
    ------
    StoreError
        When the store holds no cost rows (in the window).
    ConfigError
        For a bad level, frequency, cost column or window.
    """
    levels = resolve_levels(levels)
    freq = _resolve_freq(freq)
    if cost_column not in _COST_COLUMNS:
        raise ConfigError(
            f"parameter cost_column must be one of {list(_COST_COLUMNS)}, got {cost_column!r}"
        )
    t_start, t_end = _ts(start, "start"), _ts(end, "end")
    if t_start is not None and t_end is not None and t_end <= t_start:
        raise ConfigError(f"parameter end must be after start, got start={start!r}, end={end!r}")
    unit, step = FREQS[freq]
    con = store.con
    (n_rows, store_total, first, data_end_usage, data_end_any) = con.execute(
        f"SELECT count(*), coalesce(sum({cost_column}), 0), min(ds AT TIME ZONE 'UTC'), "
        "max(coalesce(ds_end, ds) AT TIME ZONE 'UTC') FILTER "
        "(WHERE coalesce(ds_end, ds) - ds <= INTERVAL 1 DAY), "
        "max(coalesce(ds_end, ds) AT TIME ZONE 'UTC') FROM cost"
    ).fetchall()[0]
    if not n_rows:
        raise StoreError(f"store {store.path} holds no cost rows; run `forecaster ingest` first")
    data_end = pd.Timestamp(data_end_usage if data_end_usage is not None else data_end_any)
    # Buckets starting before the truncated data end are complete.
    end_complete = pd.Timestamp(
        con.execute(
            f"SELECT date_trunc('{unit}', ?::TIMESTAMP)", [data_end.to_pydatetime()]
        ).fetchall()[0][0]
    )
    create_normalised_view(store, aliases=aliases, shared_values=())
    dims = ", ".join(f"coalesce(nullif({d}, ''), '{UNTAGGED}') AS {d}" for d in levels)
    dim_names = ", ".join(levels)
    # `s` and `e` are naive UTC timestamps: bucketing never depends on the session zone.
    base = (
        f"SELECT ds AT TIME ZONE 'UTC' AS s, "
        f"greatest(coalesce(ds_end, ds), ds) AT TIME ZONE 'UTC' AS e, {dims}, "
        f"{cost_column} AS y FROM cost_n"
    )
    one_bucket = (
        f"e <= s OR NOT ?::BOOLEAN "
        f"OR date_trunc('{unit}', s) = date_trunc('{unit}', e - INTERVAL 1 MICROSECOND)"
    )
    # Spread charges are amortised over the part of their period before the end of the
    # last complete bucket, so no spend is lost to clipping.
    sql = f"""
        WITH base AS ({base}),
        single AS (
            SELECT date_trunc('{unit}', s) AS bucket, {dim_names}, y FROM base WHERE {one_bucket}
        ),
        multi AS (
            SELECT s, least(e, ?::TIMESTAMP) AS e, {dim_names}, y, e AS e_raw
            FROM base WHERE NOT ({one_bucket})
        ),
        exploded AS (
            SELECT unnest(generate_series(
                    date_trunc('{unit}', s), e - INTERVAL 1 MICROSECOND, {step}
                )) AS bucket, s, e, {dim_names}, y
            FROM multi WHERE e > s
        ),
        spread AS (
            SELECT bucket, {dim_names},
                y * epoch(least(bucket + {step}, e) - greatest(bucket, s)) / epoch(e - s) AS y
            FROM exploded
            UNION ALL
            -- Starts at or after the end of the last complete bucket: in the partial one.
            SELECT date_trunc('{unit}', s) AS bucket, {dim_names}, y FROM multi WHERE e <= s
        )
        SELECT bucket, {dim_names}, sum(y) AS y
        FROM (SELECT * FROM single UNION ALL SELECT * FROM spread)
        GROUP BY ALL
    """
    end_py = end_complete.to_pydatetime()
    bottom = store.query(sql, [spread, end_py, spread])
    bottom["bucket"] = pd.to_datetime(bottom["bucket"])
    notes: list[str] = []
    partial_mask = (bottom["bucket"] >= end_complete).to_numpy()
    dropped_partial = float(bottom.loc[partial_mask, "y"].sum())
    partial_bucket = end_complete if partial_mask.any() else None
    if partial_bucket is not None:
        notes.append(
            f"dropped {dropped_partial:,.2f} of {cost_column} charged from "
            f"{end_complete:%Y-%m-%d %H:%M} UTC on: the {unit} in which the data ends "
            f"({data_end:%Y-%m-%d %H:%M} UTC) is incomplete"
        )
    bottom = bottom[~partial_mask]
    if bottom.empty:
        raise StoreError(
            f"store {store.path} holds no complete {unit} of cost "
            f"(data from {first} to {data_end} UTC)"
        )
    grid = pd.date_range(bottom["bucket"].min(), end_complete - _offset(freq), freq=freq)
    in_window = np.ones(len(grid), dtype=bool)
    if t_start is not None:
        in_window &= grid >= t_start.tz_convert(None)
    if t_end is not None:
        in_window &= grid < t_end.tz_convert(None)
    grid = grid[in_window]
    keep = bottom["bucket"].isin(grid).to_numpy()
    outside = float(bottom.loc[~keep, "y"].sum())
    if not keep.all():
        notes.append(f"{outside:,.2f} of {cost_column} falls outside the window [{start}, {end})")
    bottom = bottom[keep]
    if bottom.empty or not len(grid):
        raise StoreError(
            f"store {store.path} holds no complete {unit} of cost in the window "
            f"[{start}, {end}) (data from {first} to {data_end} UTC)"
        )
    nodes, values, S = _build(bottom, levels, grid, freq)
    info = {
        "store_total": float(store_total),
        "series_total": float(values[0].sum()),
        "dropped_partial": dropped_partial,
        "outside_window": outside,
        "partial_bucket": None if partial_bucket is None else partial_bucket.tz_localize("UTC"),
        "data_end": data_end.tz_localize("UTC"),
        "cost_column": cost_column,
    }
    return HierarchySeries(
        levels=levels,
        freq=freq,
        nodes=nodes,
        values=values,
        ds=grid.tz_localize("UTC"),
        S=S,
        info=info,
        notes=notes,
    )


def _offset(freq: str) -> pd.DateOffset:
    return pd.tseries.frequencies.to_offset(freq)  # type: ignore[no-any-return]
