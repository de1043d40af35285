"""Fragmentation-gradient policies: FGD (ATC'23) and ours, ``fgd-pressure``.

Both score a node by how much placing the pod there lowers the node's fragment value
(:class:`~optimizer.placement.fragmentation.FragmentationModel`), i.e. ``value(now) -
value(after)`` (the *gain*, in milli-GPU). Scores are cached per pod shape and node and refreshed
only for nodes changed since (a node changes once per placed pod), and the fragment statistics of
each node are updated incrementally, so a pod costs a few dozen vectorised numpy operations.
"""

from __future__ import annotations

import numpy as np

from optimizer.placement.base import PlacementPolicy, RunContext
from optimizer.placement.fragmentation import DEFAULT_COVERAGE, FragmentationModel, PodKeys
from optimizer.placement.fragmentation import TypicalPods as TypicalPods
from optimizer.placement.pressure import ConfigPressure
from optimizer.placement.records import GPU_MILLI, KIND_SHARE
from optimizer.placement.state import ClusterState, best_fit


def _sigmoid_thresholds() -> np.ndarray:
    """Smallest doubles ``x`` with ``int(100 * sigmoid(x / 1000)) >= s`` for ``s = 1..100``.

    ``int(100 * sigmoid(x / 1000))`` is monotone in ``x``, so
    ``searchsorted(thresholds, x, "right")`` equals it exactly (found by bisection on doubles).
    """

    def f(x: float) -> int:
        return int(100.0 * (1.0 / (1.0 + np.exp(-x / 1000.0))))

    out = np.empty(100)
    for s in range(1, 101):
        lo, hi = -1e6, 1e6
        while True:
            mid = (lo + hi) / 2.0
            if mid in (lo, hi):
                break
            if f(mid) >= s:
                hi = mid
            else:
                lo = mid
        out[s - 1] = hi
    return out


_THRESHOLDS = _sigmoid_thresholds()


def sigmoid_score(gain: np.ndarray) -> np.ndarray:
    """``int(100 * sigmoid(gain / 1000))`` elementwise, as int64 (``-inf`` gives 0)."""
    return np.searchsorted(_THRESHOLDS, gain, side="right")


