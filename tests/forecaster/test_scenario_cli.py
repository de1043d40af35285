"""CLI contracts of ``forecaster scenario run`` and ``forecaster scenario compare``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.store import Store
from forecaster.cli import app
from tests.forecaster.test_report import copy_store, small_demo_store

ROOT = Path(__file__).resolve().parents[2]
GROW = ROOT / "examples" / "scenarios" / "grow-training-spot.yaml"
MIG = ROOT / "examples" / "scenarios" / "mig-rightsize.yaml"
runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = small_demo_store(tmp_path_factory.getbasetemp() / "r8demo" / "src")
    return copy_store(src, tmp_path)


def _invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["scenario", *args])
    return res.exit_code, res.stdout, res.output


def test_compare_two_scenarios_side_by_side_and_save(store: Path) -> None:
    code, stdout, _ = _invoke(
        "compare", str(GROW), str(MIG), "--store", str(store), "--time-limit", "0.2", "--save"
    )
    assert code == 0, stdout
    # One table with a column per scenario, the baseline first.
    header = next(line for line in stdout.splitlines() if "month" in line and "baseline" in line)
    assert (
        header.index("baseline")
        < header.index("grow-training-spot")
        < header.index("mig-rightsize")
    )
    assert "Capacity at peak demand" in stdout and "Summary over the horizon" in stdout
    with Store(store, read_only=True) as st:
        monthly = st.read_result("scenario_monthly")
        capacity = st.read_result("scenario_capacity")
    assert list(monthly["scenario"].unique()) == ["baseline", "grow-training-spot", "mig-rightsize"]
    assert monthly.groupby("scenario").size().eq(6).all()  # horizon_months: 6 in both files
    assert (monthly["lo_95"] <= monthly["lo_80"]).all() and (
        monthly["hi_80"] <= monthly["hi_95"]
    ).all()
    assert set(capacity["purchase_option"]) <= {"on_demand", "spot"}
    spot = capacity[
        (capacity["scenario"] == "grow-training-spot") & (capacity["purchase_option"] == "spot")
    ]
    assert spot["gpus"].sum() > 0  # 80 % of training on Spot


def test_run_json(store: Path) -> None:
    code, stdout, _ = _invoke(
        "run", str(GROW), "--store", str(store), "--json", "--time-limit", "0.2"
    )
    assert code == 0, stdout
    got = json.loads(stdout)
    names = [s["name"] for s in got["scenarios"]]
    assert names == ["baseline", "grow-training-spot"]
    grow = got["scenarios"][1]
    assert len(grow["monthly"]) == 6 and {"cost", "lo_80", "hi_80", "lo_95", "hi_95"} <= set(
        grow["monthly"][0]
    )
    assert grow["summary"]["gpus"] > 0 and grow["capacity"]
    # Without a stored forecast the baseline says it is naive.
    assert any("naive" in n for n in grow["notes"])
    # Nothing written without --save.
    with Store(store, read_only=True) as st:
        assert "scenario_monthly" not in st.result_names()


def test_invalid_yaml_names_the_key_and_allowed_values(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ngpu_sharing: always\nspot_shares: {training: 0.5}\n")
    code, _, output = _invoke("run", str(bad), "--store", str(store))
    assert code == 2
    flat = " ".join(output.split())
    assert "gpu_sharing" in flat and "'off', 'mig' or 'fractional'" in flat
    assert "unknown key 'spot_shares'" in flat and "spot_share" in flat
    team = tmp_path / "team.yaml"
    team.write_text("name: t\ngrowth_pct_per_month: {marketing: 5}\n")
    code, _, output = _invoke("run", str(team), "--store", str(store), "--time-limit", "0.2")
    assert code == 2
    flat = " ".join(output.split())
    assert "team 'marketing'" in flat and "allowed values" in flat and "nlp" in flat
    code, _, output = _invoke("compare", str(GROW), str(GROW), "--store", str(store))
    assert code == 2 and "unique" in output
