"""The README's usage block: every command parses against the CLI, and every one that needs
no AWS and no GPU runs, on a small demo store and on files built from the demo (issue 14).

Not run (flags parsed only): ``ingest cost-explorer``, ``ingest s3``, ``ingest cloudwatch``
(AWS APIs), ``ingest nvml`` (local NVIDIA GPUs) and ``serve --port`` (a server; ``serve
--help`` runs). Shrunk to fit a one-month demo / keep the file fast, flags kept: ``forecast
--level-by`` (7d, 1 window), ``tune`` (2 trials, 60 s, 2 x 7-day windows), ``experiment run``
(the shipped definition with a 1 x 7-day backtest), ``plan`` (--time-limit 1).

Flag drift: each ``forecaster ...`` line is parsed by the Click command Typer builds
(``make_context`` with ``resilient_parsing``), so an unknown flag or subcommand fails here
without running the command. The run check then invokes the store-reading commands
in-process (``CliRunner``) after one ``forecaster demo --months 1`` into a temp data dir,
which is what ``make run`` leaves behind.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from forecaster.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def usage_commands() -> list[list[str]]:
    """The ``forecaster`` lines of the README's ```bash blocks, as argv (no comments)."""
    text = README.read_text(encoding="utf-8")
    cmds: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            while argv and "=" in argv[0] and not argv[0].startswith("-"):
                argv = argv[1:]  # leading VAR=value assignments
            if argv and argv[0] == "forecaster":
                cmds.append(argv[1:])
    return cmds


COMMANDS = usage_commands()


def test_the_usage_block_is_found() -> None:
    assert len(COMMANDS) >= 30


def _is(exc: BaseException, name: str) -> bool:
    # Typer >= 0.29 vendors Click (typer._click), so match Click's exception by class name.
    return any(k.__name__ == name for k in type(exc).__mro__)


def parse(argv: list[str]) -> None:
    """Parse ``argv`` like the CLI would, without running it.

    An unknown subcommand or flag raises (Click's ``UsageError``/``NoSuchOption``); a bad
    *value* (``BadParameter``: e.g. ``path/to/focus/`` does not exist here) means the flag
    exists, so it passes.
    """
    cmd: Any = typer.main.get_command(app)
    rest = list(argv)
    ctx: Any = None
    while True:
        try:
            ctx = cmd.make_context(cmd.name or "forecaster", rest, parent=ctx)
        except Exception as exc:
            if _is(exc, "BadParameter"):
                return
            raise
        if not hasattr(cmd, "resolve_command"):
            return
        _name, sub, rest = cmd.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert sub is not None
        cmd = sub


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_readme_command_parses(argv: list[str]) -> None:
    parse(argv)


@pytest.mark.parametrize(
    "argv", [["tags", "--bogus"], ["showback", "--by", "team", "--nope", "x"], ["nosuch"]]
)
def test_drift_is_caught(argv: list[str]) -> None:
    with pytest.raises(Exception) as info:
        parse(argv)
    assert _is(info.value, "UsageError")


RUNS = [
    ["tags"],
    ["showback", "--by", "team"],
    # README: --horizon 90d; a one-month demo has too few days to backtest 3 x 90 (the flags
    # themselves are checked by test_readme_command_parses).
    [
        "forecast",
        "--level-by",
        "team",
        "--horizon",
        "7d",
        "--n-windows",
        "1",
        "--output",
        "teams.csv",
    ],
    ["showback", "--by", "team", "--by", "project", "--period", "quarter", "--output", "s.csv"],
    ["alerts", "--dry-run"],
    ["report", "--output", "report.html", "--tables-dir", "tables/"],
    ["models", "list", "--json"],
    ["serve", "--help"],
]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    mp = pytest.MonkeyPatch()
    for var in ("FORECASTER_STORE", "MLFLOW_TRACKING_URI", "FORECASTER_MLFLOW_TRACKING_URI"):
        mp.delenv(var, raising=False)
    mp.setenv("FORECASTER_DATA_DIR", str(root / ".forecaster"))
    mp.chdir(root)
    res = CliRunner().invoke(app, ["demo", "--months", "1", "--json"])
    assert res.exit_code in (0, 1), res.output  # a failed stage is reported, not fatal here
    yield root
    mp.undo()


@pytest.mark.parametrize("argv", RUNS, ids=[" ".join(a) for a in RUNS])
def test_readme_command_runs_after_demo(demo_dir: Path, argv: list[str]) -> None:
    assert argv[0] in {a[0] for a in COMMANDS}
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert "does not exist" not in res.output


