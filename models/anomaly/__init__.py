"""Causal, streaming anomaly detection (issue #5).

A detector = online forecaster + residual score + calibrator + threshold
(Merlion's decomposition), vectorised across series: ``update(values)`` scores
one new value of every series in a few numpy operations.

>>> import numpy as np
>>> from models.anomaly import NoveltyDetector
>>> det = NoveltyDetector().reset(n_series=3)
>>> scores, alerts = det.update(np.array([1.0, 2.0, np.nan]))

Frames go through :func:`detect_series` (the engine of ``forecaster detect``).
"""

from models.anomaly.base import StreamingDetector
from models.anomaly.calibration import TailCalibrator
from models.anomaly.detectors import (
    EnsembleDetector,
    ForecastResidualDetector,
    IsolationForestDetector,
    NoveltyDetector,
    RobustSeasonalDetector,
    evidence_to_score,
)
from models.anomaly.frame import (
    DEFAULT_DETECTOR,
    DETECTORS,
    OUTPUT_COLUMNS,
    detect_series,
    detector_names,
    make_detector,
)
from models.anomaly.online import EWScale, OnlineSeasonalES
from models.anomaly.threshold import AlertPolicy, check_threshold

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "OUTPUT_COLUMNS",
    "AlertPolicy",
    "EWScale",
    "EnsembleDetector",
    "ForecastResidualDetector",
    "IsolationForestDetector",
    "NoveltyDetector",
    "OnlineSeasonalES",
    "RobustSeasonalDetector",
    "StreamingDetector",
    "TailCalibrator",
    "check_threshold",
    "detect_series",
    "detector_names",
    "evidence_to_score",
    "make_detector",
]
