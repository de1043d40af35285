"""Thresholds: turn calibrated scores into alerts.

The last of the four pieces of a detector (forecaster, residual score,
calibrator, threshold). An alert is raised when the calibrated score reaches
``threshold``; after an alert the same series stays quiet for ``cooldown``
observations so that one incident yields one alert (alert de-duplication),
unless ``escalation`` is set and the score rises above ``escalation`` times the
score of the last alert.
"""

from __future__ import annotations

import numpy as np

from models.anomaly._ring import BoolArray, FloatArray, IntArray

#: Steps-since-last-alert value meaning "never alerted".
_NEVER = np.iinfo(np.int64).max // 2


def check_threshold(threshold: float) -> float:
    """Validate a score threshold once, for every detector.

    Raises
    ------
    ValueError
        When ``threshold`` is not a number in (0, 1].
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.floating):
        raise ValueError(f"parameter threshold must be a number in (0, 1], got {threshold!r}")
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"parameter threshold must be in (0, 1], got {threshold!r}")
    return float(threshold)


class AlertPolicy:
    """Threshold with per-series cooldown, vectorised over series.

    Parameters
    ----------
    threshold : float
        Alert when the calibrated score is ``>= threshold`` (in (0, 1]).
    cooldown : int, default 0
        After an alert, suppress further alerts of the same series for this many
        of its observations (missing observations do not count).
    escalation : float, optional
        During a cooldown, still alert when the score exceeds ``escalation``
        times the score of the last alert (``None``: never).
    """

    def __init__(
        self, threshold: float, cooldown: int = 0, escalation: float | None = None
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.escalation = escalation

    def reset(self, n_series: int) -> AlertPolicy:
        """Allocate state for ``n_series`` streams and return ``self``."""
        self.threshold = check_threshold(self.threshold)
        if int(self.cooldown) < 0:
            raise ValueError(f"parameter cooldown must be >= 0, got {self.cooldown!r}")
        if self.escalation is not None and not float(self.escalation) >= 1.0:
            raise ValueError(f"parameter escalation must be >= 1 or None, got {self.escalation!r}")
        self.since_: IntArray = np.full(n_series, _NEVER, dtype=np.int64)
        self.level_: FloatArray = np.zeros(n_series, dtype=np.float64)
        return self

    def step(self, scores: FloatArray, mask: BoolArray) -> BoolArray:
        """Decide the alerts of one time step.

        Parameters
        ----------
        scores : ndarray, shape (n_series,)
            Calibrated scores in [0, 1].
        mask : ndarray of bool, shape (n_series,)
            Which series observed a value at this step.

        Returns
        -------
        ndarray of bool, shape (n_series,)
            The alerts.
        """
        self.since_[mask] += 1
        hit = mask & (scores >= self.threshold)
        quiet = self.since_ > int(self.cooldown)
        if self.escalation is not None:
            quiet |= scores > float(self.escalation) * self.level_
        alert = hit & quiet
        self.since_[alert] = 0
        self.level_[alert] = scores[alert]
        return alert
