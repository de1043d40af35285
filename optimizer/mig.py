"""NVIDIA Multi-Instance GPU (MIG) geometry: profiles, placements and fitting.

A MIG-capable GPU has 8 memory slices (positions 0..7) and 7 compute slices. A GPU
instance profile ``Ng.Mgb`` takes ``N`` compute slices and a fixed run of memory slices
that may only start at the positions NVIDIA allows (MIG user guide, "A100/H100 MIG
profiles" placement tables). A set of instances fits one GPU when their memory runs do
not overlap and their compute slices add up to at most 7.

Placement table (same shape for A100 40 GB, A100/H100 80 GB and H200 141 GB):

=========  ===============  ===========  =========================
profile    memory slices    starts       max per GPU
=========  ===============  ===========  =========================
1g (small) 1                0..6         7
1g (large) 2                0, 2, 4, 6   4
2g         2                0, 2, 4      3
3g         4                0, 4         2
4g         4                0            1
7g         8                0            1
=========  ===============  ===========  =========================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from features.exceptions import ConfigError

MEMORY_SLICES = 8
COMPUTE_SLICES = 7


@dataclass(frozen=True)
class MigProfile:
    """One GPU instance profile.

    Attributes
    ----------
    name : str
        NVIDIA name, e.g. ``"3g.40gb"``.
    compute_slices : int
        Compute slices (of 7) the instance takes.
    memory_slices : int
        Memory slices (of 8) the instance takes.
    memory_gib : float
        Usable memory of the instance in GB as NVIDIA names it.
    starts : tuple of int
        Memory-slice positions where the instance may start.
    """

    name: str
    compute_slices: int
    memory_slices: int
    memory_gib: float
    starts: tuple[int, ...]

    @property
    def compute_fraction(self) -> float:
        """Share of the GPU's compute (``compute_slices / 7``)."""
        return self.compute_slices / COMPUTE_SLICES

    @property
    def max_per_gpu(self) -> int:
        """Most instances of this profile alone on one GPU."""
        return len(fit_count_table(self))


def fit_count_table(profile: MigProfile) -> list[int]:
    """Starts used when a GPU holds only ``profile``, packed from position 0."""
    used: list[int] = []
    taken = [False] * MEMORY_SLICES
    compute = 0
    for s in profile.starts:
        span = range(s, s + profile.memory_slices)
        if compute + profile.compute_slices > COMPUTE_SLICES:
            break
        if all(not taken[i] for i in span):
            for i in span:
                taken[i] = True
            compute += profile.compute_slices
            used.append(s)
    return used


def _profiles(mem_names: tuple[str, str, str, str, str, str], mem: tuple[float, ...]) -> tuple:
    shapes = (
        (1, 1, tuple(range(7))),
        (1, 2, (0, 2, 4, 6)),
        (2, 2, (0, 2, 4)),
        (3, 4, (0, 4)),
        (4, 4, (0,)),
        (7, 8, (0,)),
    )
    return tuple(
        MigProfile(name, g, m, gib, starts)
        for name, gib, (g, m, starts) in zip(mem_names, mem, shapes, strict=True)
    )


