"""Fitted forecasters as MLflow ``pyfunc`` models.

The model takes a *request frame*, the way mlforecast's flavor does, not a raw
feature matrix:

=============  ========  =====================================================
column         type      meaning
=============  ========  =====================================================
``unique_id``  str       a series seen in training
``h``          int       steps ahead wanted for that series (>= 1)
``level``      int       optional extra interval level; 80 and 95 always come
``ds``         datetime  only for models with exogenous columns: one row per
                         future step, with the exogenous values on it
exogenous      float     optional, the future values of the model's regressors
=============  ========  =====================================================

and returns the forecast frame ``unique_id, ds, yhat, lo_80, hi_80, lo_95,
hi_95`` (plus ``lo_L, hi_L`` of any other level asked for), ``h`` rows per
requested series, ``ds`` in UTC.

The fitted estimator is pickled (cloudpickle) into the model's artifacts, so
predicting needs no training data and no refit; the forecasts computed at
training time travel with it (``forecasts.parquet``) for readers that only
want the stored frame.

This module imports MLflow at import time; import it lazily (the registry does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from features.exceptions import ConfigError, ForecasterError, InvalidFrameError
from models.base import BaseForecaster

__all__ = [
    "DEFAULT_LEVELS",
    "ESTIMATOR_FILE",
    "FORECASTS_FILE",
    "ForecasterPyFunc",
    "example_request",
    "forecast_request",
    "model_signature",
    "save_estimator",
]

#: Interval levels every answer carries.
DEFAULT_LEVELS: tuple[int, ...] = (80, 95)
#: Artifact keys (and file names) inside the logged model.
ESTIMATOR_FILE = "estimator.pkl"
FORECASTS_FILE = "forecasts.parquet"


def save_estimator(model: BaseForecaster, path: str | Path) -> Path:
    """Pickle a fitted forecaster with cloudpickle (what the pyfunc loads)."""
    model._check_is_fitted()
    p = Path(path)
    with p.open("wb") as fh:
        cloudpickle.dump(model, fh)
    return p


def _levels(request: pd.DataFrame) -> list[int]:
    extra: set[int] = set()
    if "level" in request.columns:
        raw = pd.to_numeric(request["level"], errors="coerce")
        bad = raw.notna() & ~((raw > 0) & (raw < 100) & (raw == raw.round()))
        if bad.any():
            rows = [int(i) for i in np.flatnonzero(bad.to_numpy())]
            raise InvalidFrameError(
                f"level must be an integer in (0, 100), got {request['level'].tolist()[rows[0]]!r}",
                column="level",
                rows=rows,
                frame="request",
            )
        extra = {int(v) for v in raw.dropna()}
    return sorted(set(DEFAULT_LEVELS) | extra)


def forecast_request(model: BaseForecaster, request: pd.DataFrame) -> pd.DataFrame:
    """Answer a request frame with a fitted forecaster (see the module docstring).

    Parameters
    ----------
    model : BaseForecaster
        A fitted forecaster.
    request : pandas.DataFrame
        ``unique_id, h`` and optionally ``level``, ``ds`` and exogenous columns.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, yhat, lo_L, hi_L...``; for each requested series its
        first ``h`` steps, in the order the series were requested.

    Raises
    ------
    InvalidFrameError
        Missing columns, unknown series, bad ``h`` or ``level``, missing future
        exogenous values; the message names the column and rows.
    """
    if not isinstance(request, pd.DataFrame):
        request = pd.DataFrame(request)
    missing = [c for c in ("unique_id", "h") if c not in request.columns]
    if missing:
        raise InvalidFrameError(
            f"missing required column(s) {missing}; a request has unique_id, h "
            f"and optionally level (got {list(request.columns)})",
            column=missing[0],
            frame="request",
        )
    if len(request) == 0:
        raise InvalidFrameError("no rows: ask for at least one series", frame="request")
    ids = request["unique_id"].astype(str)
    h_raw = pd.to_numeric(request["h"], errors="coerce")
    bad_h = ~(h_raw.notna() & (h_raw >= 1) & (h_raw == h_raw.round()))
    if bad_h.any():
        rows = [int(i) for i in np.flatnonzero(bad_h.to_numpy())]
        raise InvalidFrameError(
            f"h must be a positive integer, got {request['h'].tolist()[rows[0]]!r}",
            column="h",
            rows=rows,
            frame="request",
        )
    known = set(map(str, model.ids_))
    unknown = ~ids.isin(known)
    if unknown.any():
        rows = [int(i) for i in np.flatnonzero(unknown.to_numpy())]
        names = sorted(set(ids[unknown]))[:5]
        raise InvalidFrameError(
            f"unknown series {names}; the model was trained on {len(known)} series "
            f"(e.g. {sorted(known)[:3]})",
            column="unique_id",
            rows=rows,
            frame="request",
        )
    levels = _levels(request)
    wanted = pd.Series(h_raw.astype(int).to_numpy(), index=ids.to_numpy()).groupby(level=0).max()
    horizon = int(wanted.max())
    x_df = None
    if model.exog_cols_:
        need = ["ds", *model.exog_cols_]
        absent = [c for c in need if c not in request.columns]
        if absent:
            raise InvalidFrameError(
                f"this model uses exogenous columns {model.exog_cols_}: give one row per "
                f"series and future step with ds and their values (missing {absent})",
                column=absent[0],
                frame="request",
            )
        given = request.assign(unique_id=ids)[["unique_id", "ds", *model.exog_cols_]]
        x_df = pd.concat([given, _filler_exog(model, horizon, set(wanted.index))])
        x_df = x_df.rename(columns={"unique_id": model.id_col_, "ds": model.time_col_})
    fc = model.predict(horizon, X_df=x_df, level=levels)
    fc = fc.rename(columns={model.id_col_: "unique_id", model.time_col_: "ds"})
    fc["unique_id"] = fc["unique_id"].astype(str)
    fc = fc[fc["unique_id"].isin(wanted.index)]
    step = fc.groupby("unique_id", sort=False).cumcount() + 1
    fc = fc[step.to_numpy() <= fc["unique_id"].map(wanted).to_numpy()]
    order = {uid: i for i, uid in enumerate(pd.unique(ids))}
    fc = fc.assign(_o=fc["unique_id"].map(order)).sort_values(["_o", "ds"], kind="stable")
    return fc.drop(columns="_o").reset_index(drop=True)


def _filler_exog(model: BaseForecaster, h: int, requested: set[str]) -> pd.DataFrame:
    """Future regressors for the series *not* requested (their forecasts are dropped).

    The model forecasts all its series at once and needs future values for
    each; a request names only some. The others get their last observed values;
    requested series get no filler, so a gap in the request is still reported.
    """
    panel = model.panel_
    ids = np.asarray(panel.ids).astype(str)
    others = [i for i, uid in enumerate(ids) if uid not in requested]
    if not others:
        return pd.DataFrame(columns=["unique_id", "ds", *model.exog_cols_])
    future = panel.future_ds(h)
    cols = list(panel.exog)
    frame: dict[str, Any] = {
        "unique_id": np.repeat(ids[others], h),
        "ds": np.concatenate([future[i * h : (i + 1) * h] for i in others]),
    }
    for c in model.exog_cols_:
        j = cols.index(c)
        frame[c] = np.repeat([panel.exog_values(i)[-1, j] for i in others], h)
    return pd.DataFrame(frame)


def example_request(model: BaseForecaster, h: int = 2) -> pd.DataFrame:
    """A small valid request for ``model`` (the logged input example)."""
    uid = str(model.ids_[0])
    if not model.exog_cols_:
        return pd.DataFrame({"unique_id": [uid], "h": [h], "level": [90]})
    future = model.panel_.future_ds(h)[:h]
    frame = pd.DataFrame({"unique_id": uid, "h": h, "level": 90, "ds": future})
    # The example must carry plausible exogenous values: repeat the last ones.
    last = model.panel_.exog_values(0)[-1]
    for j, c in enumerate(model.panel_.exog):
        if c in model.exog_cols_:
            frame[c] = float(last[j])
    return frame


def model_signature(model: BaseForecaster, example: pd.DataFrame, output: pd.DataFrame) -> Any:
    """Signature: ``unique_id`` str and ``h`` long required; the rest optional."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    # ``level``, ``ds`` and the regressors are typed "any": MLflow will not
    # cast int64 to double, and a JSON null in a column of ints arrives as NaN,
    # so a strict type would refuse valid requests; forecast_request checks them.
    cols: list[Any] = [
        ColSpec("string", "unique_id"),
        ColSpec("long", "h"),
        ColSpec(AnyType(), "level", required=False),
    ]
    if model.exog_cols_:
        cols.append(ColSpec(AnyType(), "ds"))
        cols += [ColSpec(AnyType(), c) for c in model.exog_cols_]
    out_cols: list[Any] = [ColSpec("string", "unique_id"), ColSpec("datetime", "ds")]
    out_cols += [ColSpec("double", c) for c in output.columns if c not in ("unique_id", "ds")]
    return ModelSignature(inputs=Schema(cols), outputs=Schema(out_cols))


