"""The series panel: a validated, regular, gap-free set of series as flat numpy arrays.

:func:`to_panel` is the one normalisation helper every estimator goes through.
It turns a long-format series frame (``unique_id, ds, y`` plus optional
exogenous columns) into a :class:`SeriesPanel`:

* ``ds`` is parsed, naive timestamps are localised to UTC, others converted;
* rows are sorted by series then time;
* duplicated ``(unique_id, ds)`` pairs raise, naming the series;
* the frequency is inferred per series (or checked when given); series on
  different frequencies raise, naming them;
* gaps on the frequency grid are filled and missing values interpolated, with
  a :class:`UserWarning` naming the series.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.exceptions import ConfigError, InvalidFrameError
from models._frequency import (
    as_offset,
    fixed_step,
    freq_key,
    infer_series_freq,
    offset_from_step,
)

_FRAME = "series"


def format_ids(ids: Sequence[object] | np.ndarray, limit: int = 5) -> str:
    """Return ``'a', 'b', 'c' (+7 more)`` for naming series in messages."""
    items = list(ids)
    shown = ", ".join(repr(i.item() if isinstance(i, np.generic) else i) for i in items[:limit])
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}]{more}"


def normalize_timestamps(values: pd.Series, column: str = "ds") -> pd.Series:
    """Parse timestamps and return them as timezone-aware UTC.

    Naive timestamps are taken to be UTC; aware ones are converted.

    Parameters
    ----------
    values : pandas.Series
        Timestamps or strings parseable by :func:`pandas.to_datetime`.
    column : str
        Column name, for error messages.

    Returns
    -------
    pandas.Series
        ``datetime64[*, UTC]`` with the same index.

    Raises
    ------
    InvalidFrameError
        Naming the column and the rows that cannot be parsed or are missing.
    """
    s = values
    if not (
        pd.api.types.is_datetime64_any_dtype(s.dtype) or isinstance(s.dtype, pd.DatetimeTZDtype)
    ):
        try:
            s = pd.to_datetime(s, utc=False, format="mixed")
        except (ValueError, TypeError, OverflowError):
            parsed = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
            bad = np.flatnonzero(parsed.isna().to_numpy() & values.notna().to_numpy())
            example = values.iloc[int(bad[0])] if len(bad) else None
            raise InvalidFrameError(
                f"cannot parse timestamps, e.g. {example!r}",
                column=column,
                rows=[int(i) for i in bad],
                frame=_FRAME,
            ) from None
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC")
    else:
        s = s.dt.tz_localize("UTC")
    missing = np.flatnonzero(s.isna().to_numpy())
    if len(missing):
        raise InvalidFrameError(
            "contains missing timestamps",
            column=column,
            rows=[int(i) for i in missing],
            frame=_FRAME,
        )
    return s


@dataclass(frozen=True)
class SeriesPanel:
    """A set of regular, gap-free series stored as flat arrays.

    Attributes
    ----------
    ids : numpy.ndarray, shape (n_series,)
        Series identifiers, sorted.
    indptr : numpy.ndarray of int64, shape (n_series + 1,)
        Series ``i`` occupies ``y[indptr[i]:indptr[i + 1]]``.
    y : numpy.ndarray of float64, shape (n_obs,)
        Target values, no NaN.
    start : pandas.DatetimeIndex, shape (n_series,)
        First timestamp (UTC) of every series.
    freq : pandas.DateOffset
        Step between consecutive observations (shared by all series).
    exog : dict of str to numpy.ndarray, each shape (n_obs,)
        Exogenous columns aligned with ``y``, no NaN.
    """

    ids: np.ndarray
    indptr: np.ndarray
    y: np.ndarray
    start: pd.DatetimeIndex
    freq: pd.DateOffset
    exog: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_series(self) -> int:
        """Number of series."""
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        """Number of observations per series, shape ``(n_series,)``."""
        return np.diff(self.indptr)

    @property
    def series_index(self) -> np.ndarray:
        """Series position of every observation, shape ``(n_obs,)``."""
        return np.repeat(np.arange(self.n_series), self.lengths)

    @property
    def positions(self) -> np.ndarray:
        """0-based time position of every observation inside its series, ``(n_obs,)``."""
        return np.arange(len(self.y)) - np.repeat(self.indptr[:-1], self.lengths)

    def values(self, i: int) -> np.ndarray:
        """Return the target of series ``i``, shape ``(length_i,)``."""
        return self.y[self.indptr[i] : self.indptr[i + 1]]

    def exog_values(self, i: int) -> np.ndarray:
        """Return the exogenous columns of series ``i``, shape ``(length_i, n_exog)``."""
        a, b = self.indptr[i], self.indptr[i + 1]
        if not self.exog:
            return np.empty((b - a, 0))
        return np.column_stack([col[a:b] for col in self.exog.values()])

    def shift(self, ts: pd.DatetimeIndex, steps: np.ndarray | int) -> pd.DatetimeIndex:
        """Return ``ts + steps * freq`` elementwise."""
        steps_arr = np.broadcast_to(np.asarray(steps, dtype=np.int64), (len(ts),))
        step = fixed_step(self.freq)
        if step is not None:
            return ts + pd.to_timedelta(steps_arr * step.value, unit="ns")
        out = [t + int(k) * self.freq for t, k in zip(ts, steps_arr, strict=True)]
        return pd.DatetimeIndex(out).tz_convert("UTC")

    @property
    def last_ds(self) -> pd.DatetimeIndex:
        """Last timestamp of every series, shape ``(n_series,)``."""
        return self.shift(self.start, self.lengths - 1)

    def timestamps(self) -> pd.DatetimeIndex:
        """Timestamp of every observation, shape ``(n_obs,)``."""
        return self.shift(self.start[self.series_index], self.positions)

    def future_ds(self, h: int) -> pd.DatetimeIndex:
        """Timestamps of the next ``h`` steps of every series, shape ``(n_series * h,)``.

        Ordered series by series, ``h`` consecutive steps each.
        """
        last = self.last_ds
        base = last[np.repeat(np.arange(self.n_series), h)]
        steps = np.tile(np.arange(1, h + 1), self.n_series)
        return self.shift(base, steps)

    def take(self, idx: np.ndarray | Sequence[int]) -> SeriesPanel:
        """Return the panel restricted to the series at positions ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.lengths[idx]
        rows = (
            np.concatenate([np.arange(self.indptr[i], self.indptr[i + 1]) for i in idx])
            if len(idx)
            else np.empty(0, dtype=np.int64)
        )
        return SeriesPanel(
            ids=self.ids[idx],
            indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            y=self.y[rows],
            start=self.start[idx],
            freq=self.freq,
            exog={k: v[rows] for k, v in self.exog.items()},
        )

    def truncate(self, n_drop: int | np.ndarray) -> SeriesPanel:
        """Drop the last ``n_drop`` observations of every series.

        Parameters
        ----------
        n_drop : int or numpy.ndarray of shape (n_series,)
            How many trailing observations to drop; series must keep at least one.
        """
        drop = np.broadcast_to(np.asarray(n_drop, dtype=np.int64), (self.n_series,))
        keep_len = self.lengths - drop
        if (keep_len < 1).any():
            raise ValueError("truncate would leave a series empty")
        keep = self.positions < np.repeat(keep_len, self.lengths)
        return SeriesPanel(
            ids=self.ids,
            indptr=np.concatenate([[0], np.cumsum(keep_len)]).astype(np.int64),
            y=self.y[keep],
            start=self.start,
            freq=self.freq,
            exog={k: v[keep] for k, v in self.exog.items()},
        )

    def window(self, offset: int | np.ndarray, h: int) -> np.ndarray:
        """Flat row indices of ``h`` observations starting ``offset`` steps before each end.

        Returns an array of shape ``(n_series, h)``: row ``i`` holds the indices
        ``end_i - offset_i, ..., end_i - offset_i + h - 1``.
        """
        off = np.broadcast_to(np.asarray(offset, dtype=np.int64), (self.n_series,))
        first = self.indptr[1:] - off
        return first[:, None] + np.arange(h)[None, :]

    def matrix(self, width: int | None = None, values: np.ndarray | None = None) -> np.ndarray:
        """Return the series right-aligned in a ``(n_series, width)`` matrix, NaN-padded.

        Parameters
        ----------
        width : int, optional
            Number of trailing observations kept; default the longest series.
        values : numpy.ndarray of shape (n_obs,), optional
            Flat values to lay out instead of ``y`` (an exogenous column, say).
        """
        vals = self.y if values is None else values
        lengths = self.lengths
        w = int(lengths.max()) if width is None else int(width)
        out = np.full((self.n_series, w), np.nan)
        pos_from_end = np.repeat(self.indptr[1:], lengths) - np.arange(len(vals))  # 1..len
        keep = pos_from_end <= w
        out[self.series_index[keep], w - pos_from_end[keep]] = vals[keep]
        return out

    def to_frame(self, id_col: str = "unique_id", time_col: str = "ds") -> pd.DataFrame:
        """Return the panel as a long-format series frame (``id_col, time_col, y, *exog``)."""
        data: dict[str, object] = {
            id_col: np.repeat(self.ids, self.lengths),
            time_col: self.timestamps(),
            "y": self.y,
        }
        data.update(self.exog)
        return pd.DataFrame(data)


