"""MLflow tracking: where runs go, and a run context that never breaks the job.

Every train, backtest, forecast, detect and optimize run is recorded with
:func:`tracked_run`. The tracking URI is resolved once, in this order:

1. an explicit ``tracking_uri`` argument (a CLI option or a test);
2. the ``MLFLOW_TRACKING_URI`` environment variable (MLflow's own convention);
3. the ``FORECASTER_MLFLOW_TRACKING_URI`` setting;
4. the embedded default: ``sqlite:///<data_dir>/mlflow/mlflow.db`` with artifacts
   under ``<data_dir>/mlflow/artifacts`` (``data_dir`` from the argument, else
   ``FORECASTER_DATA_DIR``, else ``.forecaster``), so nothing needs a server.

Tracking is a record of the work, not the work: when the server is unreachable
or refuses a call, :class:`TrackedRun` warns once, clearly, switches to an
*offline* record (JSON and copies of the artifacts under
``<data_dir>/mlflow/offline/<run>``) and lets the job finish.

MLflow imports slowly (about 2 s), so it is imported inside the functions.

>>> resolve_tracking_uri("sqlite:////tmp/x.db")
'sqlite:////tmp/x.db'
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from features.exceptions import TrackingError

__all__ = [
    "DEFAULT_EXPERIMENT",
    "TRACKED_PACKAGES",
    "TrackedRun",
    "TrackingError",
    "TrackingWarning",
    "artifact_root",
    "configure",
    "data_dir_path",
    "git_commit",
    "package_versions",
    "probe",
    "resolve_tracking_uri",
    "tracked_run",
]

log = logging.getLogger(__name__)

#: Experiment used when a caller does not name one.
DEFAULT_EXPERIMENT = "forecaster"
#: Packages whose versions every run records (the ones that change results).
TRACKED_PACKAGES: tuple[str, ...] = (
    "forecaster",
    "numpy",
    "pandas",
    "lightgbm",
    "statsmodels",
    "scikit-learn",
    "duckdb",
    "mlflow",
    "optuna",
)


class TrackingWarning(UserWarning):
    """Tracking failed; the job went on and kept its results locally."""


# --------------------------------------------------------------------- URIs
def data_dir_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the argument, else ``FORECASTER_DATA_DIR``, else ``.forecaster``."""
    if data_dir is not None:
        return Path(data_dir)
    return Path(os.environ.get("FORECASTER_DATA_DIR", ".forecaster"))


