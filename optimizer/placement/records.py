"""Node and pod records for online GPU placement, validated at the boundary.

Two frames come in, both in the Alibaba ``openb`` format of the FGD paper (ATC'23):

* **nodes**: ``sn, cpu_milli, memory_mib, gpu, model``: one row per node; ``gpu`` is the number
  of GPUs (each of capacity 1000 milli-GPU) and ``model`` their model (empty when ``gpu == 0``).
* **pods**: ``name, cpu_milli, memory_mib, num_gpu, gpu_milli[, gpu_spec]`` (extra columns are
  ignored): ``gpu_milli`` is the share of *one* GPU taken on each of ``num_gpu`` GPUs, and
  ``gpu_spec`` a ``|``-separated list of acceptable GPU models (empty = any).

Both are turned into immutable numpy value objects (:class:`Cluster`, :class:`PodStream`).
Invalid input raises :class:`~features.exceptions.InvalidFrameError` naming the column and the
0-based rows; :mod:`optimizer.placement.io` turns that into a file/line message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.exceptions import InvalidFrameError

#: Capacity of one GPU in milli-GPU.
GPU_MILLI = 1000
#: Most GPUs one node may declare (keeps the per-GPU matrix small).
MAX_GPUS_PER_NODE = 64

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
POD_OPTIONAL_COLUMNS = ("gpu_spec",)

#: Pod kinds: CPU-only, one shared GPU (``num_gpu == 1, gpu_milli < 1000``), whole GPUs.
KIND_CPU, KIND_SHARE, KIND_WHOLE = 0, 1, 2


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _text(df: pd.DataFrame, column: str) -> np.ndarray:
    """A text column as an object array of stripped strings (missing -> ``""``)."""
    values = df[column].to_numpy(dtype=object)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out[i] = ""
        else:
            out[i] = str(v).strip()
    return out


def _integers(df: pd.DataFrame, column: str, frame: str, *, upper: int | None = None) -> np.ndarray:
    """A column of non-negative integers (``"12000"``, ``12000.0`` accepted) as int64."""
    raw = df[column]
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(num)
    if bad.any():
        rows = np.flatnonzero(bad).tolist()
        shown = raw.iloc[rows[0]]
        raise InvalidFrameError(
            f"must be a finite number, got {shown!r}", column=column, rows=rows, frame=frame
        )
    bad = (num < 0) | (num != np.floor(num))
    if upper is not None:
        bad |= num > upper
    if bad.any():
        rows = np.flatnonzero(bad).tolist()
        limit = f" at most {upper}" if upper is not None else ""
        raise InvalidFrameError(
            f"must be a non-negative integer{limit}, got {raw.iloc[rows[0]]!r}",
            column=column,
            rows=rows,
            frame=frame,
        )
    return num.astype(np.int64)


def _require(df: pd.DataFrame, columns: Sequence[str], frame: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InvalidFrameError(f"must be a pandas DataFrame, got {type(df).__name__}", frame=frame)
    for col in columns:
        if col not in df.columns:
            raise InvalidFrameError(
                f"missing required column (have {list(map(str, df.columns))})",
                column=col,
                frame=frame,
            )


def parse_spec(spec: str) -> frozenset[str]:
    """The set of GPU models a ``gpu_spec`` string accepts (empty set = any model).

    Parameters
    ----------
    spec : str
        ``|``-separated model names; empty tokens are dropped, duplicates are harmless.

    Returns
    -------
    frozenset of str
    """
    return frozenset(t.strip() for t in spec.split("|") if t.strip())


@dataclass(frozen=True)
class Cluster:
    """Static description of the nodes, sorted by name (``sn``).

    Attributes
    ----------
    names : ndarray of object, shape (N,)
        Node names, ascending. Index ``n`` in every array below is the ``n``-th name.
    cpu_milli, memory_mib : ndarray of int64, shape (N,)
        Capacities in milli-CPU and MiB.
    num_gpus : ndarray of int64, shape (N,)
        GPUs per node (each 1000 milli-GPU).
    model_id : ndarray of int64, shape (N,)
        Index into :attr:`models` (``-1`` for a node without GPUs).
    models : tuple of str
        Distinct GPU models, sorted.
    """

    names: np.ndarray
    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    num_gpus: np.ndarray
    model_id: np.ndarray
    models: tuple[str, ...]

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``N``."""
        return len(self.names)

    @property
    def max_gpus(self) -> int:
        """Width ``G`` of the per-GPU matrices (at least 1)."""
        return max(1, int(self.num_gpus.max())) if self.n_nodes else 1

    @property
    def gpu_capacity_milli(self) -> int:
        """Total GPU capacity in milli-GPU."""
        return int(self.num_gpus.sum()) * GPU_MILLI

    @property
    def gpu_mask(self) -> np.ndarray:
        """``(N, G)`` bool: which columns of the per-GPU matrices are real GPUs."""
        return np.arange(self.max_gpus)[None, :] < self.num_gpus[:, None]

    def access(self, spec: frozenset[str]) -> np.ndarray:
        """``(N,)`` bool: nodes whose GPU model a pod with this ``gpu_spec`` accepts."""
        if not spec:
            return np.ones(self.n_nodes, dtype=bool)
        ok = np.array([m in spec for m in self.models], dtype=bool)
        return ok[self.model_id] & (self.model_id >= 0) if len(ok) else np.zeros(self.n_nodes, bool)

    @classmethod
    def from_frame(cls, nodes: pd.DataFrame) -> Cluster:
        """Validate an openb node frame and build the cluster.

        Parameters
        ----------
        nodes : DataFrame
            Columns ``sn, cpu_milli, memory_mib, gpu, model`` (others ignored).

        Raises
        ------
        InvalidFrameError
            Missing column, empty or duplicate ``sn``, a value that is not a non-negative
            integer, more than 64 GPUs, or a GPU node without ``model``.
        """
        _require(nodes, NODE_COLUMNS, "nodes")
        df = nodes.reset_index(drop=True)
        names = _text(df, "sn")
        empty = np.flatnonzero(names == "")
        if len(empty):
            raise InvalidFrameError(
                "must not be empty", column="sn", rows=empty.tolist(), frame="nodes"
            )
        dup = pd.Series(names).duplicated(keep="first").to_numpy()
        if dup.any():
            rows = np.flatnonzero(dup)
            raise InvalidFrameError(
                f"node names must be unique, {names[rows[0]]!r} repeats",
                column="sn",
                rows=rows.tolist(),
                frame="nodes",
            )
        cpu = _integers(df, "cpu_milli", "nodes")
        mem = _integers(df, "memory_mib", "nodes")
        gpu = _integers(df, "gpu", "nodes", upper=MAX_GPUS_PER_NODE)
        model = _text(df, "model")
        missing = np.flatnonzero((gpu > 0) & (model == ""))
        if len(missing):
            raise InvalidFrameError(
                "must name the GPU model of a node with gpu > 0",
                column="model",
                rows=missing.tolist(),
                frame="nodes",
            )
        model = np.where(gpu > 0, model, "")
        order = np.argsort(names.astype(str), kind="stable")
        models = tuple(sorted({str(m) for m in model if m}))
        lookup = {m: i for i, m in enumerate(models)}
        model_id = np.array([lookup.get(str(m), -1) for m in model[order]], dtype=np.int64)
        return cls(
            names=_readonly(names[order].astype(object)),
            cpu_milli=_readonly(cpu[order]),
            memory_mib=_readonly(mem[order]),
            num_gpus=_readonly(gpu[order]),
            model_id=_readonly(model_id),
            models=models,
        )


