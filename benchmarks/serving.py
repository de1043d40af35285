"""Serving benchmark: our API against ``mlflow models serve`` on the same registered model.

What it does, all on 127.0.0.1:

1. Reads real CloudWatch series (NAB ``realAWSCloudwatch``, 5-minute steps, summed to
   hours) as workload load, fits a seasonal-naive forecaster with conformal intervals,
   logs it with its 48-hour forecasts to a local MLflow registry (SQLite) and makes it the
   champion; writes the same forecasts as the store's ``load_forecast`` result.
2. Starts ``forecaster serve`` (our server, one uvicorn process) and ``mlflow models serve
   -m models:/<name>@champion --env-manager local`` (MLflow's scoring server, one worker),
   each pinned to CPU 0 when the machine has two or more.
3. Drives both with the same closed-loop load from a separate process pinned to CPU 1: a
   raw-asyncio HTTP/1.1 keep-alive client (far lighter than httpx, so the client does not
   cap the figures), for ``--duration`` seconds at each ``--concurrency``. Our routes:
   ``GET /v1/forecasts/{id}?horizon=48`` and ``GET /v1/scaling/{id}?horizon=48h&quantile=0.9``;
   MLflow's: ``POST /invocations`` with the request frame ``unique_id, h=48``.
4. An open-loop run at ``--rate`` requests/s (default 500) against each of our routes:
   latency counted from the scheduled send time, so queueing is not hidden.
5. A hot swap under load: a second version is promoted while the closed loop runs; the
   server's poll picks it up; failed requests are counted and the versions answered
   before and after are reported.

Run::

    .venv/bin/python benchmarks/serving.py                      # 30 s per point
    .venv/bin/python benchmarks/serving.py --duration 5 --concurrency 1 8   # quick

Prints a table and writes ``benchmarks/results/serving.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import ROOT, machine, resolve_data, write_result
from serving.ids import quote_id

NAME = "bench-load-hourly"
READ_KEY = "bench-reader-key-0001"
ADMIN_KEY = "bench-admin-key-0001"
HORIZON = 48


# -- the load generator (runs in its own process) --------------------------------------------
async def _one_conn(
    host: str,
    port: int,
    requests: list[bytes],
    stop_at: float,
    lat: list[float],
    errors: list[str],
    statuses: dict[int, int],
    bodies: list[bytes] | None,
    schedule: asyncio.Queue[float] | None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while True:
            if schedule is not None:
                t_sched = await schedule.get()
                if t_sched < 0:
                    return
                t0 = t_sched
            else:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = -1
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"transfer-encoding" and b"chunked" in v.lower():
                    chunked = True
            if chunked:
                body = b""
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                    chunk = await reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += chunk[:-2]
            else:
                body = await reader.readexactly(length) if length > 0 else b""
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200:
                errors.append(f"HTTP {status}: {body[:200]!r}")
            elif bodies is not None and len(bodies) < 100_000:
                bodies.append(body[:400])
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


def _load_worker(spec: dict[str, Any], out: Any) -> None:
    """Process entry: pin to a CPU, run one load phase, send the latencies back."""
    if spec.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec["cpu"]})

    async def main() -> dict[str, Any]:
        lat: list[float] = []
        errors: list[str] = []
        statuses: dict[int, int] = {}
        bodies: list[bytes] | None = [] if spec.get("keep_bodies") else None
        reqs = [r.encode("latin-1") for r in spec["requests"]]
        t_start = time.perf_counter()
        stop_at = t_start + spec["duration"]
        if spec.get("rate"):
            q: asyncio.Queue[float] = asyncio.Queue()
            conns = spec["connections"]
            tasks = [
                asyncio.create_task(
                    _one_conn(
                        spec["host"], spec["port"], reqs, stop_at, lat, errors, statuses, bodies, q
                    )
                )
                for _ in range(conns)
            ]
            period = 1.0 / spec["rate"]
            n = int(spec["duration"] * spec["rate"])
            for k in range(n):
                t_sched = t_start + k * period
                delay = t_sched - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                q.put_nowait(t_sched)
            for _ in range(conns):
                q.put_nowait(-1.0)
            await asyncio.gather(*tasks)
        else:
            await asyncio.gather(
                *[
                    _one_conn(
                        spec["host"],
                        spec["port"],
                        reqs,
                        stop_at,
                        lat,
                        errors,
                        statuses,
                        bodies,
                        None,
                    )
                    for _ in range(spec["concurrency"])
                ]
            )
        wall = time.perf_counter() - t_start
        return {
            "lat": lat,
            "errors": errors[:20],
            "n_errors": len(errors),
            "statuses": statuses,
            "wall": wall,
            "bodies": bodies,
        }

    out.put(asyncio.run(main()))


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load phase in a child process; return requests/s and latency percentiles."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_load_worker, args=(spec, q))
    p.start()
    res = q.get(timeout=spec["duration"] + 120)
    p.join(timeout=30)
    lat = np.asarray(res["lat"]) * 1000.0
    ok = sum(v for k, v in res["statuses"].items() if k == 200)
    return {
        "requests": len(lat),
        "ok": ok,
        "failed": res["n_errors"],
        "errors": res["errors"],
        "rps": round(len(lat) / res["wall"], 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
        "max_ms": round(float(lat.max()), 3) if len(lat) else None,
        "bodies": res["bodies"],
    }


def get_req(host: str, port: int, path: str, key: str | None = None) -> str:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Accept: application/json\r\n\r\n"


def post_req(host: str, port: int, path: str, body: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )


# -- setup -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up in {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)


def nab_load(data: Path, n_series: int, id_prefix: str = "") -> pd.DataFrame:
    """Hourly sums of NAB CloudWatch series as ``unique_id, ds, y`` (ids ``id_prefix + stem``)."""
    files = sorted((data / "nab" / "realAWSCloudwatch").glob("*.csv"))[:n_series]
    parts = []
    for f in files:
        df = pd.read_csv(f, parse_dates=["timestamp"])
        s = df.set_index("timestamp")["value"].resample("h").mean().dropna()
        parts.append(
            pd.DataFrame(
                {
                    "unique_id": id_prefix + f.stem,
                    "ds": s.index.tz_localize("UTC"),
                    "y": s.to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def register(train: pd.DataFrame, uri: str, season: int) -> tuple[str, pd.DataFrame]:
    """Fit, log with forecasts, promote to champion; return (version, forecasts)."""
    from models import make_model
    from models.registry import log_forecaster, set_champion

    model = make_model("seasonal_naive", season_length=season).fit(train)
    fc = model.predict(HORIZON, level=[80, 95])
    ref = log_forecaster(
        model, name=NAME, train_df=train, metrics={"wape": 10.0}, forecasts=fc, tracking_uri=uri
    )
    set_champion(NAME, ref.version, tracking_uri=uri)
    return ref.version, fc


def write_store(path: Path, fc: pd.DataFrame, version: str) -> None:
    from features.store import Store

    load = fc.copy()
    load["metric"] = "cpu"
    load["capacity_per_replica"] = 20.0  # percent CPU one replica serves at target
    load["min_replicas"] = 2
    load["max_replicas"] = 50
    with Store(path) as st:
        st.write_result(
            "load_forecast",
            load,
            run_id=f"bench-{version}",
            meta={"freq": "h", "model_name": NAME, "model_version": version},
        )


def start_ours(
    store: Path, uri: str, port: int, cpu: int | None, log: Path, reload_s: float
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FORECASTER_STORE": str(store),
        "FORECASTER_MODEL_NAME": NAME,
        "FORECASTER_MLFLOW_TRACKING_URI": uri,
        "FORECASTER_API_KEYS": f"{READ_KEY},{ADMIN_KEY}:write",
        "FORECASTER_RELOAD_INTERVAL_S": str(reload_s),
    }
    cmd = [
        str(Path(sys.executable).with_name("forecaster")),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(
        cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_http(f"http://127.0.0.1:{port}/readyz", 180, proc, log)
    return proc


def start_mlflow(uri: str, port: int, cpu: int | None, log: Path) -> subprocess.Popen[bytes]:
    # The scoring server execs `uvicorn` from PATH: put this environment's bin first.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": path}
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "models",
        "serve",
        "-m",
        f"models:/{NAME}@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(
        cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    wait_http(f"http://127.0.0.1:{port}/ping", 300, proc, log)
    return proc


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding nab/")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per load point")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--rate", type=float, default=500.0, help="open-loop requests/s")
    ap.add_argument("--series", type=int, default=17, help="NAB series to serve")
    ap.add_argument("--repeats", type=int, default=1, help="runs per point (median reported)")
    ap.add_argument("--no-mlflow", action="store_true", help="skip the MLflow anchor")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--id-prefix",
        default="",
        help="prefix of every series id, e.g. 'eks-ml-prod/nlp (gpu)/' for nested ids "
        "(sent percent-encoded, serving.ids)",
    )
    args = ap.parse_args(argv)

    data = resolve_data(args.data, "nab")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    srv_cpu, gen_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.setdefault("MLFLOW_REGISTRY_URI", uri)
    os.environ["MLFLOW_ARTIFACTS_DESTINATION"] = str(tmp / "artifacts")
    print(f"workdir {tmp}; server CPU {srv_cpu}, load generator CPU {gen_cpu}", flush=True)

    train = nab_load(data, args.series, args.id_prefix)
    version, fc = register(train, uri, season=24)
    store = tmp / "store.duckdb"
    write_store(store, fc, version)
    ids = sorted(fc["unique_id"].astype(str).unique())
    print(f"registered {NAME} v{version}: {len(ids)} series x {HORIZON} h", flush=True)

    host = "127.0.0.1"
    ours_port, ml_port = free_port(), free_port()
    ours = start_ours(store, uri, ours_port, srv_cpu, tmp / "ours.log", reload_s=1.0)
    procs = [ours]
    ml = None
    results: dict[str, Any] = {"closed_loop": [], "open_loop": [], "hot_swap": None}
    try:
        if not args.no_mlflow:
            ml = start_mlflow(uri, ml_port, srv_cpu, tmp / "mlflow.log")
            procs.append(ml)
        routes = {
            "ours /v1/forecasts/{id}": (
                ours_port,
                [
                    get_req(
                        host, ours_port, f"/v1/forecasts/{quote_id(u)}?horizon={HORIZON}", READ_KEY
                    )
                    for u in ids
                ],
            ),
            "ours /v1/scaling/{id}": (
                ours_port,
                [
                    get_req(
                        host,
                        ours_port,
                        f"/v1/scaling/{quote_id(u)}?horizon={HORIZON}h&quantile=0.9",
                        READ_KEY,
                    )
                    for u in ids
                ],
            ),
        }
        if ml is not None:
            routes["mlflow /invocations"] = (
                ml_port,
                [
                    post_req(
                        host,
                        ml_port,
                        "/invocations",
                        json.dumps(
                            {
                                "dataframe_split": {
                                    "columns": ["unique_id", "h"],
                                    "data": [[u, HORIZON]],
                                }
                            }
                        ),
                    )
                    for u in ids
                ],
            )
        # Warm-up (first requests import and cache).
        for _name, (port, reqs) in routes.items():
            run_load(
                {
                    "host": host,
                    "port": port,
                    "requests": reqs,
                    "duration": 2,
                    "concurrency": 2,
                    "cpu": gen_cpu,
                }
            )
        print(
            f"\n{'server/route':<28}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}"
        )
        for conc in args.concurrency:
            for name, (port, reqs) in routes.items():
                runs = [
                    run_load(
                        {
                            "host": host,
                            "port": port,
                            "requests": reqs,
                            "duration": args.duration,
                            "concurrency": conc,
                            "cpu": gen_cpu,
                        }
                    )
                    for _ in range(args.repeats)
                ]
                row = {
                    "route": name,
                    "concurrency": conc,
                    "rps": statistics.median(r["rps"] for r in runs),
                    "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                    "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                    "failed": sum(r["failed"] for r in runs),
                    "requests": sum(r["requests"] for r in runs),
                    "runs": [
                        {k: r[k] for k in ("rps", "p50_ms", "p99_ms", "failed")} for r in runs
                    ],
                    "errors": runs[0]["errors"][:3],
                }
                results["closed_loop"].append(row)
                print(
                    f"{name:<28}{conc:>5}{row['rps']:>10.0f}{row['p50_ms']:>9.2f}"
                    f"{row['p99_ms']:>9.2f}{row['failed']:>8}",
                    flush=True,
                )
        # Open loop at a fixed rate: the p99 target.
        print(f"\nopen loop at {args.rate:.0f} requests/s")
        for name, (port, reqs) in routes.items():
            if not name.startswith("ours"):
                continue
            runs = [
                run_load(
                    {
                        "host": host,
                        "port": port,
                        "requests": reqs,
                        "duration": args.duration,
                        "rate": args.rate,
                        "connections": 32,
                        "cpu": gen_cpu,
                    }
                )
                for _ in range(args.repeats)
            ]
            row = {
                "route": name,
                "rate": args.rate,
                "achieved_rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "failed": sum(r["failed"] for r in runs),
                "runs": [{k: r[k] for k in ("rps", "p50_ms", "p99_ms", "failed")} for r in runs],
            }
            results["open_loop"].append(row)
            print(
                f"{name:<28}{row['achieved_rps']:>10.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
                f"p99 {row['p99_ms']:.2f} ms  failed {row['failed']}",
                flush=True,
            )
        # Hot swap under load.
        results["hot_swap"] = hot_swap(host, ours_port, ids, train, uri, gen_cpu, args.duration)
        hs = results["hot_swap"]
        print(
            f"\nhot swap under load: {hs['requests']} requests, {hs['failed']} failed; "
            f"versions answered {hs['versions']} (swap seen after {hs['swap_seen_s']} s)"
        )
    finally:
        for p in procs:
            stop(p)

    ours_best = max(
        (r["rps"] for r in results["closed_loop"] if r["route"].startswith("ours /v1/forecasts")),
        default=0.0,
    )
    ml_best = max(
        (r["rps"] for r in results["closed_loop"] if r["route"].startswith("mlflow")), default=0.0
    )
    if ml_best:
        results["throughput_ratio_forecasts_vs_mlflow"] = round(ours_best / ml_best, 1)
        print(
            f"\nbest throughput: ours {ours_best:.0f} req/s vs mlflow {ml_best:.0f} req/s "
            f"= {ours_best / ml_best:.1f}x"
        )
    results["setup"] = {
        "model": f"{NAME} (seasonal naive, season 24, conformal 80/95 intervals)",
        "series": len(ids),
        "horizon": HORIZON,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "server_cpu": srv_cpu,
        "loadgen_cpu": gen_cpu,
        "server": "forecaster serve (uvicorn, 1 process, h11, asyncio loop)",
        "anchor": "mlflow models serve --env-manager local -w 1",
        "machine_after": machine(),
    }
    path = write_result("serving", results, args.out)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


def hot_swap(
    host: str,
    port: int,
    ids: list[str],
    train: pd.DataFrame,
    uri: str,
    cpu: int | None,
    duration: float,
) -> dict[str, Any]:
    """Promote a new version while a closed loop runs; count failures and versions seen."""
    import threading

    reqs = [get_req(host, port, f"/v1/forecasts/{quote_id(u)}?horizon=24", READ_KEY) for u in ids]
    spec = {
        "host": host,
        "port": port,
        "requests": reqs,
        "duration": max(duration, 20.0),
        "concurrency": 8,
        "cpu": cpu,
        "keep_bodies": True,
    }
    out: dict[str, Any] = {}
    t0 = time.perf_counter()

    def load() -> None:
        out["res"] = run_load(spec)

    th = threading.Thread(target=load)
    th.start()
    time.sleep(3.0)
    # Log a second version (different season) and promote it mid-run.
    version2, _ = register(train, uri, season=12)
    promoted_at = time.perf_counter() - t0
    th.join()
    res = out["res"]
    versions: dict[str, int] = {}
    for b in res["bodies"] or []:
        i = b.find(b'"version":"')
        v = b[i + 11 : b.find(b'"', i + 11)].decode() if i >= 0 else "?"
        versions[v] = versions.get(v, 0) + 1
    return {
        "requests": res["requests"],
        "failed": res["failed"],
        "errors": res["errors"][:3],
        "rps": res["rps"],
        "p99_ms": res["p99_ms"],
        "max_ms": res["max_ms"],
        "versions": versions,
        "new_version": version2,
        "promoted_at_s": round(promoted_at, 1),
        "swap_seen_s": round(promoted_at, 1) if version2 in versions else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
