"""MIG geometry and the instance catalog."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from features.exceptions import ConfigError
from optimizer.catalog import catalog_from_dict, load_catalog, save_catalog
from optimizer.mig import (
    COMPUTE_SLICES,
    MEMORY_SLICES,
    fit_profiles,
    get_profile,
    profiles_for,
    smallest_profile,
)

MAX_PER_GPU = {"1g.10gb": 7, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1}


@pytest.mark.parametrize("model", ["A100-80GB", "H100-80GB"])
def test_max_instances_per_profile(model: str) -> None:
    for name, n in MAX_PER_GPU.items():
        assert get_profile(model, name).max_per_gpu == n
        assert fit_profiles(model, [name] * n) is not None
        assert fit_profiles(model, [name] * (n + 1)) is None


def test_h200_and_a100_40gb_profiles() -> None:
    assert next(p.name for p in profiles_for("H200")) == "1g.18gb"
    assert [p.name for p in profiles_for("H200")][-1] == "7g.141gb"
    assert get_profile("A100-40GB", "3g.20gb").max_per_gpu == 2
    assert profiles_for("L4") == ()


def _valid(model: str, slots: tuple[tuple[str, int], ...]) -> bool:
    taken = [0] * MEMORY_SLICES
    compute = 0
    for name, start in slots:
        p = get_profile(model, name)
        if start not in p.starts:
            return False
        for i in range(start, start + p.memory_slices):
            taken[i] += 1
        compute += p.compute_slices
    return max(taken) <= 1 and compute <= COMPUTE_SLICES


def test_every_returned_placement_is_valid_and_search_is_exhaustive() -> None:
    names = list(MAX_PER_GPU)
    for r in range(1, 5):
        for combo in itertools.combinations_with_replacement(names, r):
            placement = fit_profiles("H100-80GB", list(combo))
            # Oracle: try every assignment of starts.
            options = [get_profile("H100-80GB", n).starts for n in combo]
            feasible = any(
                _valid("H100-80GB", tuple(zip(combo, starts, strict=True)))
                for starts in itertools.product(*options)
            )
            assert (placement is not None) == feasible, combo
            if placement is not None:
                assert _valid("H100-80GB", placement.slots)
                assert [s[0] for s in placement.slots] == list(combo)


def test_known_mixes() -> None:
    assert fit_profiles("A100-80GB", ["4g.40gb", "3g.40gb"]) is not None
    assert fit_profiles("A100-80GB", ["4g.40gb", "4g.40gb"]) is None
    assert fit_profiles("A100-80GB", ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]) is not None
    with pytest.raises(ConfigError):
        fit_profiles("L4", ["1g.10gb"])
    with pytest.raises(ConfigError):
        fit_profiles("H100", ["5g.50gb"])


def test_smallest_profile() -> None:
    assert smallest_profile("H100", 0.1, 8).name == "1g.10gb"
    assert smallest_profile("H100", 0.1, 15).name == "1g.20gb"
    assert smallest_profile("H100", 0.25, 15).name == "2g.20gb"
    assert smallest_profile("H100", 0.5, 30).name == "4g.40gb"
    assert smallest_profile("H100", 1.0, 10).name == "7g.80gb"
    assert smallest_profile("H100", 0.1, 90) is None
    assert smallest_profile("L4", 0.1, 1) is None


def test_packaged_catalog_covers_the_families() -> None:
    cat = load_catalog()
    for name in ["p4d.24xlarge", "p4de.24xlarge", "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge"]:
        assert cat.get(name).gpus == 8
    for fam in ["g5", "g6", "g6e"]:
        for size in [
            "xlarge",
            "2xlarge",
            "4xlarge",
            "8xlarge",
            "12xlarge",
            "16xlarge",
            "24xlarge",
            "48xlarge",
        ]:
            assert f"{fam}.{size}" in cat
    for fam in ["m6i", "m7i", "c6i", "c7i", "r6i", "r7i"]:
        assert len(cat.select(families=[fam])) >= 8
    assert cat.get("p5.48xlarge").mig_capable and not cat.get("g6.xlarge").mig_capable
    assert cat.as_of and cat.source and cat.version
    for it in cat:
        assert it.on_demand_usd_per_hour > 0 and 0 <= it.spot_discount < 1
        assert it.spot_usd_per_hour < it.on_demand_usd_per_hour


def test_unit_prices_are_sane() -> None:
    u = load_catalog().unit_prices()
    assert 0.01 < u.vcpu < 0.1 and 0 < u.memory_gib < 0.02
    assert u.gpu_price("H100-80GB") > u.gpu_price("A100-40GB") > u.gpu_price("L4") > 0


def test_catalog_roundtrip_and_validation(tmp_path: Path) -> None:
    cat = load_catalog()
    path = save_catalog(cat, tmp_path / "c.json")
    again = load_catalog(path)
    assert again.instances == cat.instances
    doc = json.loads(path.read_text())
    doc["instances"][0]["on_demand_usd_per_hour"] = float("nan")
    with pytest.raises(ConfigError, match="price must be finite"):
        catalog_from_dict(doc)
    with pytest.raises(ConfigError, match="must be in the catalog"):
        cat.get("x9.huge")
