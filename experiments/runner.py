"""Named, versioned experiment definitions (YAML) run with one command.

An experiment file says what to train on which data and how to judge it, so a
figure in ``benchmarks/RESULTS.md`` can be reproduced with
``forecaster experiment run <name>``::

    name: demo_team_daily          # must match the file name
    version: 1                     # bump when the definition changes
    description: ...
    data:
      kind: team_daily             # team_daily | m4_hourly | file
      store: demo/forecaster.duckdb  # relative paths: under FORECASTER_DATA_DIR
    model:
      name: lgbm                   # models.MODEL_NAMES
      feature_set: default         # experiments.tuning.FEATURE_SETS (lgbm only)
      params: {seed: 0}
    backtest: {horizon: 14, n_windows: 4, step: 14, metric: wape}
    register: {name: demo-team-daily, promote: true, margin: 0.0}
    tune: {study: lgbm, trials: 20}  # optional: tune first, then run the best

The run records the definition file (artifact ``experiment.yaml``, its sha256
and version as tags), the data (``mlflow.data`` with digest and source), the
backtest metrics per hierarchy level (``wape`` for the series themselves, and
``total.wape`` etc. for their sum), the backtest and forecast frames, and the
registered model version.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.exceptions import ConfigError, TrackingError
from models import MODEL_NAMES
from models.tracking import data_dir_path, resolve_tracking_uri, tracked_run

__all__ = [
    "CONFIG_DIR",
    "ExperimentResult",
    "level_metrics",
    "list_experiments",
    "load_config",
    "load_data",
    "run_experiment",
]

#: Where the named definitions live.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

_SECTIONS = {
    "name": str,
    "version": int,
    "description": str,
    "data": dict,
    "model": dict,
    "backtest": dict,
    "register": dict,
    "tune": dict,
}
_REQUIRED = ("name", "version", "data", "model", "backtest")
_DATA_KINDS = ("team_daily", "m4_hourly", "file")


@dataclass
class ExperimentResult:
    """What one experiment run produced (JSON-friendly through :meth:`to_dict`)."""

    name: str
    version: int
    config_sha256: str
    mlflow_run_id: str | None
    tracking_offline: bool
    n_series: int
    n_rows: int
    dataset_digest: str | None
    model: str
    metrics: dict[str, float]
    registered: dict[str, Any] | None = None
    tuning: dict[str, Any] | None = None
    forecasts: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("forecasts")
        out["metrics"] = {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()}
        return out


# ------------------------------------------------------------------ config
def list_experiments(config_dir: Path = CONFIG_DIR) -> list[dict[str, Any]]:
    """Name, version and description of every definition in ``config_dir``."""
    out = []
    for path in sorted(config_dir.glob("*.yaml")):
        cfg = load_config(path)
        out.append(
            {
                "name": cfg["name"],
                "version": cfg["version"],
                "description": cfg.get("description", ""),
                "path": str(path),
            }
        )
    return out


def _resolve_path(name_or_path: str | Path, config_dir: Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidate = config_dir / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(q.stem for q in config_dir.glob("*.yaml"))
    raise ConfigError(f"no experiment named {str(name_or_path)!r}; known: {known}")


def load_config(name_or_path: str | Path, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """Read and check an experiment definition; errors name the file and the key.

    Raises
    ------
    ConfigError
        Unknown experiment, YAML syntax error, missing or mistyped keys.
    """
    import yaml

    path = _resolve_path(name_or_path, config_dir)
    text = path.read_text()
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {exc}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, got {type(cfg).__name__}")
    problems = [f"missing key {k!r}" for k in _REQUIRED if k not in cfg]
    for key, value in cfg.items():
        if key not in _SECTIONS:
            problems.append(f"unknown key {key!r} (allowed: {sorted(_SECTIONS)})")
        elif not isinstance(value, _SECTIONS[key]) or isinstance(value, bool):
            problems.append(
                f"key {key!r} must be {_SECTIONS[key].__name__}, got {type(value).__name__}"
            )
    if not problems:
        if cfg["name"] != path.stem:
            problems.append(f"key 'name' is {cfg['name']!r} but the file is {path.name}")
        kind = cfg["data"].get("kind")
        if kind not in _DATA_KINDS:
            problems.append(f"key 'data.kind' must be one of {_DATA_KINDS}, got {kind!r}")
        model = cfg["model"].get("name")
        if model not in MODEL_NAMES:
            problems.append(f"key 'model.name' must be one of {list(MODEL_NAMES)}, got {model!r}")
        h = cfg["backtest"].get("horizon")
        if not isinstance(h, int) or isinstance(h, bool) or h < 1:
            problems.append(f"key 'backtest.horizon' must be a positive integer, got {h!r}")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    cfg["_path"] = str(path)
    cfg["_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return cfg


def load_data(data: dict[str, Any], *, data_dir: str | Path | None = None) -> pd.DataFrame:
    """The series frame a definition's ``data`` section names."""
    base = data_dir_path(data_dir)
    kind = data["kind"]
    if kind == "team_daily":
        from experiments.data import load_team_daily

        store = Path(str(data.get("store", "demo/forecaster.duckdb")))
        store = store if store.is_absolute() else base / store
        return load_team_daily(store, source=data.get("source"))
    if kind == "m4_hourly":
        from experiments.data import load_m4_hourly

        path = Path(str(data.get("path", "../shared/data")))
        return load_m4_hourly(
            path, limit=data.get("limit"), holdout=int(data.get("holdout", 0) or 0)
        )
    path = Path(str(data.get("path", "")))
    if not path.exists():
        raise ConfigError(f"key 'data.path': file {path} not found")
    df = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    df.attrs["source"] = str(path.resolve())
    return df