def _check_numeric_column(
    frame: pd.DataFrame, col: str, ids: pd.Series, *, what: str
) -> np.ndarray:
    s = frame[col]
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        coerced = pd.to_numeric(s, errors="coerce")
        bad = np.flatnonzero(coerced.isna().to_numpy() & s.notna().to_numpy())
        if len(bad):
            raise InvalidFrameError(
                f"{what} must be numeric, got {s.iloc[int(bad[0])]!r} in series "
                f"{format_ids(pd.unique(ids.iloc[bad]))}",
                column=col,
                rows=[int(i) for i in bad],
                frame=_FRAME,
            )
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    inf = np.flatnonzero(np.isinf(values))
    if len(inf):
        raise InvalidFrameError(
            f"{what} contains infinite values in series {format_ids(pd.unique(ids.iloc[inf]))}",
            column=col,
            rows=[int(i) for i in inf],
            frame=_FRAME,
        )
    return values


def _interpolate(values: np.ndarray, indptr: np.ndarray, which: np.ndarray) -> None:
    """Fill NaN in place, linearly inside each listed series and flat at its ends."""
    for i in which:
        seg = values[indptr[i] : indptr[i + 1]]
        ok = ~np.isnan(seg)
        if ok.all() or not ok.any():
            continue
        x = np.arange(len(seg))
        seg[~ok] = np.interp(x[~ok], x[ok], seg[ok])


