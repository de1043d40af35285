"""Optuna studies scored by rolling-origin backtests, each trial a nested MLflow run.

Two studies:

* ``lgbm``: LightGBM hyperparameters *and* the feature set (lags, rolling
  windows, calendar, Fourier terms, scaler, anchor);
* ``stat``: ETS and ARIMA settings (the family is a parameter too).

A trial is scored on ``n_windows`` rolling origins (``h`` steps each, oldest
first) by the pooled WAPE in percent (lower is better). After each fold the
running score is reported to Optuna so the median pruner can stop a poor trial
early. Studies use the TPE sampler with a seed and live in a SQLite file: a
crashed study resumes where it stopped (trials the crash left *running* are
marked failed and their parameters re-queued), and ``n_trials`` is the number of
finished trials wanted in total.

The defaults of the model family are scored on the same folds first, so the
report shows the gain of tuning over defaults. The best configuration can be
refitted on all the data and registered (:func:`register_best`).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.exceptions import ConfigError
from models import make_model
from models.tracking import TrackedRun, data_dir_path, resolve_tracking_uri, tracked_run

if TYPE_CHECKING:
    import optuna

    from models.base import BaseForecaster
    from models.registry import ModelRef, PromotionDecision

__all__ = [
    "FEATURE_SETS",
    "STUDIES",
    "Backtest",
    "TuneResult",
    "backtest_config",
    "build_model",
    "default_config",
    "register_best",
    "suggest_config",
    "tune",
]

#: Named feature sets of the LightGBM study (daily data, weekly season).
FEATURE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "week": {"lags": list(range(1, 8)), "rolling_windows": [7]},
    "weekly_lags": {"lags": [1, 2, 3, 7, 14, 21, 28], "rolling_windows": [7, 28]},
    "two_weeks": {"lags": list(range(1, 15)), "rolling_windows": [7, 14]},
    "long": {"lags": [*range(1, 15), 21, 28, 35, 42, 49, 56], "rolling_windows": [7, 28]},
}
#: Studies by name: the model families they search.
STUDIES: tuple[str, ...] = ("lgbm", "stat")


# ------------------------------------------------------------------ configs
def suggest_config(trial: optuna.Trial, study: str) -> dict[str, Any]:
    """Sample one configuration ``{"model": name, **params}`` for ``study``."""
    if study == "lgbm":
        feature_set = trial.suggest_categorical("feature_set", list(FEATURE_SETS))
        return {
            "model": "lgbm",
            "feature_set": feature_set,
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 60, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
            "objective": trial.suggest_categorical("objective", ["l1", "l2", "huber"]),
            "scaler": trial.suggest_categorical("scaler", ["seasonal_diff", "level", "none"]),
            "anchor_lag": trial.suggest_categorical("anchor_lag", [0, 1, 7]),
            "calendar": trial.suggest_categorical("calendar", [True, False]),
            "fourier_terms": trial.suggest_int("fourier_terms", 0, 3),
        }
    if study == "stat":
        family = trial.suggest_categorical("family", ["ets", "arima"])
        if family == "ets":
            return {
                "model": "ets",
                "trend": trial.suggest_categorical("trend", ["auto", "none", "add"]),
                "damped": trial.suggest_categorical("damped", ["auto", "yes", "no"]),
                "seasonal": trial.suggest_categorical("seasonal", ["auto", "none", "add"]),
            }
        return {
            "model": "arima",
            "max_p": trial.suggest_int("max_p", 1, 3),
            "max_q": trial.suggest_int("max_q", 0, 3),
            "max_d": trial.suggest_int("max_d", 0, 2),
            "seasonal": trial.suggest_categorical("arima_seasonal", [True, False]),
            "max_iter": trial.suggest_int("max_iter", 2, 8),
        }
    raise ConfigError(f"parameter study must be one of {STUDIES}, got {study!r}")


def default_config(study: str) -> dict[str, Any]:
    """The untuned configuration of the study's model family."""
    if study == "lgbm":
        return {"model": "lgbm", "feature_set": "default"}
    if study == "stat":
        return {"model": "ets"}
    raise ConfigError(f"parameter study must be one of {STUDIES}, got {study!r}")


def build_model(config: Mapping[str, Any], *, seed: int = 0, n_jobs: int = 1) -> BaseForecaster:
    """A forecaster from a configuration (``feature_set`` expands to lags/windows)."""
    params = {k: v for k, v in config.items() if k not in ("model", "feature_set")}
    name = str(config.get("model", "lgbm"))
    if "feature_set" in config:
        fs = str(config["feature_set"])
        if fs not in FEATURE_SETS:
            raise ConfigError(
                f"parameter feature_set must be one of {sorted(FEATURE_SETS)}, got {fs!r}"
            )
        params.update(FEATURE_SETS[fs])
    return make_model(name, seed=seed, n_jobs=n_jobs, **params)


