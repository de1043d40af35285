"""The registry of placement policies (one small strategy class per policy)."""

from __future__ import annotations

from optimizer.placement.base import PlacementPolicy, RunContext
from optimizer.placement.baselines import (
    BestFitPolicy,
    DotProdPolicy,
    FirstFitPolicy,
    GpuClusteringPolicy,
    GpuPackingPolicy,
    RandomPolicy,
)
from optimizer.placement.gradient import FgdPolicy, FgdPressurePolicy

#: Policies by name. The baselines follow ``fgd_protocol.md``; ``fgd-pressure`` is ours.
POLICIES: dict[str, type[PlacementPolicy]] = {
    cls.name: cls
    for cls in (
        RandomPolicy,
        FirstFitPolicy,
        BestFitPolicy,
        DotProdPolicy,
        GpuClusteringPolicy,
        GpuPackingPolicy,
        FgdPolicy,
        FgdPressurePolicy,
    )
}

#: Our best policy, the default of ``place()`` and ``forecaster place``.
DEFAULT_POLICY = FgdPressurePolicy.name


def _norm(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch.isalnum())


def policy_class(name: str) -> type[PlacementPolicy] | None:
    """The policy class called ``name`` (case, ``-`` and ``_`` ignored), or None."""
    key = _norm(name)
    for cls_name, cls in POLICIES.items():
        if _norm(cls_name) == key:
            return cls
    return None


__all__ = ["DEFAULT_POLICY", "POLICIES", "PlacementPolicy", "RunContext", "policy_class"]