def _fill_flat(values: np.ndarray, indptr: np.ndarray, which: np.ndarray) -> None:
    """Forward- then backward-fill NaN in place inside each listed series (exogenous)."""
    for i in which:
        seg = pd.Series(values[indptr[i] : indptr[i + 1]])
        values[indptr[i] : indptr[i + 1]] = seg.ffill().bfill().fillna(0.0).to_numpy()


def _resolve_freq(
    ds: pd.Series,
    bounds: np.ndarray,
    uniques: np.ndarray,
    freq: str | pd.DateOffset | None,
    time_col: str,
) -> pd.DateOffset:
    """Find the one frequency shared by all series, or raise naming the odd ones."""
    values = ds.array.asi8
    n = len(uniques)
    lengths = np.diff(bounds)
    if freq is not None:
        return as_offset(freq)
    # Fast path: every series with two or more points is evenly spaced by one duration.
    diffs = np.diff(values)
    interior = np.ones(len(diffs), dtype=bool)
    interior[bounds[1:-1] - 1] = False
    multi = np.flatnonzero(lengths >= 2)
    if len(multi):
        d = diffs[interior]
        seg_starts = np.concatenate([[0], np.cumsum(lengths[multi] - 1)[:-1]])
        dmin = np.minimum.reduceat(d, seg_starts)
        dmax = np.maximum.reduceat(d, seg_starts)
        if (dmin == dmax).all() and (dmin == dmin[0]).all() and dmin[0] > 0:
            return offset_from_step(pd.Timedelta(int(dmin[0]), unit="ns"))
    # Slow path: infer per series, then check that they agree.
    inferred: dict[int, pd.DateOffset] = {}
    for i in range(n):
        if lengths[i] >= 3:
            idx = pd.DatetimeIndex(ds.iloc[bounds[i] : bounds[i + 1]])
            off = infer_series_freq(idx)
            if off is not None:
                inferred[i] = off
    if inferred:
        counts = Counter(freq_key(o) for o in inferred.values())
        majority, _ = counts.most_common(1)[0]
        if len(counts) > 1:
            odd = [uniques[i] for i, o in inferred.items() if freq_key(o) != majority]
            seen = ", ".join(f"{k!r} ({c} series)" for k, c in counts.most_common())
            raise InvalidFrameError(
                f"series have mixed frequencies {seen}; series {format_ids(odd)} are not "
                f"{majority!r}: forecast each frequency separately",
                column=time_col,
                frame=_FRAME,
            )
        return next(o for o in inferred.values() if freq_key(o) == majority)
    # Nothing evenly spaced (gaps everywhere): try the calendar offsets that match the
    # smallest step seen, then that step itself.
    if len(multi):
        d = diffs[interior]
        d = d[d > 0]
        if len(d):
            smallest = pd.Timedelta(int(d.min()), unit="ns")
            for cand in _candidates(smallest):
                try:
                    _grid_positions(ds, bounds, uniques, cand, time_col)
                except InvalidFrameError:
                    continue
                return cand
    raise ConfigError(
        "parameter freq must be given when every series has a single timestamp "
        "(the frequency cannot be inferred), got None"
    )


