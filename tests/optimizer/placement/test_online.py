"""Online, deterministic, side-effect free: a prefix's decisions never depend on later pods.

Also runs the protocol end to end (stream construction, the allocation curve) and FGD, BestFit
and ours on a SMALL synthetic cluster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optimizer.placement import POLICIES, Cluster, PodStream, TypicalPods, place, simulate
from optimizer.placement.protocol import alloc_curve, arrival_stream
from tests.optimizer.placement.builders import pod, pods_frame, synthetic_cluster, synthetic_pods
from tests.optimizer.placement.test_properties import check_invariants

NODES = synthetic_cluster(24, seed=3)
STREAM = synthetic_pods(260, seed=4, spec_share=0.3)
PROFILE = synthetic_pods(300, seed=5, spec_share=0.3)


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("use_profile", [False, True])
def test_prefix_rows_do_not_change_when_pods_are_added(policy: str, use_profile: bool) -> None:
    profile = PROFILE if use_profile else None
    full = place(NODES, STREAM, policy=policy, profile_df=profile, seed=7).to_frame()
    for cut in (1, 97, 180):
        part = place(NODES, STREAM.iloc[:cut], policy=policy, profile_df=profile, seed=7)
        pd.testing.assert_frame_equal(part.to_frame(), full.iloc[:cut].reset_index(drop=True))
    check_invariants(NODES, STREAM, full)


def test_inputs_are_not_modified_and_runs_repeat() -> None:
    nodes, pods = NODES.copy(), STREAM.copy()
    a = place(nodes, pods, seed=1)
    b = place(nodes, pods, seed=1)
    pd.testing.assert_frame_equal(nodes, NODES)
    pd.testing.assert_frame_equal(pods, STREAM)
    assert a == b
    # the stream is used in file order, not sorted by name
    shuffled = pods.iloc[::-1].reset_index(drop=True)
    c = place(nodes, shuffled, seed=1, policy="firstfit").to_frame()
    assert c["name"].tolist() == shuffled["name"].tolist()


def test_fragment_tracking_matches_recomputation() -> None:
    res = place(NODES, STREAM, policy="fgd", profile_df=PROFILE, track_fragmentation=True)
    assert res.frag_milli is not None and len(res.frag_milli) == len(STREAM)
    assert np.all(res.frag_milli >= -1e-6)
    assert np.all(np.diff(res.used_milli) >= 0)


def test_arrival_stream_appends_clones_after_shuffled_originals() -> None:
    pods = PodStream.from_frame(synthetic_pods(120, seed=1))
    cap = int(pods.gpu_request.sum())  # 130 % of it needs clones
    st = arrival_stream(pods, cap, n_nodes=5, rng=np.random.default_rng(0))
    assert sorted(st.order[: st.n_originals].tolist()) == list(range(120))
    assert len(st.order) > 120
    total = pods.gpu_request[st.order].sum()
    assert 1.3 * cap - 1000 < total <= 1.3 * cap + 8000  # stops on the first overshooting draw
    assert sorted(st.rank.tolist()) == list(range(5))
    # tune down: more requested than 130 % of a small capacity -> originals are deleted
    down = arrival_stream(pods, cap // 4, n_nodes=5, rng=np.random.default_rng(0))
    assert pods.gpu_request[down.order].sum() <= 1.3 * (cap // 4)
    assert len(set(down.order.tolist())) == len(down.order) < 120


def test_alloc_curve_buckets_events_by_arrived_percent() -> None:
    arrived = np.array([0, 50, 100, 100, 130]) * 10
    used = np.array([0, 40, 80, 90, 95]) * 10
    curve = alloc_curve(arrived, used, 1000)
    assert curve[100] == 85.0
    assert curve[50] == 40.0
    assert curve[51] == 40.0  # no event at 51: falls back to 50..52
    assert np.isnan(curve[70])


def test_fgd_and_bestfit_and_ours_on_a_small_cluster() -> None:
    cluster = Cluster.from_frame(synthetic_cluster(40, seed=11))
    original = PodStream.from_frame(synthetic_pods(500, seed=12, spec_share=0.2))
    typical = TypicalPods.from_stream(original)
    st = arrival_stream(
        original, cluster.gpu_capacity_milli, cluster.n_nodes, np.random.default_rng(1)
    )
    stream = original.take(st.order)
    scores = {}
    for policy in ("random", "bestfit", "fgd", "fgd-pressure"):
        res = simulate(
            cluster,
            stream,
            policy,
            profile=original,
            typical=typical,
            rank=st.rank,
            rng=np.random.default_rng(2),
        )
        curve = alloc_curve(res.arrived_milli, res.used_milli, cluster.gpu_capacity_milli)
        scores[policy] = curve[np.isfinite(curve)][-1]
        assert res.pods_per_second > 0
    assert scores["fgd"] >= scores["random"] - 1.0
    assert scores["fgd-pressure"] >= scores["random"] - 1.0
    assert all(50.0 < v <= 100.0 for v in scores.values())


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_cold_start_without_profile_before_any_gpu_pod(policy: str) -> None:
    # learnt online, the typical pods hold no GPU pod until the first refresh after one arrives
    nodes = synthetic_cluster(6, seed=2)
    rows = [pod("cpu", 1_000)] + [pod(f"s{i}", 1_000, 1_000, 1, 300) for i in range(20)]
    rows += [pod("w", 1_000, 1_000, 2, 1000), pod("c2", 500)]
    stream = pods_frame(rows)
    out = place(nodes, stream, policy=policy).to_frame()
    check_invariants(nodes, stream, out)
    assert (out["node"] != "").all()
