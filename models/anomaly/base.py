"""The streaming detector base class.

A detector follows Merlion's decomposition: an online forecaster (or feature
model) produces an expectation, a residual score measures the departure from
it, a calibrator maps that raw score to a probability in [0, 1] comparable
across series, and a threshold (an :class:`~models.anomaly.threshold.AlertPolicy`)
turns probabilities into alerts.

Detectors are *causal* and *streaming*: :meth:`StreamingDetector.update` takes
one new value per series (shape ``(n_series,)``), returns the score and the
alert of that value, and only then learns from it. Everything is vectorised over
series, so one step for 10,000 series is a handful of numpy operations.
Missing values (NaN) score 0, never alert and leave the state of their series
untouched.

Conventions follow scikit-learn: ``__init__`` only stores keyword parameters;
:meth:`StreamingDetector.reset` validates them, allocates the learned state
(attributes ending in ``_``) and returns ``self``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from features.exceptions import NotFittedError
from models.anomaly._ring import BoolArray, FloatArray
from models.anomaly.threshold import AlertPolicy, check_threshold


class StreamingDetector(ABC):
    """Base class of all streaming anomaly detectors.

    Parameters
    ----------
    threshold : float, optional
        Alert threshold on the calibrated score; ``None`` uses the class
        attribute :attr:`default_threshold`.
    cooldown : int
        Observations of quiet time per series after an alert.
    escalation : float, optional
        Alert during a cooldown anyway when the score exceeds ``escalation``
        times the score of the last alert (``None``: never).
    """

    #: Threshold used when ``threshold=None``.
    default_threshold: float = 0.999
    #: Name used by the CLI and the registry.
    name: str = "detector"

    def __init__(
        self,
        *,
        threshold: float | None = None,
        cooldown: int = 0,
        escalation: float | None = None,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.escalation = escalation

    # -- scikit-learn style parameter access ---------------------------------
    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters (the serialisable configuration)."""
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {
            p: getattr(self, p)
            for p in sig.parameters
            if p != "self" and sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def threshold_(self) -> float:
        """The threshold in use (the default when ``threshold`` is None)."""
        return check_threshold(self.default_threshold if self.threshold is None else self.threshold)

    # -- streaming API --------------------------------------------------------
    def reset(self, n_series: int) -> StreamingDetector:
        """Validate parameters, allocate state for ``n_series`` series, return ``self``."""
        if isinstance(n_series, bool) or not isinstance(n_series, int | np.integer):
            raise ValueError(f"parameter n_series must be an int >= 1, got {n_series!r}")
        if n_series < 1:
            raise ValueError(f"parameter n_series must be >= 1, got {n_series}")
        self.n_series_ = int(n_series)
        if isinstance(self.cooldown, bool) or not isinstance(self.cooldown, int | np.integer):
            raise ValueError(f"parameter cooldown must be an int >= 0, got {self.cooldown!r}")
        self.policy_ = AlertPolicy(
            self.threshold_, cooldown=int(self.cooldown), escalation=self.escalation
        ).reset(n_series)
        self._reset(int(n_series))
        return self

    def update(self, values: Any) -> tuple[FloatArray, BoolArray]:
        """Score one new observation per series, then learn from it.

        Parameters
        ----------
        values : array-like, shape (n_series,)
            The new value of every series (NaN or inf = no observation).

        Returns
        -------
        scores : ndarray, shape (n_series,)
            Calibrated anomaly scores in [0, 1] (0 for missing values).
        alerts : ndarray of bool, shape (n_series,)
            The alerts (score at or above the threshold, outside a cooldown).
        """
        scores, mask = self.score_step(values)
        return scores, self.policy_.step(scores, mask)

    def score_step(self, values: Any) -> tuple[FloatArray, BoolArray]:
        """Like :meth:`update` without the threshold: ``(scores, observed mask)``."""
        if not hasattr(self, "n_series_"):
            raise NotFittedError(
                f"{type(self).__name__} has no state yet; call reset(n_series) before update()"
            )
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if x.shape[0] != self.n_series_:
            raise ValueError(
                f"parameter values must have shape ({self.n_series_},), got {np.shape(values)}"
            )
        mask = np.isfinite(x)
        x = np.where(mask, x, 0.0)
        scores = np.clip(np.nan_to_num(self._score(x, mask), nan=0.0), 0.0, 1.0)
        scores[~mask] = 0.0
        return scores, mask

    def run(self, values: Any) -> tuple[FloatArray, BoolArray]:
        """Reset, then stream a whole matrix, one column per time step.

        Parameters
        ----------
        values : array-like, shape (n_series, n_steps)
            Row ``i`` is series ``i`` in time order; NaN marks a missing value
            (and pads series shorter than ``n_steps``).

        Returns
        -------
        scores, alerts : ndarray, shape (n_series, n_steps)
        """
        y = np.asarray(values, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"parameter values must be 2-D (n_series, n_steps), got {y.shape}")
        self.reset(y.shape[0])
        scores = np.zeros(y.shape, dtype=np.float64)
        alerts = np.zeros(y.shape, dtype=bool)
        for t in range(y.shape[1]):
            scores[:, t], alerts[:, t] = self.update(y[:, t])
        return scores, alerts

    # -- for subclasses --------------------------------------------------------
    @abstractmethod
    def _reset(self, n_series: int) -> None:
        """Validate parameters and allocate the state of ``n_series`` series."""

    @abstractmethod
    def _score(self, x: FloatArray, mask: BoolArray) -> FloatArray:
        """Return calibrated scores of ``x`` and learn it where ``mask`` is true.

        ``x`` has zeros where ``mask`` is false; rows outside ``mask`` must keep
        their state.
        """
