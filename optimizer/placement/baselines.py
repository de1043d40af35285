"""The baseline policies of the FGD paper, following ``fgd_protocol.md`` section 6 exactly.

Integer scores, ties broken by the run's fixed random node rank (smallest rank wins), best-fit GPU
selection inside the chosen node (random-fit for Random), lowest-index free GPUs for whole-GPU pods.
"""

from __future__ import annotations

import numpy as np

from optimizer.placement.base import PlacementPolicy, RunContext
from optimizer.placement.records import GPU_MILLI, KIND_SHARE
from optimizer.placement.state import best_fit, lowest_fit

#: Normalising constants of the reference scorers (largest node: 128 cores, 8 GPUs).
_CPU_NORM = 128_000.0
_GPU_NORM = 8_000.0


class RandomPolicy(PlacementPolicy):
    """A uniformly random feasible node; a uniformly random fitting GPU for sharing pods."""

    name = "random"
    summary = "uniformly random feasible node, random-fit GPU"

    def choose(self, i: int, feasible: np.ndarray) -> int:
        return int(feasible[self.ctx.rng.integers(len(feasible))])

    def select_gpus(self, i: int, node: int) -> np.ndarray:
        k, m = self.ctx.k[i], self.ctx.m[i]
        if self.ctx.kind[i] != KIND_SHARE:
            return best_fit(self.state.left[node], k, m)
        fit = np.flatnonzero(self.state.left[node] >= m)
        return fit[[int(self.ctx.rng.integers(len(fit)))]]


class FirstFitPolicy(PlacementPolicy):
    """The first feasible node in name order, its lowest-index GPUs that fit."""

    name = "firstfit"
    summary = "first feasible node in name order, lowest-index GPUs that fit"

    def choose(self, i: int, feasible: np.ndarray) -> int:
        return int(feasible[0])

    def select_gpus(self, i: int, node: int) -> np.ndarray:
        return lowest_fit(self.state.left[node], self.ctx.k[i], self.ctx.m[i])


class BestFitPolicy(PlacementPolicy):
    """Least idle CPU and GPU left after placement, min-max normalised per pod (protocol 6.5)."""

    name = "bestfit"
    summary = "least leftover CPU+GPU (protocol 6.5)"

    def scores(self, i: int, feasible: np.ndarray) -> np.ndarray:
        ctx, st = self.ctx, self.state
        c = ctx.c[i] if ctx.c[i] > 0 else 100
        req = ctx.k[i] * ctx.m[i]
        waste = (
            0.5 * (st.cpu_left[feasible] - c) / _CPU_NORM
            + 0.5 * (st.gpu_idle[feasible] - req) / _GPU_NORM
        )
        raw = np.trunc((1.0 - waste) * 100.0).astype(np.int64)
        lo, hi = raw.min(), raw.max()
        if hi == lo:
            return np.zeros_like(raw)
        return (raw - lo) * 100 // (hi - lo)


class DotProdPolicy(PlacementPolicy):
    """Tetris-style dot product of idle resources and request (protocol 6.2)."""

    name = "dotprod"
    summary = "Tetris dot product, merged GPU dimension (protocol 6.2)"

    def scores(self, i: int, feasible: np.ndarray) -> np.ndarray:
        ctx, st = self.ctx, self.state
        c = ctx.c[i] if ctx.c[i] > 0 else 100
        req = ctx.k[i] * ctx.m[i]
        dot = (st.cpu_left[feasible] / _CPU_NORM) * (c / _CPU_NORM) + (
            st.gpu_idle[feasible] / _GPU_NORM
        ) * (req / _GPU_NORM)
        return np.trunc(100.0 * (1.0 - dot / 2.0)).astype(np.int64)


class GpuClusteringPolicy(PlacementPolicy):
    """Keep GPU pods of one kind together (protocol 6.3)."""

    name = "gpuclustering"
    summary = "cluster GPU pods of the same kind (protocol 6.3)"

    def bind(self, ctx: RunContext) -> None:
        super().bind(ctx)
        # tag 0 = sharing pod, tag k = k-GPU pod
        self.tags = np.zeros((ctx.cluster.n_nodes, ctx.cluster.max_gpus + 1), dtype=np.int64)
        self.n_gpu_pods = np.zeros(ctx.cluster.n_nodes, dtype=np.int64)

    def _tag(self, i: int) -> int:
        return 0 if self.ctx.kind[i] == KIND_SHARE else self.ctx.k[i]

    def scores(self, i: int, feasible: np.ndarray) -> np.ndarray:
        if self.ctx.m[i] == 0:
            return np.zeros(len(feasible), dtype=np.int64)
        base = (25 * (8000 - self.state.gpu_idle[feasible])) // 8000
        same = self.tags[feasible, self._tag(i)]
        total = self.n_gpu_pods[feasible]
        bonus = np.where(total == 0, 25, np.where(same == total, 75, np.where(same > 0, 50, 0)))
        return base + bonus

    def committed(self, i: int, node: int, gpus: np.ndarray) -> None:
        if self.ctx.m[i] > 0:
            self.tags[node, self._tag(i)] += 1
            self.n_gpu_pods[node] += 1


class GpuPackingPolicy(PlacementPolicy):
    """Prefer partly used GPUs, then used nodes, then small idle nodes (protocol 6.4)."""

    name = "gpupacking"
    summary = "fill partly used GPUs and nodes first (protocol 6.4)"

    def scores(self, i: int, feasible: np.ndarray) -> np.ndarray:
        k, m = self.ctx.k[i], self.ctx.m[i]
        if m == 0:
            return np.zeros(len(feasible), dtype=np.int64)
        st = self.state
        nfree = st.nfree[feasible]
        all_free = nfree == self.ctx.cluster.num_gpus[feasible]
        left = st.left[feasible]
        key = np.sort(np.where(left >= m, left, GPU_MILLI + 1), axis=1)[:, :k]
        used_free = (key == GPU_MILLI).sum(axis=1)
        pct = ((np.minimum(key, GPU_MILLI) * 100) // 1000).sum(axis=1)
        partial = np.where(
            used_free > 0, np.maximum(50 - used_free, 33), np.maximum(100 - pct // 10, 50)
        )
        return np.where(all_free, np.maximum(33 - nfree, nfree), partial)
