"""Policies as code: YAML validated with errors naming file, line and key; violations."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.exceptions import PolicyError
from forecaster.alerts.base import AlertContext
from forecaster.alerts.policies import EXAMPLE_POLICY, check_policy, load_policy, parse_policy
from tests.forecaster.alerts.builders import cost_frame, inject, utilization_frame


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


def problems(text: str, tmp_path: Path) -> tuple[str, list[tuple[int | None, str, str]]]:
    p = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy(p)
    assert info.value.path == str(p)
    return str(info.value), info.value.problems


def test_example_policy_loads_and_compiles() -> None:
    pol = load_policy(EXAMPLE_POLICY)
    kinds = [r.kind for r in pol.rules()]
    for kind in (
        "budget_consumed",
        "budget_forecast",
        "untagged_spend",
        "idle_resource",
        "spot_policy",
        "daily_spend",
        "spend_spike",
        "cost_anomaly",
    ):
        assert kind in kinds
    assert "cost_anomaly" not in [r.kind for r in pol.rules(detection=False)]
    assert pol.owners["nlp"] == "sara.okafor@example.com" and len(pol.events) == 1


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    msg, probs = problems("budgets:\n  - name: a\n   monthly: 5\n", tmp_path)
    assert "policy.yaml, line 3" in msg and "invalid YAML" in msg
    assert probs[0][0] == 3


def test_bad_values_name_line_and_key(tmp_path: Path) -> None:
    text = (
        "version: 1\n"  # 1
        "budgets:\n"  # 2
        "  - name: nlp\n"  # 3
        "    scope: {team: nlp}\n"  # 4
        "    monthly: -5\n"  # 5
        "    alert_at: [0.8, 9]\n"  # 6
        "    colour: red\n"  # 7
        "required_tags:\n"  # 8
        "  tags: [Team, Colour]\n"  # 9
        "idle:\n"  # 10
        "  hours: 0\n"  # 11
        "spot:\n"  # 12
        "  - min_on_demand_share: 1.5\n"  # 13
    )
    msg, probs = problems(text, tmp_path)
    got = {key: line for line, key, _ in probs}
    assert got == {
        "budgets[0].monthly": 5,
        "budgets[0].alert_at": 6,
        "budgets[0].colour": 7,
        "required_tags.tags": 9,
        "idle.hours": 11,
        "spot[0].min_on_demand_share": 13,
    }
    assert (
        "policy.yaml, line 5, key budgets[0].monthly: Input should be greater than 0, got -5" in msg
    )
    assert "line 7, key budgets[0].colour: unknown key" in msg
    assert "'Colour'" in msg


def test_missing_key_top_level_type_and_files(tmp_path: Path) -> None:
    msg, probs = problems("budgets:\n  - monthly: 5\n", tmp_path)
    assert probs == [(2, "budgets[0].name", "Field required")]
    msg, _ = problems("- just\n- a list\n", tmp_path)
    assert "line 1" in msg and "mapping" in msg
    msg, probs = problems("idle:\n  hours: 2\n  days: 1\n", tmp_path)
    assert "either hours or days" in msg and probs[0][1] == "idle"
    msg, _ = problems("budgets:\n  - {name: a, monthly: 1}\n  - {name: a, monthly: 2}\n", tmp_path)
    assert "unique" in msg
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.yaml")
    assert parse_policy("").rules() == []


def test_check_policy_lists_violations_with_severity_and_owner() -> None:
    df = cost_frame(days=10)
    df = inject(df, "2025-01-02", 200, 3.0, team=None, resource="i-untagged")
    df = inject(
        df, "2025-01-01", 240, 40.0, team="alpha", resource="spot-1", purchase_option="spot"
    )
    u = utilization_frame({"alpha/train": (0.05, 8)}, hours=48)
    pol = parse_policy(
        """
owners: {alpha: alpha-oncall, "(none)": finops}
budgets:
  - {name: alpha, scope: {team: alpha}, monthly: 5000, alert_at: [0.8], forecast_probability: 0.9}
required_tags: {tags: [Team], max_untagged_share: 0.02}
idle: {gpu_utilization_below: 0.2, hours: 24, severity: critical}
spot:
  - {scope: {environment: prod}, min_on_demand_share: 0.5}
daily_spend:
  - {threshold: 100000}
""",
        "inline.yaml",
    )
    ctx = AlertContext(df, u, since="2025-01-01")
    ev = check_policy(pol, ctx)
    by_rule = {a.rule: a for a in ev.alerts}
    assert set(by_rule) == {
        "budget_consumed",
        "budget_forecast",
        "untagged_spend",
        "idle_resource",
        "spot_policy",
    }
    assert by_rule["budget_consumed"].owner == "alpha-oncall"
    assert by_rule["untagged_spend"].owner == "finops"
    assert by_rule["idle_resource"].severity == "critical"
    assert by_rule["idle_resource"].owner == "alpha-oncall"
    assert ev.alerts[0].severity == "critical"  # worst first


def test_changes_section_compiles_to_cost_change_and_checks_values(tmp_path: Path) -> None:
    from forecaster.alerts.rules import CostChange

    pol = parse_policy("changes:\n  persist_hours: 3\n  min_daily_impact: 100\n")
    rules = [r for r in pol.rules() if isinstance(r, CostChange)]
    assert len(rules) == 1 and rules[0].persist == 3 and rules[0].min_daily_impact == 100.0
    assert not any(isinstance(r, CostChange) for r in pol.rules(detection=False))
    assert not parse_policy("changes:\n  enabled: false\n").rules()
    bad = tmp_path / "p.yaml"
    bad.write_text("changes:\n  persist_hours: 0\n")
    with pytest.raises(PolicyError, match=r"line 2, key changes.persist_hours"):
        load_policy(bad)
