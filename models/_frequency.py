"""Frequency inference and default seasonal periods.

A frequency is a :class:`pandas.DateOffset`. Offsets with a fixed duration
(hours, minutes, days, ``7D``) are handled with integer arithmetic on
timestamps; calendar offsets (``W-SUN``, ``MS``, ``ME``, ``QS``...) go through
:func:`pandas.date_range` per series.
"""

from __future__ import annotations

import warnings

import pandas as pd
from pandas.tseries.frequencies import to_offset

from features.exceptions import ConfigError

_DAY = pd.Timedelta(days=1)
_HOUR = pd.Timedelta(hours=1)


def as_offset(freq: str | pd.DateOffset) -> pd.DateOffset:
    """Return ``freq`` as a :class:`pandas.DateOffset`.

    Raises
    ------
    ConfigError
        When ``freq`` is not a valid pandas frequency alias.
    """
    if isinstance(freq, pd.DateOffset):
        return freq
    try:
        return to_offset(freq)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"parameter freq must be a pandas frequency alias such as 'h', 'D', 'W', 'MS', "
            f"got {freq!r}"
        ) from exc


def offset_from_step(step: pd.Timedelta) -> pd.DateOffset:
    """The offset of a fixed step: whole days as ``D``/``7D``, else hours, minutes..."""
    if step % _DAY == pd.Timedelta(0):
        days = int(step / _DAY)
        return as_offset("D" if days == 1 else f"{days}D")
    return as_offset(step)


def fixed_step(offset: pd.DateOffset) -> pd.Timedelta | None:
    """Return the duration of one step when ``offset`` has a fixed one, else ``None``.

    ``h``, ``15min``, ``D`` and ``7D`` have a fixed duration; ``W-SUN``, ``MS``
    and ``QS`` are calendar offsets anchored on a weekday or month and do not.
    """
    if isinstance(offset, pd.offsets.Week | pd.offsets.BusinessDay):
        return None
    try:
        step = pd.Timedelta(offset)
    except (ValueError, TypeError):
        return None
    if pd.isna(step) or step <= pd.Timedelta(0):
        return None
    return step


def infer_series_freq(ds: pd.DatetimeIndex) -> pd.DateOffset | None:
    """Infer the frequency of one sorted series of timestamps, or ``None``.

    Uses :func:`pandas.infer_freq` (needs 3 evenly spaced timestamps); returns
    ``None`` when the series is too short or irregular (gaps).
    """
    if len(ds) < 3:
        return None
    with warnings.catch_warnings():
        # pandas 3 announces that infer_freq will return an offset; both are handled.
        warnings.simplefilter("ignore")
        try:
            freq = pd.infer_freq(ds)
        except (ValueError, TypeError):
            return None
    if freq is None:
        return None
    return as_offset(freq)


def freq_key(offset: pd.DateOffset) -> str:
    """Return a canonical string for comparing frequencies (``'h'``, ``'D'``, ``'MS'``)."""
    return str(offset.freqstr)


def default_season_length(offset: pd.DateOffset) -> int:
    """Return the main seasonal period in steps of ``offset``.

    ``h`` -> 24, ``D`` -> 7, ``W`` -> 52, ``MS``/``ME`` -> 12, ``QS`` -> 4,
    ``YS`` -> 1, ``B`` -> 5, sub-hourly -> steps per day (per hour below a
    minute); other multi-day steps -> 1 (no seasonality).
    """
    step = fixed_step(offset)
    if step is not None:
        if step < _DAY:
            per_day = _DAY / step
            if per_day == int(per_day):
                if per_day > 1440:
                    per_hour = _HOUR / step
                    return max(int(per_hour), 1) if per_hour == int(per_hour) else 1
                return int(per_day)
            return 1
        if step == _DAY:
            return 7
        if step == 7 * _DAY:
            return 52
        return 1
    n = abs(int(getattr(offset, "n", 1)))
    if isinstance(offset, pd.offsets.BusinessDay):
        return 5 if n == 1 else 1
    if isinstance(offset, pd.offsets.Week):
        return 52 if n == 1 else 1
    if isinstance(offset, pd.offsets.MonthBegin | pd.offsets.MonthEnd):
        return max(12 // n, 1) if 12 % n == 0 else 1
    if isinstance(offset, pd.offsets.QuarterBegin | pd.offsets.QuarterEnd):
        return 4 if n == 1 else 1
    return 1


def default_seasonal_periods(offset: pd.DateOffset, season_length: int) -> tuple[int, ...]:
    """Return the seasonal periods for multi-seasonal models.

    Sub-daily data get a daily and a weekly period (hourly: ``(24, 168)``),
    daily data ``(7, 365)``; everything else only ``season_length``.
    """
    step = fixed_step(offset)
    if step is not None and step < _DAY and season_length > 1:
        per_day = _DAY / step
        if per_day == season_length:
            return (season_length, 7 * season_length)
        return (season_length,)
    if step is not None and step == _DAY and season_length == 7:
        return (7, 365)
    return (season_length,) if season_length > 1 else ()


def is_sub_daily(offset: pd.DateOffset) -> bool:
    """Whether one step is shorter than a day."""
    step = fixed_step(offset)
    return step is not None and step < _DAY
