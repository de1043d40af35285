"""Online GPU placement: pods arrive one at a time and each decision is final.

``place()`` takes openb-format frames and returns a :class:`PlacementResult` value object;
``simulate()`` is the same solver on validated :class:`Cluster` / :class:`PodStream` objects
(what-if runs and benchmarks reuse it). Policies: the FGD paper's baselines (``random``,
``firstfit``, ``bestfit``, ``dotprod``, ``gpuclustering``, ``gpupacking``, ``fgd``) and ours,
``fgd-pressure`` (the default).
"""

from optimizer.placement.engine import PlacementResult, place, simulate
from optimizer.placement.fragmentation import FragmentationModel, PodKeys, TypicalPods
from optimizer.placement.policies import DEFAULT_POLICY, POLICIES, PlacementPolicy, policy_class
from optimizer.placement.records import Cluster, PodStream

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "Cluster",
    "FragmentationModel",
    "PlacementPolicy",
    "PlacementResult",
    "PodKeys",
    "PodStream",
    "TypicalPods",
    "place",
    "policy_class",
    "simulate",
]