def _candidates(smallest: pd.Timedelta) -> list[pd.DateOffset]:
    days = smallest / pd.Timedelta(days=1)
    names: list[str] = []
    if 28 <= days <= 31:
        names = ["MS", "ME"]
    elif 89 <= days <= 92:
        names = ["QS", "QE"]
    elif 365 <= days <= 366:
        names = ["YS", "YE"]
    return [as_offset(n) for n in names] + [offset_from_step(smallest)]


def _grid_positions(
    ds: pd.Series,
    bounds: np.ndarray,
    uniques: np.ndarray,
    offset: pd.DateOffset,
    time_col: str,
) -> np.ndarray:
    """Return each row's 0-based step from its series start; raise for off-grid series."""
    n = len(uniques)
    lengths = np.diff(bounds)
    sid = np.repeat(np.arange(n), lengths)
    step = fixed_step(offset)
    label = freq_key(offset)
    if step is not None:
        values = ds.array.asi8
        first = values[bounds[:-1]]
        rel = values - first[sid]
        pos, rem = np.divmod(rel, step.value)
        off_grid = np.flatnonzero(rem != 0)
        if len(off_grid):
            bad = pd.unique(uniques[sid[off_grid]])
            raise InvalidFrameError(
                f"series {format_ids(bad)} have timestamps off the {label!r} grid "
                f"(e.g. {ds.iloc[int(off_grid[0])]}): mixed frequencies across series; "
                "forecast each frequency separately or pass freq",
                column=time_col,
                frame=_FRAME,
            )
        return pos.astype(np.int64)
    pos = np.empty(len(ds), dtype=np.int64)
    bad_ids = []
    for i in range(n):
        idx = pd.DatetimeIndex(ds.iloc[bounds[i] : bounds[i + 1]])
        if not offset.is_on_offset(idx[0]):
            bad_ids.append(uniques[i])
            continue
        grid = pd.date_range(idx[0], idx[-1], freq=offset)
        loc = grid.get_indexer(idx)
        if (loc < 0).any():
            bad_ids.append(uniques[i])
            continue
        pos[bounds[i] : bounds[i + 1]] = loc
    if bad_ids:
        raise InvalidFrameError(
            f"series {format_ids(bad_ids)} have timestamps off the {label!r} grid: mixed "
            "frequencies across series; forecast each frequency separately or pass freq",
            column=time_col,
            frame=_FRAME,
        )
    return pos