# ------------------------------------------------------------------ metrics
def level_metrics(
    cv: pd.DataFrame, df: pd.DataFrame, season_length: int, *, level_name: str = "series"
) -> dict[str, float]:
    """Backtest metrics of the series and of their total (a two-level hierarchy).

    Keys: ``wape``, ``smape``, ``mase``, ``coverage_80``, ``coverage_95``,
    ``msis`` and ``bias`` for the series (also under ``<level_name>.``), and the
    same prefixed ``total.`` for the sum of all series (bottom-up: forecasts and
    bounds are summed, which makes the total's intervals conservative).
    """
    from models.metrics import evaluate

    keep = ("wape", "smape", "mase", "bias", "coverage_80", "coverage_95", "msis")
    per = evaluate(cv, df, season_length)
    row = per[per["unique_id"] == "ALL"].iloc[0]
    out = {k: float(row[k]) for k in keep if k in row}
    out.update({f"{level_name}.{k}": v for k, v in list(out.items())})
    value_cols = [c for c in cv.columns if c in ("y", "yhat") or c.startswith(("lo_", "hi_"))]
    total_cv = cv.groupby(["ds", "cutoff"], as_index=False)[value_cols].sum()
    total_cv.insert(0, "unique_id", "total")
    total_df = df.groupby("ds", as_index=False)["y"].sum().assign(unique_id="total")
    tot = evaluate(total_cv, total_df, season_length)
    trow = tot[tot["unique_id"] == "ALL"].iloc[0]
    out.update({f"total.{k}": float(trow[k]) for k in keep if k in trow})
    return out


