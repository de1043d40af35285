"""Invariants of every policy, on random tiny clusters and streams (hypothesis).

Replaying a result must show: no node over its CPU or memory, no GPU over 1000 milli, every pod
exactly one row and at most one node, a GPU pod on exactly ``num_gpu`` distinct GPUs of an
accepted model, CPU-only pods on no GPU, and a pod left unplaced only if no node could host it
at that moment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.placement import POLICIES, place
from optimizer.placement.records import parse_spec
from tests.optimizer.placement.builders import node, nodes_frame, pod, pods_frame

node_rows = st.lists(
    st.tuples(
        st.sampled_from([0, 1_000, 4_000, 16_000, 64_000]),
        st.sampled_from([0, 1_024, 8_192, 65_536]),
        st.sampled_from([0, 1, 2, 4, 8]),
        st.sampled_from(["T4", "G2", "P100"]),
    ),
    min_size=0,
    max_size=6,
)
pod_rows = st.lists(
    st.tuples(
        st.sampled_from([0, 500, 2_000, 8_000, 70_000]),
        st.sampled_from([0, 512, 4_096, 100_000]),
        st.sampled_from([0, 1, 1, 1, 2, 4, 8]),
        st.sampled_from([0, 100, 250, 500, 810, 1_000, 1_000, 1_500]),
        st.sampled_from(["", "", "T4", "G2|P100", "A100"]),
    ),
    min_size=0,
    max_size=40,
)


def _frames(nodes: list, pods: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    nf = nodes_frame(
        [node(f"n{i}", c, m, g, model if g else "") for i, (c, m, g, model) in enumerate(nodes)]
    )
    pf = pods_frame(
        [pod(f"p{i}", c, mem, k, m, spec) for i, (c, mem, k, m, spec) in enumerate(pods)]
    )
    return nf, pf


def check_invariants(nodes: pd.DataFrame, pods: pd.DataFrame, out: pd.DataFrame) -> None:
    """Replay ``out`` (name,node,gpus) on the cluster and assert every invariant."""
    assert list(out.columns) == ["name", "node", "gpus"]
    assert out["name"].tolist() == pods["name"].astype(str).tolist()
    by_name = {r.sn: r for r in nodes.itertuples()}
    cpu = {n: int(r.cpu_milli) for n, r in by_name.items()}
    mem = {n: int(r.memory_mib) for n, r in by_name.items()}
    left = {n: [1000] * int(r.gpu) for n, r in by_name.items()}
    for p, row in zip(pods.itertuples(), out.itertuples(), strict=True):
        k = int(p.num_gpu)
        m = min(int(p.gpu_milli), 1000) if k >= 1 else 0
        spec = parse_spec(str(p.gpu_spec)) if m > 0 else frozenset()

        def fits(n: str, p=p, k=k, m=m, spec=spec) -> bool:
            if cpu[n] < p.cpu_milli or mem[n] < p.memory_mib:
                return False
            if m == 0:
                return True
            if spec and by_name[n].model not in spec:
                return False
            return sum(x >= m for x in left[n]) >= k

        if row.node == "":
            assert not any(fits(n) for n in by_name), f"{p.name} was feasible but unplaced"
            assert row.gpus == ""
            continue
        n = row.node
        assert fits(n), f"{p.name} does not fit {n}"
        gpus = [int(g) for g in row.gpus.split("|")] if row.gpus else []
        if m == 0:
            assert gpus == []
        else:
            assert len(gpus) == k == len(set(gpus))
            assert all(0 <= g < len(left[n]) for g in gpus)
            for g in gpus:
                assert left[n][g] >= m
                left[n][g] -= m
        cpu[n] -= int(p.cpu_milli)
        mem[n] -= int(p.memory_mib)
        assert cpu[n] >= 0 and mem[n] >= 0 and all(x >= 0 for x in left[n])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nodes=node_rows,
    pods=pod_rows,
    policy=st.sampled_from(sorted(POLICIES)),
    use_profile=st.booleans(),
    seed=st.integers(0, 3),
)
def test_capacity_never_exceeded_and_nothing_placed_twice(
    nodes: list, pods: list, policy: str, use_profile: bool, seed: int
) -> None:
    nf, pf = _frames(nodes, pods)
    res = place(nf, pf, policy=policy, profile_df=pf if use_profile else None, seed=seed)
    out = res.to_frame()
    check_invariants(nf, pf, out)
    assert len(out) == len(pf)
    assert np.all(res.used_milli <= res.gpu_capacity_milli)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nodes=node_rows,
    pods=pod_rows,
    policy=st.sampled_from(sorted(POLICIES)),
    cut=st.integers(0, 40),
    seed=st.integers(0, 3),
)
def test_prefix_of_a_stream_is_placed_the_same(
    nodes: list, pods: list, policy: str, cut: int, seed: int
) -> None:
    nf, pf = _frames(nodes, pods)
    full = place(nf, pf, policy=policy, seed=seed).to_frame()
    part = place(nf, pf.iloc[:cut], policy=policy, seed=seed).to_frame()
    pd.testing.assert_frame_equal(part, full.iloc[: len(part)].reset_index(drop=True))
