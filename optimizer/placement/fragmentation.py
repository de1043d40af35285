"""Typical pods and the GPU fragment measure ``F`` of FGD (Weng et al., ATC'23).

The *typical pods* are the most frequent pod shapes of a workload, keyed by
``(cpu_milli, gpu_milli, num_gpu, gpu_spec)`` with their popularity ``p_t``. A node's fragment
amount ``F`` is the expected idle GPU milli that a pod drawn from that distribution could *not*
use on the node:

``F = GL * sum_t p_t - sum_{t GPU pod, accessible, cL >= c_t, #{left >= m_t} >= k_t} p_t * S_{m_t}``

with ``GL`` the node's idle GPU milli and ``S_m`` the idle milli on GPUs with ``left >= m``.

Evaluating that sum over every typical pod for every candidate state is the cost of FGD. Here it
is compiled once per (distribution, cluster) into a table ``Z[u, model, b, cnt]`` — the total
weight of typical pods with per-GPU share ``m_u`` that fit a node of this model with CPU bucket
``b`` and ``cnt`` GPUs of ``left >= m_u`` — so that ``F = GL * sum(p) - sum_u Z[...] * S_u``
costs ``U`` table look-ups per state, ``U`` being the number of distinct typical GPU shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.placement.records import GPU_MILLI, Cluster, PodStream, parse_spec

_add = np.add.reduce

#: Share of the pods the typical pods cover (protocol: popularity threshold 95 %).
DEFAULT_COVERAGE = 0.95


@dataclass(frozen=True)
class TypicalPods:
    """A typical-pod distribution (protocol section 3).

    Attributes
    ----------
    cpu_milli, gpu_milli, num_gpu : ndarray of int64, shape (T,)
        Shape of each typical pod (``gpu_milli`` = per-GPU share ``m``; 0 for CPU-only).
    gpu_spec : tuple of str
        Raw ``gpu_spec`` of each typical pod (``""`` = any model).
    count : ndarray of int64, shape (T,)
        Number of pods with that key.
    weight : ndarray of float64, shape (T,)
        ``p_t = count / sum(count)``; empty when there are no pods.
    """

    cpu_milli: np.ndarray
    gpu_milli: np.ndarray
    num_gpu: np.ndarray
    gpu_spec: tuple[str, ...]
    count: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.count)

    @classmethod
    def from_counts(
        cls,
        cpu_milli: np.ndarray,
        gpu_milli: np.ndarray,
        num_gpu: np.ndarray,
        gpu_spec: list[str] | tuple[str, ...],
        count: np.ndarray,
        *,
        coverage: float = DEFAULT_COVERAGE,
    ) -> TypicalPods:
        """Keep the most popular keys until ``coverage`` of all pods is reached.

        Parameters
        ----------
        cpu_milli, gpu_milli, num_gpu, count : array-like of int, shape (K,)
            One entry per distinct key (keys must be distinct).
        gpu_spec : sequence of str, length K
        coverage : float
            The prefix (by count descending, ties by key descending) is the shortest whose
            cumulative count is ``>= coverage * sum(count)``.
        """
        if not 0.0 < coverage <= 1.0:
            raise ValueError(f"parameter coverage must be in (0, 1], got {coverage}")
        c = np.asarray(cpu_milli, dtype=np.int64)
        m = np.asarray(gpu_milli, dtype=np.int64)
        k = np.asarray(num_gpu, dtype=np.int64)
        n = np.asarray(count, dtype=np.int64)
        spec = list(gpu_spec)
        keep = n > 0
        idx = np.flatnonzero(keep)
        # count descending, then (c, m, k, spec) descending: sort ascending on negated keys.
        order = sorted(idx.tolist(), key=lambda i: (n[i], c[i], m[i], k[i], spec[i]), reverse=True)
        total = int(n[idx].sum())
        if total == 0:
            e = np.zeros(0, dtype=np.int64)
            return cls(e, e, e, (), e, np.zeros(0))
        csum = np.cumsum(n[order])
        stop = int(np.searchsorted(csum, coverage * total - 1e-9, side="left")) + 1
        sel = np.array(order[:stop], dtype=np.int64)
        cnt = n[sel]
        return cls(
            cpu_milli=c[sel],
            gpu_milli=m[sel],
            num_gpu=k[sel],
            gpu_spec=tuple(spec[i] for i in sel),
            count=cnt,
            weight=cnt / cnt.sum(),
        )

    @classmethod
    def from_stream(cls, pods: PodStream, *, coverage: float = DEFAULT_COVERAGE) -> TypicalPods:
        """Typical pods of a pod list (e.g. a historical profile).

        Parameters
        ----------
        pods : PodStream
            Every pod counts once; the order does not matter.
        coverage : float
            See :meth:`from_counts`.
        """
        keys = PodKeys.of(pods)
        return keys.typical(np.bincount(keys.key_id, minlength=keys.n_keys), coverage=coverage)


@dataclass(frozen=True)
class PodKeys:
    """The typical-pod key ``(cpu_milli, gpu_milli, num_gpu, gpu_spec)`` of every pod.

    Attributes
    ----------
    key_id : ndarray of int64, shape (P,)
        Key index of each pod of the stream.
    cpu_milli, gpu_milli, num_gpu : ndarray of int64, shape (K,)
    gpu_spec : tuple of str, length K
    """

    key_id: np.ndarray
    cpu_milli: np.ndarray
    gpu_milli: np.ndarray
    num_gpu: np.ndarray
    gpu_spec: tuple[str, ...]

    @property
    def n_keys(self) -> int:
        """Number of distinct keys ``K``."""
        return len(self.cpu_milli)

    @classmethod
    def of(cls, pods: PodStream) -> PodKeys:
        """Factorise the keys of a stream (CPU-only pods get ``num_gpu = 0``)."""
        k = np.where(pods.gpu_milli > 0, pods.num_gpu, 0)
        if len(pods) == 0:
            e = np.zeros(0, dtype=np.int64)
            return cls(e, e, e, e, ())
        table = np.stack([pods.cpu_milli, pods.gpu_milli, k, pods.spec_id], axis=1)
        uniq, inv = np.unique(table, axis=0, return_inverse=True)
        return cls(
            key_id=inv.reshape(-1).astype(np.int64),
            cpu_milli=uniq[:, 0].copy(),
            gpu_milli=uniq[:, 1].copy(),
            num_gpu=uniq[:, 2].copy(),
            gpu_spec=tuple(pods.specs[int(s)] for s in uniq[:, 3]),
        )

    def typical(self, counts: np.ndarray, *, coverage: float = DEFAULT_COVERAGE) -> TypicalPods:
        """Typical pods given a count per key (``(K,)`` int)."""
        return TypicalPods.from_counts(
            self.cpu_milli, self.gpu_milli, self.num_gpu, self.gpu_spec, counts, coverage=coverage
        )


class FragmentationModel:
    """The fragment measure compiled for one cluster and one typical-pod distribution.

    ``value`` is FGD's fragment amount ``F`` plus, when ``capacity_weight > 0``, that weight times
    the *capacity-aware* fragment ``F_cap`` used by our policy (see Notes).

    Parameters
    ----------
    typical : TypicalPods
    cluster : Cluster
        Supplies the GPU model list, the largest node CPU and the width ``G`` of GPU matrices.
    capacity_weight : float
        Weight ``w`` of ``F_cap`` (0 = plain FGD ``F``, and its statistics are not computed).

    Notes
    -----
    Per node state and distinct typical share ``m_u`` the statistics are
    ``cnt[u] = #{g: left_g >= m_u}``, ``s[u] = sum_{left_g >= m_u} left_g`` and
    ``gc[u] = sum_g left_g // m_u`` (copies of an ``m_u`` share that still fit). Then

    * ``F = GL * sum(p) - sum_u Z[u, model, bucket(cL), cnt[u]] * s[u]`` where ``Z`` sums the
      weights of the typical pods of share ``m_u`` that fit (model, CPU, ``cnt >= k``);
    * ``F_cap = GL * sum(p) - sum_u Y[u, model, level(cL), gc[u]]`` where ``Y`` sums, over the
      typical pods of share ``m_u``, ``p_t * k_t * m_t * min(gc // k_t, cL // c_t)``: the GPU milli
      that repeated copies of the typical pod could really use, CPU permitting. ``F`` counts all
      idle GPU of a node as usable as soon as *one* typical pod fits; ``F_cap`` also sees GPUs
      stranded because the node's CPU runs out first.
    """

    #: Most distinct CPU levels tabulated for ``F_cap`` (beyond that, CPU is quantised).
    MAX_CPU_LEVELS = 4096
    #: Largest ``gc`` tabulated (more copies than that are treated as that many).
    MAX_COPIES = 256

    def __init__(
        self, typical: TypicalPods, cluster: Cluster, *, capacity_weight: float = 0.0
    ) -> None:
        if not np.isfinite(capacity_weight) or capacity_weight < 0:
            raise ValueError(f"parameter capacity_weight must be >= 0, got {capacity_weight}")
        self.typical = typical
        self.capacity_weight = float(capacity_weight)
        g_max = cluster.max_gpus
        n_models = max(1, len(cluster.models))
        is_gpu = typical.gpu_milli > 0
        gpu_t = np.flatnonzero(is_gpu)
        self.total_weight = float(typical.weight.sum()) if len(typical) else 0.0
        self.shares = np.unique(typical.gpu_milli[is_gpu]).astype(np.int64)  # (U,)
        self.cpu_levels = np.unique(typical.cpu_milli[is_gpu]).astype(np.int64)  # (C,)
        n_u, n_c = len(self.shares), len(self.cpu_levels)
        self.n_shares = n_u
        self.max_gpus = g_max
        access = np.zeros((len(typical), n_models), dtype=bool)
        for t in gpu_t:
            spec = parse_spec(typical.gpu_spec[t])
            for j, model in enumerate(cluster.models):
                access[t, j] = not spec or model in spec
        u_of = np.searchsorted(self.shares, typical.gpu_milli)

        z = np.zeros((n_u, n_models, n_c + 1, g_max + 1), dtype=np.float64)
        for t in gpu_t:
            k_t = int(typical.num_gpu[t])
            if k_t > g_max:
                continue
            ci = int(np.searchsorted(self.cpu_levels, typical.cpu_milli[t]))
            z[u_of[t], access[t], ci + 1 :, k_t:] += typical.weight[t]
        self._z = z.reshape(-1)
        self._zs = ((n_c + 1) * (g_max + 1), g_max + 1)
        self._z_u = np.arange(n_u, dtype=np.int64) * n_models * self._zs[0]

        self.has_capacity = self.capacity_weight > 0 and n_u > 0
        self._shares_col = self.shares[:, None]
        self._idle_weight = self.total_weight * (
            1.0 + self.capacity_weight if self.has_capacity else 1.0
        )
        if self.has_capacity:
            self._build_capacity(typical, cluster, gpu_t, u_of, access, n_models)

    def _build_capacity(
        self,
        typical: TypicalPods,
        cluster: Cluster,
        gpu_t: np.ndarray,
        u_of: np.ndarray,
        access: np.ndarray,
        n_models: int,
    ) -> None:
        cpu_max = int(cluster.cpu_milli.max()) if cluster.n_nodes else 0
        steps = [
            np.arange(1, cpu_max // c + 1, dtype=np.int64) * c
            for c in np.unique(typical.cpu_milli[gpu_t])
            if c > 0
        ]
        levels = np.unique(np.concatenate(steps)) if steps else np.zeros(0, dtype=np.int64)
        if len(levels) > self.MAX_CPU_LEVELS:
            levels = np.unique(
                np.linspace(0, cpu_max, self.MAX_CPU_LEVELS + 1)[1:].astype(np.int64)
            )
        self.cap_levels = levels
        lv = np.concatenate([[0], levels])  # CPU value at the bottom of each level
        g_max = self.max_gpus
        copies = min(g_max * (GPU_MILLI // int(self.shares.min())), self.MAX_COPIES)
        self._gc_max = copies
        y = np.zeros((self.n_shares, n_models, len(lv), copies + 1), dtype=np.float64)
        gc = np.arange(copies + 1, dtype=np.int64)
        for t in gpu_t:
            k_t, m_t, c_t = (
                int(typical.num_gpu[t]),
                int(typical.gpu_milli[t]),
                int(typical.cpu_milli[t]),
            )
            if k_t > g_max:
                continue
            cpu_copies = lv // c_t if c_t > 0 else np.full(len(lv), copies, dtype=np.int64)
            usable = np.minimum.outer(cpu_copies, gc // k_t) * (k_t * m_t)
            y[u_of[t], access[t]] += typical.weight[t] * self.capacity_weight * usable
        self._y = y.reshape(-1)
        self._ys = (len(lv) * (copies + 1), copies + 1)
        self._y_u = np.arange(self.n_shares, dtype=np.int64) * n_models * self._ys[0]

    # -- statistics --------------------------------------------------------------------------
    def stats(self, left: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Per-share statistics of GPU states.

        Parameters
        ----------
        left : ndarray of int64, shape (..., G)
            Idle milli per GPU (0 for padding columns).

        Returns
        -------
        cnt, s, gc : ndarray of int64, shape (..., U)
            ``#{left >= m_u}``, the sum of ``left`` over those GPUs, and ``sum(left // m_u)``
            (``gc`` is None without the capacity term).
        """
        lu = left[..., None, :]
        sh = self._shares_col
        ge = lu >= sh
        cnt = _add(ge, -1)
        s = _add(lu * ge, -1)
        gc = _add(lu // sh, -1) if self.has_capacity else None
        return cnt, s, gc

    def value(
        self,
        model: np.ndarray,
        cpu_left: np.ndarray,
        gpu_idle: np.ndarray,
        cnt: np.ndarray,
        s: np.ndarray,
        gc: np.ndarray | None = None,
    ) -> np.ndarray:
        """Fragment value (``F + w * F_cap``, milli-GPU) of a batch of node states.

        Parameters
        ----------
        model, cpu_left, gpu_idle : ndarray, broadcastable to the batch shape
            GPU model index, idle milli-CPU and idle milli-GPU (``GL``) of each state.
        cnt, s, gc : ndarray of int64, shape (*batch, U)
            From :meth:`stats` (or updated incrementally).

        Returns
        -------
        ndarray of float64, shape batch
        """
        out = gpu_idle * self._idle_weight
        if self.n_shares == 0:  # no typical GPU pod: the batch shape comes from cnt (..., 0)
            return np.broadcast_to(np.asarray(out, dtype=np.float64), cnt.shape[:-1]).copy()
        # GPU-less nodes (model -1) have GL = 0 and s = 0: any row gives 0, so clip to row 0
        m = np.maximum(model, 0)
        base = self.cpu_levels.searchsorted(cpu_left, "right") * self._zs[1] + m * self._zs[0]
        out = out - _add(self._z[base[..., None] + (self._z_u + cnt)] * s, -1)
        if self.has_capacity and gc is not None:
            ybase = self.cap_levels.searchsorted(cpu_left, "right") * self._ys[1] + m * self._ys[0]
            idx = ybase[..., None] + (self._y_u + np.minimum(gc, self._gc_max))
            out = out - _add(self._y[idx], -1)
        return out

    def value_of(self, model: np.ndarray, cpu_left: np.ndarray, left: np.ndarray) -> np.ndarray:
        """Fragment value straight from per-GPU idle milli ``left`` of shape ``(B, G)``."""
        cnt, s, gc = self.stats(left)
        return self.value(model, cpu_left, left.sum(axis=-1), cnt, s, gc)


__all__ = ["DEFAULT_COVERAGE", "GPU_MILLI", "FragmentationModel", "PodKeys", "TypicalPods"]