def resolve_tracking_uri(
    tracking_uri: str | None = None, *, data_dir: str | os.PathLike[str] | None = None
) -> str:
    """Resolve where runs are tracked (see the module docstring for the order).

    Parameters
    ----------
    tracking_uri : str, optional
        Explicit URI; wins over everything.
    data_dir : path, optional
        Data directory of the embedded default.

    Returns
    -------
    str
        A tracking URI (``sqlite:///...``, ``http://...``, ``file:///...``).
    """
    for candidate in (
        tracking_uri,
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("FORECASTER_MLFLOW_TRACKING_URI"),
    ):
        if candidate:
            return candidate
    root = data_dir_path(data_dir).resolve() / "mlflow"
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_root(tracking_uri: str, data_dir: str | os.PathLike[str] | None = None) -> str | None:
    """Artifact location for new experiments of the embedded backend, else ``None``.

    A tracking server decides its own artifact root; for a local SQLite file the
    artifacts live next to it (``<dir of the db>/artifacts``) rather than in
    MLflow's default ``./mlruns`` of whatever directory the job started in.
    """
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_absolute():
            db = Path("/" + str(db)) if tracking_uri.startswith("sqlite:////") else db.resolve()
        return (db.parent / "artifacts").resolve().as_uri()
    return None


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def probe(tracking_uri: str, timeout: float = 3.0) -> str | None:
    """Check quickly that a tracking server answers; return why not, or ``None``.

    Only HTTP URIs are probed (``GET /health``); local backends need no server.
    The MLflow client retries with back-off for minutes on a dead host, so a
    short probe first keeps an unreachable server from stalling a job.
    """
    if not _is_http(tracking_uri):
        return None
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if resp.status >= 400:
                return f"GET {url} answered HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"GET {url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach {url}: {reason}"
    return None


def configure(
    tracking_uri: str | None = None, *, data_dir: str | os.PathLike[str] | None = None
) -> str:
    """Point the MLflow client (tracking and registry) at the resolved URI.

    Also bounds the client's HTTP retries and timeout (unless the user set them)
    so that a server that goes away costs seconds, not minutes. Creates the
    directory of the embedded SQLite database.

    Returns
    -------
    str
        The URI in use.
    """
    uri = resolve_tracking_uri(tracking_uri, data_dir=data_dir)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(name: str, tracking_uri: str, data_dir: Any = None) -> str:
    """Return the id of experiment ``name``, creating it (with a local artifact root) if needed."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    location = artifact_root(tracking_uri, data_dir)
    if location is not None:
        location = f"{location}/{_slug(name)}"
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except Exception:
        # Another process created it between the lookup and the create.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


# ----------------------------------------------------------- provenance
def git_commit(path: str | os.PathLike[str] | None = None) -> str | None:
    """The commit of the working tree holding ``path`` (default: this package), or ``None``.

    A ``-dirty`` suffix marks uncommitted changes, so a result is never
    attributed to a commit that did not produce it.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def package_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (missing ones are left out)."""
    out: dict[str, str] = {}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def _clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Finite float metrics; NaN/inf are left out (MLflow rejects or mis-plots them)."""
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[str(k)] = f
    return out


def _flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested dicts to ``a.b`` keys and stringify values (MLflow limit: 6000 chars)."""
    out: dict[str, str] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat_params(v, prefix=f"{key}."))
        else:
            out[key] = str(v)[:6000]
    return out


# ------------------------------------------------------------------ run
class TrackedRun:
    """A run being recorded: MLflow while it works, a local folder once it failed.

    Every method is safe: a tracking failure is reported once as a
    :class:`TrackingWarning` (and on the ``models.tracking`` logger), the run
    switches to offline mode and the call returns normally. Everything logged
    is also kept in :attr:`record` so the caller can show it.

    Attributes
    ----------
    name : str
        Run name.
    kind : str
        ``train``, ``backtest``, ``forecast``, ``detect``, ``optimize``, ``tune``...
    tracking_uri : str
        Where the run is recorded.
    run_id : str or None
        The MLflow run id (``None`` when offline from the start).
    offline : bool
        Whether tracking failed and the record is kept locally.
    failure : str or None
        Why tracking failed.
    local_dir : pathlib.Path
        Folder of the offline record.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        tracking_uri: str,
        local_dir: Path,
    ) -> None:
        self.name = name
        self.kind = kind
        self.tracking_uri = tracking_uri
        self.local_dir = local_dir
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.offline = False
        self.failure: str | None = None
        self.record: dict[str, Any] = {"params": {}, "metrics": {}, "tags": {}, "artifacts": []}

    # -- failure handling ------------------------------------------------------
    def fail(self, what: str, exc: BaseException | str) -> None:
        """Switch to offline mode after a tracking failure (warns the first time)."""
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not self.offline:
            self.offline = True
            self.failure = f"{what}: {detail}"
            msg = (
                f"MLflow tracking failed ({what} at {self.tracking_uri}: {detail}); "
                f"the {self.kind} run goes on and its record is kept locally in {self.local_dir}"
            )
            log.warning(msg)
            warnings.warn(msg, TrackingWarning, stacklevel=3)
        self._write_local()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        if self.offline:
            yield
            self._write_local()
            return
        try:
            yield
        except Exception as exc:  # tracking must never break the job
            self.fail(what, exc)

    def _write_local(self) -> None:
        try:
            self.local_dir.mkdir(parents=True, exist_ok=True)
            body = {
                "name": self.name,
                "kind": self.kind,
                "tracking_uri": self.tracking_uri,
                "run_id": self.run_id,
                "failure": self.failure,
                **self.record,
            }
            (self.local_dir / "run.json").write_text(json.dumps(body, indent=2, default=str))
        except OSError as exc:  # the last resort failed too: say so, keep going
            log.error("cannot keep the offline run record in %s: %s", self.local_dir, exc)

    def _copy_local(self, path: Path, artifact_path: str | None) -> None:
        dest = self.local_dir / "artifacts" / (artifact_path or "")
        dest.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, dest / path.name, dirs_exist_ok=True)
        else:
            shutil.copy2(path, dest / path.name)

    # -- logging -----------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (nested dicts become ``a.b`` keys)."""
        flat = _flat_params(params)
        self.record["params"].update(flat)
        with self._guard("log_params"):
            if not self.offline:
                import mlflow

                # MLflow refuses to change a logged param; log only new keys.
                mlflow.log_params(flat)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log finite numeric metrics (others are skipped)."""
        clean = _clean_metrics(metrics)
        self.record["metrics"].update(clean)
        with self._guard("log_metrics"):
            if not self.offline and clean:
                import mlflow

                mlflow.log_metrics(clean, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        clean = {str(k): str(v) for k, v in tags.items() if v is not None}
        self.record["tags"].update(clean)
        with self._guard("set_tags"):
            if not self.offline:
                import mlflow

                mlflow.set_tags(clean)

    def log_dataset(
        self,
        df: pd.DataFrame,
        *,
        name: str,
        source: str | None = None,
        context: str = "training",
        targets: str | None = "y",
    ) -> str | None:
        """Log an input dataset (``mlflow.data``) with its digest and source.

        Returns the digest, or ``None`` when tracking is offline (the digest is
        then computed locally with pandas' hash).
        """
        digest: str | None = None
        with self._guard("log_input"):
            if not self.offline:
                import mlflow

                with warnings.catch_warnings():
                    # A plain path reads as several source kinds; MLflow warns and picks one.
                    warnings.simplefilter("ignore", UserWarning)
                    ds = mlflow.data.from_pandas(  # type: ignore[attr-defined]
                        df,
                        source=source,
                        name=name,
                        targets=targets if targets in df.columns else None,
                    )
                mlflow.log_input(ds, context=context)
                digest = ds.digest
        if digest is None:
            digest = format(int(pd.util.hash_pandas_object(df, index=False).sum()) % 16**8, "08x")
        self.record.setdefault("datasets", []).append(
            {
                "name": name,
                "source": source,
                "digest": digest,
                "rows": len(df),
                "context": context,
            }
        )
        self._write_offline_if_needed()
        return digest

    def _write_offline_if_needed(self) -> None:
        if self.offline:
            self._write_local()

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Log a file or a folder as an artifact (copied locally when offline)."""
        p = Path(path)
        self.record["artifacts"].append(str(Path(artifact_path or "") / p.name))
        with self._guard("log_artifact"):
            if not self.offline:
                import mlflow

                if p.is_dir():
                    mlflow.log_artifacts(str(p), artifact_path=artifact_path)
                else:
                    mlflow.log_artifact(str(p), artifact_path=artifact_path)
        if self.offline:
            try:
                self._copy_local(p, artifact_path)
            except OSError as exc:
                log.error("cannot keep artifact %s locally: %s", p, exc)

    def log_frame(
        self, frame: pd.DataFrame, filename: str, artifact_path: str | None = None
    ) -> None:
        """Log a data frame as a parquet (``.parquet``) or CSV (``.csv``) artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            if filename.endswith(".csv"):
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
            self.log_artifact(path, artifact_path)

    def log_dict(self, data: Mapping[str, Any], filename: str) -> None:
        """Log a JSON-serialisable mapping as a JSON artifact."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            path.write_text(json.dumps(data, indent=2, default=str))
            self.log_artifact(path)

    def log_figure(self, figure: Any, filename: str) -> None:
        """Log a matplotlib or plotly figure (plotly as HTML)."""
        with self._guard("log_figure"):
            if not self.offline:
                import mlflow

                mlflow.log_figure(figure, filename)
        self.record["artifacts"].append(filename)

    def log_provenance(self) -> None:
        """Record the git commit and the versions of the packages that shape results."""
        commit = git_commit()
        versions = package_versions()
        tags: dict[str, Any] = {f"pkg.{k}": v for k, v in versions.items()}
        if commit:
            tags["git_commit"] = commit
            tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
        self.set_tags(tags)


def _start(
    run: TrackedRun, experiment: str, data_dir: Any, nested: bool, tags: dict[str, str]
) -> Any:
    """Start the MLflow run; return the active run object."""
    import mlflow

    why = probe(run.tracking_uri)
    if why is not None:
        raise TrackingError(why)
    configure(run.tracking_uri, data_dir=data_dir)
    active = mlflow.active_run()
    if active is not None:
        # A child lives in its parent's experiment (MLflow would otherwise put it
        # in the default experiment); somebody else's active run becomes the parent.
        exp_id = active.info.experiment_id
        nested = True
    else:
        exp_id = ensure_experiment(experiment, run.tracking_uri, data_dir)
    run.experiment_id = exp_id
    mlrun = mlflow.start_run(
        experiment_id=exp_id,
        run_name=run.name,
        nested=nested,
        tags=tags,
    )
    run.run_id = mlrun.info.run_id
    return mlrun


@contextlib.contextmanager
def tracked_run(
    name: str,
    *,
    kind: str = "train",
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    provenance: bool = True,
) -> Iterator[TrackedRun]:
    """Record a run in MLflow; never raise because tracking failed.

    Parameters
    ----------
    name : str
        Run name (shown in the MLflow UI).
    kind : str
        What the run does: ``train``, ``backtest``, ``forecast``, ``detect``,
        ``optimize``, ``tune``, ``trial``... (tag ``forecaster.kind``).
    experiment : str
        Experiment name; created if missing.
    tracking_uri : str, optional
        See :func:`resolve_tracking_uri`.
    data_dir : path, optional
        Data directory (embedded backend and offline records).
    params, tags : mapping, optional
        Logged at the start.
    nested : bool
        Start as a child of the active run (e.g. an Optuna trial).
    provenance : bool
        Log git commit and package versions.

    Yields
    ------
    TrackedRun
        Safe logging methods. Errors raised by the body propagate (the run is
        marked ``FAILED``); tracking errors never do.

    Examples
    --------
    >>> with tracked_run("train lgbm", kind="train") as run:  # doctest: +SKIP
    ...     run.log_params({"model": "lgbm"})
    ...     run.log_metrics({"wape": 12.5})
    """
    uri = resolve_tracking_uri(tracking_uri, data_dir=data_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    local = data_dir_path(data_dir) / "mlflow" / "offline" / f"{stamp}-{_slug(name)}"
    run = TrackedRun(name, kind, uri, local)
    all_tags = {"forecaster.kind": kind, **{k: str(v) for k, v in (tags or {}).items()}}
    started = False
    try:
        _start(run, experiment, data_dir, nested, all_tags)
        started = True
    except Exception as exc:
        run.fail("start_run", exc)
        run.record["tags"].update(all_tags)
    if provenance:
        run.log_provenance()
    if params:
        run.log_params(params)
    status = "FINISHED"
    try:
        yield run
    except BaseException:
        status = "FAILED"
        raise
    finally:
        if started:
            try:
                import mlflow

                active = mlflow.active_run()
                if active is not None and active.info.run_id == run.run_id:
                    mlflow.end_run(status=status)
            except Exception as exc:
                run.fail("end_run", exc)
        if run.offline:
            run.record["status"] = status
            run._write_local()
