"""The policy interface: what a placement policy sees and must answer.

A policy sees one pod at a time (its index ``i`` in the stream) together with the nodes that can
host it, and returns a node; then it picks the GPUs on that node. It never sees later pods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from optimizer.placement.fragmentation import PodKeys, TypicalPods
from optimizer.placement.records import Cluster, PodStream
from optimizer.placement.state import ClusterState, best_fit


@dataclass
class RunContext:
    """Everything a policy may read during one run (built by :func:`simulate`).

    Attributes
    ----------
    cluster : Cluster
    state : ClusterState
        The live state (policies read it; only the engine commits).
    pods : PodStream
        The whole stream. Policies must only look at pods ``<= i`` (enforced by convention and
        by the prefix-consistency tests).
    access : ndarray of bool, shape (n_specs, N)
        ``access[pods.spec_id[i]]`` = nodes whose model the pod accepts.
    rank : ndarray of int64, shape (N,)
        Tie-break priority per node (smaller wins).
    rng : numpy.random.Generator
        For randomised policies.
    profile : PodStream or None
        The historical pod list, if one was given (policies learn workload statistics from it).
    typical : TypicalPods or None
        Typical pods of the profile (protocol section 3), if a profile was given.
    keys : PodKeys
        Typical-pod key of each pod in the stream (for learning typical pods online).
    shape_id : ndarray of int64, shape (P,)
        Id of ``(cpu_milli, gpu_milli, num_gpu)`` per pod (cache key of shape-only scores).
    """

    cluster: Cluster
    state: ClusterState
    pods: PodStream
    access: np.ndarray
    rank: np.ndarray
    rng: np.random.Generator
    profile: PodStream | None
    typical: TypicalPods | None
    keys: PodKeys
    shape_id: np.ndarray
    c: list[int] = field(init=False)
    mem: list[int] = field(init=False)
    k: list[int] = field(init=False)
    m: list[int] = field(init=False)
    kind: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.c = self.pods.cpu_milli.tolist()
        self.mem = self.pods.memory_mib.tolist()
        self.k = self.pods.num_gpu.tolist()
        self.m = self.pods.gpu_milli.tolist()
        self.kind = self.pods.kind.tolist()


class PlacementPolicy:
    """Interface of an online placement policy.

    Subclasses implement :meth:`scores` (integer or float, higher is better) and may override
    :meth:`choose`, :meth:`select_gpus`, :meth:`arrive` and :meth:`committed`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    ctx: RunContext
    state: ClusterState

    def bind(self, ctx: RunContext) -> None:
        """Attach the policy to a run (called once before the first pod)."""
        self.ctx = ctx
        self.state = ctx.state

    def arrive(self, i: int) -> None:
        """Pod ``i`` arrived (called before it is placed; pods ``< i`` were already seen)."""

    def choose(self, i: int, feasible: np.ndarray) -> int:
        """Node for pod ``i`` among ``feasible`` (``len >= 2``): max score, ties by rank."""
        s = self.scores(i, feasible)
        cand = feasible[s == s.max()]
        if len(cand) == 1:
            return int(cand[0])
        return int(cand[np.argmin(self.ctx.rank[cand])])

    def scores(self, i: int, feasible: np.ndarray) -> np.ndarray:
        """Score of each feasible node for pod ``i`` (shape ``feasible.shape``)."""
        raise NotImplementedError

    def select_gpus(self, i: int, node: int) -> np.ndarray:
        """GPU indices on ``node`` for pod ``i`` (default: the protocol's best-fit rule)."""
        return best_fit(self.state.left[node], self.ctx.k[i], self.ctx.m[i])

    def committed(self, i: int, node: int, gpus: np.ndarray) -> None:
        """Pod ``i`` now runs on ``node`` / ``gpus`` (the state was already updated)."""
