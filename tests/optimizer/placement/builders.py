"""Fixture builders for placement tests: small openb-format clusters and pod streams.

Nothing here reads shared data: every cluster and stream is synthetic, built from a seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Node shapes of the openb cluster (model, GPUs, milli-CPU, MiB), scaled-down mix.
NODE_SHAPES = [
    ("G2", 8, 96_000, 393_216),
    ("T4", 2, 104_000, 524_288),
    ("P100", 2, 16_000, 122_880),
    ("V100M16", 4, 32_000, 131_072),
    ("G3", 8, 128_000, 786_432),
]
#: Pod shapes (cpu_milli, memory_mib, num_gpu, gpu_milli) seen in the openb traces.
POD_SHAPES = [
    (3_152, 12_288, 1, 810),
    (11_300, 32_768, 1, 1_000),
    (11_908, 24_576, 1, 470),
    (12_500, 49_152, 0, 0),
    (8_000, 16_384, 1, 460),
    (4_000, 8_192, 1, 320),
    (18_708, 65_536, 1, 1_000),
    (32_000, 65_536, 0, 0),
    (24_000, 98_304, 2, 1_000),
    (64_000, 262_144, 8, 1_000),
]


def node(sn: str, cpu: int, mem: int, gpu: int, model: str) -> dict[str, Any]:
    """One node row."""
    return {"sn": sn, "cpu_milli": cpu, "memory_mib": mem, "gpu": gpu, "model": model}


def pod(
    name: str, cpu: int, mem: int = 1_000, k: int = 0, m: int = 0, spec: str = ""
) -> dict[str, Any]:
    """One pod row (``k`` GPUs of ``m`` milli each; ``spec`` = acceptable GPU models)."""
    return {
        "name": name,
        "cpu_milli": cpu,
        "memory_mib": mem,
        "num_gpu": k,
        "gpu_milli": m,
        "gpu_spec": spec,
    }


def nodes_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Node rows as a frame with the openb columns."""
    return pd.DataFrame(rows, columns=["sn", "cpu_milli", "memory_mib", "gpu", "model"])


def pods_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Pod rows as a frame with the openb columns (plus ``gpu_spec``)."""
    return pd.DataFrame(
        rows, columns=["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec"]
    )


def synthetic_cluster(n_nodes: int, seed: int = 0) -> pd.DataFrame:
    """A random mix of openb node shapes, names ``node-000..``."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.45, 0.3, 0.1, 0.1, 0.05])
    picks = rng.choice(len(NODE_SHAPES), size=n_nodes, p=weights)
    rows = [
        node(
            f"node-{i:03d}",
            NODE_SHAPES[s][2],
            NODE_SHAPES[s][3],
            NODE_SHAPES[s][1],
            NODE_SHAPES[s][0],
        )
        for i, s in enumerate(picks)
    ]
    return nodes_frame(rows)


def synthetic_pods(n_pods: int, seed: int = 0, spec_share: float = 0.15) -> pd.DataFrame:
    """A random stream of openb pod shapes; ``spec_share`` of GPU pods name GPU models."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.2, 0.15, 0.1, 0.12, 0.1, 0.08, 0.08, 0.07, 0.06, 0.04])
    picks = rng.choice(len(POD_SHAPES), size=n_pods, p=weights / weights.sum())
    specs = ["T4", "P100|V100M16", "G3", "G2|T4"]
    rows = []
    for i, s in enumerate(picks):
        c, mem, k, m = POD_SHAPES[s]
        spec = specs[rng.integers(len(specs))] if k and rng.random() < spec_share else ""
        rows.append(pod(f"pod-{i:05d}", c, mem, k, m, spec))
    return pods_frame(rows)


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    """Write a frame as CSV (no index) and return the path."""
    frame.to_csv(path, index=False)
    return path
