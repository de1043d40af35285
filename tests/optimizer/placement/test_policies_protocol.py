"""Each baseline follows ``fgd_protocol.md`` section 6 on tiny hand-computed examples.

Cluster (names in order): ``a`` = 2 x T4, 64 cores; ``b`` = 4 x V100, 32 cores; ``c`` = 8 x G2,
96 cores. A set-up pod that only ``b`` accepts (``gpu_spec=V100``) takes 600 milli of ``b``'s
GPU 0, leaving ``b`` with GPUs ``[400, 1000, 1000, 1000]``; then the pod under test arrives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from optimizer.placement import Cluster, PodStream, TypicalPods, simulate
from optimizer.placement.records import parse_spec
from tests.optimizer.placement.builders import node, nodes_frame, pod, pods_frame

NODES = nodes_frame(
    [
        node("a", 64_000, 262_144, 2, "T4"),
        node("b", 32_000, 131_072, 4, "V100"),
        node("c", 96_000, 393_216, 8, "G2"),
    ]
)
SETUP = pod("setup", 0, 0, 1, 600, spec="V100")


def _run(policy: str, test_pod: dict, rank: list[int] | None = None, **kw: object):
    cluster = Cluster.from_frame(NODES)
    stream = PodStream.from_frame(pods_frame([SETUP, test_pod]))
    res = simulate(
        cluster,
        stream,
        policy,
        rank=np.array(rank or [0, 1, 2]),
        **kw,  # type: ignore[arg-type]
    )
    assert res.node_names[res.node_index[0]] == "b" and res.gpus_of(0) == [0]
    return res.node_names[res.node_index[1]], res.gpus_of(1)


SHARE = pod("share", 8_000, 1_000, 1, 300)
WHOLE = pod("whole", 4_000, 1_000, 1, 1000)


# Share pod (c=8000, m=300) -- BestFit raw scores a=67, b=71, c=17 -> normalised 92, 100, 0.
# DotProd: a=97, b=98, c=95. GpuPacking: a=max(33-2,2)=31, b=100-(400*100//1000)//10=96, c=25.
# GpuClustering: a=18+25=43, b=14+75=89 (hosts only sharing pods), c=0+25=25.
@pytest.mark.parametrize("policy", ["bestfit", "dotprod", "gpupacking", "gpuclustering"])
def test_share_pod_goes_to_the_partly_used_gpu(policy: str) -> None:
    assert _run(policy, SHARE) == ("b", [0])


# Whole pod (c=4000, m=1000) -- BestFit raw a=70, b=74, c=20 -> b; lowest-index idle GPU = 1.
# GpuPacking: a=31, b=max(50-1, 33)=49, c=25 -> b.
# DotProd: a=int(100*(1-0.046875/2))=97, b=96, c=92 -> a (GPU 0).
# GpuClustering (tag 1-gpu): a=18+25=43, b=14+0 (only other tags)=14, c=25 -> a.
@pytest.mark.parametrize(
    ("policy", "want"),
    [
        ("bestfit", ("b", [1])),
        ("gpupacking", ("b", [1])),
        ("dotprod", ("a", [0])),
        ("gpuclustering", ("a", [0])),
    ],
)
def test_whole_pod_follows_each_score(policy: str, want: tuple[str, list[int]]) -> None:
    assert _run(policy, WHOLE) == want


def test_bestfit_ties_go_to_the_smallest_rank() -> None:
    # two identical nodes get the same raw score, so all normalised scores are 0: rank decides
    nodes = nodes_frame([node("x", 8_000, 8_192, 1, "T4"), node("y", 8_000, 8_192, 1, "T4")])
    stream = PodStream.from_frame(pods_frame([pod("p", 1_000, 100, 1, 1000)]))
    cluster = Cluster.from_frame(nodes)
    for rank, want in (([0, 1], "x"), ([1, 0], "y")):
        res = simulate(cluster, stream, "bestfit", rank=np.array(rank))
        assert res.node_names[res.node_index[0]] == want


def test_firstfit_takes_name_order_and_lowest_gpus() -> None:
    assert _run("firstfit", SHARE) == ("a", [0])
    # 70 cores fit only c; b's idle GPUs 1..3 would come first there, c takes GPUs 0 and 1
    assert _run("firstfit", pod("big", 70_000, 1_000, 2, 1000)) == ("c", [0, 1])
    assert _run("firstfit", pod("two", 1_000, 1_000, 3, 1000)) == ("b", [1, 2, 3])


def test_lone_feasible_node_is_chosen_without_scoring() -> None:
    # only c has 8 GPUs
    assert _run("dotprod", pod("eight", 1_000, 1_000, 8, 1000)) == ("c", list(range(8)))


def test_random_picks_feasible_nodes_uniformly() -> None:
    seen: dict[str, int] = {}
    for seed in range(60):
        cluster = Cluster.from_frame(NODES)
        stream = PodStream.from_frame(pods_frame([SETUP, SHARE]))
        res = simulate(cluster, stream, "random", seed=seed)
        name = str(res.node_names[res.node_index[1]])
        seen[name] = seen.get(name, 0) + 1
    assert set(seen) == {"a", "b", "c"}
    assert min(seen.values()) >= 8


def _brute_f(typ: TypicalPods, model: str, cpu: int, left: list[int]) -> float:
    frag = 0.0
    for c, m, k, spec, p in zip(
        typ.cpu_milli, typ.gpu_milli, typ.num_gpu, typ.gpu_spec, typ.weight, strict=True
    ):
        allowed = parse_spec(spec)
        fits = sum(x >= m for x in left) >= k
        if m > 0 and (not allowed or model in allowed) and fits and cpu >= c:
            frag += p * sum(x for x in left if x < m)
        else:
            frag += p * sum(left)
    return frag


def test_fgd_scores_with_integer_sigmoid_of_fragment_drop() -> None:
    profile = PodStream.from_frame(
        pods_frame(
            [pod(f"s{i}", 3_000, 1, 1, 700) for i in range(5)]
            + [pod(f"w{i}", 20_000, 1, 1, 1000) for i in range(3)]
            + [pod(f"c{i}", 30_000) for i in range(2)]
        )
    )
    typ = TypicalPods.from_stream(profile)
    test_pod = pod("t", 10_000, 1_000, 1, 300)
    got = _run("fgd", test_pod, profile=profile)
    # oracle: state after the set-up pod, hypothetical placement on every fitting GPU
    states = {
        "a": ("T4", 64_000, [1000, 1000]),
        "b": ("V100", 32_000, [400, 1000, 1000, 1000]),
        "c": ("G2", 96_000, [1000] * 8),
    }
    best: tuple[int, int, str, int] | None = None
    for rank, (name, (model, cpu, left)) in enumerate(states.items()):
        now = _brute_f(typ, model, cpu, left)
        for g, x in enumerate(left):
            if x < 300:
                continue
            hyp = left.copy()
            hyp[g] -= 300
            d = now - _brute_f(typ, model, cpu - 10_000, hyp)
            score = int(100 * (1 / (1 + math.exp(-d / 1000))))
            key = (score, -rank, name, g)
            if best is None or key[:2] > best[:2]:
                best = key
    assert best is not None
    assert got == (best[2], [best[3]])
