"""AWS Cost Explorer (``ce.get_cost_and_usage``) into the cost frame.

For teams without a CUR 2.0 or FOCUS export yet. One run plans a few requests, follows
every page of each, and only then builds the frame, so a failure part-way (a page that
never comes, credentials that expire) stores nothing.

Grouping
    Cost Explorer accepts at most two group-bys per request. We group every request by an
    anchor dimension (``SERVICE`` by default) and one cost-allocation tag, one request per
    tag, and merge them: the first tag's request gives the rows and the amounts; each
    further tag splits those rows in the proportions its own request reports for the same
    period and anchor value. Totals, and each tag's totals, are exactly what AWS reported;
    the joint split of two tags inside one period and anchor value is the
    proportional (maximum-entropy) one, since Cost Explorer never reports it.

Incremental reads
    What was read is remembered in the store (``live_state``): the next run asks only for
    the days after it, plus the last ``restate_days`` (3) days again, because AWS restates
    recent days. Re-read days replace what the store held for them (``replace_prefixes``),
    so restated amounts and vanished groups never add up twice.

Money: ``effective_cost`` is ``AmortizedCost``, ``billed_cost`` is ``UnblendedCost``,
``usage_quantity`` is ``UsageQuantity`` (Cost Explorer sums it over mixed units, so it is
only meaningful inside one usage type), ``list_cost`` is NaN (Cost Explorer has none).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa

from features.exceptions import ConfigError, IngestError
from features.readers._tags import normalize_tag_key, tag_dimensions, tags_to_json
from features.readers.aws._client import AwsOptions, aws_errors, make_client
from features.readers.aws._state import read_state, write_state
from features.readers.base import COST_ARROW_SCHEMA, ReadResult, Rejection
from features.schema import COST_FRAME_COLUMNS
from features.store import IngestReport, Store

__all__ = [
    "METRICS",
    "CostExplorerQuery",
    "build_requests",
    "ingest_cost_explorer",
    "read_cost_explorer",
]

SOURCE = "cost_explorer"
Granularity = Literal["DAILY", "HOURLY"]

#: Metrics asked for, and the cost-frame column each one fills.
METRICS: dict[str, str] = {
    "AmortizedCost": "effective_cost",
    "UnblendedCost": "billed_cost",
    "UsageQuantity": "usage_quantity",
}
#: Anchor dimensions and the cost-frame column each fills.
ANCHORS: dict[str, str] = {
    "SERVICE": "service",
    "LINKED_ACCOUNT": "account",
    "REGION": "region",
    "INSTANCE_TYPE": "instance_type",
    "USAGE_TYPE": "usage_type",
}
#: Days re-read on every incremental run, because AWS restates recent days.
RESTATE_DAYS = 3
_HOURLY_DAYS = 14  # Cost Explorer keeps hourly data for 14 days


@dataclass(frozen=True)
class CostExplorerQuery:
    """What to ask Cost Explorer for.

    Parameters
    ----------
    start, end : datetime.date
        Days to read, ``end`` excluded (UTC days, as Cost Explorer counts them).
    granularity : {"DAILY", "HOURLY"}
        Hourly data exists for the last 14 days only (and must be enabled in the account).
    dimension : str
        Anchor dimension of every request: one of :data:`ANCHORS`.
    tags : sequence of str
        Cost-allocation tag keys (as activated in Billing, e.g. ``team``); one request per
        tag. Empty: one request grouped by the anchor alone.
    filter : dict, optional
        A Cost Explorer ``Filter`` expression applied to every request.
    scope : str
        A label for the account (payer) read, kept in the line ids, so that one store can
        hold several payers without one replacing the other's days.
    """

    start: date
    end: date
    granularity: Granularity = "DAILY"
    dimension: str = "SERVICE"
    tags: tuple[str, ...] = ("team", "project")
    filter: dict[str, Any] | None = None
    scope: str = "default"

    def __post_init__(self) -> None:
        if self.granularity not in ("DAILY", "HOURLY"):
            raise ConfigError(
                f"parameter granularity must be DAILY or HOURLY, got {self.granularity!r}"
            )
        if not isinstance(self.start, date) or not isinstance(self.end, date):
            raise ConfigError("parameters start and end must be dates")
        if self.end <= self.start:
            raise ConfigError(
                f"parameter end must be after start, got start={self.start}, end={self.end}"
            )
        if self.dimension not in ANCHORS:
            raise ConfigError(
                f"parameter dimension must be one of {sorted(ANCHORS)}, got {self.dimension!r}"
            )
        if len(set(self.tags)) != len(self.tags) or any(not t.strip() for t in self.tags):
            raise ConfigError(f"parameter tags must be distinct non-empty keys, got {self.tags!r}")
        if not self.scope or "/" in self.scope:
            raise ConfigError(
                f"parameter scope must be a non-empty label without '/', got {self.scope!r}"
            )

    @property
    def signature(self) -> str:
        """What makes two runs' rows comparable (the window aside)."""
        doc = [self.granularity, self.dimension, list(self.tags), self.filter]
        return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def state_key(self) -> str:
        return f"{self.scope}/{self.granularity}"


