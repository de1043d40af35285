"""The online placement solver: ``place()`` / ``simulate()`` and the result value object.

Pods are placed strictly one at a time in stream order; each decision is final and depends only
on the pods seen so far, so the decisions for a prefix of a stream never change when later pods
are appended. Both functions are deterministic for a given seed and side-effect free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.exceptions import ConfigError
from optimizer.placement.base import PlacementPolicy, RunContext
from optimizer.placement.fragmentation import FragmentationModel, PodKeys, TypicalPods
from optimizer.placement.gradient import FragTracker
from optimizer.placement.policies import DEFAULT_POLICY, POLICIES, policy_class
from optimizer.placement.records import Cluster, PodStream, parse_spec
from optimizer.placement.state import ClusterState

#: Callback ``progress(done, total)`` invoked every few hundred pods.
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class PlacementResult:
    """Outcome of placing a pod stream (a value object; arrays are read-only).

    Attributes
    ----------
    policy : str
    seed : int
    pod_names : ndarray of object, shape (P,)
    node_names : ndarray of object, shape (N,)
        The cluster's node names (ascending).
    node_index : ndarray of int64, shape (P,)
        Index into ``node_names`` of each pod's node, ``-1`` when the pod could not be placed.
    gpu_assignment : ndarray of bool, shape (P, G)
        ``[i, g]`` is True when pod ``i`` uses GPU ``g`` (0-based) of its node.
    arrived_milli : ndarray of int64, shape (P,)
        Cumulative GPU request (``num_gpu * gpu_milli``) of pods ``0..i``, placed or not.
    used_milli : ndarray of int64, shape (P,)
        Allocated milli-GPU in the cluster after event ``i``.
    frag_milli : ndarray of float64, shape (P,) or None
        Cluster fragment amount ``F`` after event ``i`` (only with ``track_fragmentation``).
    gpu_capacity_milli : int
        ``1000 *`` number of GPUs in the cluster.
    elapsed_s : float
        Wall time of the placement loop (excluded from equality).
    """

    policy: str
    seed: int
    pod_names: np.ndarray
    node_names: np.ndarray
    node_index: np.ndarray
    gpu_assignment: np.ndarray
    arrived_milli: np.ndarray
    used_milli: np.ndarray
    frag_milli: np.ndarray | None
    gpu_capacity_milli: int
    elapsed_s: float = field(compare=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlacementResult):
            return NotImplemented
        arrays = ("pod_names", "node_names", "node_index", "gpu_assignment", "used_milli")
        return (
            self.policy == other.policy
            and self.seed == other.seed
            and self.gpu_capacity_milli == other.gpu_capacity_milli
            and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def n_pods(self) -> int:
        """Number of pods ``P``."""
        return len(self.pod_names)

    @property
    def placed(self) -> np.ndarray:
        """``(P,)`` bool: pods that got a node."""
        return self.node_index >= 0

    @property
    def n_failed(self) -> int:
        """Pods that fitted on no node."""
        return int((~self.placed).sum())

    @property
    def pods_per_second(self) -> float:
        """Placement throughput of the run."""
        return self.n_pods / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    @property
    def gpu_alloc_ratio(self) -> float:
        """Allocated share of the cluster's GPU milli at the end of the stream (0..1)."""
        if not self.n_pods or not self.gpu_capacity_milli:
            return 0.0
        return float(self.used_milli[-1]) / self.gpu_capacity_milli

    def gpus_of(self, i: int) -> list[int]:
        """0-based GPU indices of pod ``i`` on its node (empty for CPU-only or failed pods)."""
        return np.flatnonzero(self.gpu_assignment[i]).tolist()

    def to_frame(self) -> pd.DataFrame:
        """The CLI output: columns ``name, node, gpus`` (one row per pod, stream order).

        ``node`` is ``""`` for a pod that could not be placed; ``gpus`` the ``|``-joined GPU
        indices (``""`` for CPU-only pods).
        """
        names = np.append(self.node_names.astype(object), "")  # index -1 -> ""
        node = [str(n) for n in names[self.node_index]]
        gpus = ["|".join(map(str, np.flatnonzero(row))) for row in self.gpu_assignment]
        pods = [str(n) for n in self.pod_names]
        return pd.DataFrame(
            {
                "name": pd.Series(pods, dtype=object),
                "node": pd.Series(node, dtype=object),
                "gpus": pd.Series(gpus, dtype=object),
            }
        )


