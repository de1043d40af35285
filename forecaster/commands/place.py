"""``forecaster place``: online GPU placement of a pod arrival stream on a cluster.

Contract: nodes in the Alibaba openb format (``sn,cpu_milli,memory_mib,gpu,model``), pods in the
openb pod format (``name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec],...``) taken as an
arrival stream in file order, an optional historical ``--profile`` pod list to learn workload
statistics from. Output CSV: one row per input pod, columns exactly ``name,node,gpus`` (``node``
empty when the pod could not be placed; ``gpus`` the ``|``-joined 0-based GPU indices on that
node, empty for CPU-only pods). Decisions are online: the rows of a prefix of the stream do not
change when later pods are added.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from features.exceptions import ForecasterError
from forecaster.console import err, fail, progress
from optimizer.placement import DEFAULT_POLICY, POLICIES, TypicalPods, simulate
from optimizer.placement.io import read_nodes, read_pods
from optimizer.placement.policies import policy_class

#: Streams at least this long show a progress bar on stderr.
_PROGRESS_FROM = 2000


def _write_atomic(frame_csv: str, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".place-", suffix=".csv", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(frame_csv)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def place(
    nodes: Path = typer.Option(
        ..., "--nodes", help="Node list CSV: sn,cpu_milli,memory_mib,gpu,model."
    ),
    pods: Path = typer.Option(
        ...,
        "--pods",
        help="Pod arrival stream CSV (file order): name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec].",
    ),
    output: Path = typer.Option(..., "--output", help="Placement CSV to write: name,node,gpus."),
    profile: Path | None = typer.Option(
        None,
        "--profile",
        help="Historical pod list (pod format) to learn typical pods and demand from; "
        "without it the policy learns online from the arrivals so far.",
    ),
    policy: str = typer.Option(
        DEFAULT_POLICY,
        "--policy",
        help=f"Placement policy: one of {', '.join(POLICIES)} (default: ours, {DEFAULT_POLICY}).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the tie-break node rank (and Random)."),
) -> None:
    """Place pods online, one at a time in file order, and write name,node,gpus."""
    if policy_class(policy) is None:
        raise typer.BadParameter(
            f"must be one of {', '.join(POLICIES)}, got {policy!r}", param_hint="'--policy'"
        )
    try:
        _, cluster = read_nodes(nodes)
        _, stream = read_pods(pods)
        history = None
        if profile is not None:
            _, history = read_pods(profile, frame="profile")
    except ForecasterError as exc:
        fail(str(exc))
    typical = TypicalPods.from_stream(history) if history is not None else None
    with progress(enabled=len(stream) >= _PROGRESS_FROM) as bar:
        task = bar.add_task(f"placing {len(stream):,} pods ({policy})", total=max(1, len(stream)))

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done)

        try:
            result = simulate(
                cluster,
                stream,
                policy,
                profile=history,
                typical=typical,
                seed=seed,
                progress=tick,
            )
        except ForecasterError as exc:
            fail(str(exc))
    _write_atomic(result.to_frame().to_csv(index=False, lineterminator="\n"), output)
    placed = int(result.placed.sum())
    err.print(
        f"placed {placed:,} of {result.n_pods:,} pods ({result.n_failed:,} unplaced) with "
        f"{result.policy}; GPU allocated {100 * result.gpu_alloc_ratio:.2f}% of "
        f"{result.gpu_capacity_milli // 1000:,} GPUs; {result.pods_per_second:,.0f} pods/s "
        f"-> {output}",
        highlight=False,
    )