def _fmt(day: date, granularity: str) -> str:
    return f"{day.isoformat()}T00:00:00Z" if granularity == "HOURLY" else day.isoformat()


def build_requests(query: CostExplorerQuery) -> list[dict[str, Any]]:
    """The keyword arguments of each ``get_cost_and_usage`` call, first page (no token).

    Later pages repeat the same arguments plus ``NextPageToken``. Order: one request per
    tag, in ``query.tags`` order.
    """
    period = {
        "Start": _fmt(query.start, query.granularity),
        "End": _fmt(query.end, query.granularity),
    }
    anchor = {"Type": "DIMENSION", "Key": query.dimension}
    groupings = [[anchor, {"Type": "TAG", "Key": t}] for t in query.tags] or [[anchor]]
    out = []
    for group_by in groupings:
        req: dict[str, Any] = {
            "TimePeriod": dict(period),
            "Granularity": query.granularity,
            "Metrics": list(METRICS),
            "GroupBy": group_by,
        }
        if query.filter:
            req["Filter"] = query.filter
        out.append(req)
    return out


# -- fetching ---------------------------------------------------------------------------------


@dataclass
class _Page:
    request: int  # index in build_requests()
    number: int  # 1-based page number
    body: dict[str, Any]


def fetch_pages(
    client: Any,
    requests: Sequence[dict[str, Any]],
    *,
    on_page: Callable[[int, int], None] | None = None,
    max_pages: int = 10_000,
) -> list[_Page]:
    """Follow every page of every request; raise before returning anything on failure."""
    pages: list[_Page] = []
    for i, req in enumerate(requests):
        token: str | None = None
        number = 0
        seen: set[str] = set()
        while True:
            number += 1
            params = dict(req, NextPageToken=token) if token else dict(req)
            what = (
                f"ce.get_cost_and_usage (request {i + 1}/{len(requests)}, "
                f"{req['TimePeriod']['Start']}..{req['TimePeriod']['End']}, page {number})"
            )
            with aws_errors(what):
                body = client.get_cost_and_usage(**params)
            if not isinstance(body.get("ResultsByTime"), list):
                raise IngestError(
                    f"{what}: the answer has no ResultsByTime list; nothing was stored"
                )
            pages.append(_Page(i, number, body))
            if on_page is not None:
                on_page(i, number)
            token = body.get("NextPageToken") or None
            if token is None:
                break
            if token in seen or number >= max_pages:
                raise IngestError(
                    f"{what}: Cost Explorer repeated page token {token!r}; nothing was stored"
                )
            seen.add(token)
    return pages


# -- building the frame -----------------------------------------------------------------------


def _parse_period(text: str, where: str) -> datetime:
    try:
        if "T" in text:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise IngestError(f"{where}: TimePeriod {text!r} is not a date or timestamp") from None


def _amount(metrics: dict[str, Any], name: str) -> tuple[float, str | None]:
    m = metrics.get(name)
    if not isinstance(m, dict) or "Amount" not in m:
        return math.nan, None
    try:
        value = float(m["Amount"])
    except (TypeError, ValueError):
        return math.nan, m.get("Unit")
    return value, m.get("Unit")


