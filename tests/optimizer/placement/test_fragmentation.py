"""The tabulated fragment measures agree with their definitions, evaluated by brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optimizer.placement import Cluster, FragmentationModel, PodStream, TypicalPods
from optimizer.placement.gradient import sigmoid_score
from optimizer.placement.records import parse_spec
from tests.optimizer.placement.builders import node, nodes_frame, pod, pods_frame


def _cluster() -> Cluster:
    return Cluster.from_frame(
        nodes_frame(
            [
                node("a", 96_000, 393_216, 8, "G2"),
                node("b", 104_000, 524_288, 2, "T4"),
                node("c", 16_000, 122_880, 2, "P100"),
                node("d", 8_000, 32_768, 0, ""),
            ]
        )
    )


def _typical() -> TypicalPods:
    rows = (
        [pod(f"s{i}", 3_152, k=1, m=810) for i in range(6)]
        + [pod(f"w{i}", 11_300, k=1, m=1000) for i in range(5)]
        + [pod(f"h{i}", 8_000, k=1, m=460, spec="T4|P100") for i in range(4)]
        + [pod(f"c{i}", 12_500) for i in range(3)]
        + [pod(f"m{i}", 24_000, k=2, m=1000) for i in range(2)]
        + [pod("rare", 1_000, k=1, m=50)]
    )
    return TypicalPods.from_stream(PodStream.from_frame(pods_frame(rows)))


def brute_f(typ: TypicalPods, model: str, cpu_left: int, left: list[int]) -> float:
    """Protocol section 7, category by category."""
    gl = sum(left)
    frag = 0.0
    for c, m, k, spec, p in zip(
        typ.cpu_milli, typ.gpu_milli, typ.num_gpu, typ.gpu_spec, typ.weight, strict=True
    ):
        allowed = parse_spec(spec)
        if m == 0:
            frag += p * gl  # XL or XR
        elif allowed and model not in allowed:
            frag += p * gl  # no_access
        elif sum(x >= m for x in left) >= k:
            frag += p * (sum(x for x in left if x < m) if cpu_left >= c else gl)  # Q2 / Q4
        else:
            frag += p * gl  # Q2 or Q1
    return frag


def brute_cap(typ: TypicalPods, model: str, cpu_left: int, left: list[int]) -> float:
    """Capacity-aware fragment: idle GPU that copies of each typical pod cannot use."""
    gl = sum(left)
    frag = 0.0
    for c, m, k, spec, p in zip(
        typ.cpu_milli, typ.gpu_milli, typ.num_gpu, typ.gpu_spec, typ.weight, strict=True
    ):
        allowed = parse_spec(spec)
        if m == 0 or (allowed and model not in allowed):
            frag += p * gl
            continue
        copies = min(sum(x // m for x in left) // k, cpu_left // c)
        frag += p * (gl - copies * k * m)
    return frag


def _random_states(cluster: Cluster, n: int, seed: int) -> list[tuple[int, int, list[int]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        i = int(rng.integers(cluster.n_nodes))
        g = int(cluster.num_gpus[i])
        left = [int(x) for x in rng.choice([0, 50, 190, 400, 460, 540, 1000], size=g)]
        cpu = int(rng.integers(0, cluster.cpu_milli[i] + 1))
        out.append((i, cpu, left))
    return out


def test_typical_pods_follow_protocol_prefix_rule() -> None:
    typ = _typical()
    # counts 6, 5, 4, 3, 2, 1 (21 pods): the shortest prefix reaching 0.95 * 21 = 19.95 is 20
    assert list(typ.count) == [6, 5, 4, 3, 2]
    assert 50 not in typ.gpu_milli.tolist()
    assert typ.weight.sum() == pytest.approx(1.0)
    # CPU-only pods are typical with key (c, 0, 0, "")
    assert (typ.gpu_milli == 0).sum() == 1


def test_typical_ties_sorted_by_key_descending() -> None:
    typ = TypicalPods.from_counts(
        np.array([100, 200, 300]),
        np.array([0, 0, 0]),
        np.array([0, 0, 0]),
        ["", "", ""],
        np.array([1, 1, 1]),
        coverage=0.5,
    )
    assert list(typ.cpu_milli) == [300, 200]  # need >= 1.5 of 3: the two largest keys


@pytest.mark.parametrize("seed", [0, 1])
def test_table_f_equals_definition(seed: int) -> None:
    cluster, typ = _cluster(), _typical()
    model = FragmentationModel(typ, cluster)
    for i, cpu, left in _random_states(cluster, 60, seed):
        g = cluster.max_gpus
        row = np.array([left + [0] * (g - len(left))], dtype=np.int64)
        got = model.value_of(cluster.model_id[i : i + 1], np.array([cpu]), row)[0]
        name = cluster.models[cluster.model_id[i]] if cluster.model_id[i] >= 0 else ""
        assert got == pytest.approx(brute_f(typ, name, cpu, left), abs=1e-6)


def test_table_capacity_term_equals_definition() -> None:
    cluster, typ = _cluster(), _typical()
    model = FragmentationModel(typ, cluster, capacity_weight=0.5)
    for i, cpu, left in _random_states(cluster, 80, 7):
        g = cluster.max_gpus
        row = np.array([left + [0] * (g - len(left))], dtype=np.int64)
        got = model.value_of(cluster.model_id[i : i + 1], np.array([cpu]), row)[0]
        name = cluster.models[cluster.model_id[i]] if cluster.model_id[i] >= 0 else ""
        want = brute_f(typ, name, cpu, left) + 0.5 * brute_cap(typ, name, cpu, left)
        assert got == pytest.approx(want, abs=1e-6)


def test_empty_distribution_gives_zero_fragment() -> None:
    cluster = _cluster()
    empty = TypicalPods.from_stream(PodStream.from_frame(pods_frame([])))
    model = FragmentationModel(empty, cluster)
    row = np.full((1, cluster.max_gpus), 1000, dtype=np.int64)
    assert model.value_of(np.array([0]), np.array([1000]), row)[0] == 0.0


def test_sigmoid_score_equals_formula() -> None:
    xs = np.concatenate(
        [np.linspace(-8000, 8000, 4001), np.array([-np.inf, 0.0, -0.0, 1e-9, 40000.0, 1e300])]
    )
    want = [
        0 if x == -np.inf else int(100.0 * (1.0 / (1.0 + math.exp(-x / 1000.0)))) if x > -7e5 else 0
        for x in xs
    ]
    assert sigmoid_score(xs).tolist() == want