# ----------------------------------------------------------------- backtest
@dataclass
class Backtest:
    """Rolling-origin results of one configuration.

    Attributes
    ----------
    score : float
        Pooled WAPE (percent) over the folds evaluated.
    fold_scores : list of float
        WAPE of each fold, oldest first.
    cv : pandas.DataFrame
        ``unique_id, ds, cutoff, y, yhat`` of the folds evaluated.
    complete : bool
        Whether every fold ran (``False`` after pruning or a failure).
    """

    score: float
    fold_scores: list[float]
    cv: pd.DataFrame
    complete: bool


def _wape(cv: pd.DataFrame) -> float:
    denom = float(np.abs(cv["y"]).sum())
    if denom == 0:
        return math.nan
    return 100.0 * float(np.abs(cv["y"] - cv["yhat"]).sum()) / denom


def backtest_config(
    df: pd.DataFrame,
    config: Mapping[str, Any],
    *,
    h: int = 14,
    n_windows: int = 4,
    step: int | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    on_fold: Callable[[int, float], bool] | None = None,
) -> Backtest:
    """Score ``config`` on ``n_windows`` rolling origins of ``h`` steps, oldest first.

    Parameters
    ----------
    df : pandas.DataFrame
        Series frame ``unique_id, ds, y``.
    config : mapping
        ``{"model": name, **params}`` (see :func:`build_model`).
    h, n_windows, step : int
        Horizon, number of folds and steps between cutoffs (default ``h``).
    on_fold : callable, optional
        ``on_fold(fold, running_score) -> stop``; called after each fold
        (Optuna's report/prune hook). Returning ``True`` stops the backtest.

    Returns
    -------
    Backtest
    """
    step = h if step is None else step
    frames: list[pd.DataFrame] = []
    folds: list[float] = []
    order = df.sort_values(["unique_id", "ds"], kind="stable")
    pos_from_end = order.groupby("unique_id").cumcount(ascending=False).to_numpy()
    for k in range(n_windows):
        # Fold k ends (n_windows - 1 - k) steps before the end of the data.
        drop = (n_windows - 1 - k) * step
        part = order[pos_from_end >= drop]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(config, seed=seed, n_jobs=n_jobs)
            cv = model.cross_validation(part, h=h, n_windows=1, level=())
        frames.append(cv)
        folds.append(_wape(cv))
        running = _wape(pd.concat(frames, ignore_index=True))
        if on_fold is not None and on_fold(k, running) and k < n_windows - 1:
            all_cv = pd.concat(frames, ignore_index=True)
            return Backtest(running, folds, all_cv, complete=False)
    all_cv = pd.concat(frames, ignore_index=True)
    return Backtest(_wape(all_cv), folds, all_cv, complete=True)


# --------------------------------------------------------------------- tune
@dataclass
class TuneResult:
    """Outcome of :func:`tune` (JSON-friendly through :meth:`to_dict`)."""

    study_name: str
    study: str
    storage: str
    metric: str
    default_score: float
    best_score: float
    best_config: dict[str, Any]
    best_trial: int
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    seconds: float
    mlflow_run_id: str | None
    tracking_offline: bool
    registered: dict[str, Any] | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def improvement_pct(self) -> float:
        """Relative gain of the best configuration over the defaults, percent."""
        if not math.isfinite(self.default_score) or self.default_score == 0:
            return math.nan
        return 100.0 * (self.default_score - self.best_score) / self.default_score

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["improvement_pct"] = self.improvement_pct
        return out


def _storage_url(storage: str | Path | None, study_name: str, data_dir: Any) -> str:
    if storage is None:
        folder = data_dir_path(data_dir) / "optuna"
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(folder / 'studies.db').resolve()}"
    s = str(storage)
    if "://" in s:
        return s
    Path(s).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(s).resolve()}"


def _recover(study: optuna.Study) -> int:
    """Mark trials left running by a crash as failed and queue their parameters again."""
    import optuna

    running = (optuna.trial.TrialState.RUNNING,)
    stale = study.get_trials(deepcopy=False, states=running)
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
    return len(stale)


def _finished(study: optuna.Study) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=done))