#: MIG profiles per GPU model (keys as used by the catalog's ``gpu_model``).
PROFILES: dict[str, tuple[MigProfile, ...]] = {
    "A100-40GB": _profiles(
        ("1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
        (5, 10, 10, 20, 20, 40),
    ),
    "A100-80GB": _profiles(
        ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
        (10, 20, 20, 40, 40, 80),
    ),
    "H100-80GB": _profiles(
        ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
        (10, 20, 20, 40, 40, 80),
    ),
    "H200-141GB": _profiles(
        ("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"),
        (18, 35, 35, 71, 71, 141),
    ),
}

#: Catalog GPU model names that are MIG-capable, mapped to their profile table.
GPU_ALIASES: dict[str, str] = {
    "A100": "A100-40GB",
    "A100-40GB": "A100-40GB",
    "A100-80GB": "A100-80GB",
    "H100": "H100-80GB",
    "H100-80GB": "H100-80GB",
    "H200": "H200-141GB",
    "H200-141GB": "H200-141GB",
}


def profiles_for(gpu_model: str) -> tuple[MigProfile, ...]:
    """MIG profiles of ``gpu_model`` (empty tuple when the GPU has no MIG)."""
    key = GPU_ALIASES.get(gpu_model)
    return PROFILES[key] if key else ()


def is_mig_capable(gpu_model: str) -> bool:
    """Whether ``gpu_model`` supports MIG."""
    return bool(profiles_for(gpu_model))


def get_profile(gpu_model: str, name: str) -> MigProfile:
    """Look up one profile by name.

    Raises
    ------
    ConfigError
        When the GPU has no MIG or no such profile.
    """
    table = profiles_for(gpu_model)
    if not table:
        raise ConfigError(f"parameter gpu_model must be MIG-capable, got {gpu_model!r}")
    for p in table:
        if p.name == name:
            return p
    raise ConfigError(
        f"parameter profile must be one of {[p.name for p in table]} for {gpu_model}, got {name!r}"
    )


@dataclass(frozen=True)
class MigPlacement:
    """Where each instance of a fitted multiset sits on one GPU.

    Attributes
    ----------
    gpu_model : str
    slots : tuple of (str, int)
        ``(profile name, start memory slice)`` in the order of the request.
    compute_slices : int
        Compute slices used (<= 7).
    memory_slices : int
        Memory slices used (<= 8).
    """

    gpu_model: str
    slots: tuple[tuple[str, int], ...]
    compute_slices: int
    memory_slices: int


def fit_profiles(gpu_model: str, profiles: Sequence[str]) -> MigPlacement | None:
    """Place a multiset of profiles on one GPU, or return ``None`` if it cannot fit.

    Backtracking over the allowed starts, largest instances first; the search is
    exhaustive, so ``None`` means no valid placement exists.
    """
    table = {p.name: p for p in profiles_for(gpu_model)}
    if not table:
        raise ConfigError(f"parameter gpu_model must be MIG-capable, got {gpu_model!r}")
    reqs: list[tuple[int, MigProfile]] = []
    for pos, name in enumerate(profiles):
        if name not in table:
            raise ConfigError(
                f"parameter profiles must hold names from {sorted(table)}, got {name!r}"
            )
        reqs.append((pos, table[name]))
    if sum(p.compute_slices for _, p in reqs) > COMPUTE_SLICES:
        return None
    if sum(p.memory_slices for _, p in reqs) > MEMORY_SLICES:
        return None
    order = sorted(reqs, key=lambda r: (-r[1].memory_slices, -r[1].compute_slices, r[0]))
    taken = [False] * MEMORY_SLICES
    starts: dict[int, int] = {}

    def place(k: int) -> bool:
        if k == len(order):
            return True
        pos, prof = order[k]
        # Identical profiles take increasing starts (breaks symmetry).
        lo = 0
        if k and order[k - 1][1] is prof:
            lo = starts[order[k - 1][0]] + 1
        for s in prof.starts:
            if s < lo:
                continue
            span = range(s, s + prof.memory_slices)
            if any(taken[i] for i in span):
                continue
            for i in span:
                taken[i] = True
            starts[pos] = s
            if place(k + 1):
                return True
            for i in span:
                taken[i] = False
            del starts[pos]
        return False

    if not place(0):
        return None
    return MigPlacement(
        gpu_model=gpu_model,
        slots=tuple((p.name, starts[pos]) for pos, p in reqs),
        compute_slices=sum(p.compute_slices for _, p in reqs),
        memory_slices=sum(p.memory_slices for _, p in reqs),
    )


def smallest_profile(
    gpu_model: str, compute_fraction: float, memory_gib: float
) -> MigProfile | None:
    """The smallest profile with at least ``compute_fraction`` of the GPU and ``memory_gib``.

    "Smallest" orders by memory slices, then compute slices. Returns ``None`` when even
    the whole-GPU profile is too small (or the GPU has no MIG).
    """
    if not (compute_fraction >= 0 and memory_gib >= 0):
        raise ConfigError(
            "parameters compute_fraction and memory_gib must be >= 0, "
            f"got {compute_fraction!r}, {memory_gib!r}"
        )
    best: MigProfile | None = None
    for p in profiles_for(gpu_model):
        if p.compute_fraction + 1e-9 < compute_fraction or p.memory_gib + 1e-9 < memory_gib:
            continue
        if best is None or (p.memory_slices, p.compute_slices) < (
            best.memory_slices,
            best.compute_slices,
        ):
            best = p
    return best
