"""Series frames for experiments: daily cost per team from a store, or M4 Hourly.

These loaders are deliberately small and self-contained (a SQL aggregation, a
CSV reshape) so that an experiment definition names its data exactly and a
result can be reproduced from it. Each returned frame carries
``attrs["source"]`` (file it came from) so the tracking layer logs it as the
dataset's source.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.exceptions import ConfigError, StoreError

__all__ = ["load_m4_hourly", "load_team_daily"]

_TEAM_DAILY_SQL = """
SELECT coalesce(nullif(lower(trim(team)), ''), '(untagged)') AS unique_id,
       date_trunc('day', ds) AS ds,
       sum(effective_cost) AS y
FROM cost
{where}
GROUP BY 1, 2
ORDER BY 1, 2
"""


def load_team_daily(
    store: str | Path,
    *,
    source: str | None = None,
    min_days: int = 28,
    drop_last_partial: bool = True,
) -> pd.DataFrame:
    """Daily effective cost per team from a DuckDB store (table ``cost``).

    Parameters
    ----------
    store : path
        The ``forecaster.duckdb`` file (``forecaster demo --out DIR`` writes
        ``DIR/forecaster.duckdb``).
    source : str, optional
        Only rows of this ingest source (the ``cost.source`` column, e.g.
        ``focus``); by default every source (the demo fleet bills some accounts
        through FOCUS and others through CUR).
    min_days : int
        Teams with fewer days are left out (too short to backtest).
    drop_last_partial : bool
        Drop the last day when it has fewer hours than the others (an export
        that ends mid-day would look like a cost drop).

    Returns
    -------
    pandas.DataFrame
        ``unique_id`` (team), ``ds`` (UTC midnight), ``y`` (USD per day);
        ``attrs["source"]`` is the store path.

    Raises
    ------
    StoreError
        The store is missing or has no cost rows.
    """
    from features.store import Store

    path = Path(store)
    if not path.exists():
        raise StoreError(
            f"store {path} not found; create one with `forecaster demo --out {path.parent}`"
        )
    with Store(path, read_only=True) as st:
        sources = st.query("SELECT source, count(*) AS n FROM cost GROUP BY source")
        if sources.empty:
            raise StoreError(f"store {path}: table cost has no rows")
        if source is not None and source not in set(sources["source"]):
            raise ConfigError(
                f"parameter source must be one of {sorted(sources['source'])}, got {source!r}"
            )
        where, params = ("WHERE source = ?", [source]) if source is not None else ("", [])
        chosen = source or "all"
        # Team tags differ in case and spaces between exports: one team, one series.
        df = st.query(_TEAM_DAILY_SQL.format(where=where), params)
        if drop_last_partial:
            hours = st.query(
                "SELECT date_trunc('day', ds) AS day, count(DISTINCT date_trunc('hour', ds)) AS n "
                f"FROM cost {where} GROUP BY 1 ORDER BY 1",
                params,
            )
    df["ds"] = pd.to_datetime(df["ds"], utc=True)
    df["y"] = df["y"].astype(float)
    if drop_last_partial and len(hours) > 1 and hours["n"].iloc[-1] < hours["n"].median():
        last = pd.Timestamp(hours["day"].iloc[-1])
        last = last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")
        df = df[df["ds"] < last]
    # Days a team spent nothing are absent from the aggregation: they are zeros.
    full = []
    for uid, g in df.groupby("unique_id", sort=True):
        days = pd.date_range(g["ds"].min(), df["ds"].max(), freq="D")
        s = g.set_index("ds")["y"].reindex(days, fill_value=0.0)
        if len(s) >= min_days:
            full.append(pd.DataFrame({"unique_id": str(uid), "ds": days, "y": s.to_numpy()}))
    if not full:
        raise StoreError(f"store {path}: no team has {min_days} days of cost (source {chosen})")
    out = pd.concat(full, ignore_index=True)
    out.attrs["source"] = str(path.resolve())
    return out


def load_m4_hourly(path: str | Path, *, limit: int | None = None, holdout: int = 0) -> pd.DataFrame:
    """M4 Hourly training series (``Hourly-train.csv``) as a long series frame.

    Parameters
    ----------
    path : path
        ``Hourly-train.csv`` or the folder holding ``m4/Hourly-train.csv``.
    limit : int, optional
        Only the first ``limit`` series.
    holdout : int
        Drop the last ``holdout`` points of each series (the M4 validation
        protocol keeps the last 48 for scoring).

    Returns
    -------
    pandas.DataFrame
        ``unique_id`` (``H1``...), ``ds`` (hourly from 2015-01-01 UTC), ``y``.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "m4" / "Hourly-train.csv" if (p / "m4").is_dir() else p / "Hourly-train.csv"
    if not p.exists():
        raise ConfigError(f"parameter data.path: M4 file {p} not found")
    raw = pd.read_csv(p, nrows=limit)
    ids = raw.iloc[:, 0].astype(str).to_numpy()
    values = raw.iloc[:, 1:].to_numpy(dtype=float)
    frames = []
    for uid, row in zip(ids, values, strict=True):
        y = row[~np.isnan(row)]
        if holdout:
            y = y[:-holdout]
        ds = pd.date_range("2015-01-01", periods=len(y), freq="h", tz="UTC")
        frames.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
    out = pd.concat(frames, ignore_index=True)
    out.attrs["source"] = str(p.resolve())
    return out
