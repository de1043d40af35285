"""Forecasters, metrics and the model registry.

Every forecaster follows :class:`models.base.BaseForecaster`: keyword-only
``__init__``, ``fit(df) -> self``, ``predict(h, X_df=None, level=(80, 95))`` and
``cross_validation(df, h, n_windows)`` over long-format ``unique_id, ds, y``
frames.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from features.exceptions import ConfigError

if TYPE_CHECKING:
    from models.base import BaseForecaster
    from models.baselines import Drift, Naive, SeasonalNaive
    from models.ensemble import AutoForecaster
    from models.lgbm import LGBMForecaster
    from models.metrics import evaluate
    from models.statistical import ETS, MSTL, AutoARIMA

# The forecasters pull in LightGBM and statsmodels; importing them lazily keeps
# ``import models.anomaly`` (and every CLI command that does not forecast) light.
_LAZY: dict[str, str] = {
    "BaseForecaster": "models.base",
    "Drift": "models.baselines",
    "Naive": "models.baselines",
    "SeasonalNaive": "models.baselines",
    "AutoForecaster": "models.ensemble",
    "LGBMForecaster": "models.lgbm",
    "evaluate": "models.metrics",
    "ETS": "models.statistical",
    "MSTL": "models.statistical",
    "AutoARIMA": "models.statistical",
    "VectorizedETS": "models.vectorized",
}

#: Registry of model names (CLI ``--model``) to class names (see :data:`MODELS`).
_REGISTRY: dict[str, str] = {
    "auto": "AutoForecaster",
    "lgbm": "LGBMForecaster",
    "mstl": "MSTL",
    "ets": "ETS",
    "arima": "AutoARIMA",
    "seasonal_naive": "SeasonalNaive",
    "naive": "Naive",
    "drift": "Drift",
    "vets": "VectorizedETS",
}

#: Names accepted by :func:`make_model` (and the CLI's ``--model``), without importing them.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def __getattr__(name: str) -> Any:
    if name == "MODELS":
        #: Registry of model names (CLI ``--model``) to classes.
        return {key: __getattr__(cls) for key, cls in _REGISTRY.items()}
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'models' has no attribute {name!r}")


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
        cls = __getattr__(_REGISTRY[name])
    except KeyError:
        raise ConfigError(
            f"parameter model must be one of {sorted(_REGISTRY)}, got {name!r}"
        ) from None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in params.items() if k in accepted})


__all__ = [
    "ETS",
    "MODELS",
    "MODEL_NAMES",
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