def to_panel(
    df: pd.DataFrame,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
    freq: str | pd.DateOffset | None = None,
    use_exog: bool = True,
    require_target: bool = True,
) -> SeriesPanel:
    """Validate and normalise a long-format series frame into a :class:`SeriesPanel`.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``id_col, time_col, target_col`` plus optional numeric exogenous
        columns; one row per series and timestamp, any order.
    id_col, time_col, target_col : str
        Column names.
    freq : str or pandas.DateOffset, optional
        Frequency of all series; inferred when not given.
    use_exog : bool
        Keep the other columns as exogenous regressors (they must be numeric);
        when False they are ignored.
    require_target : bool
        When False a missing ``target_col`` is allowed (used for future
        exogenous frames) and filled with NaN.

    Returns
    -------
    SeriesPanel
        Sorted by series id, regular, no NaN.

    Raises
    ------
    InvalidFrameError
        Missing columns, unparseable timestamps, non-numeric values, duplicated
        ``(id, ds)`` pairs, mixed frequencies or all-missing series; the message
        names the series and the column.

    Warns
    -----
    UserWarning
        When gaps are filled or missing values interpolated, naming the series.
    """
    if not isinstance(df, pd.DataFrame):
        raise InvalidFrameError(
            f"expected a pandas DataFrame, got {type(df).__name__}", frame=_FRAME
        )
    required = [id_col, time_col] + ([target_col] if require_target else [])
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InvalidFrameError(
            f"missing required column(s) {missing}; got columns {list(df.columns)}",
            column=missing[0],
            frame=_FRAME,
        )
    if len(df) == 0:
        raise InvalidFrameError("has no rows", frame=_FRAME)
    frame = df.reset_index(drop=True)
    ids = frame[id_col]
    bad = np.flatnonzero(ids.isna().to_numpy())
    if len(bad):
        raise InvalidFrameError(
            "contains missing ids", column=id_col, rows=[int(i) for i in bad], frame=_FRAME
        )
    ds = normalize_timestamps(frame[time_col], column=time_col).dt.as_unit("ns")
    if target_col in frame.columns:
        y = _check_numeric_column(frame, target_col, ids, what="target")
    else:
        y = np.full(len(frame), np.nan)
    exog_cols = [c for c in frame.columns if c not in (id_col, time_col, target_col)]
    exog = (
        {c: _check_numeric_column(frame, c, ids, what="exogenous column") for c in exog_cols}
        if use_exog
        else {}
    )

    # Sort by series then time (stable), tolerating ids of mixed types.
    key_ids = ids
    ds_i8 = ds.array.asi8
    try:
        order = np.lexsort((ds_i8, pd.factorize(ids, sort=True)[0]))
    except TypeError:
        key_ids = ids.astype(str)
        order = np.lexsort((ds_i8, pd.factorize(key_ids, sort=True)[0]))
    key_ids = key_ids.iloc[order].reset_index(drop=True)
    ds = ds.iloc[order].reset_index(drop=True)
    y = y[order]
    exog = {k: v[order] for k, v in exog.items()}
    codes, uniques_idx = pd.factorize(key_ids, sort=False)
    uniques = np.asarray(uniques_idx, dtype=object)
    counts = np.bincount(codes, minlength=len(uniques))
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    ds_i8 = ds.array.asi8
    dup = (codes[1:] == codes[:-1]) & (ds_i8[1:] == ds_i8[:-1])
    if dup.any():
        where = np.flatnonzero(dup) + 1
        bad_ids = pd.unique(uniques[codes[where]])
        raise InvalidFrameError(
            f"duplicated ({id_col}, {time_col}) pairs in series {format_ids(bad_ids)}, "
            f"e.g. {ds.iloc[int(where[0])]}; aggregate them first",
            column=time_col,
            frame=_FRAME,
        )

    offset = _resolve_freq(ds, bounds, uniques, freq, time_col)
    pos = _grid_positions(ds, bounds, uniques, offset, time_col)
    full_len = pos[bounds[1:] - 1] + 1
    sid = np.repeat(np.arange(len(uniques)), counts)
    gappy = np.flatnonzero(full_len > counts)
    indptr = np.concatenate([[0], np.cumsum(full_len)]).astype(np.int64)
    flat = indptr[sid] + pos
    y_full = np.full(int(indptr[-1]), np.nan)
    y_full[flat] = y
    exog_full = {}
    for k, v in exog.items():
        col = np.full(int(indptr[-1]), np.nan)
        col[flat] = v
        exog_full[k] = col
    if len(gappy):
        n_missing = int((full_len - counts)[gappy].sum())
        warnings.warn(
            f"series {format_ids(uniques[gappy])} have gaps on the {freq_key(offset)!r} grid; "
            f"{n_missing} missing timestamps were filled by linear interpolation",
            UserWarning,
            stacklevel=3,
        )
    was_nan = np.isnan(y)
    if was_nan.any() and require_target:
        nan_ids = pd.unique(uniques[sid[was_nan]])
        warnings.warn(
            f"series {format_ids(nan_ids)} have {int(was_nan.sum())} missing values in column "
            f"{target_col!r}; they were filled by linear interpolation",
            UserWarning,
            stacklevel=3,
        )
    if require_target:
        nan_per_series = np.add.reduceat(np.isnan(y_full), indptr[:-1])
        empty = np.flatnonzero(nan_per_series == full_len)
        if len(empty):
            raise InvalidFrameError(
                f"series {format_ids(uniques[empty])} have no non-missing values",
                column=target_col,
                frame=_FRAME,
            )
        _interpolate(y_full, indptr, np.flatnonzero(nan_per_series > 0))
    for k, col in exog_full.items():
        nan_per_series = np.add.reduceat(np.isnan(col), indptr[:-1])
        which = np.flatnonzero(nan_per_series > 0)
        if len(which):
            orig_nan = np.isnan(exog[k])
            if orig_nan.any():
                warnings.warn(
                    f"exogenous column {k!r} has {int(orig_nan.sum())} missing values in "
                    f"series {format_ids(pd.unique(uniques[sid[orig_nan]]))}; they were "
                    "filled with the previous value",
                    UserWarning,
                    stacklevel=3,
                )
            _fill_flat(col, indptr, which)
    start = pd.DatetimeIndex(ds.iloc[bounds[:-1]])
    return SeriesPanel(
        ids=uniques,
        indptr=indptr,
        y=y_full,
        start=start,
        freq=offset,
        exog=exog_full,
    )