def tune(
    df: pd.DataFrame,
    *,
    study: str = "lgbm",
    study_name: str | None = None,
    n_trials: int = 20,
    timeout: float | None = None,
    h: int = 14,
    n_windows: int = 4,
    step: int | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    storage: str | Path | None = None,
    data_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    experiment: str = "tuning",
    prune_startup: int = 5,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Run (or resume) an Optuna study on ``df``; every trial is a nested MLflow run.

    Parameters
    ----------
    df : pandas.DataFrame
        Series frame ``unique_id, ds, y`` (``attrs["source"]`` is logged).
    study : {"lgbm", "stat"}
        Search space.
    study_name : str, optional
        Name in the storage; default ``"<study>-h<h>w<n_windows>"``. The same
        name resumes the study.
    n_trials : int
        Finished (complete or pruned) trials wanted in the study in total.
    timeout : float, optional
        Stop starting new trials after this many seconds.
    h, n_windows, step : int
        Rolling-origin folds (see :func:`backtest_config`).
    seed : int
        Seed of the TPE sampler and of the models.
    n_jobs : int
        Threads/processes per model fit.
    storage : str or path, optional
        Optuna storage URL or SQLite file; default ``<data_dir>/optuna/studies.db``.
    data_dir, tracking_uri : optional
        Where offline records and the embedded MLflow live; see :mod:`models.tracking`.
    experiment : str
        MLflow experiment of the study run.
    prune_startup : int
        Trials that run to the end before the median pruner may stop one.
    callback : callable, optional
        Called with a dict per finished trial (``number, state, value, params``)
        and once with ``{"state": "DEFAULT", "value": ...}`` for the defaults.

    Returns
    -------
    TuneResult
    """
    import optuna

    if study not in STUDIES:
        raise ConfigError(f"parameter study must be one of {STUDIES}, got {study!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"parameter n_trials must be a positive integer, got {n_trials!r}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"parameter timeout must be positive seconds, got {timeout!r}")
    name = study_name or f"{study}-h{h}w{n_windows}"
    url = _storage_url(storage, name, data_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    source = str(df.attrs.get("source", "in-memory"))
    fold_args: dict[str, Any] = {
        "h": h,
        "n_windows": n_windows,
        "step": step,
        "seed": seed,
        "n_jobs": n_jobs,
    }

    with tracked_run(
        f"tune {name}",
        kind="tune",
        experiment=experiment,
        tracking_uri=resolve_tracking_uri(tracking_uri, data_dir=data_dir),
        data_dir=data_dir,
        params={"study": study, "study_name": name, "storage": url, **fold_args},
    ) as parent:
        parent.log_dataset(df, name=f"{name}-data", source=source)
        default = backtest_config(df, default_config(study), **fold_args)
        parent.log_metrics({"default_wape": default.score})
        if callback is not None:
            callback({"state": "DEFAULT", "value": default.score, "params": default_config(study)})

        opt = optuna.create_study(
            study_name=name,
            storage=url,
            load_if_exists=True,
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=prune_startup, n_warmup_steps=1),
        )
        opt.set_user_attr("study", study)
        opt.set_user_attr("default_wape", default.score)
        resumed = _recover(opt)
        remaining = max(0, n_trials - _finished(opt))
        parent.set_tags({"optuna.resumed_trials": resumed, "optuna.remaining": remaining})

        def objective(trial: optuna.Trial) -> float:
            config = suggest_config(trial, study)
            with _trial_run(parent, trial.number, config, experiment, data_dir) as run:

                def report(fold: int, score: float) -> bool:
                    run.log_metrics({"wape_running": score}, step=fold)
                    if math.isfinite(score):
                        trial.report(score, fold)
                    return bool(trial.should_prune())

                bt = backtest_config(df, config, on_fold=report, **fold_args)
                run.log_metrics({f"wape_fold{i}": s for i, s in enumerate(bt.fold_scores)})
                state = "PRUNED" if not bt.complete else "COMPLETE"
                if bt.complete and not math.isfinite(bt.score):
                    state = "FAIL"
                if state == "COMPLETE":
                    run.log_metrics({"wape": bt.score})
                run.set_tags({"optuna.state": state, "optuna.trial": trial.number})
            # Raised after the run closed, so a pruned trial's run ends FINISHED.
            if state == "PRUNED":
                raise optuna.TrialPruned(f"pruned after {len(bt.fold_scores)} folds")
            if state == "FAIL":
                raise ConfigError(f"trial {trial.number}: backtest WAPE is not finite")
            return bt.score

        def on_trial(study_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if callback is not None:
                callback(
                    {
                        "number": trial.number,
                        "state": trial.state.name,
                        "value": trial.value,
                        "params": dict(trial.params),
                    }
                )

        if remaining:
            opt.optimize(
                objective,
                n_trials=remaining,
                timeout=timeout,
                callbacks=[on_trial],
                catch=(ConfigError, ValueError, np.linalg.LinAlgError),
                gc_after_trial=False,
            )
        result = _result(opt, study, name, url, default.score, parent, time.perf_counter() - t0)
        parent.log_params({f"best.{k}": v for k, v in result.best_config.items()})
        parent.log_metrics(
            {
                "best_wape": result.best_score,
                "improvement_pct": result.improvement_pct,
                "n_pruned": result.n_pruned,
                "n_complete": result.n_complete,
            }
        )
    result.tracking_offline = parent.offline
    return result


def _trial_run(
    parent: TrackedRun,
    number: int,
    config: Mapping[str, Any],
    experiment: str,
    data_dir: Any,
) -> contextlib.AbstractContextManager[TrackedRun]:
    """A nested MLflow run per trial; an offline record under the parent's when it is offline."""
    if parent.offline:
        # The parent already said tracking failed; do not retry (and warn) per trial.
        run = TrackedRun(
            f"trial {number}", "trial", parent.tracking_uri, parent.local_dir / f"trial-{number}"
        )
        run.offline, run.failure = True, parent.failure
        run.log_params(dict(config))
        return contextlib.nullcontext(run)
    return tracked_run(
        f"trial {number}",
        kind="trial",
        experiment=experiment,
        tracking_uri=parent.tracking_uri,
        data_dir=data_dir,
        params=dict(config),
        nested=True,
        provenance=False,
    )


def _result(
    opt: optuna.Study,
    study: str,
    name: str,
    url: str,
    default_score: float,
    parent: TrackedRun,
    seconds: float,
) -> TuneResult:
    import optuna

    trials = opt.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = opt.best_trial
        best_config = _config_of(study, best.params)
        best_score, best_number = float(best.value), best.number  # type: ignore[arg-type]
    else:
        best_config, best_score, best_number = default_config(study), default_score, -1
    # The defaults are a candidate too: tuning never recommends something worse.
    if default_score <= best_score:
        best_config, best_score, best_number = default_config(study), default_score, -1
    return TuneResult(
        study_name=name,
        study=study,
        storage=url,
        metric="wape",
        default_score=float(default_score),
        best_score=float(best_score),
        best_config=best_config,
        best_trial=best_number,
        n_trials=len(trials),
        n_complete=states.count(optuna.trial.TrialState.COMPLETE),
        n_pruned=states.count(optuna.trial.TrialState.PRUNED),
        n_failed=states.count(optuna.trial.TrialState.FAIL),
        seconds=round(seconds, 2),
        mlflow_run_id=parent.run_id,
        tracking_offline=parent.offline,
        trials=[
            {"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params)}
            for t in trials
        ],
    )


def _config_of(study: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild a configuration from a trial's parameters (inverse of :func:`suggest_config`)."""
    p = dict(params)
    if study == "lgbm":
        return {"model": "lgbm", **p}
    family = p.pop("family", "ets")
    if "arima_seasonal" in p:
        p["seasonal"] = p.pop("arima_seasonal")
    return {"model": family, **p}


def register_best(
    df: pd.DataFrame,
    result: TuneResult,
    *,
    name: str,
    h: int = 14,
    n_windows: int = 4,
    step: int | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    margin: float = 0.0,
    promote: bool = True,
    tracking_uri: str | None = None,
    data_dir: str | Path | None = None,
) -> tuple[ModelRef, PromotionDecision | None]:
    """Refit the best configuration on all of ``df``, register it, try to promote it.

    The backtest logged with the version is rerun on the same folds so that its
    table and metrics belong to the registered configuration.

    Raises
    ------
    TrackingError
        The registry is unreachable (the tuning result itself is unaffected).
    """
    from models.registry import log_forecaster, promote_if_better

    # One resolved URI for the run and the registry calls (they take no data_dir).
    tracking_uri = resolve_tracking_uri(tracking_uri, data_dir=data_dir)
    bt = backtest_config(
        df, result.best_config, h=h, n_windows=n_windows, step=step, seed=seed, n_jobs=n_jobs
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(result.best_config, seed=seed, n_jobs=n_jobs).fit(df)
        forecasts = model.predict(h)
    metrics = {"wape": bt.score, **{f"wape_fold{i}": s for i, s in enumerate(bt.fold_scores)}}
    with tracked_run(
        f"register {name}",
        kind="train",
        experiment=name,
        tracking_uri=tracking_uri,
        data_dir=data_dir,
        tags={"optuna.study": result.study_name, "optuna.best_trial": result.best_trial},
    ) as run:
        if run.offline:
            from features.exceptions import TrackingError

            raise TrackingError(f"cannot register {name!r}: {run.failure}")
        ref = log_forecaster(
            model,
            name=name,
            train_df=df,
            metrics=metrics,
            backtest=bt.cv,
            forecasts=forecasts,
            params={f"config.{k}": v for k, v in result.best_config.items()},
            tracking_uri=tracking_uri,
        )
    decision = None
    if promote:
        decision = promote_if_better(
            name, ref.version, metric="wape", margin=margin, tracking_uri=tracking_uri
        )
    result.registered = {
        "name": ref.name,
        "version": ref.version,
        "run_id": ref.run_id,
        "promoted": None if decision is None else decision.promoted,
        "reason": None if decision is None else decision.reason,
    }
    return ref, decision