def _policy(policy: str | PlacementPolicy) -> PlacementPolicy:
    if isinstance(policy, PlacementPolicy):
        return policy
    cls = policy_class(str(policy))
    if cls is None:
        raise ConfigError(f"parameter policy must be one of {sorted(POLICIES)}, got {policy!r}")
    return cls()


def simulate(
    cluster: Cluster,
    pods: PodStream,
    policy: str | PlacementPolicy = DEFAULT_POLICY,
    *,
    profile: PodStream | None = None,
    typical: TypicalPods | None = None,
    rank: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    seed: int = 0,
    track_fragmentation: TypicalPods | None = None,
    progress: ProgressFn | None = None,
) -> PlacementResult:
    """Place a validated pod stream on a validated cluster, one pod at a time.

    Parameters
    ----------
    cluster : Cluster
    pods : PodStream
        Arrival order = array order.
    policy : str or PlacementPolicy
        A name from :data:`POLICIES` or a fresh policy instance (it is bound to this run).
    profile : PodStream, optional
        A historical pod list; fragmentation-aware policies learn their workload statistics
        (typical pods, demand per pod class) from it, or online from the arrivals when absent.
    typical : TypicalPods, optional
        Typical pods to use instead of those derived from ``profile`` (protocol section 3).
    rank : ndarray of int64, shape (N,), optional
        Tie-break priority per node (smaller wins); default: a permutation drawn from ``rng``.
    rng : numpy.random.Generator, optional
        Default: ``numpy.random.default_rng(seed)``. The rank is drawn first, then randomised
        policies draw from the same generator.
    seed : int
        Recorded in the result; seeds ``rng`` when ``rng`` is not given.
    track_fragmentation : TypicalPods, optional
        When given, record the cluster fragment amount after every event under this
        distribution (costs about 20 % more time).
    progress : callable, optional
        ``progress(done, total)`` every 512 pods and at the end.

    Returns
    -------
    PlacementResult
    """
    gen = rng if rng is not None else np.random.default_rng(seed)
    n_nodes = cluster.n_nodes
    if rank is None:
        rank = gen.permutation(n_nodes).astype(np.int64)
    rank = np.asarray(rank, dtype=np.int64)
    if rank.shape != (n_nodes,):
        raise ConfigError(f"parameter rank must have shape ({n_nodes},), got {rank.shape}")
    state = ClusterState(cluster)
    access = (
        np.stack([cluster.access(parse_spec(s)) for s in pods.specs])
        if len(pods.specs)
        else (np.ones((1, n_nodes), dtype=bool))
    )
    shape = np.stack([pods.cpu_milli, pods.gpu_milli, pods.num_gpu], axis=1)
    shape_id = (
        np.unique(shape, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
        if len(pods)
        else np.zeros(0, dtype=np.int64)
    )
    pol = _policy(policy)
    ctx = RunContext(
        cluster=cluster,
        state=state,
        pods=pods,
        access=access,
        rank=rank,
        rng=gen,
        profile=profile,
        typical=typical
        if typical is not None
        else (TypicalPods.from_stream(profile) if profile is not None else None),
        keys=PodKeys.of(pods),
        shape_id=shape_id,
    )
    pol.bind(ctx)

    n_pods = len(pods)
    g_max = cluster.max_gpus
    node_index = np.full(n_pods, -1, dtype=np.int64)
    assignment = np.zeros((n_pods, g_max), dtype=bool)
    used = np.zeros(n_pods, dtype=np.int64)
    frag = np.zeros(n_pods, dtype=np.float64) if track_fragmentation is not None else None
    tracker = None
    if track_fragmentation is not None:
        tracker = FragTracker(FragmentationModel(track_fragmentation, cluster), state)
    arrived = np.cumsum(pods.gpu_request) if n_pods else np.zeros(0, dtype=np.int64)
    c_l, mem_l, k_l, m_l = ctx.c, ctx.mem, ctx.k, ctx.m
    spec_l = pods.spec_id.tolist()
    used_now = 0
    start = time.perf_counter()
    for i in range(n_pods):
        c, mem, k, m = c_l[i], mem_l[i], k_l[i], m_l[i]
        pol.arrive(i)
        feasible = state.feasible(c, mem, k, m, access[spec_l[i]])
        if len(feasible):
            node = int(feasible[0]) if len(feasible) == 1 else pol.choose(i, feasible)
            gpus = pol.select_gpus(i, node) if m > 0 else np.zeros(0, dtype=np.int64)
            state.commit(node, c, mem, m, gpus)
            pol.committed(i, node, gpus)
            node_index[i] = node
            assignment[i, gpus] = True
            used_now += m * len(gpus)
            if tracker is not None:
                tracker.update(node)
        used[i] = used_now
        if frag is not None and tracker is not None:
            frag[i] = tracker.value.sum()
        if progress is not None and (i + 1) % 512 == 0:
            progress(i + 1, n_pods)
    elapsed = time.perf_counter() - start
    if progress is not None:
        progress(n_pods, n_pods)
    for a in (node_index, assignment, used, arrived):
        a.flags.writeable = False
    if frag is not None:
        frag.flags.writeable = False
    return PlacementResult(
        policy=pol.name,
        seed=seed,
        pod_names=pods.names,
        node_names=cluster.names,
        node_index=node_index,
        gpu_assignment=assignment,
        arrived_milli=arrived.astype(np.int64),
        used_milli=used,
        frag_milli=frag,
        gpu_capacity_milli=cluster.gpu_capacity_milli,
        elapsed_s=elapsed,
    )


def place(
    nodes_df: pd.DataFrame,
    pods_df: pd.DataFrame,
    policy: str = DEFAULT_POLICY,
    profile_df: pd.DataFrame | None = None,
    seed: int = 0,
    *,
    track_fragmentation: bool = False,
    progress: ProgressFn | None = None,
) -> PlacementResult:
    """Place an arrival stream of pods on a cluster, online, one pod at a time.

    Parameters
    ----------
    nodes_df : DataFrame
        openb nodes: ``sn, cpu_milli, memory_mib, gpu, model``.
    pods_df : DataFrame
        openb pods in arrival order: ``name, cpu_milli, memory_mib, num_gpu, gpu_milli`` and
        optionally ``gpu_spec`` (extra columns ignored).
    policy : str
        One of :data:`POLICIES` (default :data:`DEFAULT_POLICY`, our best).
    profile_df : DataFrame, optional
        A historical pod list (same format as ``pods_df``) from which fragmentation-aware
        policies take the typical pods; without it they learn them from the arrivals so far.
    seed : int
        Seeds the tie-break rank of the nodes (and the Random policy).
    track_fragmentation : bool
        Also record the cluster fragment amount per event (needs ``profile_df``).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    PlacementResult

    Raises
    ------
    InvalidFrameError
        A frame misses a column or holds an invalid value (column and rows named).
    ConfigError
        Unknown policy.
    """
    cluster = Cluster.from_frame(nodes_df)
    pods = PodStream.from_frame(pods_df)
    profile = None if profile_df is None else PodStream.from_frame(profile_df, frame="profile")
    typical = None if profile is None else TypicalPods.from_stream(profile)
    if track_fragmentation and typical is None:
        raise ConfigError("parameter track_fragmentation needs profile_df, got profile_df=None")
    return simulate(
        cluster,
        pods,
        policy,
        profile=profile,
        typical=typical,
        seed=seed,
        track_fragmentation=typical if track_fragmentation else None,
        progress=progress,
    )