class FragTracker:
    """Per-node fragment value under one model, and the gain of hypothetical placements.

    Keeps the per-share statistics (``cnt``, ``s``, ``gc``: shape ``(N, U)``) and the value
    ``(N,)`` of every node current; after a commit only the changed node is recomputed.
    """

    def __init__(self, model: FragmentationModel, state: ClusterState) -> None:
        self.model = model
        self.state = state
        self.model_id = state.cluster.model_id
        self.cnt, self.s, self.gc = model.stats(state.left)
        self.value = model.value(
            self.model_id, state.cpu_left, state.gpu_idle, self.cnt, self.s, self.gc
        )
        self._copies = GPU_MILLI // np.maximum(model.shares, 1)

    def update(self, node: int) -> None:
        """Recompute the statistics of one node after it changed."""
        st = self.state
        sl = slice(node, node + 1)
        cnt, s, gc = self.model.stats(st.left[sl])
        self.cnt[sl], self.s[sl] = cnt, s
        if gc is not None and self.gc is not None:
            self.gc[sl] = gc
        self.value[sl] = self.model.value(
            self.model_id[sl], st.cpu_left[sl], st.gpu_idle[sl], cnt, s, gc
        )

    def gain_whole(self, idx: np.ndarray, c: int, k: int) -> np.ndarray:
        """Gain of a CPU-only (``k == 0``) or a k-whole-GPU pod on nodes ``idx``, shape ``(B,)``.

        Which idle GPUs are taken does not matter: an idle GPU satisfies every typical share, so
        each one taken lowers every count by 1, every sum by 1000 and ``gc`` by ``1000 // m_u``.
        Meaningless on nodes where the pod does not fit (callers pass feasible nodes).
        """
        st = self.state
        taken = GPU_MILLI * k
        cnt = np.maximum(self.cnt[idx] - k, 0)
        s = self.s[idx] - taken
        gc = None if self.gc is None else np.maximum(self.gc[idx] - k * self._copies, 0)
        after = self.model.value(
            self.model_id[idx], st.cpu_left[idx] - c, st.gpu_idle[idx] - taken, cnt, s, gc
        )
        return self.value[idx] - after

    def gain_share(self, idx: np.ndarray, c: int, m: int) -> np.ndarray:
        """Gain of a one-GPU sharing pod of share ``m`` on each GPU of nodes ``idx``.

        Returns
        -------
        ndarray of float64, shape (B, G)
            ``-inf`` where the GPU has less than ``m`` idle.
        """
        st = self.state
        shares = self.model.shares
        left = st.left[idx]  # (B, G)
        after_left = left - m
        ok = after_left >= 0
        after_left *= ok  # GPUs that cannot take the pod: any valid state, masked below
        lu, au = left[..., None], after_left[..., None]
        drop = lu >= shares  # (B, G, U)
        add = au >= shares
        cnt = self.cnt[idx][:, None, :] - drop + add
        s = self.s[idx][:, None, :] - lu * drop + au * add
        gc = None
        if self.gc is not None:
            gc = self.gc[idx][:, None, :] - lu // shares + au // shares
        after = self.model.value(
            self.model_id[idx][:, None],
            (st.cpu_left[idx] - c)[:, None],
            (st.gpu_idle[idx] - m)[:, None],
            cnt,
            s,
            gc,
        )
        gain = self.value[idx][:, None] - after
        gain[~ok] = -np.inf
        return gain

    def gain_general(self, idx: np.ndarray, c: int, k: int, m: int) -> np.ndarray:
        """Gain of a k-GPU pod with share ``m < 1000`` (best-fit GPUs), shape ``(B,)``."""
        st = self.state
        after_left = st.left[idx].copy()
        for r, n in enumerate(idx):
            after_left[r, best_fit(st.left[n], k, m)] -= m
        after = self.model.value_of(self.model_id[idx], st.cpu_left[idx] - c, after_left)
        return self.value[idx] - after


class OnlineTypical:
    """Typical pods learnt causally from the arrivals seen so far.

    The distribution is re-derived after the first arrival, when the number of arrivals reaches
    a power of two from 16 on, and then every ``period`` arrivals, so a prefix of the stream
    always sees the same sequence of distributions.
    """

    def __init__(self, keys: PodKeys, *, coverage: float = DEFAULT_COVERAGE, period: int = 4096):
        self.keys = keys
        self.coverage = coverage
        self.period = period
        self.counts = np.zeros(keys.n_keys, dtype=np.int64)
        self.seen = 0

    def observe(self, i: int) -> TypicalPods | None:
        """Count pod ``i``; return a new distribution when one is due, else ``None``."""
        self.counts[self.keys.key_id[i]] += 1
        self.seen += 1
        n = self.seen
        due = n == 1 or (n >= 16 and (n & (n - 1)) == 0) or n % self.period == 0
        return self.keys.typical(self.counts, coverage=self.coverage) if due else None


