"""Fixture builders for the anomaly tests: small synthetic series with known anomalies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Synthetic:
    """A series with its injected anomalies (positions are row indices)."""

    y: np.ndarray
    spikes: list[int] = field(default_factory=list)
    shifts: list[int] = field(default_factory=list)

    @property
    def anomalies(self) -> list[int]:
        return sorted(self.spikes + self.shifts)


def synthetic(
    n: int = 2000,
    *,
    seed: int = 0,
    level: float = 10.0,
    noise: float = 0.5,
    period: int = 0,
    amplitude: float = 3.0,
    spikes: Sequence[int] = (),
    spike_size: float = 12.0,
    shifts: Sequence[int] = (),
    shift_size: float = 8.0,
) -> Synthetic:
    """Gaussian noise around a level (plus a sine season), with spikes and level shifts.

    A spike adds ``spike_size`` to one value; a shift adds ``shift_size`` to every
    value from its position on.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = level + noise * rng.standard_normal(n)
    if period:
        y += amplitude * np.sin(2 * np.pi * t / period)
    for s in spikes:
        y[s] += spike_size
    for s in shifts:
        y[s:] += shift_size
    return Synthetic(y=y, spikes=list(spikes), shifts=list(shifts))


def series_frame(
    values: dict[str, np.ndarray], start: str = "2024-01-01", freq: str = "5min"
) -> pd.DataFrame:
    """Long-format frame ``unique_id, ds, y`` (UTC timestamps) from arrays per id."""
    parts = [
        pd.DataFrame(
            {
                "unique_id": uid,
                "ds": pd.date_range(start, periods=len(y), freq=freq, tz="UTC"),
                "y": y,
            }
        )
        for uid, y in values.items()
    ]
    return pd.concat(parts, ignore_index=True)


def hits(alerts: np.ndarray, events: Sequence[int], within: int) -> list[bool]:
    """For each event, whether an alert fires at it or in the next ``within`` steps."""
    idx = np.flatnonzero(alerts)
    return [bool(((idx >= e) & (idx <= e + within)).any()) for e in events]


def false_alerts(alerts: np.ndarray, events: Sequence[int], within: int) -> int:
    """Alerts not within ``[event, event + within]`` of any event."""
    idx = np.flatnonzero(alerts)
    ok = np.zeros(idx.size, dtype=bool)
    for e in events:
        ok |= (idx >= e) & (idx <= e + within)
    return int((~ok).sum())
