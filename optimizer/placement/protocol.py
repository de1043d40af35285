"""The FGD evaluation protocol: arrival-stream construction and the allocation-ratio curve.

Implements sections 4 and 8 of ``fgd_protocol.md`` with a numpy generator in place of Go's
``math/rand`` (the published figures are reproduced statistically, not bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.placement.records import PodStream

#: Tune ratio of the published runs: the stream is filled to 130 % of the GPU capacity.
TUNE_RATIO = 1.3


@dataclass(frozen=True)
class ArrivalStream:
    """A protocol stream: indices into the name-sorted original list, and the node rank.

    Attributes
    ----------
    order : ndarray of int64, shape (E,)
        Row indices into the original pod list (shuffled originals, then clones).
    n_originals : int
        The first ``n_originals`` entries are the shuffled originals.
    rank : ndarray of int64, shape (N,)
        Tie-break rank of each node (in ``sn`` order).
    """

    order: np.ndarray
    n_originals: int
    rank: np.ndarray


def arrival_stream(
    pods: PodStream,
    capacity_milli: int,
    n_nodes: int,
    rng: np.random.Generator,
    *,
    tune: float = TUNE_RATIO,
) -> ArrivalStream:
    """Build the arrival stream of one seed (protocol 4.1-4.5).

    Parameters
    ----------
    pods : PodStream
        The original pod list ``W`` (any order; it is sorted by name here).
    capacity_milli : int
        Cluster GPU capacity in milli-GPU.
    n_nodes : int
        Number of nodes (size of the tie-break permutation).
    rng : numpy.random.Generator
        Consumed in protocol order: shuffle, tune-up draws, rank permutation.
    tune : float
        Target total GPU request as a multiple of the capacity.
    """
    w = np.argsort(pods.names.astype(str), kind="stable")
    req = pods.gpu_request[w]
    per_gpu = pods.gpu_milli[w]
    order = list(w[rng.permutation(len(w))].tolist())
    total = int(req.sum())
    target = tune * capacity_milli
    n_orig = len(order)
    if total < target:
        while True:
            j = int(rng.integers(len(w)))
            if total + int(per_gpu[j]) > target:
                break
            order.append(int(w[j]))
            total += int(req[j])
    else:
        while total > target and order:
            j = int(rng.integers(len(order)))
            total -= int(pods.gpu_request[order.pop(j)])
        n_orig = len(order)
    rank = rng.permutation(n_nodes).astype(np.int64)
    return ArrivalStream(order=np.array(order, dtype=np.int64), n_originals=n_orig, rank=rank)


def alloc_curve(
    arrived_milli: np.ndarray, used_milli: np.ndarray, capacity_milli: int, *, top: int = 130
) -> np.ndarray:
    """Discrete allocation curve (protocol 8): value at x = 0..top, NaN where undefined.

    Parameters
    ----------
    arrived_milli, used_milli : ndarray, shape (E,)
        Cumulative arrived GPU request and allocated GPU milli after each event.
    capacity_milli : int

    Returns
    -------
    ndarray of float64, shape (top + 1,)
        Mean of ``round(100 * used / capacity, 2)`` over the events whose
        ``round(100 * arrived / capacity)`` equals x (or lies within x +- 1 when none does),
        rounded to 2 decimals.
    """
    alloc = np.round(100.0 * np.asarray(used_milli) / capacity_milli, 2)
    arrive = np.round(100.0 * np.asarray(arrived_milli) / capacity_milli, 0)
    out = np.full(top + 1, np.nan)
    for x in range(top + 1):
        sel = arrive == x
        if not sel.any():
            sel = (arrive >= x - 1) & (arrive <= x + 1)
        if sel.any():
            out[x] = round(float(alloc[sel].mean()), 2)
    return out
