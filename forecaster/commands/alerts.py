"""``forecaster alerts``, ``forecaster policy check`` and ``forecaster feedback``.

* ``alerts``: evaluate the alert rules (a policy file's, or the defaults:
  cost anomaly detection, spikes, untagged spend, idle GPUs) on the store and
  list the alerts; with ``--webhook-url`` and/or ``--sns-topic-arn`` send them
  (each alert once per destination, retried with backoff), unless ``--dry-run``.
  Without a destination nothing is sent.
* ``policy check POLICY.yaml``: validate a policy file and list its violations
  (budgets, required tags, idle GPUs, spot share, daily ceilings) with severity
  and owner; ``--fail-on`` turns violations into exit code 1 for CI.
* ``feedback ALERT_ID --expected|--unexpected``: record an analyst's verdict;
  expected alerts are suppressed from then on.

Bad input (a bad policy file, an unreadable store, a bad timestamp) exits
with code 2 and a message naming the file, line and key. State (sent log,
feedback, the last listing) lives under ``DATA_DIR/alerts`` (``--state-dir``).

The lead registers them with::

    app.command("alerts")(alerts.alerts)
    app.add_typer(alerts.policy_app, name="policy")
    app.command("feedback")(alerts.feedback)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from features.exceptions import ConfigError, ForecasterError
from features.store import Store
from forecaster.alerts.base import SEVERITIES, Alert, AlertContext, Evaluation, severity_rank
from forecaster.alerts.delivery import (
    DeliveryResult,
    Dispatcher,
    Notifier,
    SentLog,
    SnsNotifier,
    WebhookNotifier,
)
from forecaster.alerts.engine import (
    DEFAULT_HISTORY_DAYS,
    StatePaths,
    load_context,
    read_listing,
    run_alerts,
    write_listing,
)
from forecaster.alerts.feedback import FeedbackStore
from forecaster.alerts.policies import Policy, check_policy, default_rules, load_policy
from forecaster.commands._options import JsonOpt, StoreOpt
from forecaster.config import Settings, get_settings
from forecaster.console import err, fail, out, print_json

policy_app = typer.Typer(
    help="Policies as code: budgets, tags, idle and spot policies.", no_args_is_help=True
)

StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the sent log and feedback live (default: FORECASTER_DATA_DIR/alerts).",
    ),
]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="Evaluate as of this UTC time (default: the end of the data)."),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Report periods completed after this UTC time (default: one day before --as-of).",
    ),
]
HistoryOpt = Annotated[
    int,
    typer.Option("--history-days", min=1, help="Days of history loaded before --as-of."),
]


def _settings(store: Path | None) -> Settings:
    try:
        return get_settings(store=store)
    except Exception as exc:  # pydantic ValidationError / ConfigError
        fail(f"invalid settings: {exc}")


def _state(settings: Settings, state_dir: Path | None) -> StatePaths:
    return StatePaths(state_dir if state_dir is not None else settings.data_dir / "alerts")


def _timestamp(value: str | None, option: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        fail(
            f"option {option} must be a timestamp such as 2025-03-01 or 2025-03-01T12:00Z, got {value!r}"
        )
    if ts is pd.NaT:
        fail(f"option {option} must be a timestamp, got {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _policy(path: Path | None) -> Policy | None:
    if path is None:
        return None
    try:
        return load_policy(path)
    except ConfigError as exc:
        fail(str(exc))


def _context(
    settings: Settings,
    *,
    as_of: str | None,
    since: str | None,
    history_days: int,
    policy: Policy | None,
) -> AlertContext:
    path = settings.store_path
    t_as_of = _timestamp(as_of, "--as-of")
    t_since = _timestamp(since, "--since")
    if t_as_of is not None and t_since is not None and t_since >= t_as_of:
        fail(f"option --since ({t_since}) must be before --as-of ({t_as_of})")
    try:
        with Store(path, read_only=True) as st:
            return load_context(
                st,
                as_of=t_as_of,
                since=t_since,
                history_days=history_days,
                owners=policy.owners if policy is not None else None,
                known_events=policy.events if policy is not None else (),
            )
    except ForecasterError as exc:
        fail(str(exc))


def _money(v: float | None) -> str:
    if v is None or pd.isna(v):
        return ""
    return f"${v:,.2f}"


def _alerts_table(alerts: list[Alert], title: str, status: dict[str, str] | None = None) -> Any:
    from rich.table import Table

    colour = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
    t = Table(title=title, title_justify="left", expand=True)
    t.add_column("severity", no_wrap=True)
    t.add_column("impact", justify="right", no_wrap=True)
    t.add_column("owner", overflow="fold")
    t.add_column("alert", overflow="fold", ratio=1)
    t.add_column("id", no_wrap=True)
    if status is not None:
        t.add_column("delivery", overflow="fold")
    for a in alerts[:50]:
        row = [
            f"[{colour.get(a.severity, '')}]{a.severity}[/]",
            _money(a.impact),
            a.owner or "",
            f"{a.title} [dim]({a.rule}, detected {a.detected_at:%Y-%m-%d %H:%M} UTC)[/]",
            a.id,
        ]
        if status is not None:
            row.append(status.get(a.id, ""))
        t.add_row(*row)
    if len(alerts) > 50:
        t.caption = f"{len(alerts) - 50} more alerts not shown (use --json)"
    return t


def _evaluation_json(
    ctx: AlertContext, ev: Evaluation, results: list[DeliveryResult]
) -> dict[str, Any]:
    return {
        "as_of": ctx.as_of.isoformat(),
        "since": ctx.since.isoformat(),
        "data_end": ctx.data_end.isoformat(),
        "alerts": [a.to_dict() for a in ev.alerts],
        "suppressed": [{**a.to_dict(), "reason": why} for a, why in ev.suppressed],
        "errors": list(ev.errors),
        "delivery": [r.to_dict() for r in results],
    }


def alerts(
    store: StoreOpt = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Policy file (YAML); default rules: cost changes per workload, idle GPUs, untagged spend.",
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            envvar="FORECASTER_ALERT_WEBHOOK_URL",
            help="Slack-compatible webhook to send alerts to.",
        ),
    ] = None,
    sns_topic_arn: Annotated[
        str | None,
        typer.Option(
            "--sns-topic-arn",
            envvar="FORECASTER_ALERT_SNS_TOPIC_ARN",
            help="SNS topic to publish alerts to (needs boto3).",
        ),
    ] = None,
    sns_endpoint_url: Annotated[
        str | None,
        typer.Option("--sns-endpoint-url", help="SNS endpoint (a local moto/LocalStack server)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show what would be sent to the destinations; send and record nothing.",
        ),
    ] = False,
    min_severity: Annotated[
        str,
        typer.Option(
            "--min-severity", help="Send only alerts at or above: info, warning, critical."
        ),
    ] = "info",
    as_of: AsOfOpt = None,
    since: SinceOpt = None,
    history_days: HistoryOpt = DEFAULT_HISTORY_DAYS,
    state_dir: StateOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List alerts (anomalies with root causes, budgets, policies) and send them once each."""
    if min_severity not in SEVERITIES:
        fail(f"option --min-severity must be one of {', '.join(SEVERITIES)}, got {min_severity!r}")
    settings = _settings(store)
    state = _state(settings, state_dir)
    pol = _policy(policy)
    notifiers: list[Notifier] = []
    try:
        if webhook_url:
            notifiers.append(WebhookNotifier(webhook_url))
        if sns_topic_arn:
            notifiers.append(SnsNotifier(sns_topic_arn, endpoint_url=sns_endpoint_url))
    except ConfigError as exc:
        fail(str(exc))
    ctx = _context(settings, as_of=as_of, since=since, history_days=history_days, policy=pol)
    rules = pol.rules() if pol is not None else default_rules()
    try:
        fb = FeedbackStore(state.feedback)
        ev = run_alerts(rules, ctx, feedback=fb)
        write_listing(state.last_alerts, ev.alerts)
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write alert state under {state.root}: {exc}", code=1)
    results: list[DeliveryResult] = []
    if notifiers:
        disp = Dispatcher(
            notifiers, sent_log=SentLog(state.sent_log), dry_run=dry_run, min_severity=min_severity
        )
        try:
            results = disp.dispatch(ev.alerts)
        except ForecasterError as exc:
            fail(str(exc), code=1)
    if json_:
        print_json(_evaluation_json(ctx, ev, results))
    else:
        status: dict[str, str] | None = None
        if results:
            status = {}
            for r in results:
                status[r.alert_id] = ", ".join(
                    x
                    for x in (
                        status.get(r.alert_id, ""),
                        f"{r.destination.split(':')[0]}: {r.status}",
                    )
                    if x
                )
        out.print(
            _alerts_table(
                ev.alerts,
                f"{len(ev.alerts)} alert(s) for periods completed {ctx.since:%Y-%m-%d %H:%M} to "
                f"{ctx.data_end:%Y-%m-%d %H:%M} UTC",
                status,
            )
        )
        for a, why in ev.suppressed[:10]:
            err.print(
                f"[dim]suppressed {a.id} ({a.rule}, {a.scope_label}): {why}[/]", highlight=False
            )
        if not notifiers:
            err.print(
                "dry run: no destination given (--webhook-url, --sns-topic-arn); nothing sent"
            )
        elif dry_run:
            err.print("dry run: nothing sent, nothing recorded")
    for e in ev.errors:
        err.print(f"[yellow]warning:[/] rule failed: {e}", highlight=False)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        first = failed[0]
        fail(
            f"{len(failed)} delivery(ies) failed; first: alert {first.alert_id} to "
            f"{first.destination} after {first.attempts} attempt(s): {first.error}",
            code=1,
        )
    sent = sum(r.status == "sent" for r in results)
    if results and not json_:
        dup = sum(r.status == "duplicate" for r in results)
        err.print(f"sent {sent}, already sent before {dup}, to {len(notifiers)} destination(s)")