class ForecasterPyFunc(PythonModel):  # type: ignore[misc]
    """``pyfunc`` wrapper of a fitted forecaster (artifacts: the pickled estimator).

    Attributes
    ----------
    estimator_ : BaseForecaster
        The fitted forecaster, after :meth:`load_context`.
    forecasts_ : pandas.DataFrame or None
        The forecast frame logged with the model, when there was one.
    """

    def __init__(self) -> None:
        self.estimator_: BaseForecaster | None = None
        self.forecasts_: pd.DataFrame | None = None

    def load_context(self, context: Any) -> None:
        """Unpickle the estimator and read the stored forecasts."""
        path = context.artifacts.get("estimator")
        if path is None:
            raise ConfigError("the logged model has no 'estimator' artifact")
        with Path(path).open("rb") as fh:
            self.estimator_ = cloudpickle.load(fh)
        fc = context.artifacts.get("forecasts")
        self.forecasts_ = pd.read_parquet(fc) if fc else None

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Forecast the requested series (see :func:`forecast_request`).

        Raises
        ------
        mlflow.exceptions.MlflowException
            ``INVALID_PARAMETER_VALUE`` (HTTP 400 from ``mlflow models serve``)
            with the message of the :class:`~features.exceptions.ForecasterError`
            behind it (``__cause__``), so a bad request reads e.g. "column
            'unique_id', rows [0]: unknown series ['x']" instead of a generic
            scoring error.
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if self.estimator_ is None:
            self.load_context(context)
        assert self.estimator_ is not None
        try:
            return forecast_request(self.estimator_, model_input)
        except ForecasterError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc


class DetectorPyFunc(PythonModel):  # type: ignore[misc]
    """``pyfunc`` wrapper of a streaming anomaly detector (artifact: the pickled detector).

    Input: a series frame ``unique_id, ds, y`` (the stretch of history to
    score, oldest first per series). Output: the same rows with ``score`` in
    [0, 1] and ``is_anomaly`` (0/1), from
    :func:`models.anomaly.frame.detect_series`. Detectors are causal: a row's
    score uses only the rows before it in the request.
    """

    def __init__(self) -> None:
        self.detector_: Any = None

    def load_context(self, context: Any) -> None:
        """Unpickle the detector."""
        path = context.artifacts.get("detector")
        if path is None:
            raise ConfigError("the logged model has no 'detector' artifact")
        with Path(path).open("rb") as fh:
            self.detector_ = cloudpickle.load(fh)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score the rows of ``model_input`` (errors become ``INVALID_PARAMETER_VALUE``)."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        from models.anomaly.frame import detect_series

        if self.detector_ is None:
            self.load_context(context)
        try:
            return detect_series(pd.DataFrame(model_input), self.detector_)
        except (ForecasterError, ValueError) as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