# --- the README lines that read a file (or need no AWS), run as written -----------------------
#
# Skipped (they need AWS or a GPU): ``ingest cost-explorer``, ``ingest s3``, ``ingest cloudwatch``
# (AWS APIs) and ``ingest nvml`` (local NVIDIA GPUs); ``serve --port`` starts a server (its
# flags are parsed above, ``serve --help`` runs). Everything else below is the README line,
# taken from COMMANDS, run in the demo's cwd after writing the files it names there, built from
# the demo's own exports where the product writes such a file.

# dcgm-exporter text (no product writes this; shaped like dcgm-exporter 3.x, Kubernetes mode)
_POD = 'container="trainer",namespace="ml",pod="llm-train-0"'
_GPU = 'gpu="{0}",UUID="GPU-{0}",modelName="NVIDIA A100-SXM4-80GB",Hostname="node-1"'
DCGM_SCRAPE = "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n" + "".join(
    f"DCGM_FI_{m}{{{_GPU.format(g)}{',' + _POD if g == 0 else ''}}} {v}\n"
    for m, vals in (
        ("DEV_GPU_UTIL", (91, 0)),
        ("DEV_FB_USED", (61440, 0)),
        ("DEV_FB_FREE", (20480, 81920)),
    )
    for g, v in enumerate(vals)
)

POLICY = """\
owners: {nlp: nlp-team}
budgets:
  - {name: nlp, scope: {team: nlp}, monthly: 50000}
required_tags: {tags: [Team, Project], max_untagged_share: 0.05}
idle: {gpu_utilization_below: 0.2, hours: 24}
"""

NODES = "sn,cpu_milli,memory_mib,gpu,model\nn1,96000,786432,8,A100\nn2,64000,262144,0,\n"
PODS = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
    "p1,8000,65536,1,1000,A100\np2,4000,16384,1,500,\np3,2000,4096,0,0,\n"
)
ITEMS = "item,count,cpu,gpu\ntrain,3,32,4\ninfer,4,8,1\n"
BINS = "bin_type,cost,max_count,cpu,gpu\np4d,32.77,,96,8\ng5,1.21,,16,1\n"


def _find(prefix: list[str]) -> list[str]:
    """The README line that starts with ``prefix`` (exactly one)."""
    hits = [a for a in COMMANDS if a[: len(prefix)] == prefix]
    assert len(hits) == 1, (prefix, hits)
    return hits[0]


def _series_from_demo(metrics: Path, n: int = 3) -> pd.DataFrame:
    """Hourly CPU used by ``n`` demo workloads (unique_id, ds, y), from the demo's metrics."""
    util = pd.read_parquet(metrics, columns=["workload_id", "ds", "cpu_used"])
    keep = sorted(util["workload_id"].unique())[:n]
    s = util[util["workload_id"].isin(keep)].groupby(["workload_id", "ds"], as_index=False).sum()
    s.columns = ["unique_id", "ds", "y"]
    s["ds"] = s["ds"].dt.tz_localize(None)
    return s


@pytest.fixture(scope="module")
def readme_files(demo_dir: Path) -> Path:
    """Write the files the README lines name into the demo's cwd."""
    exports = demo_dir / ".forecaster" / "demo" / "exports"
    focus, cur, metrics = (
        exports / "focus",
        exports / "cur",
        exports / "metrics/utilization.parquet",
    )
    to = demo_dir / "path" / "to"
    to.mkdir(parents=True, exist_ok=True)
    shutil.copytree(focus, to / "focus")
    shutil.copytree(cur, to / "cur-export")
    shutil.copytree(cur, to / "export")
    shutil.copy(metrics, to / "utilization.parquet")
    shutil.copy(metrics, demo_dir / "utilization.parquet")
    # bad.csv: a real FOCUS month as CSV, one row with a cost that is not a number
    rows = pd.read_parquet(sorted(focus.glob("*.parquet"))[0]).head(20).astype(str)
    rows.loc[rows.index[3], "BilledCost"] = "not-a-number"
    rows.to_csv(demo_dir / "bad.csv", index=False)
    series = _series_from_demo(metrics)
    series.to_csv(demo_dir / "series.csv", index=False)
    series.to_parquet(demo_dir / "big.parquet", index=False)
    (demo_dir / "metrics.txt").write_text(DCGM_SCRAPE)
    (demo_dir / "policy.yaml").write_text(POLICY)
    (demo_dir / "nodes.csv").write_text(NODES)
    (demo_dir / "pods.csv").write_text(PODS)
    (demo_dir / "items.csv").write_text(ITEMS)
    (demo_dir / "bins.csv").write_text(BINS)
    shutil.copytree(README.parent / "examples", demo_dir / "examples")  # paths as in a checkout
    exp = yaml.safe_load((README.parent / "experiments/configs/demo_team_daily.yaml").read_text())
    exp["backtest"].update(horizon=7, n_windows=1, step=7)
    (demo_dir / "demo_team_daily.yaml").write_text(yaml.safe_dump(exp))
    (demo_dir / "pipeline.yaml").write_text(
        "stages: [governance, detect]\ndetect_window_days: 14\n"
    )
    return demo_dir