class _GradientPolicy(PlacementPolicy):
    """Shared plumbing: fragment model, tracker and the per-shape score cache.

    The typical pods come from the profile when one is given, else they are learnt online
    (:class:`OnlineTypical`). Subclasses turn gains into scores in :meth:`rate_share` and
    :meth:`rate_whole`, and may adjust the cached scores per pod in :meth:`adjust`.
    """

    #: Weight of the capacity-aware fragment in the model (0 = FGD's F only).
    capacity_weight: float = 0.0

    def bind(self, ctx: RunContext) -> None:
        super().bind(ctx)
        n = ctx.cluster.n_nodes
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._max_cached = max(64, min(4096, 50_000_000 // max(1, 24 * n)))
        self._gpu_all = np.zeros(n, dtype=np.int64)
        self._scored = -1  # the pod whose scores (and GPU choices) are in _gpu_all
        self.learner = None if ctx.typical is not None else OnlineTypical(ctx.keys)
        if ctx.typical is not None:
            self._set_model(ctx.typical)
        else:
            self._set_model(ctx.keys.typical(np.zeros(ctx.keys.n_keys, dtype=np.int64)))

    def _set_model(self, typical: TypicalPods) -> None:
        model = FragmentationModel(typical, self.ctx.cluster, capacity_weight=self.capacity_weight)
        self.tracker = FragTracker(model, self.state)
        self._cache.clear()

    def arrive(self, i: int) -> None:
        if self.learner is not None:
            typical = self.learner.observe(i)
            if typical is not None:
                self._set_model(typical)

    # -- hooks ---------------------------------------------------------------------------------
    def rate_share(self, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Node score and chosen GPU from the per-GPU gains ``(B, G)`` of a sharing pod."""
        raise NotImplementedError

    def rate_whole(self, gain: np.ndarray) -> np.ndarray:
        """Node score from the gains ``(B,)`` of a CPU-only or whole-GPU pod."""
        raise NotImplementedError

    def adjust(self, i: int, feasible: np.ndarray, score: np.ndarray) -> np.ndarray:
        """Final scores of the feasible nodes (default: the cached scores unchanged)."""
        return score

    # -- scoring -------------------------------------------------------------------------------
    def _compute(self, i: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ctx, tr = self.ctx, self.tracker
        c, k, m = ctx.c[i], ctx.k[i], ctx.m[i]
        if ctx.kind[i] == KIND_SHARE:
            return self.rate_share(tr.gain_share(idx, c, m))
        if m == 0 or m >= GPU_MILLI:
            gain = tr.gain_whole(idx, c, k if m > 0 else 0)
        else:
            gain = tr.gain_general(idx, c, k, m)
        return self.rate_whole(gain), np.zeros(len(idx), dtype=np.int64)

    def _cached(self, i: int, feasible: np.ndarray) -> np.ndarray:
        """Scores of pod ``i``'s shape on ``feasible``, recomputing nodes changed since."""
        key = int(self.ctx.shape_id[i])
        entry = self._cache.get(key)
        version = self.state.version
        if entry is None:
            if len(self._cache) >= self._max_cached:
                score, gpu = self._compute(i, feasible)
                self._gpu_all = np.zeros(len(version), dtype=np.int64)
                self._gpu_all[feasible] = gpu
                self._scored = i
                return score
            n = len(version)
            entry = (np.zeros(n), np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64))
            self._cache[key] = entry
        score_all, gpu_all, seen = entry
        vf = version[feasible]
        stale = feasible[seen[feasible] != vf]
        if len(stale):
            score, gpu = self._compute(i, stale)
            score_all[stale] = score
            gpu_all[stale] = gpu
            seen[stale] = version[stale]
        self._gpu_all = gpu_all
        self._scored = i
        return score_all[feasible]

    def scores(self, i: int, feasible: np.ndarray) -> np.ndarray:
        return self.adjust(i, feasible, self._cached(i, feasible))

    def select_gpus(self, i: int, node: int) -> np.ndarray:
        if self.ctx.kind[i] != KIND_SHARE:
            return best_fit(self.state.left[node], self.ctx.k[i], self.ctx.m[i])
        if self._scored != i:  # a lone feasible node is chosen without scoring
            self._cached(i, np.array([node], dtype=np.int64))
        return self._gpu_all[node : node + 1].copy()

    def committed(self, i: int, node: int, gpus: np.ndarray) -> None:
        self.tracker.update(node)


class FgdPolicy(_GradientPolicy):
    """Fragmentation gradient descent (protocol 6.6): minimise the expected GPU fragment.

    Score ``int(100 * sigmoid(gain / 1000))``; a sharing pod goes to the first GPU attaining the
    node's best score.
    """

    name = "fgd"
    summary = "fragmentation gradient descent, FGD ATC'23 (protocol 6.6)"

    def rate_share(self, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.where(np.isfinite(gain), sigmoid_score(gain), -1)
        return s.max(axis=1).astype(np.float64), s.argmax(axis=1)

    def rate_whole(self, gain: np.ndarray) -> np.ndarray:
        return sigmoid_score(gain).astype(np.float64)


class FgdPressurePolicy(_GradientPolicy):
    """Ours: capacity-aware fragment gradient with configuration-pressure reservation.

    Three changes to FGD, each general (no per-trace constants):

    1. **Capacity-aware fragment.** The gain adds ``capacity_weight`` times the gain of
       ``F_cap`` (:class:`FragmentationModel`), which counts the GPU milli that repeated copies of
       each typical pod could really use given the node's idle CPU. FGD's ``F`` deems a node's
       idle GPUs usable as soon as one typical pod fits, so it happily leaves GPUs next to
       exhausted CPU; ``F_cap`` sends CPU-heavy pods to CPU-rich nodes instead.
    2. **Configuration pressure.** Nodes are grouped into configurations (GPU model, GPU count,
       CPU, memory). From the profile (or the arrivals so far) each pod's *class* is the set of
       configurations that could host it; if every class spread its share of the future demand
       over its configurations in proportion to their idle GPU capacity, configurations that
       many restricted pods depend on (a GPU model named in ``gpu_spec``, the only nodes with
       enough CPU for a big pod) would carry more load. That excess load, refreshed every
       ``refresh`` arrivals against the current idle capacity, is charged per GPU-equivalent the
       pod takes on the node (its dominant share of the node's GPU, CPU and memory), so flexible
       pods keep off capacity that restricted pods will need.
    3. FGD's integer sigmoid of the combined gain, ties by the run's fixed node rank (a
       deterministic packing order); a sharing pod takes the GPU with the largest gain.
    """

    name = "fgd-pressure"
    summary = "ours: capacity-aware fragment gradient + configuration-pressure reservation"

    capacity_weight = 0.25
    pressure_weight = 1.0
    refresh = 256

    def bind(self, ctx: RunContext) -> None:
        super().bind(ctx)
        sample = ctx.profile if ctx.profile is not None else ctx.pods
        self.pressure = ConfigPressure(ctx.cluster, sample, weight=self.pressure_weight)
        self._online = ctx.profile is None
        if self._online:
            self._class_of = self.pressure.classes_of(ctx.pods)
            self._demand = np.zeros(self.pressure.n_classes)
            self._req = ctx.pods.gpu_request.astype(np.float64)
        else:
            self.pressure.set_demand_from(ctx.profile)  # type: ignore[arg-type]
        self._arrived = 0
        self.pressure.refresh(self.state.gpu_idle)

    def arrive(self, i: int) -> None:
        super().arrive(i)
        self._arrived += 1
        if self._online:
            cls = self._class_of[i]
            if cls >= 0:  # pods without GPU request belong to no class
                self._demand[cls] += self._req[i]
            if self._arrived == 1 or self._arrived % self.refresh == 0:
                self.pressure.set_demand(self._demand)
                self.pressure.refresh(self.state.gpu_idle)
        elif self._arrived % self.refresh == 0:
            self.pressure.refresh(self.state.gpu_idle)

    def rate_share(self, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return gain.max(axis=1), gain.argmax(axis=1)

    def rate_whole(self, gain: np.ndarray) -> np.ndarray:
        return gain

    def adjust(self, i: int, feasible: np.ndarray, score: np.ndarray) -> np.ndarray:
        ctx = self.ctx
        penalty = self.pressure.penalty(feasible, ctx.k[i] * ctx.m[i], ctx.c[i], ctx.mem[i])
        return sigmoid_score(score - penalty).astype(np.float64)
