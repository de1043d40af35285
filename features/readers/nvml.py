"""NVML collector: sample local NVIDIA GPUs and MIG devices into the utilization frame.

``pynvml`` (the ``nvidia-ml-py`` package) is imported only when sampling real GPUs. Any
object with the same functions can stand in for it (``backend=``): tests and the
``--replay`` option use :class:`RecordedBackend`, which answers from readings recorded on
a real GPU machine (:func:`sample` returns them in the same JSON layout), so the
collector's code path is the same with or without a GPU.

One row per device and sample: ``workload_id`` is ``gpu/<host>/<index>`` for a GPU and
``gpu/<host>/<index>/mig<k>`` for MIG device ``k`` of it; ``kind`` is ``gpu`` or ``mig``;
``gpu_used`` is the busy fraction of the device (NVML ``utilization.gpu`` / 100; NaN where
NVML does not report it, as for MIG devices and for GPUs in MIG mode);
``gpu_requested`` is 1 for a GPU and the MIG device's share of its GPU's memory for a MIG
device; memory used and total are in GiB. The utilization frame has no power column:
power (W) is kept in the raw readings and summarised in the warnings.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from features.exceptions import ConfigError, IngestError
from features.schema import UTILIZATION_FRAME_COLUMNS, UTILIZATION_NUMERIC
from features.store import UtilizationRead

__all__ = ["RecordedBackend", "load_pynvml", "read_devices", "sample"]

_GIB = float(1 << 30)
#: NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_NOT_FOUND (nvml.h); stable across releases.
_NOT_SUPPORTED = 3
_NOT_FOUND = 6
_NO_DRIVER = {9, 12}  # NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND


def load_pynvml() -> Any:
    """Import ``pynvml`` (nvidia-ml-py) or say how to get it."""
    try:
        import pynvml
    except ImportError:
        raise ConfigError(
            "the NVML collector needs nvidia-ml-py: pip install nvidia-ml-py "
            "(or use --replay with a recorded sample)"
        ) from None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(nv: Any, fn: Callable[[], Any]) -> Any:
    """Call an NVML function; None where the device does not support the query."""
    try:
        return fn()
    except nv.NVMLError as exc:
        if getattr(exc, "value", None) in (_NOT_SUPPORTED, _NOT_FOUND):
            return None
        raise


def _reading(nv: Any, handle: Any, index: int, mig: int | None) -> dict[str, Any]:
    util = _try(nv, lambda: nv.nvmlDeviceGetUtilizationRates(handle))
    mem = _try(nv, lambda: nv.nvmlDeviceGetMemoryInfo(handle))
    power = _try(nv, lambda: nv.nvmlDeviceGetPowerUsage(handle))
    limit = _try(nv, lambda: nv.nvmlDeviceGetEnforcedPowerLimit(handle))
    return {
        "index": index,
        "mig": mig,
        "name": _text(nv.nvmlDeviceGetName(handle)),
        "uuid": _text(nv.nvmlDeviceGetUUID(handle)),
        "utilization_gpu_pct": None if util is None else float(util.gpu),
        "utilization_memory_pct": None if util is None else float(util.memory),
        "memory_used_bytes": None if mem is None else int(mem.used),
        "memory_total_bytes": None if mem is None else int(mem.total),
        "power_w": None if power is None else float(power) / 1000.0,
        "power_limit_w": None if limit is None else float(limit) / 1000.0,
    }


def read_devices(nv: Any) -> list[dict[str, Any]]:
    """One reading per GPU and per MIG device of a GPU in MIG mode (NVML initialised)."""
    out: list[dict[str, Any]] = []
    for i in range(int(nv.nvmlDeviceGetCount())):
        handle = nv.nvmlDeviceGetHandleByIndex(i)
        gpu = _reading(nv, handle, i, None)
        modes = _try(nv, partial(nv.nvmlDeviceGetMigMode, handle))
        gpu["mig_mode"] = None if modes is None else int(modes[0])
        out.append(gpu)
        if not gpu["mig_mode"]:
            continue
        for k in range(int(nv.nvmlDeviceGetMaxMigDeviceCount(handle))):
            mig = _try(nv, partial(nv.nvmlDeviceGetMigDeviceHandleByIndex, handle, k))
            if mig is None:
                continue  # an empty MIG slot
            reading = _reading(nv, mig, i, k)
            reading["mig_mode"] = None
            out.append(reading)
    return out


def _init(nv: Any) -> None:
    try:
        nv.nvmlInit()
    except nv.NVMLError as exc:
        if getattr(exc, "value", None) in _NO_DRIVER:
            raise IngestError(
                f"NVML: no NVIDIA driver on this machine ({exc}); run on a GPU host with the "
                "NVIDIA driver, or use --replay with a recorded sample"
            ) from None
        raise IngestError(f"NVML could not start ({exc})") from None


def _rows(host: str, ts: datetime, readings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parents = {r["index"]: r for r in readings if r["mig"] is None}
    rows = []
    for r in readings:
        row: dict[str, Any] = dict.fromkeys(UTILIZATION_FRAME_COLUMNS)
        for c in UTILIZATION_NUMERIC:
            row[c] = math.nan
        is_mig = r["mig"] is not None
        row["ds"] = ts
        row["workload_id"] = f"gpu/{host}/{r['index']}" + (f"/mig{r['mig']}" if is_mig else "")
        row["kind"] = "mig" if is_mig else "gpu"
        util = r.get("utilization_gpu_pct")
        row["gpu_used"] = math.nan if util is None else util / 100.0
        used, total = r.get("memory_used_bytes"), r.get("memory_total_bytes")
        row["gpu_memory_used_gib"] = math.nan if used is None else used / _GIB
        row["gpu_memory_total_gib"] = math.nan if total is None else total / _GIB
        row["gpu_requested"] = 1.0
        if is_mig:
            parent_total = parents.get(r["index"], {}).get("memory_total_bytes")
            if parent_total and total:
                row["gpu_requested"] = total / parent_total
        row["replicas"] = 1.0
        rows.append(row)
    return rows


def _summary(host: str, samples: list[dict[str, Any]]) -> list[str]:
    by_dev: dict[tuple[int, int | None], list[dict[str, Any]]] = {}
    for s in samples:
        for r in s["devices"]:
            by_dev.setdefault((r["index"], r["mig"]), []).append(r)
    lines = []

    def mean(rs: list[dict[str, Any]], key: str) -> float | None:
        vals = [float(r[key]) for r in rs if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    for (i, k), rs in sorted(by_dev.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1)):
        util, power = mean(rs, "utilization_gpu_pct"), mean(rs, "power_w")
        used, total = mean(rs, "memory_used_bytes"), mean(rs, "memory_total_bytes")
        name = f"GPU {i}" + (f" MIG {k}" if k is not None else "")
        lines.append(
            f"{host} {name} {rs[0]['name']}: utilization "
            + ("n/a" if util is None else f"{util:.0f}%")
            + ", memory "
            + (
                "n/a"
                if used is None or total is None
                else f"{used / _GIB:.2f}/{total / _GIB:.1f} GiB"
            )
            + ", power "
            + ("n/a" if power is None else f"{power:.0f} W")
            + (f", MIG mode {'on' if rs[0].get('mig_mode') else 'off'}" if k is None else "")
            + f" (mean of {len(rs)} sample(s))"
        )
    return lines


def sample(
    *,
    interval: float = 1.0,
    count: int = 5,
    backend: Any = None,
    host: str | None = None,
    sleep: Callable[[float], None] | None = None,
    on_sample: Callable[[int], None] | None = None,
) -> tuple[UtilizationRead, dict[str, Any]]:
    """Sample every GPU and MIG device ``count`` times, ``interval`` seconds apart.

    Parameters
    ----------
    interval : float
        Seconds between samples (> 0).
    count : int
        Number of samples (>= 1).
    backend : object, optional
        ``pynvml`` or an object with the same functions (:class:`RecordedBackend`).
        Default: ``pynvml``, imported now.
    host : str, optional
        Host name in the workload ids (default: the recorded one when replaying, else
        this machine's).
    sleep : callable, optional
        Waits between samples (default ``time.sleep``; a replay needs none).
    on_sample : callable, optional
        Called with the number of samples taken so far (progress bars).

    Returns
    -------
    (UtilizationRead, dict)
        The utilization rows, and the raw readings as JSON-able data (driver version,
        host, and per sample its UTC time and one reading per device).

    Raises
    ------
    IngestError
        When there is no NVIDIA driver or no GPU (the message says so), or NVML fails.
    ConfigError
        When ``interval`` or ``count`` is out of range, or nvidia-ml-py is missing.
    """
    if not interval > 0 or not math.isfinite(interval):
        raise ConfigError(
            f"parameter interval must be a positive number of seconds, got {interval!r}"
        )
    if not isinstance(count, int) or count < 1:
        raise ConfigError(f"parameter count must be an int >= 1, got {count!r}")
    nv = backend if backend is not None else load_pynvml()
    wait = sleep if sleep is not None else time.sleep
    clock: Callable[[], datetime] = getattr(nv, "now", None) or (lambda: datetime.now(UTC))
    host_name = host or getattr(nv, "host", None) or socket.gethostname()
    _init(nv)
    try:
        n_gpus = int(nv.nvmlDeviceGetCount())
        if n_gpus == 0:
            raise IngestError("NVML: the NVIDIA driver is loaded but reports no GPU")
        raw: dict[str, Any] = {
            "host": host_name,
            "driver_version": _text(nv.nvmlSystemGetDriverVersion()),
            "nvml_version": _text(_try(nv, nv.nvmlSystemGetNVMLVersion) or ""),
            "gpus": n_gpus,
            "interval_s": interval,
            "samples": [],
        }
        rows: list[dict[str, Any]] = []
        for i in range(count):
            if i:
                wait(interval)
            ts = clock()
            readings = read_devices(nv)
            raw["samples"].append({"ts": ts.isoformat(), "devices": readings})
            rows += _rows(host_name, ts, readings)
            advance = getattr(nv, "advance", None)
            if advance is not None:
                advance()
            if on_sample is not None:
                on_sample(i + 1)
    except nv.NVMLError as exc:
        raise IngestError(f"NVML query failed ({exc})") from None
    finally:
        with contextlib.suppress(nv.NVMLError):
            nv.nvmlShutdown()
    schema = pa.schema(
        [
            ("ds", pa.timestamp("us", tz="UTC")),
            *[(c, pa.string()) for c in UTILIZATION_FRAME_COLUMNS[1:6]],
            *[(c, pa.float64()) for c in UTILIZATION_NUMERIC],
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    result = UtilizationRead(
        paths=[f"nvml:{host_name}"],
        table=table,
        rejections=[],
        rows_read=table.num_rows,
        warnings=_summary(host_name, raw["samples"]),
    )
    return result, raw


# -- replay -------------------------------------------------------------------------------------


class RecordedError(Exception):
    """NVML error of a replayed reading (``value`` is the NVML return code)."""

    def __init__(self, value: int, message: str = "") -> None:
        self.value = value
        super().__init__(message or f"NVML error {value}")


class _Rates:
    def __init__(self, gpu: float, memory: float) -> None:
        self.gpu = gpu
        self.memory = memory


class _Memory:
    def __init__(self, used: int, total: int) -> None:
        self.used = used
        self.total = total
        self.free = total - used


class RecordedBackend:
    """Replays raw readings recorded by :func:`sample` through NVML's function names.

    Each sample of the recording is one step; :func:`sample` calls :meth:`advance`
    after reading a step and :meth:`now` for its timestamp, so a replay gives back the
    recorded times. A reading's ``None`` value replays as NVML_ERROR_NOT_SUPPORTED, as
    the real GPU answered. ``nvmlInit`` of a recording with no samples fails like a
    machine without a driver.
    """

    NVMLError = RecordedError

    def __init__(self, raw: dict[str, Any]) -> None:
        if not isinstance(raw, dict) or not isinstance(raw.get("samples"), list):
            raise ConfigError("a recorded NVML sample must be a JSON object with a 'samples' list")
        self.raw = raw
        self.host = str(raw.get("host", "recorded"))
        self.cursor = 0

    @classmethod
    def load(cls, path: str | Path) -> RecordedBackend:
        p = Path(path)
        try:
            return cls(json.loads(p.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"recorded NVML sample {p} does not exist") from None
        except ValueError as exc:
            raise ConfigError(f"recorded NVML sample {p} is not valid JSON ({exc})") from None

    # replay control
    def _step(self) -> dict[str, Any]:
        samples = self.raw["samples"]
        return samples[min(self.cursor, len(samples) - 1)]

    def advance(self) -> None:
        self.cursor += 1

    def now(self) -> datetime:
        return datetime.fromisoformat(self._step()["ts"]).astimezone(UTC)

    # the NVML surface the collector uses
    def nvmlInit(self) -> None:
        if not self.raw["samples"]:
            raise RecordedError(12, "NVML library not found (recording has no samples)")

    def nvmlShutdown(self) -> None:
        return None

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self.raw.get("driver_version", ""))

    def nvmlSystemGetNVMLVersion(self) -> str:
        return str(self.raw.get("nvml_version", ""))

    def _gpus(self) -> list[dict[str, Any]]:
        return [d for d in self._step()["devices"] if d.get("mig") is None]

    def nvmlDeviceGetCount(self) -> int:
        return len(self._gpus())

    def nvmlDeviceGetHandleByIndex(self, i: int) -> tuple[int, int | None]:
        return (i, None)

    def _dev(self, handle: tuple[int, int | None]) -> dict[str, Any]:
        for d in self._step()["devices"]:
            if (d["index"], d.get("mig")) == tuple(handle):
                return d
        raise RecordedError(_NOT_FOUND, f"no device {handle} in the recording")

    def _value(self, handle: tuple[int, int | None], key: str) -> Any:
        value = self._dev(handle).get(key)
        if value is None:
            raise RecordedError(_NOT_SUPPORTED, "Not Supported")
        return value

    def nvmlDeviceGetName(self, h: tuple[int, int | None]) -> str:
        return str(self._dev(h)["name"])

    def nvmlDeviceGetUUID(self, h: tuple[int, int | None]) -> str:
        return str(self._dev(h)["uuid"])

    def nvmlDeviceGetUtilizationRates(self, h: tuple[int, int | None]) -> _Rates:
        return _Rates(
            self._value(h, "utilization_gpu_pct"), self._value(h, "utilization_memory_pct")
        )

    def nvmlDeviceGetMemoryInfo(self, h: tuple[int, int | None]) -> _Memory:
        return _Memory(
            int(self._value(h, "memory_used_bytes")), int(self._value(h, "memory_total_bytes"))
        )

    def nvmlDeviceGetPowerUsage(self, h: tuple[int, int | None]) -> int:
        return round(float(self._value(h, "power_w")) * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: tuple[int, int | None]) -> int:
        return round(float(self._value(h, "power_limit_w")) * 1000)

    def nvmlDeviceGetMigMode(self, h: tuple[int, int | None]) -> list[int]:
        mode = self._value(h, "mig_mode")
        return [int(mode), int(mode)]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: tuple[int, int | None]) -> int:
        migs = [
            d["mig"]
            for d in self._step()["devices"]
            if d["index"] == h[0] and d.get("mig") is not None
        ]
        return max(migs) + 1 if migs else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(
        self, h: tuple[int, int | None], k: int
    ) -> tuple[int, int | None]:
        handle = (h[0], k)
        self._dev(handle)
        return handle
