"""The MLflow model registry: log, register, promote with a guardrail, load, roll back.

A trained forecaster is logged as a ``pyfunc`` model (:mod:`models.pyfunc`) and
registered under a name per dataset and hierarchy (``demo-team-daily``...).
Versions carry aliases, not stages:

* a new version gets ``challenger``;
* :func:`promote_if_better` moves ``champion`` to it only when its backtest
  beats the current champion's on the chosen metric (lower is better) by the
  set margin, and never when the backtest failed or is partial; the reason of
  every decision is logged on the version and its run;
* :func:`rollback` moves ``champion`` back to the previous champion.

Serving loads ``models:/<name>@champion`` with :func:`load_model` and checks
for a new champion cheaply with :func:`alias_version`.

Every version keeps its backtest summary as tags ``metric.<name>`` (so a
listing reads one object per version) and ``backtest.status`` (``complete``,
``partial`` or ``missing``).

MLflow is imported inside the functions (it takes about 2 s to import).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.exceptions import ConfigError, StoreError, TrackingError
from models.tracking import (
    TRACKED_PACKAGES,
    configure,
    ensure_experiment,
    git_commit,
    package_versions,
    probe,
    resolve_tracking_uri,
)

if TYPE_CHECKING:
    from models.base import BaseForecaster

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LoadedModel",
    "ModelRef",
    "PromotionDecision",
    "alias_version",
    "backtest_status",
    "list_models",
    "load_model",
    "log_detector",
    "log_forecaster",
    "promote_if_better",
    "rollback",
    "set_champion",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
_HISTORY_TAG = "champion_history"
_METRIC_PREFIX = "metric."


@dataclass(frozen=True)
class ModelRef:
    """One registered model version."""

    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of a promotion check (lower metric is better)."""

    promoted: bool
    reason: str
    metric: str
    challenger: float | None
    champion: float | None


@dataclass
class LoadedModel:
    """A registered model loaded for serving.

    Attributes
    ----------
    model : mlflow.pyfunc.PyFuncModel
        ``model.predict(request_frame)`` answers requests (see :mod:`models.pyfunc`).
    forecasts : pandas.DataFrame or None
        The forecast frame logged with the version (``forecasts.parquet``).
    loaded_at : datetime
        When it was loaded (UTC).
    forecast_time : datetime or None
        When the version's forecasts were produced (UTC).
    """

    name: str
    version: str
    run_id: str
    alias: str
    model: Any
    forecasts: pd.DataFrame | None
    loaded_at: datetime
    forecast_time: datetime | None

    @property
    def estimator(self) -> Any:
        """The fitted forecaster (or the detector) inside the pyfunc model."""
        inner = self.model.unwrap_python_model()
        return getattr(inner, "estimator_", None) or getattr(inner, "detector_", None)

    def predict(self, request: pd.DataFrame) -> pd.DataFrame:
        """Answer a request frame directly (no MLflow schema step).

        Raises :class:`~features.exceptions.InvalidFrameError` naming the column
        and rows of a bad request, where ``model.predict`` wraps it in an
        ``MlflowException``.
        """
        from models.pyfunc import forecast_request

        return forecast_request(self.estimator, request)


# ----------------------------------------------------------------- helpers
def _uri(tracking_uri: str | None) -> str:
    uri = resolve_tracking_uri(tracking_uri)
    why = probe(uri)
    if why is not None:
        raise TrackingError(f"model registry unreachable: {why}")
    return configure(uri)