def _tag_value(key: str, tag: str) -> str | None:
    # Cost Explorer answers tag groups as "<key>$<value>", untagged as "<key>$".
    value = key.split("$", 1)[1] if "$" in key else key
    return value.strip() or None


@dataclass
class _Group:
    ds: datetime
    ds_end: datetime
    anchor: str | None
    tag: str | None
    values: dict[str, float]
    units: dict[str, str | None]
    estimated: bool
    where: str
    row: int


@dataclass
class _Parsed:
    groups: list[list[_Group]] = field(default_factory=list)  # per request
    rejections: list[Rejection] = field(default_factory=list)
    rejected_cost: list[float] = field(default_factory=list)


def _parse(pages: list[_Page], n_requests: int, tagged: bool) -> _Parsed:
    out = _Parsed(groups=[[] for _ in range(n_requests)])
    seen: set[tuple[int, datetime, str | None, str | None]] = set()
    for page in pages:
        where = f"ce.get_cost_and_usage request {page.request + 1} page {page.number}"
        row = 0
        for result in page.body["ResultsByTime"]:
            period = result.get("TimePeriod") or {}
            ds = _parse_period(str(period.get("Start", "")), where)
            ds_end = _parse_period(str(period.get("End", "")), where)
            estimated = bool(result.get("Estimated", False))
            groups = result.get("Groups") or []
            if not groups and result.get("Total"):
                # Ungrouped answers carry their amounts in Total.
                groups = [{"Keys": [], "Metrics": result["Total"]}]
            for g in groups:
                row += 1
                keys = [str(k) for k in g.get("Keys", [])]
                anchor = keys[0].strip() or None if keys else None
                tag = _tag_value(keys[1], "") if tagged and len(keys) > 1 else None
                values: dict[str, float] = {}
                units: dict[str, str | None] = {}
                for name in METRICS:
                    values[name], units[name] = _amount(g.get("Metrics") or {}, name)
                grp = _Group(ds, ds_end, anchor, tag, values, units, estimated, where, row)
                cost = values["AmortizedCost"]
                key = (page.request, ds, anchor, tag)
                reason = None
                if not math.isfinite(cost):
                    reason, column = "invalid_cost", "Metrics.AmortizedCost.Amount"
                elif key in seen:
                    reason, column = "duplicate_group", "Keys"
                if reason is None:
                    seen.add(key)
                    out.groups[page.request].append(grp)
                elif page.request == 0:
                    # Only the first request's groups become rows; the others only split them.
                    out.rejections.append(Rejection(where, row, column, reason, cost))
                    if math.isfinite(cost):
                        out.rejected_cost.append(cost)
    return out


def _line_id(scope: str, ds: datetime, parts: Sequence[str | None], granularity: str) -> str:
    digest = hashlib.sha1(json.dumps([granularity, ds.isoformat(), *parts]).encode()).hexdigest()[
        :20
    ]
    return f"ce/{scope}/{ds.date().isoformat()}/{digest}"