@dataclass(frozen=True)
class PodStream:
    """Pods in arrival order, normalised as in the FGD protocol (section 2).

    Attributes
    ----------
    names : ndarray of object, shape (P,)
    cpu_milli, memory_mib : ndarray of int64, shape (P,)
    num_gpu : ndarray of int64, shape (P,)
        ``k``: number of GPUs (0 for CPU-only pods).
    gpu_milli : ndarray of int64, shape (P,)
        ``m``: per-GPU share in ``[0, 1000]`` (raw values above 1000 are clipped to 1000; 0 when
        ``num_gpu == 0``). A pod with ``m == 0`` asks for no GPU resource at all.
    spec_id : ndarray of int64, shape (P,)
        Index into :attr:`specs` (the raw ``gpu_spec`` strings; ``""`` = any model).
    specs : tuple of str
    """

    names: np.ndarray
    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    num_gpu: np.ndarray
    gpu_milli: np.ndarray
    spec_id: np.ndarray
    specs: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def kind(self) -> np.ndarray:
        """``(P,)`` int: :data:`KIND_CPU`, :data:`KIND_SHARE` or :data:`KIND_WHOLE`."""
        share = (self.num_gpu == 1) & (self.gpu_milli > 0) & (self.gpu_milli < GPU_MILLI)
        whole = (self.gpu_milli > 0) & ~share
        return np.where(share, KIND_SHARE, np.where(whole, KIND_WHOLE, KIND_CPU))

    @property
    def gpu_request(self) -> np.ndarray:
        """``(P,)`` int64: total GPU request ``k * m`` in milli-GPU."""
        return self.num_gpu * self.gpu_milli

    def take(self, index: np.ndarray | Sequence[int]) -> PodStream:
        """A new stream made of the pods at ``index`` (in that order; repeats allowed)."""
        idx = np.asarray(index, dtype=np.int64)
        return PodStream(
            names=_readonly(self.names[idx]),
            cpu_milli=_readonly(self.cpu_milli[idx]),
            memory_mib=_readonly(self.memory_mib[idx]),
            num_gpu=_readonly(self.num_gpu[idx]),
            gpu_milli=_readonly(self.gpu_milli[idx]),
            spec_id=_readonly(self.spec_id[idx]),
            specs=self.specs,
        )

    @classmethod
    def from_frame(cls, pods: pd.DataFrame, *, frame: str = "pods") -> PodStream:
        """Validate an openb pod frame; rows stay in frame order (the arrival order).

        Parameters
        ----------
        pods : DataFrame
            Columns ``name, cpu_milli, memory_mib, num_gpu, gpu_milli`` and optionally
            ``gpu_spec``; other columns are ignored.
        frame : str
            Name used in error messages (``pods`` or ``profile``).

        Raises
        ------
        InvalidFrameError
            Missing column, empty name, or a numeric value that is missing, NaN, negative or
            not an integer.
        """
        _require(pods, POD_COLUMNS, frame)
        df = pods.reset_index(drop=True)
        names = _text(df, "name")
        empty = np.flatnonzero(names == "")
        if len(empty):
            raise InvalidFrameError(
                "must not be empty", column="name", rows=empty.tolist(), frame=frame
            )
        cpu = _integers(df, "cpu_milli", frame)
        mem = _integers(df, "memory_mib", frame)
        k = _integers(df, "num_gpu", frame)
        raw_m = _integers(df, "gpu_milli", frame)
        m = np.where(k >= 1, np.minimum(raw_m, GPU_MILLI), 0)
        if "gpu_spec" in df.columns:
            spec_text = _text(df, "gpu_spec")
            spec_text = np.where(m > 0, spec_text, "")
        else:
            spec_text = np.full(len(df), "", dtype=object)
        codes, uniques = pd.factorize(pd.Series(spec_text, dtype=object), sort=True)
        specs = tuple(str(u) for u in uniques)
        if not specs:
            specs = ("",)
        return cls(
            names=_readonly(names),
            cpu_milli=_readonly(cpu),
            memory_mib=_readonly(mem),
            num_gpu=_readonly(k),
            gpu_milli=_readonly(m.astype(np.int64)),
            spec_id=_readonly(codes.astype(np.int64)),
            specs=specs,
        )