FILE_RUNS: list[tuple[list[str], dict[str, str]]] = [
    # (README prefix, replacements of README values to keep the test fast)
    (["ingest", "focus", "path/to/focus/"], {}),
    (["ingest", "cur", "path/to/cur-export/"], {}),
    (["ingest", "metrics"], {}),
    (["ingest", "cur", "path/to/export"], {}),
    (["ingest", "dcgm"], {}),
    (["forecast", "--input", "series.csv"], {}),
    (["backtest", "--input", "series.csv"], {}),
    (["forecast", "--input", "big.parquet"], {}),
    (["detect", "--input"], {}),
    (["policy", "check"], {}),
    (["rightsize"], {}),
    (["plan"], {"--mig": "--mig --time-limit 1"}),  # README: default 5 s per packing
    (["place"], {}),
    (["pack"], {}),
    (["run", "--config"], {}),
    (["scenario", "compare"], {}),
    # README: 20 trials / 600 s of 4 x 14-day windows; a one-month demo is too short for that.
    (["tune"], {"20": "2", "600": "60", "--timeout": "--horizon=7 --n-windows=2 --timeout"}),
    # the named definition, with its backtest shrunk to fit one month (demo_team_daily.yaml)
    (["experiment", "run"], {"demo_team_daily": "demo_team_daily.yaml"}),
]


def _outputs(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--output"]


@pytest.mark.parametrize("prefix,sub", FILE_RUNS, ids=[" ".join(p) for p, _ in FILE_RUNS])
def test_readme_file_command_runs(
    readme_files: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefix: list[str],
    sub: dict[str, str],
) -> None:
    argv = [w for a in _find(prefix) for w in sub.get(a, a).split()]
    if argv[0] == "ingest":  # into a scratch store: the demo store stays as the demo left it
        monkeypatch.setenv("FORECASTER_STORE", str(readme_files / "ingested.duckdb"))
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    for out in _outputs(argv):
        assert (readme_files / out).stat().st_size > 0, out


def test_readme_strict_ingest_fails_cleanly(
    readme_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = _find(["ingest", "focus", "bad.csv", "--strict"])
    store = readme_files / "strict.duckdb"
    monkeypatch.setenv("FORECASTER_STORE", str(store))
    res = CliRunner().invoke(app, argv)
    assert res.exit_code not in (0, None), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output
    assert "BilledCost" in res.output, res.output


def test_readme_models_promote_and_rollback(readme_files: Path) -> None:
    """NAME VERSION: a model registered in the demo's MLflow by two runs of the demo
    experiment: v1 a one-tree LightGBM (first champion), v2 the shipped definition (left as
    challenger). ``models promote NAME 2`` passes the guardrail; ``rollback`` goes back to 1."""
    exp = yaml.safe_load((readme_files / "demo_team_daily.yaml").read_text())
    exp["register"].update(name="readme-team-daily", promote=True)
    params = {"seed": 0, "n_estimators": 1}
    weak = {**exp, "name": "weak", "model": {**exp["model"], "params": params}}
    (readme_files / "weak.yaml").write_text(yaml.safe_dump(weak))
    exp["register"]["promote"] = False
    (readme_files / "challenger.yaml").write_text(yaml.safe_dump({**exp, "name": "challenger"}))
    for definition in ("weak.yaml", "challenger.yaml"):
        res = CliRunner().invoke(app, ["experiment", "run", definition])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["models", "list", "--json"])
    assert res.exit_code == 0, res.output
    (model,) = [m for m in json.loads(res.stdout)["models"] if m["name"] == "readme-team-daily"]
    assert model["champion"] == "1", model
    name, version = model["name"], "2"
    argv = [{"NAME": name, "VERSION": version}.get(a, a) for a in _find(["models", "promote"])]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    argv = [{"NAME": name}.get(a, a) for a in _find(["models", "rollback"])]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["models", "list", "--json"])
    (model,) = [m for m in json.loads(res.stdout)["models"] if m["name"] == name]
    assert model["champion"] == "1", model
