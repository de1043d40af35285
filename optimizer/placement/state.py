"""Mutable working state of one placement run, and the GPU-selection rules inside a node.

The state lives only inside :func:`optimizer.placement.simulate`; callers never see it
mutate (the solver is side-effect free from the outside).
"""

from __future__ import annotations

import numpy as np

from optimizer.placement.records import GPU_MILLI, Cluster

#: Larger than any idle milli value; masks GPUs that cannot take a pod.
_BIG = np.int64(1 << 40)


class ClusterState:
    """Idle resources of every node, as numpy arrays indexed like :class:`Cluster`.

    Parameters
    ----------
    cluster : Cluster

    Attributes
    ----------
    cpu_left, mem_left : ndarray of int64, shape (N,)
        Idle milli-CPU and MiB.
    left : ndarray of int64, shape (N, G)
        Idle milli-GPU per GPU; padding columns (``g >= num_gpus[n]``) hold 0 and are masked by
        :attr:`Cluster.gpu_mask`, so they never fit a GPU request and add nothing to sums.
    nfree : ndarray of int64, shape (N,)
        Number of fully idle GPUs (``left == 1000``).
    max_left : ndarray of int64, shape (N,)
        Largest ``left`` of the node (0 without GPUs).
    gpu_idle : ndarray of int64, shape (N,)
        ``GL = left.sum(axis=1)``.
    version : ndarray of int64, shape (N,)
        Bumped on every change of the node; score caches compare against it.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.cpu_left = cluster.cpu_milli.astype(np.int64).copy()
        self.mem_left = cluster.memory_mib.astype(np.int64).copy()
        self.left = np.where(cluster.gpu_mask, GPU_MILLI, 0).astype(np.int64)
        self.nfree = cluster.num_gpus.astype(np.int64).copy()
        self.max_left = np.where(cluster.num_gpus > 0, GPU_MILLI, 0).astype(np.int64)
        self.gpu_idle = (cluster.num_gpus * GPU_MILLI).astype(np.int64)
        self.version = np.zeros(cluster.n_nodes, dtype=np.int64)

    def feasible(self, c: int, mem: int, k: int, m: int, access: np.ndarray) -> np.ndarray:
        """Indices (ascending) of nodes that can host a pod (protocol 5.2).

        Parameters
        ----------
        c, mem : int
            Requested milli-CPU and MiB.
        k, m : int
            Number of GPUs and per-GPU share (``m == 0``: no GPU resource).
        access : ndarray of bool, shape (N,)
            Nodes whose GPU model the pod's ``gpu_spec`` accepts.
        """
        ok = (self.cpu_left >= c) & (self.mem_left >= mem)
        if m > 0:
            ok &= access
            if m >= GPU_MILLI:
                ok &= self.nfree >= k
            elif k == 1:
                ok &= self.max_left >= m
            else:
                ok &= (self.left >= m).sum(axis=1) >= k
        return np.flatnonzero(ok)

    def commit(self, node: int, c: int, mem: int, m: int, gpus: np.ndarray) -> None:
        """Take ``c`` milli-CPU, ``mem`` MiB and ``m`` milli on each GPU in ``gpus``."""
        self.cpu_left[node] -= c
        self.mem_left[node] -= mem
        if len(gpus):
            row = self.left[node]
            row[gpus] -= m
            self.nfree[node] = int((row == GPU_MILLI).sum())
            self.max_left[node] = int(row.max())
            self.gpu_idle[node] -= m * len(gpus)
        self.version[node] += 1


def lowest_fit(row: np.ndarray, k: int, m: int) -> np.ndarray:
    """The ``k`` lowest-index GPUs with ``left >= m`` (first-fit; whole-GPU rule when m=1000)."""
    if m <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(row >= m)[:k]


def best_fit(row: np.ndarray, k: int, m: int) -> np.ndarray:
    """GPUs for a pod by the protocol's best-fit rule.

    Whole-GPU pods (``m == 1000``) take the ``k`` lowest-index idle GPUs; a one-GPU pod takes the
    GPU with the smallest ``left >= m`` (lowest index on ties); a k-GPU pod with ``m < 1000`` the
    ``k`` smallest such GPUs (stable by index).
    """
    if m <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    if m >= GPU_MILLI:
        return np.flatnonzero(row >= GPU_MILLI)[:k]
    key = np.where(row >= m, row, _BIG)
    if k == 1:
        return np.array([int(np.argmin(key))], dtype=np.int64)
    return np.sort(np.argsort(key, kind="stable")[:k])
