"""Configuration pressure: how much restricted demand leans on each kind of node.

Nodes are grouped into *configurations* (GPU model, GPU count, milli-CPU, MiB). A pod's *class*
is the set of configurations that could host it on an empty node (``gpu_spec``, GPU count, CPU
and memory all fit). Given each class's share ``f_s`` of the GPU demand and the idle GPU milli
``I_j`` per configuration, the expected load of configuration ``j`` if every class spread its
share of a demand equal to the whole idle capacity proportionally over its configurations is

``load_j = sum_{s: j in A_s} f_s * sum(I) / sum_{j' in A_s} I_j'``.

Classes that may go anywhere add the same load everywhere; classes confined to few
configurations (a GPU model named in ``gpu_spec``, the only nodes with enough CPU for a large
pod) raise the load of those. The *pressure* ``r_j = load_j - min load`` is what a placement on
``j`` is charged per GPU-equivalent it takes.
"""

from __future__ import annotations

import numpy as np

from optimizer.placement.records import GPU_MILLI, Cluster, PodStream, parse_spec


class ConfigPressure:
    """Pressure per node configuration, and the per-pod penalty it implies.

    Parameters
    ----------
    cluster : Cluster
    sample : PodStream
        Pods that define the classes (the profile, or the stream when learning online).
    weight : float
        Multiplier ``lambda`` of the penalty.

    Attributes
    ----------
    config_of : ndarray of int64, shape (N,)
        Configuration index of each node.
    masks : ndarray of bool, shape (S, J)
        Configurations of each class.
    """

    def __init__(self, cluster: Cluster, sample: PodStream, *, weight: float = 1.0) -> None:
        self.cluster = cluster
        self.weight = float(weight)
        n = cluster.n_nodes
        table = (
            np.stack(
                [cluster.model_id, cluster.num_gpus, cluster.cpu_milli, cluster.memory_mib], axis=1
            )
            if n
            else np.zeros((0, 4), dtype=np.int64)
        )
        configs, inv = np.unique(table, axis=0, return_inverse=True)
        self.configs = configs
        self.config_of = inv.reshape(-1).astype(np.int64)
        self.n_configs = len(configs)
        hosts = self.host_matrix(sample)
        rows = hosts[sample.gpu_request > 0] if len(sample) else hosts
        self.masks = np.unique(rows, axis=0) if len(rows) else np.zeros((0, self.n_configs), bool)
        self.n_classes = len(self.masks)
        self._lookup = {row.tobytes(): s for s, row in enumerate(self.masks)}
        self.share = np.zeros(self.n_classes)
        gpus = cluster.num_gpus.astype(np.float64)
        has = gpus > 0
        # milli-GPU equivalent of one milli-CPU / one MiB on each node
        self._per_cpu = np.where(has, GPU_MILLI * gpus / np.maximum(cluster.cpu_milli, 1), 0.0)
        self._per_mem = np.where(has, GPU_MILLI * gpus / np.maximum(cluster.memory_mib, 1), 0.0)
        self.pressure = np.zeros(self.n_configs)
        self._pen_gpu = np.zeros(n)
        self._pen_cpu = np.zeros(n)
        self._pen_mem = np.zeros(n)

    def host_matrix(self, pods: PodStream) -> np.ndarray:
        """``(P, J)`` bool: configurations that could host each pod on an empty node."""
        cl = self.cluster
        cfg = self.configs
        spec_ok = np.ones((len(pods.specs), self.n_configs), dtype=bool)
        for s, text in enumerate(pods.specs):
            spec = parse_spec(text)
            if spec:
                spec_ok[s] = [m >= 0 and cl.models[m] in spec for m in cfg[:, 0]]
        gpu = pods.gpu_milli > 0
        ok = (pods.cpu_milli[:, None] <= cfg[None, :, 2]) & (
            pods.memory_mib[:, None] <= cfg[None, :, 3]
        )
        ok &= ~gpu[:, None] | (spec_ok[pods.spec_id] & (pods.num_gpu[:, None] <= cfg[None, :, 1]))
        return ok

    def classes_of(self, pods: PodStream) -> np.ndarray:
        """Class index of each pod of ``pods`` (``-1`` for a pattern unseen in the sample)."""
        hosts = self.host_matrix(pods)
        return np.array([self._lookup.get(row.tobytes(), -1) for row in hosts], dtype=np.int64)

    def set_demand(self, demand: np.ndarray) -> None:
        """Set the GPU demand per class (any scale; only shares matter)."""
        total = float(demand.sum())
        self.share = demand / total if total > 0 else np.zeros(self.n_classes)

    def set_demand_from(self, pods: PodStream) -> None:
        """Set the demand per class from a pod list (GPU milli requested per class)."""
        cls = self.classes_of(pods)
        ok = cls >= 0
        self.set_demand(
            np.bincount(
                cls[ok], weights=pods.gpu_request[ok].astype(float), minlength=self.n_classes
            )
        )

    def refresh(self, gpu_idle: np.ndarray) -> None:
        """Recompute the pressure against the current idle GPU milli per node ``(N,)``."""
        idle = np.bincount(self.config_of, weights=gpu_idle, minlength=self.n_configs)
        if self.n_classes == 0 or idle.sum() <= 0:
            self.pressure = np.zeros(self.n_configs)
        else:
            cap = self.masks.astype(np.float64) @ idle  # (S,)
            coef = np.where(cap > 0, self.share * idle.sum() / np.maximum(cap, 1e-9), 0.0)
            load = coef @ self.masks.astype(np.float64)  # (J,)
            live = idle > 0
            base = load[live].min() if live.any() else 0.0
            self.pressure = np.where(live, load - base, 0.0)
        r = self.weight * self.pressure[self.config_of]
        self._pen_gpu = r
        self._pen_cpu = r * self._per_cpu
        self._pen_mem = r * self._per_mem

    def penalty(
        self, nodes: np.ndarray, gpu_milli: int, cpu_milli: int, mem_mib: int
    ) -> np.ndarray:
        """Charge (milli-GPU) of a pod on each of ``nodes``: pressure x dominant footprint.

        Parameters
        ----------
        nodes : ndarray of int64, shape (B,)
        gpu_milli : int
            Total GPU request ``k * m``.
        cpu_milli, mem_mib : int
            CPU and memory request.
        """
        pen = np.maximum(self._pen_cpu[nodes] * cpu_milli, self._pen_mem[nodes] * mem_mib)
        if gpu_milli:
            pen = np.maximum(pen, self._pen_gpu[nodes] * gpu_milli)
        return pen
