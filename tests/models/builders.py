"""Small synthetic series frames for the model tests (no shared data needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_series(
    n_series: int = 3,
    length: int | list[int] = 70,
    *,
    freq: str = "D",
    season_length: int = 7,
    start: str = "2024-01-01",
    noise: float = 0.5,
    trend: float = 0.05,
    level: float = 20.0,
    seed: int = 0,
    tz: str | None = "UTC",
) -> pd.DataFrame:
    """Seasonal series with trend and noise: ``unique_id, ds, y`` (ids ``s0``, ``s1``...)."""
    rng = np.random.default_rng(seed)
    lengths = length if isinstance(length, list) else [length] * n_series
    frames = []
    for i, n in enumerate(lengths):
        t = np.arange(n)
        y = (
            level
            + 2 * i
            + 3 * np.sin(2 * np.pi * t / season_length)
            + trend * t
            + rng.normal(0, noise, n)
        )
        ds = pd.date_range(start, periods=n, freq=freq, tz=tz)
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def future_frame(df: pd.DataFrame, h: int, freq: str = "D") -> pd.DataFrame:
    """``unique_id, ds`` of the next ``h`` steps of every series in ``df``."""
    rows = []
    for uid, g in df.groupby("unique_id"):
        ds = pd.date_range(g["ds"].max(), periods=h + 1, freq=freq)[1:]
        rows.append(pd.DataFrame({"unique_id": uid, "ds": ds}))
    return pd.concat(rows, ignore_index=True)
