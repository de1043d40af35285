"""``forecaster alerts``, ``policy check`` and ``feedback`` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from forecaster.commands import alerts as cmd
from tests.forecaster.alerts.builders import cost_frame, inject, store_with
from tests.forecaster.alerts.test_delivery import Receiver

runner = CliRunner()


def app() -> typer.Typer:
    a = typer.Typer()
    a.command("alerts")(cmd.alerts)
    a.add_typer(cmd.policy_app, name="policy")
    a.command("feedback")(cmd.feedback)

    @a.callback()
    def main() -> None:
        """Test app (two levels, like the real CLI)."""

    return a


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = cost_frame(days=35, noise=0.02, seed=1)
    df = inject(df, "2025-02-04 10:00", 3, 60.0, team="beta", resource="i-new")
    path = tmp_path_factory.mktemp("store") / "s.duckdb"
    store_with(path, df).close()
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FORECASTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FORECASTER_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("FORECASTER_ALERT_SNS_TOPIC_ARN", raising=False)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app(), list(args))
    return res.exit_code, res.stdout, res.stderr


def test_alerts_lists_as_json_without_sending(store_path: Path, env: Path) -> None:
    code, out, err = run("alerts", "--store", str(store_path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    rules = {a["rule"] for a in doc["alerts"]}
    assert "cost_change" in rules  # the default detection rule
    first = next(a for a in doc["alerts"] if a["rule"] == "cost_change")
    assert first["root_causes"][0]["value"] == "i-new" and first["owner"] == "beta"
    assert doc["delivery"] == []
    assert (env / "data" / "alerts" / "last_alerts.json").exists()


def test_alerts_table_and_send_once_to_a_webhook(store_path: Path, env: Path) -> None:
    with Receiver() as rx:
        code, out, err = run(
            "alerts", "--store", str(store_path), "--webhook-url", rx.url, "--dry-run"
        )
        assert code == 0, err
        assert rx.requests == 0 and "dry run" in err
        code, out, err = run("alerts", "--store", str(store_path), "--webhook-url", rx.url)
        assert code == 0, err
        sent = rx.requests
        assert sent >= 1 and "Cost up" in out and "sent" in err
        code, out, err = run("alerts", "--store", str(store_path), "--webhook-url", rx.url)
        assert code == 0 and rx.requests == sent and "already sent before" in err


def test_failed_delivery_exits_1(store_path: Path, env: Path) -> None:
    with Receiver(fail_first=100, status=403) as rx:
        code, _, err = run("alerts", "--store", str(store_path), "--webhook-url", rx.url)
    assert code == 1 and "HTTP 403" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--as-of", "yesterday-ish"], "--as-of"),
        (["--min-severity", "loud"], "--min-severity"),
        (["--webhook-url", "ftp://x"], "url"),
        (["--since", "2025-03-01", "--as-of", "2025-02-01"], "--since"),
    ],
)
def test_bad_options_exit_2(store_path: Path, env: Path, args: list[str], needle: str) -> None:
    code, _, err = run("alerts", "--store", str(store_path), *args)
    assert code == 2 and needle in err


def test_missing_store_and_bad_policy_exit_2(store_path: Path, env: Path) -> None:
    code, _, err = run("alerts", "--store", str(env / "none.duckdb"))
    assert code == 2 and "does not exist" in err
    bad = env / "bad.yaml"
    bad.write_text("budgets:\n  - name: x\n    monthly: zero\n")
    code, _, err = run("alerts", "--store", str(store_path), "--policy", str(bad))
    assert code == 2 and "bad.yaml, line 3, key budgets[0].monthly" in err
    code, _, err = run("policy", "check", str(bad), "--store", str(store_path))
    assert code == 2 and "line 3" in err


def test_policy_check_and_fail_on(store_path: Path, env: Path) -> None:
    pol = env / "p.yaml"
    pol.write_text(
        "owners: {beta: beta-team}\n"
        "budgets:\n"
        "  - {name: beta, scope: {team: beta}, monthly: 500, forecast_probability: null}\n"
    )
    code, out, err = run("policy", "check", str(pol), "--validate-only")
    assert code == 0 and "valid" in out
    code, out, err = run("policy", "check", str(pol), "--store", str(store_path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert {a["rule"] for a in doc["alerts"]} == {"budget_consumed"}
    assert all(a["owner"] == "beta-team" for a in doc["alerts"])
    code, _, _ = run(
        "policy", "check", str(pol), "--store", str(store_path), "--fail-on", "warning"
    )
    assert code == 1
    code, _, err = run("policy", "check", str(pol), "--store", str(store_path), "--fail-on", "x")
    assert code == 2


def test_feedback_suppresses_the_alert_next_time(store_path: Path, env: Path) -> None:
    code, out, _ = run("alerts", "--store", str(store_path), "--json")
    alerts = json.loads(out)["alerts"]
    target = alerts[0]["id"]
    code, out, err = run("feedback", target, "--expected", "--note", "planned load test", "--json")
    assert code == 0, err
    assert json.loads(out)["alert_known"] is True
    code, out, _ = run("alerts", "--store", str(store_path), "--json")
    doc = json.loads(out)
    # Suppressed, or (a detector alert) not even raised: the planned hours are masked.
    assert target not in {a["id"] for a in doc["alerts"]}
    assert (env / "data" / "alerts" / "feedback.json").exists()
    code, _, err = run("feedback", "not-an-id!", "--expected")
    assert code == 2 and "ALERT_ID" in err
    code, _, err = run("feedback", target, "--expected", "--until", "2025-03-01")
    assert code == 2 and "--pattern" in err