def _assemble(query: CostExplorerQuery, parsed: _Parsed) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the cost frame: first request's groups split by the other tags' shares."""
    warnings: list[str] = []
    tags = list(query.tags)
    # shares[k][(ds, anchor)] = [(tag value, share)] for tag k >= 1
    shares: list[dict[tuple[datetime, str | None], list[tuple[str | None, float]]]] = []
    totals: list[dict[tuple[datetime, str | None], float]] = []
    for k in range(1, len(tags)):
        acc: dict[tuple[datetime, str | None], list[tuple[str | None, float]]] = {}
        for g in parsed.groups[k]:
            acc.setdefault((g.ds, g.anchor), []).append((g.tag, g.values["AmortizedCost"]))
        share: dict[tuple[datetime, str | None], list[tuple[str | None, float]]] = {}
        tot: dict[tuple[datetime, str | None], float] = {}
        for cell, parts in acc.items():
            s = math.fsum(v for _, v in parts)
            tot[cell] = s
            if abs(s) < 1e-9:
                continue  # nothing to split by: the tag stays unknown for this cell
            share[cell] = [(t, v / s) for t, v in parts]
        shares.append(share)
        totals.append(tot)
    base_tot: dict[tuple[datetime, str | None], float] = {}
    for g in parsed.groups[0]:
        base_tot[(g.ds, g.anchor)] = base_tot.get((g.ds, g.anchor), 0.0) + g.values["AmortizedCost"]
    unsplit = 0
    for k, tot in enumerate(totals, start=1):
        off = [c for c, s in tot.items() if abs(s - base_tot.get(c, 0.0)) > 0.01]
        if off:
            ds, anchor = off[0]
            warnings.append(
                f"requests grouped by tag {tags[0]!r} and {tags[k]!r} disagree on {len(off)} "
                f"period/{query.dimension} total(s) (first: {ds:%Y-%m-%d %H:%M} {anchor}: "
                f"{base_tot.get(off[0], 0.0):.4f} vs {tot[off[0]]:.4f}); the amounts of the "
                f"{tags[0]!r} request are kept"
            )
    anchor_col = ANCHORS[query.dimension]
    rows: list[dict[str, Any]] = []
    for g in parsed.groups[0]:
        combos: list[tuple[list[str | None], float]] = [([g.tag] if tags else [], 1.0)]
        for k in range(1, len(tags)):
            split = shares[k - 1].get((g.ds, g.anchor))
            if split is None:
                unsplit += 1
                split = [(None, 1.0)]
            combos = [([*vals, t], w * s) for vals, w in combos for t, s in split]
        for vals, w in combos:
            raw = {tags[i]: v for i, v in enumerate(vals) if v is not None}
            canon = {normalize_tag_key(k): v for k, v in raw.items()}
            dims = tag_dimensions(canon)
            row: dict[str, Any] = dict.fromkeys(COST_FRAME_COLUMNS)
            row.update(
                ds=g.ds,
                ds_end=g.ds_end,
                provider="AWS",
                charge_category="Usage",
                currency=g.units.get("AmortizedCost") or "USD",
                usage_unit=g.units.get("UsageQuantity"),
                effective_cost=g.values["AmortizedCost"] * w,
                billed_cost=(g.values["UnblendedCost"] * w)
                if math.isfinite(g.values["UnblendedCost"])
                else g.values["AmortizedCost"] * w,
                list_cost=math.nan,
                usage_quantity=g.values["UsageQuantity"] * w,
                tags=tags_to_json(dict(sorted(canon.items()))),
                extras=json.dumps(
                    {
                        "estimated": g.estimated,
                        "granularity": query.granularity,
                        "split_weight": round(w, 12),
                    },
                    sort_keys=True,
                ),
                source=SOURCE,
                line_id=_line_id(query.scope, g.ds, [g.anchor, *vals], query.granularity),
            )
            row[anchor_col] = g.anchor
            for dim, value in dims.items():
                if value is not None and row.get(dim) is None:
                    row[dim] = value
            rows.append(row)
    if unsplit:
        warnings.append(
            f"{unsplit} group(s) had no amounts to split by in a later tag's request; their "
            "value of that tag is left empty"
        )
    return rows, warnings


def read_cost_explorer(
    query: CostExplorerQuery,
    *,
    client: Any = None,
    options: AwsOptions | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> ReadResult:
    """Read ``query`` from Cost Explorer into a :class:`ReadResult` (nothing is stored).

    Parameters
    ----------
    query : CostExplorerQuery
        Days, granularity and grouping.
    client : boto3 Cost Explorer client, optional
        Default: one made from ``options``.
    options : AwsOptions, optional
        Endpoint, profile and retry policy of the default client.
    on_page : callable, optional
        Called as ``on_page(request_index, page_number)`` after each page (progress bars).

    Returns
    -------
    ReadResult
        One row per (period, anchor value, tag values), ``source="cost_explorer"``, and
        ``replace_prefixes`` naming every day read, so that the store drops what it held
        for those days first.

    Raises
    ------
    IngestError
        Throttling or 5xx answers that outlast the retries, a malformed page, a page that
        fails mid-way (nothing is returned, so nothing is stored).
    ConfigError
        Missing, expired or refused credentials.
    """
    cli = client if client is not None else make_client("ce", options, region="us-east-1")
    requests = build_requests(query)
    pages = fetch_pages(cli, requests, on_page=on_page)
    parsed = _parse(pages, len(requests), tagged=bool(query.tags))
    rows, warnings = _assemble(query, parsed)
    table = (
        pa.Table.from_pylist(rows, schema=COST_ARROW_SCHEMA)
        if rows
        else COST_ARROW_SCHEMA.empty_table()
    )
    days = [query.start + timedelta(days=i) for i in range((query.end - query.start).days)]
    eff = [float(v) for v in table.column("effective_cost").to_pylist()]
    return ReadResult(
        source=SOURCE,
        paths=[
            f"ce:{r['TimePeriod']['Start']}..{r['TimePeriod']['End']}:"
            + "+".join(g["Key"] for g in r["GroupBy"])
            for r in requests
        ],
        table=table,
        rejections=parsed.rejections,
        rows_read=table.num_rows + len(parsed.rejections),
        effective_cost_read=math.fsum(eff + parsed.rejected_cost),
        warnings=warnings,
        replace_prefixes=[f"ce/{query.scope}/{d.isoformat()}/" for d in days],
    )


def incremental_query(
    query: CostExplorerQuery, store: Store, *, restate_days: int = RESTATE_DAYS
) -> tuple[CostExplorerQuery, str]:
    """Narrow ``query`` to the days the store lacks, plus the last ``restate_days`` again.

    Returns the narrowed query and a one-line note of what was decided.
    """
    state = read_state(store, SOURCE).get(query.state_key)
    if state is None:
        return query, f"first read of {query.state_key}: {query.start}..{query.end}"
    _, detail = state
    if detail.get("signature") != query.signature:
        return query, (
            f"grouping or filter changed since the last read of {query.state_key}: "
            f"re-reading {query.start}..{query.end}"
        )
    covered_start = date.fromisoformat(detail["start"])
    covered_end = date.fromisoformat(detail["end"])
    if query.start < covered_start or query.start > covered_end:
        return query, f"{query.start} lies outside what was read ({covered_start}..{covered_end})"
    start = max(query.start, min(covered_end, query.end) - timedelta(days=restate_days))
    if start >= query.end:
        start = query.end - timedelta(days=1)
    narrowed = replace(query, start=start)
    return narrowed, (
        f"held {covered_start}..{covered_end}; reading {start}..{query.end} "
        f"(the last {restate_days} days again, as AWS restates them)"
    )


def ingest_cost_explorer(
    store: Store,
    query: CostExplorerQuery,
    *,
    client: Any = None,
    options: AwsOptions | None = None,
    incremental: bool = True,
    restate_days: int = RESTATE_DAYS,
    on_page: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Read Cost Explorer incrementally and store it; return the ingest accounting.

    With ``incremental`` (the default) only the days after the last read plus the last
    ``restate_days`` are requested (see :func:`incremental_query`); the note of what was
    decided is the report's first warning.
    """
    if restate_days < 0:
        raise ConfigError(f"parameter restate_days must be >= 0, got {restate_days}")
    if query.granularity == "HOURLY" and (date.today() - query.start).days > _HOURLY_DAYS:
        raise ConfigError(
            f"parameter start must be within the last {_HOURLY_DAYS} days for HOURLY "
            f"granularity (Cost Explorer keeps hourly data that long), got {query.start}"
        )
    note = f"full read {query.start}..{query.end}"
    if incremental:
        query, note = incremental_query(query, store, restate_days=restate_days)
    result = read_cost_explorer(query, client=client, options=options, on_page=on_page)
    result.warnings.insert(0, note)
    report = store.ingest(result)
    prev = read_state(store, SOURCE).get(query.state_key)
    start = query.start
    if prev is not None and prev[1].get("signature") == query.signature:
        start = min(start, date.fromisoformat(prev[1]["start"]))
    end = max(query.end, date.fromisoformat(prev[1]["end"])) if prev else query.end
    write_state(
        store,
        SOURCE,
        {
            query.state_key: (
                query.signature,
                {"start": start.isoformat(), "end": end.isoformat(), "signature": query.signature},
            )
        },
    )
    return report
