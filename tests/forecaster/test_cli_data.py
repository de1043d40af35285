"""CLI contracts of ``forecaster ingest``, ``tags`` and ``showback``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forecaster.cli import app
from tests.features.focus_fixtures import focus_row, rows, write_focus_csv

runner = CliRunner()
ACCOUNTING_KEYS = {
    "rows_read",
    "rows_accepted",
    "rows_rejected",
    "rejections",
    "effective_cost_read",
    "effective_cost_stored",
}


def _ingest(path: Path, store: Path, *extra: str) -> dict:
    res = runner.invoke(
        app, ["ingest", "focus", str(path), "--store", str(store), "--json", *extra]
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_ingest_json_accounting(tmp_path: Path) -> None:
    p = write_focus_csv(
        tmp_path / "f.csv", [*rows(5), focus_row(9, EffectiveCost="oops"), focus_row(0)]
    )
    out = _ingest(p, tmp_path / "s.duckdb")
    assert set(out) >= ACCOUNTING_KEYS
    assert out["rows_read"] == 7
    assert out["rows_accepted"] == 5
    assert out["rows_rejected"] == 2
    assert out["rejections"] == {"invalid_cost": 1, "duplicate_line_item": 1}
    assert out["effective_cost_stored"] == pytest.approx(sum(1.006 + i * 0.01 for i in range(5)))
    assert out["balanced"] is True


def test_ingest_twice_changes_no_total(tmp_path: Path) -> None:
    p = write_focus_csv(tmp_path / "f.csv", rows(8))
    store = tmp_path / "s.duckdb"
    first = _ingest(p, store)
    second = _ingest(p, store)
    assert second["rows_new"] == 0 and second["rows_replaced"] == first["rows_accepted"]
    sb = runner.invoke(app, ["showback", "--by", "team", "--store", str(store), "--json"])
    assert sb.exit_code == 0, sb.output
    total = sum(r["total_cost"] for r in json.loads(sb.stdout))
    assert round(total, 2) == round(first["effective_cost_stored"], 2)


def test_bad_file_exits_2_naming_file_and_column(tmp_path: Path) -> None:
    p = write_focus_csv(
        tmp_path / "nocost.csv", rows(2), columns=[c for c in rows(1)[0] if c != "EffectiveCost"]
    )
    res = runner.invoke(app, ["ingest", "focus", str(p), "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2
    assert "nocost.csv" in res.output and "EffectiveCost" in res.output


def test_strict_writes_nothing(tmp_path: Path) -> None:
    p = write_focus_csv(tmp_path / "f.csv", [focus_row(0), focus_row(1, EffectiveCost="x")])
    store = tmp_path / "s.duckdb"
    res = runner.invoke(app, ["ingest", "focus", str(p), "--store", str(store), "--strict"])
    assert res.exit_code == 2
    assert "row 3" in res.output and "EffectiveCost" in res.output
    assert not store.exists()


def test_tags_and_showback_commands(tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    _ingest(write_focus_csv(tmp_path / "f.csv", rows(9)), store)
    res = runner.invoke(app, ["tags", "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output
    cov = json.loads(res.stdout)
    assert cov["fully_tagged_pct"] == pytest.approx(100.0)
    res = runner.invoke(
        app,
        ["showback", "--by", "team", "--store", str(store), "--output", str(tmp_path / "sb.csv")],
    )
    assert res.exit_code == 0, res.output
    assert "nlp" in res.stdout and (tmp_path / "sb.csv").exists()


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["tags", "--store", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 2
    assert "does not exist" in res.output


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    """The installed entry point works in a real process (stdout is pure JSON)."""
    p = write_focus_csv(tmp_path / "f.csv", rows(3))
    env = {**os.environ, "FORECASTER_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "ingest", "focus", str(p), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_accepted"] == 3
    assert (tmp_path / "data" / "forecaster.duckdb").exists()
