"""The README's usage block: every command parses against the CLI, and the ones that need
no AWS and no input file run on a small demo store with no extra flags (issue 14).

Flag drift: each ``forecaster ...`` line is parsed by the Click command Typer builds
(``make_context`` with ``resilient_parsing``), so an unknown flag or subcommand fails here
without running the command. The run check then invokes the store-reading commands
in-process (``CliRunner``) after one ``forecaster demo --months 1`` into a temp data dir,
which is what ``make run`` leaves behind.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
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