# --------------------------------------------------------------------- run
def run_experiment(
    name_or_path: str | Path,
    *,
    data_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    register: bool | None = None,
    config_dir: Path = CONFIG_DIR,
) -> ExperimentResult:
    """Run a named experiment: (tune,) backtest, fit, forecast, log, register, promote.

    Parameters
    ----------
    name_or_path : str or path
        A name under ``experiments/configs`` or a YAML file.
    data_dir, tracking_uri : optional
        See :mod:`models.tracking`.
    register : bool, optional
        Override the definition's ``register`` section (``False`` skips it).

    Returns
    -------
    ExperimentResult

    Raises
    ------
    ConfigError
        A bad definition. A tracking failure never raises: the run is kept
        locally and ``tracking_offline`` is set; registration is then skipped.
    """
    from experiments.tuning import FEATURE_SETS, build_model, tune

    cfg = load_config(name_or_path, config_dir)
    uri = resolve_tracking_uri(tracking_uri, data_dir=data_dir)
    df = load_data(cfg["data"], data_dir=data_dir)
    bt_cfg = cfg["backtest"]
    h, n_windows = int(bt_cfg["horizon"]), int(bt_cfg.get("n_windows", 1))
    step = int(bt_cfg.get("step", h))
    model_cfg = cfg["model"]
    config: dict[str, Any] = {"model": model_cfg["name"], **(model_cfg.get("params") or {})}
    if "feature_set" in model_cfg:
        if model_cfg["feature_set"] not in FEATURE_SETS:
            raise ConfigError(
                f"{cfg['_path']}: key 'model.feature_set' must be one of "
                f"{sorted(FEATURE_SETS)}, got {model_cfg['feature_set']!r}"
            )
        config["feature_set"] = model_cfg["feature_set"]
    reg = cfg.get("register") or {}
    do_register = bool(reg.get("name")) if register is None else register and bool(reg.get("name"))
    tuning = None
    seed = int(config.pop("seed", 0))
    n_jobs = int(config.pop("n_jobs", 1))
    if cfg.get("tune"):
        tcfg = cfg["tune"]
        res = tune(
            df,
            study=str(tcfg.get("study", "lgbm")),
            study_name=f"{cfg['name']}-v{cfg['version']}",
            n_trials=int(tcfg.get("trials", 20)),
            timeout=tcfg.get("timeout"),
            h=h,
            n_windows=n_windows,
            step=step,
            seed=seed,
            n_jobs=n_jobs,
            data_dir=data_dir,
            tracking_uri=uri,
            experiment=f"exp-{cfg['name']}",
        )
        tuning = res.to_dict()
        tuning.pop("trials", None)
        config = dict(res.best_config)

    with tracked_run(
        f"{cfg['name']} v{cfg['version']}",
        kind="train",
        experiment=f"exp-{cfg['name']}",
        tracking_uri=uri,
        data_dir=data_dir,
        params={"config": config, "backtest": bt_cfg, "data": cfg["data"]},
        tags={
            "experiment.name": cfg["name"],
            "experiment.version": cfg["version"],
            "experiment.sha256": cfg["_sha256"],
        },
    ) as run:
        run.log_artifact(cfg["_path"])
        digest = run.log_dataset(df, name=f"{cfg['name']}-data", source=df.attrs.get("source"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(config, seed=seed, n_jobs=n_jobs)
            cv = model.cross_validation(df, h=h, n_windows=n_windows, step=step)
            season = int(bt_cfg.get("season_length") or _season_of(model, df))
            level = str(cfg["data"].get("level", "team"))
            metrics = level_metrics(cv, df, season, level_name=level)
            fitted = build_model(config, seed=seed, n_jobs=n_jobs).fit(df)
            forecasts = fitted.predict(h)
        run.log_metrics(metrics)
        run.log_frame(cv, "backtest.parquet")
        run.log_frame(forecasts, "forecasts.parquet")
        registered: dict[str, Any] | None = None
        if do_register and not run.offline:
            from models.registry import log_forecaster, promote_if_better

            try:
                ref = log_forecaster(
                    fitted,
                    name=str(reg["name"]),
                    train_df=df,
                    metrics=metrics,
                    backtest=cv,
                    forecasts=forecasts,
                    tracking_uri=uri,
                )
                registered = {"name": ref.name, "version": ref.version, "run_id": ref.run_id}
                if reg.get("promote", True):
                    decision = promote_if_better(
                        ref.name,
                        ref.version,
                        metric=str(bt_cfg.get("metric", "wape")),
                        margin=float(reg.get("margin", 0.0)),
                        tracking_uri=uri,
                    )
                    registered.update(promoted=decision.promoted, reason=decision.reason)
            except TrackingError as exc:
                run.fail("register", exc)
    return ExperimentResult(
        name=cfg["name"],
        version=int(cfg["version"]),
        config_sha256=cfg["_sha256"],
        mlflow_run_id=run.run_id,
        tracking_offline=run.offline,
        n_series=int(df["unique_id"].nunique()),
        n_rows=len(df),
        dataset_digest=digest,
        model=str(config.get("model")),
        metrics=metrics,
        registered=registered,
        tuning=tuning,
        forecasts=forecasts,
    )


def _season_of(model: Any, df: pd.DataFrame) -> int:
    from models._frequency import default_season_length
    from models._panel import to_panel

    panel = to_panel(df.head(2000), use_exog=False)
    return int(default_season_length(panel.freq))