@policy_app.command("check")
def policy_check(
    policy: Annotated[Path, typer.Argument(help="Policy file (YAML).")],
    store: StoreOpt = None,
    as_of: AsOfOpt = None,
    since: SinceOpt = None,
    history_days: HistoryOpt = DEFAULT_HISTORY_DAYS,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="Exit 1 when a violation is at or above: none, info, warning, critical.",
        ),
    ] = "none",
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Only validate the file (no store needed).")
    ] = False,
    state_dir: StateOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Validate a policy file and list its violations with severity and owner."""
    if fail_on != "none" and fail_on not in SEVERITIES:
        fail(f"option --fail-on must be one of none, {', '.join(SEVERITIES)}, got {fail_on!r}")
    pol = _policy(policy)
    assert pol is not None
    if validate_only:
        if json_:
            print_json(
                {"policy": str(policy), "valid": True, "rules": [r.kind for r in pol.rules()]}
            )
        else:
            out.print(f"[green]{policy}: valid[/] ({len(pol.rules())} rules)")
        return
    settings = _settings(store)
    state = _state(settings, state_dir)
    ctx = _context(settings, as_of=as_of, since=since, history_days=history_days, policy=pol)
    try:
        ev = check_policy(pol, ctx, suppress=FeedbackStore(state.feedback))
    except ConfigError as exc:
        fail(str(exc))
    if json_:
        print_json({"policy": str(policy), **_evaluation_json(ctx, ev, [])})
    else:
        out.print(
            _alerts_table(
                ev.alerts,
                f"{len(ev.alerts)} violation(s) of {policy} as of {ctx.data_end:%Y-%m-%d %H:%M} UTC",
            )
        )
        if not ev.alerts:
            out.print("[green]no violations[/]")
    for e in ev.errors:
        err.print(f"[yellow]warning:[/] rule failed: {e}", highlight=False)
    if fail_on != "none" and any(
        severity_rank(a.severity) >= severity_rank(fail_on) for a in ev.alerts
    ):
        raise typer.Exit(1)


def feedback(
    alert_id: Annotated[str, typer.Argument(help="Alert id (from `forecaster alerts`).")],
    expected: Annotated[
        bool,
        typer.Option(
            "--expected/--unexpected",
            help="Planned activity (suppress it from now on) or a real problem (kept as a label).",
        ),
    ],
    note: Annotated[
        str, typer.Option("--note", help="Why (shown when the alert is suppressed).")
    ] = "",
    pattern: Annotated[
        bool,
        typer.Option(
            "--pattern", help="Suppress every alert of the same rule and scope, not only this one."
        ),
    ] = False,
    until: Annotated[
        str | None, typer.Option("--until", help="End of a --pattern suppression (UTC timestamp).")
    ] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who gives the verdict.")] = None,
    state_dir: StateOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Mark an alert as expected (planned activity) or not; expected ones are suppressed."""
    settings = _settings(None)
    state = _state(settings, state_dir)
    alert_id = alert_id.strip()
    if not alert_id or not all(c in "0123456789abcdef" for c in alert_id.lower()):
        fail(
            f"argument ALERT_ID must be an alert id (hex digits, from `forecaster alerts`), got {alert_id!r}"
        )
    if until is not None and not pattern:
        fail("option --until only applies with --pattern")
    t_until = _timestamp(until, "--until")
    known = read_listing(state.last_alerts).get(alert_id)
    try:
        fb = FeedbackStore(state.feedback).add(
            alert_id, expected, note, alert=known, pattern=pattern, until=t_until, by=by
        )
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write feedback under {state.root}: {exc}", code=1)
    if json_:
        print_json({"feedback": fb.to_dict(), "alert_known": known is not None})
        return
    verdict = "expected (suppressed from now on)" if expected else "not expected (kept as a label)"
    what = (
        f"{known.get('rule')} on {known.get('scope') or 'all spend'}"
        if known
        else "an alert not in the last listing"
    )
    out.print(f"alert {alert_id} ({what}): {verdict}" + (" - whole pattern" if pattern else ""))
    if known is None:
        err.print(
            "[yellow]note:[/] only this id is suppressed (run `forecaster alerts` to list it first for a known event)"
        )
