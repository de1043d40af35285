"""Forecasters, metrics and the model registry.

Every forecaster follows :class:`models.base.BaseForecaster`: keyword-only
``__init__``, ``fit(df) -> self``, ``predict(h, X_df=None, level=(80, 95))`` and
``cross_validation(df, h, n_windows)`` over long-format ``unique_id, ds, y``
frames.
"""

from __future__ import annotations

import inspect
from typing import Any

from features.exceptions import ConfigError
from models.base import BaseForecaster
from models.baselines import Drift, Naive, SeasonalNaive
from models.ensemble import AutoForecaster
from models.lgbm import LGBMForecaster
from models.metrics import evaluate
from models.statistical import ETS, MSTL, AutoARIMA

#: Registry of model names (CLI ``--model``) to classes.
MODELS: dict[str, type[BaseForecaster]] = {
    "auto": AutoForecaster,
    "lgbm": LGBMForecaster,
    "mstl": MSTL,
    "ets": ETS,
    "arima": AutoARIMA,
    "seasonal_naive": SeasonalNaive,
    "naive": Naive,
    "drift": Drift,
}


def make_model(name: str, **params: Any) -> BaseForecaster:
    """Create a registered model; parameters it does not take are ignored.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    **params
        Constructor parameters (``freq``, ``season_length``, ``n_jobs``,
        ``seed``...); those the model does not accept are dropped, so callers
        can pass one common set.

    Raises
    ------
    ConfigError
        When ``name`` is not registered.
    """
    try:
        cls = MODELS[name]
    except KeyError:
        raise ConfigError(
            f"parameter model must be one of {sorted(MODELS)}, got {name!r}"
        ) from None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in params.items() if k in accepted})


__all__ = [
    "ETS",
    "MODELS",
    "MSTL",
    "AutoARIMA",
    "AutoForecaster",
    "BaseForecaster",
    "Drift",
    "LGBMForecaster",
    "Naive",
    "SeasonalNaive",
    "evaluate",
    "make_model",
]