def _client(tracking_uri: str | None) -> Any:
    from mlflow.tracking import MlflowClient

    uri = _uri(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _not_found(exc: BaseException) -> bool:
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower()


@contextlib.contextmanager
def _registry_call(what: str) -> Iterator[None]:
    """Turn MLflow's transport errors into :class:`TrackingError` naming the call."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        # Retries exhausted against a server that went away.
        if "API request" in str(exc) or exc.error_code == "TEMPORARILY_UNAVAILABLE":
            raise TrackingError(f"{what} failed: {_first_line(exc)}") from exc
        raise
    except (requests.exceptions.RequestException, ConnectionError, TimeoutError) as exc:
        raise TrackingError(f"{what} failed: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _as_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f


def backtest_status(backtest: pd.DataFrame | None, metrics: Mapping[str, Any]) -> str:
    """``complete``, ``partial`` or ``missing``.

    A backtest is *partial* when a metric is missing a value (NaN/inf), when a
    forecast or actual in the backtest frame is not finite, or when series were
    not evaluated on the same number of cutoffs (some windows failed).
    """
    values = [_as_float(v) for v in metrics.values()]
    if any(v is None or not math.isfinite(v) for v in values):
        return "partial"
    if backtest is None:
        return "missing" if not metrics else "complete"
    if len(backtest) == 0:
        return "partial"
    for col in ("yhat", "y"):
        if col in backtest.columns:
            vals = pd.to_numeric(backtest[col], errors="coerce").to_numpy(dtype=float)
            if not np.isfinite(vals).all():
                return "partial"
    if "cutoff" in backtest.columns and "unique_id" in backtest.columns:
        per = backtest.groupby("unique_id")["cutoff"].nunique()
        if per.nunique() > 1:
            return "partial"
    return "complete"


def _version_metrics(client: Any, mv: Any) -> dict[str, float]:
    tags = dict(mv.tags or {})
    out = {
        k.removeprefix(_METRIC_PREFIX): f
        for k, v in tags.items()
        if k.startswith(_METRIC_PREFIX) and (f := _as_float(v)) is not None
    }
    if out or not mv.run_id:
        return out
    # A version registered by other means: read its run's metrics.
    with contextlib.suppress(Exception):
        return dict(client.get_run(mv.run_id).data.metrics)
    return out


def _aliases(mv: Any) -> tuple[str, ...]:
    return tuple(sorted(getattr(mv, "aliases", None) or ()))


def _ref(client: Any, name: str, version: str) -> ModelRef:
    mv = client.get_model_version(name, str(version))
    return ModelRef(
        name=name, version=str(mv.version), run_id=mv.run_id or "", aliases=_aliases(mv)
    )


def _get_version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if _not_found(exc):
            raise ConfigError(
                f"model {name!r} has no version {version!r}; "
                f"see `forecaster models list` for the registered versions"
            ) from None
        raise


def _history(client: Any, name: str) -> list[str]:
    rm = client.get_registered_model(name)
    raw = (rm.tags or {}).get(_HISTORY_TAG)
    if not raw:
        return []
    try:
        return [str(v) for v in json.loads(raw)]
    except (ValueError, TypeError):
        return []


def _pip_requirements() -> list[str]:
    # Explicit requirements: MLflow's inference loads the model in a
    # subprocess (seconds) and cannot see our local package anyway.
    versions = package_versions(("mlflow", "pandas", "numpy", "cloudpickle", *TRACKED_PACKAGES))
    return [f"{k}=={v}" for k, v in versions.items() if k != "forecaster"]


# --------------------------------------------------------------------- log
def log_forecaster(
    model: BaseForecaster,
    *,
    name: str,
    train_df: pd.DataFrame,
    metrics: dict[str, float],
    backtest: pd.DataFrame | None = None,
    forecasts: pd.DataFrame | None = None,
    params: dict[str, Any] | None = None,
    tracking_uri: str | None = None,
) -> ModelRef:
    """Log a fitted forecaster as a pyfunc model, register a version, alias it ``challenger``.

    Logs into the active MLflow run, or a new run of experiment ``name``:
    parameters (the model's and ``params``), ``metrics``, the training data
    (``mlflow.data`` with digest and source ``train_df.attrs['source']``), the
    backtest (``backtest.parquet``), the forecasts (``forecasts.parquet``), git
    commit and package versions; then the model with signature and input
    example.

    Parameters
    ----------
    model : BaseForecaster
        A fitted forecaster (it is pickled into the model's artifacts).
    name : str
        Registered model name (one per dataset and hierarchy).
    train_df : pandas.DataFrame
        Series frame the model was fitted on.
    metrics : dict of str to float
        Backtest summary, e.g. ``{"wape": 12.3, "wape.team": 10.1}``; lower is better.
    backtest : pandas.DataFrame, optional
        Cross-validation frame (``unique_id, ds, cutoff, y, yhat...``) or metrics table.
    forecasts : pandas.DataFrame, optional
        The forecast frame produced with the model.
    params : dict, optional
        Extra parameters (data window, hierarchy level...).
    tracking_uri : str, optional
        See :func:`models.tracking.resolve_tracking_uri`.

    Returns
    -------
    ModelRef

    Raises
    ------
    ConfigError
        Empty ``name`` or an unfitted model.
    TrackingError
        The registry is unreachable or refused the model (nothing is lost: the
        caller still has the model and its forecasts).
    """
    import mlflow

    from models.pyfunc import (
        ESTIMATOR_FILE,
        FORECASTS_FILE,
        ForecasterPyFunc,
        example_request,
        forecast_request,
        model_signature,
        save_estimator,
    )

    if not name or not isinstance(name, str):
        raise ConfigError(f"parameter name must be a non-empty string, got {name!r}")
    model._check_is_fitted()
    uri = _uri(tracking_uri)
    status = backtest_status(backtest, metrics)
    with _registry_call("logging the model"), tempfile.TemporaryDirectory() as tmp:
        with _logging_run(name, uri, f"train {name}") as run:
            _log_params_and_metrics(run, "model", model, params, metrics)
            targets = "y" if "y" in train_df.columns else None
            dataset = _log_dataset(train_df, f"{name}-train", "training", targets=targets)
            commit = git_commit()
            tags = {f"pkg.{k}": v for k, v in package_versions().items()}
            if commit:
                tags["git_commit"] = commit
            tags["backtest.status"] = status
            mlflow.set_tags(tags)
            tmpdir = Path(tmp)
            if backtest is not None:
                backtest.to_parquet(tmpdir / "backtest.parquet", index=False)
                mlflow.log_artifact(str(tmpdir / "backtest.parquet"))
            artifacts = {"estimator": str(save_estimator(model, tmpdir / ESTIMATOR_FILE))}
            if forecasts is not None:
                forecasts.to_parquet(tmpdir / FORECASTS_FILE, index=False)
                mlflow.log_artifact(str(tmpdir / FORECASTS_FILE))
                artifacts["forecasts"] = str(tmpdir / FORECASTS_FILE)
            example = example_request(model)
            signature = model_signature(model, example, forecast_request(model, example))
            info = _log_pyfunc("model", ForecasterPyFunc(), artifacts, signature, example)
        source = train_df.attrs.get("source")
        version_tags = {
            "backtest.status": status,
            "dataset.digest": dataset.digest,
            "dataset.source": str(source or "in-memory"),
            "model.class": type(model).__name__,
            "forecast_time": datetime.now(UTC).isoformat(),
            "git_commit": commit or "",
        }
        return _register_challenger(info, name, uri, metrics, version_tags)


@contextlib.contextmanager
def _logging_run(name: str, uri: str, run_name: str) -> Iterator[Any]:
    """The active MLflow run, or a new run ``run_name`` in experiment ``name`` (ended after)."""
    import mlflow

    own_run = mlflow.active_run() is None
    if own_run:
        exp_id = ensure_experiment(name, uri)
        mlflow.start_run(experiment_id=exp_id, run_name=run_name)
    try:
        run = mlflow.active_run()
        assert run is not None
        yield run
    finally:
        if own_run:
            mlflow.end_run()


def _log_params_and_metrics(
    run: Any, prefix: str, obj: Any, params: dict[str, Any] | None, metrics: dict[str, float]
) -> None:
    """Log ``obj``'s parameters as ``<prefix>.<name>`` (plus its class and ``params``) and the
    finite ``metrics``."""
    import mlflow

    flat = {f"{prefix}.{k}": str(v)[:500] for k, v in obj.get_params().items()}
    flat[f"{prefix}.class"] = type(obj).__name__
    flat.update({str(k): str(v)[:500] for k, v in (params or {}).items()})
    existing = set(run.data.params) if run.data else set()
    # A run's params cannot change; log only the ones it does not have.
    fresh = {k: v for k, v in flat.items() if k not in existing}
    if fresh:
        mlflow.log_params(fresh)
    finite = {k: float(v) for k, v in metrics.items() if _finite(v)}
    if finite:
        mlflow.log_metrics(finite)


def _log_dataset(df: pd.DataFrame, name: str, context: str, targets: str | None = None) -> Any:
    """Log ``df`` as the run's dataset input (its ``attrs["source"]`` as the source)."""
    import mlflow

    source = df.attrs.get("source")
    with warnings.catch_warnings():
        # A plain path can be read as several source kinds; MLflow warns and picks one.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            df, source=str(source) if source else None, name=name, targets=targets
        )
    mlflow.log_input(dataset, context=context)
    return dataset


def _log_pyfunc(
    name: str, python_model: Any, artifacts: dict[str, str], signature: Any, example: Any
) -> Any:
    """Log a pyfunc model in the active run; returns its ``ModelInfo``."""
    import mlflow

    _quiet_pickle_warning()
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=python_model,
        artifacts=artifacts,
        signature=signature,
        input_example=example,
        pip_requirements=_pip_requirements(),
    )


def _register_challenger(
    info: Any, name: str, uri: str, metrics: dict[str, float], tags: dict[str, str]
) -> ModelRef:
    """Register the logged model as a new version of ``name`` and alias it ``challenger``."""
    import mlflow

    vtags = {f"{_METRIC_PREFIX}{k}": repr(float(v)) for k, v in metrics.items()}
    vtags.update(tags)
    # One call registers the version with its tags (and the model if new).
    mv = mlflow.register_model(info.model_uri, name, tags=vtags)
    version = str(mv.version)
    client = _client(uri)
    client.set_registered_model_alias(name, CHALLENGER, version)
    return _ref(client, name, version)


class _DropPickleNotice(logging.Filter):
    """Drop MLflow's notice that a Python object is pickled: that is the design here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "serialized using CloudPickle" not in record.getMessage()


def _quiet_pickle_warning() -> None:
    logger = logging.getLogger("mlflow.pyfunc")
    if not any(isinstance(f, _DropPickleNotice) for f in logger.filters):
        logger.addFilter(_DropPickleNotice())


def _detector_signature() -> Any:
    """``unique_id`` str, ``ds`` and ``y`` any (MLflow datetimes must be naive; ours are UTC)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    inputs = Schema(
        [ColSpec("string", "unique_id"), ColSpec(AnyType(), "ds"), ColSpec(AnyType(), "y")]
    )
    outputs = Schema(
        [
            ColSpec("string", "unique_id"),
            ColSpec(AnyType(), "ds"),
            ColSpec("double", "y"),
            ColSpec("double", "score"),
            ColSpec("integer", "is_anomaly"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_detector(
    detector: Any,
    *,
    name: str,
    sample_df: pd.DataFrame,
    metrics: dict[str, float],
    params: dict[str, Any] | None = None,
    tracking_uri: str | None = None,
) -> ModelRef:
    """Log a streaming anomaly detector as a pyfunc model, register it, alias ``challenger``.

    Parameters
    ----------
    detector : models.anomaly.base.StreamingDetector
        The configured detector (its parameters and threshold are what is
        versioned; state is rebuilt from the scored history).
    name : str
        Registered model name.
    sample_df : pandas.DataFrame
        A series frame ``unique_id, ds, y`` it was evaluated on (logged as the
        dataset; its first rows are the input example).
    metrics : dict of str to float
        Evaluation metrics; for promotion use one where lower is better
        (e.g. ``false_alarms_per_day`` or ``1 - nab_score``).
    params : dict, optional
        Extra parameters.
    tracking_uri : str, optional
        See :func:`models.tracking.resolve_tracking_uri`.
    """

    from models.pyfunc import DetectorPyFunc

    if not name or not isinstance(name, str):
        raise ConfigError(f"parameter name must be a non-empty string, got {name!r}")
    uri = _uri(tracking_uri)
    status = backtest_status(None, metrics)
    with _registry_call("logging the detector"), tempfile.TemporaryDirectory() as tmp:
        with _logging_run(name, uri, f"detector {name}") as run:
            _log_params_and_metrics(run, "detector", detector, params, metrics)
            dataset = _log_dataset(sample_df, f"{name}-sample", "evaluation")
            path = Path(tmp) / "detector.pkl"
            import cloudpickle

            with path.open("wb") as fh:
                cloudpickle.dump(detector, fh)
            example = sample_df[["unique_id", "ds", "y"]].head(20).reset_index(drop=True)
            signature = _detector_signature()
            artifacts = {"detector": str(path)}
            info = _log_pyfunc("detector", DetectorPyFunc(), artifacts, signature, example)
        version_tags = {
            "backtest.status": status,
            "dataset.digest": dataset.digest,
            "model.class": type(detector).__name__,
            "model.kind": "detector",
            "git_commit": git_commit() or "",
        }
        return _register_challenger(info, name, uri, metrics, version_tags)


def _finite(v: Any) -> bool:
    f = _as_float(v)
    return f is not None and math.isfinite(f)


# ---------------------------------------------------------------- promote
def _alias_or_none(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise


def _record_decision(client: Any, name: str, mv: Any, decision: PromotionDecision) -> None:
    text = ("promoted: " if decision.promoted else "kept as challenger: ") + decision.reason
    client.set_model_version_tag(name, str(mv.version), "promotion.decision", text)
    client.set_model_version_tag(
        name, str(mv.version), "promotion.time", datetime.now(UTC).isoformat()
    )
    if mv.run_id:
        with contextlib.suppress(Exception):  # the run may have been deleted
            client.set_tag(mv.run_id, f"promotion.{name}.v{mv.version}", text[:5000])


def _move_champion(client: Any, name: str, version: str) -> None:
    history = _history(client, name)
    if not history or history[-1] != version:
        history.append(version)
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history[-50:]))
    challenger = _alias_or_none(client, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        client.delete_registered_model_alias(name, CHALLENGER)


def _valid_metric(client: Any, mv: Any, metric: str) -> tuple[float | None, str | None]:
    """The version's metric, or why it cannot be used for promotion."""
    tags = mv.tags or {}
    if tags.get("backtest.status") == "partial":
        bad = [
            k.removeprefix(_METRIC_PREFIX)
            for k, v in tags.items()
            if k.startswith(_METRIC_PREFIX) and not _finite(v)
        ]
        what = f" (no value for {', '.join(sorted(bad)[:6])})" if bad else ""
        return None, f"version {mv.version} has a partial or failed backtest{what}"
    value = _version_metrics(client, mv).get(metric)
    if value is None:
        return None, f"version {mv.version} has no backtest metric {metric!r}"
    if not math.isfinite(value):
        return None, f"version {mv.version} has a non-finite backtest {metric} ({value})"
    return value, None


def promote_if_better(
    name: str,
    version: str,
    *,
    metric: str = "wape",
    margin: float = 0.0,
    tracking_uri: str | None = None,
) -> PromotionDecision:
    """Make ``version`` the champion if its backtest beats the champion's (lower is better).

    Parameters
    ----------
    name, version : str
        The registered model version to consider.
    metric : str
        Backtest metric compared (``wape``, ``mase``, ``smape``...); lower is better.
    margin : float
        Relative improvement required, in [0, 1): the challenger must score
        below ``champion * (1 - margin)`` (``0.02``: two percent better).
    tracking_uri : str, optional
        See :func:`models.tracking.resolve_tracking_uri`.

    Returns
    -------
    PromotionDecision
        ``promoted`` and the reason; the reason is also set as the version tag
        ``promotion.decision`` and on its run.

    Raises
    ------
    ConfigError
        Unknown model or version, or a margin outside [0, 1).
    TrackingError
        The registry is unreachable.
    """
    if not 0.0 <= float(margin) < 1.0:
        raise ConfigError(f"parameter margin must be in [0, 1), got {margin!r}")
    client = _client(tracking_uri)
    with _registry_call("promotion"):
        mv = _get_version(client, name, str(version))
        value, problem = _valid_metric(client, mv, metric)
        current = _alias_or_none(client, name, CHAMPION)
        champ_value: float | None = None
        if current is not None:
            champ_value, champ_problem = _valid_metric(client, current, metric)
        if problem is not None:
            decision = PromotionDecision(
                False, f"{problem}; promotion refused", metric, value, champ_value
            )
        elif current is None:
            decision = PromotionDecision(
                True, f"first champion ({metric} {value:.4g})", metric, value, None
            )
        elif str(current.version) == str(mv.version):
            decision = PromotionDecision(
                True, f"version {mv.version} already is the champion", metric, value, champ_value
            )
        elif champ_value is None:
            decision = PromotionDecision(
                True,
                f"the champion (version {current.version}) has no usable {metric} "
                f"({champ_problem}); the challenger's {metric} {value:.4g} replaces it",
                metric,
                value,
                None,
            )
        else:
            assert value is not None
            bar = champ_value * (1.0 - float(margin))
            if value < bar:
                decision = PromotionDecision(
                    True,
                    f"{metric} {value:.4g} beats champion v{current.version}'s {champ_value:.4g} "
                    f"by more than the margin {margin:g}",
                    metric,
                    value,
                    champ_value,
                )
            else:
                decision = PromotionDecision(
                    False,
                    f"{metric} {value:.4g} does not beat champion v{current.version}'s "
                    f"{champ_value:.4g} by the margin {margin:g} (needs < {bar:.4g})",
                    metric,
                    value,
                    champ_value,
                )
        if decision.promoted:
            _move_champion(client, name, str(mv.version))
        _record_decision(client, name, mv, decision)
    return decision


def set_champion(
    name: str,
    version: str,
    *,
    reason: str = "promoted by hand",
    metric: str = "wape",
    tracking_uri: str | None = None,
) -> PromotionDecision:
    """Make ``version`` the champion without the guardrail (a person decided).

    A version whose backtest is partial or failed is still refused.
    """
    client = _client(tracking_uri)
    with _registry_call("promotion"):
        mv = _get_version(client, name, str(version))
        if (mv.tags or {}).get("backtest.status") == "partial":
            decision = PromotionDecision(
                False,
                f"version {mv.version} has a partial or failed backtest; promotion refused",
                metric,
                None,
                None,
            )
        else:
            current = _alias_or_none(client, name, CHAMPION)
            metrics = _version_metrics(client, mv)
            old = _version_metrics(client, current).get(metric) if current is not None else None
            _move_champion(client, name, str(mv.version))
            decision = PromotionDecision(True, reason, metric, metrics.get(metric), old)
        _record_decision(client, name, mv, decision)
    return decision


def rollback(name: str, tracking_uri: str | None = None) -> ModelRef:
    """Move ``champion`` back to the previous champion.

    Raises
    ------
    ConfigError
        The model is unknown or never had an earlier champion.
    """
    client = _client(tracking_uri)
    with _registry_call("rollback"):
        _registered(client, name)
        history = _history(client, name)
        current = _alias_or_none(client, name, CHAMPION)
        if current is not None and history and history[-1] != str(current.version):
            history.append(str(current.version))
        if len(history) < 2:
            raise ConfigError(
                f"model {name!r} has no earlier champion to roll back to "
                f"(champion history: {history or 'empty'})"
            )
        dropped = history.pop()
        target = history[-1]
        _get_version(client, name, target)  # a deleted version gives a clear error
        client.set_registered_model_alias(name, CHAMPION, target)
        client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history))
        client.set_model_version_tag(
            name, dropped, "promotion.decision", f"rolled back to version {target}"
        )
        return _ref(client, name, target)


# ------------------------------------------------------------------- load
def _registered(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            raise ConfigError(
                f"no registered model named {name!r}; train one first "
                f"(see `forecaster models list`)"
            ) from None
        raise


def alias_version(
    name: str, alias: str = CHAMPION, *, tracking_uri: str | None = None
) -> str | None:
    """The version ``alias`` points to, or ``None`` (cheap: one registry call)."""
    client = _client(tracking_uri)
    with _registry_call("alias lookup"):
        mv = _alias_or_none(client, name, alias)
    return None if mv is None else str(mv.version)


def load_model(name: str, *, alias: str = CHAMPION, tracking_uri: str | None = None) -> LoadedModel:
    """Load ``models:/<name>@<alias>`` with the forecasts logged with it.

    Raises
    ------
    ConfigError
        No such model, or no version has ``alias``.
    StoreError
        The version's files are missing or corrupt (the message names the
        version and what failed).
    TrackingError
        The registry is unreachable.
    """
    import mlflow.pyfunc

    client = _client(tracking_uri)
    with _registry_call("model lookup"):
        _registered(client, name)
        mv = _alias_or_none(client, name, alias)
    if mv is None:
        raise ConfigError(
            f"no version of model {name!r} has alias {alias!r}; "
            f"aliases: {_alias_map(client, name) or 'none'}"
        )
    version = str(mv.version)
    try:
        pyfunc_model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        wrapped = pyfunc_model.unwrap_python_model()
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(
            f"model {name!r} version {version} ({alias}) cannot be loaded: {first}; "
            f"roll back with `forecaster models rollback {name}` or retrain"
        ) from exc
    forecasts = getattr(wrapped, "forecasts_", None)
    stamp = (mv.tags or {}).get("forecast_time")
    forecast_time = None
    if stamp:
        with contextlib.suppress(ValueError):
            forecast_time = datetime.fromisoformat(stamp)
    return LoadedModel(
        name=name,
        version=version,
        run_id=mv.run_id or "",
        alias=alias,
        model=pyfunc_model,
        forecasts=forecasts,
        loaded_at=datetime.now(UTC),
        forecast_time=forecast_time,
    )


def _alias_map(client: Any, name: str) -> dict[str, str]:
    rm = client.get_registered_model(name)
    raw = getattr(rm, "aliases", None) or {}
    return {str(k): str(v) for k, v in dict(raw).items()}


# ------------------------------------------------------------------- list
def _paged(fetch: Any) -> list[Any]:
    out: list[Any] = []
    token = None
    while True:
        page = fetch(token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def list_models(tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """Every registered model with its versions, aliases and backtest metrics.

    Returns
    -------
    list of dict
        ``{"name", "aliases": {alias: version}, "champion", "challenger",
        "versions": [{"version", "run_id", "aliases", "metrics",
        "backtest_status", "status", "created", "promotion"}]}``, sorted by
        name, versions newest first. JSON-serialisable.
    """
    client = _client(tracking_uri)
    out = []
    with _registry_call("listing models"):
        models = _paged(lambda t: client.search_registered_models(page_token=t))
        for rm in sorted(models, key=lambda m: m.name):
            aliases = {str(k): str(v) for k, v in dict(getattr(rm, "aliases", None) or {}).items()}
            versions = _paged(
                lambda t, n=rm.name: client.search_model_versions(f"name='{n}'", page_token=t)
            )
            rows = []
            for mv in sorted(versions, key=lambda v: -int(v.version)):
                tags = dict(mv.tags or {})
                rows.append(
                    {
                        "version": str(mv.version),
                        "run_id": mv.run_id,
                        "aliases": [a for a, v in sorted(aliases.items()) if v == str(mv.version)],
                        "metrics": {
                            k: (v if math.isfinite(v) else None)
                            for k, v in _version_metrics(client, mv).items()
                        },
                        "backtest_status": tags.get("backtest.status", "unknown"),
                        "status": mv.status,
                        "created": datetime.fromtimestamp(
                            (mv.creation_timestamp or 0) / 1000, UTC
                        ).isoformat(),
                        "promotion": tags.get("promotion.decision"),
                        "model_class": tags.get("model.class"),
                    }
                )
            out.append(
                {
                    "name": rm.name,
                    "aliases": aliases,
                    "champion": aliases.get(CHAMPION),
                    "challenger": aliases.get(CHALLENGER),
                    "versions": rows,
                }
            )
    return out
