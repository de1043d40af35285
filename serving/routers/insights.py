"""``/v1/anomalies`` and ``/v1/recommendations``: what analysts and planners browse."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from serving.deps import CurrentSnapshot, NoUnknownQuery, ReadKey, invalid
from serving.ids import MAX_ID_LENGTH
from serving.schemas import AnomalyList, Recommendations, error_responses
from serving.state import iso_z, jdump

JSON = "application/json"
# Filters are query parameters: form-encoded (serving.ids), a plus sent as %2B.
Text = Annotated[str | None, Query(max_length=MAX_ID_LENGTH)]


# Only ISO 8601 text: a bare number would otherwise be read as a Unix time.
ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?$"


def _parse_time(text: str, param: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(["query", param], "must be an ISO 8601 time", text) from None
    ts = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    try:
        utc = ts.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-23:59 is past datetime.max in UTC
        utc = None
    if utc is None or not 1970 <= utc.year <= 2200:
        raise invalid(["query", param], "must be a time between 1970 and 2200", text)
    return utc


def build_router() -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["insights"], dependencies=[NoUnknownQuery])

    @r.get(
        "/anomalies",
        response_model=AnomalyList,
        responses=error_responses(401, 403),
        summary="Cost anomalies with root causes, largest impact first",
    )
    async def anomalies(
        snap: CurrentSnapshot,
        _: ReadKey,
        team: Text = None,
        service: Text = None,
        severity: Text = None,
        rule: Text = None,
        since: Annotated[
            str | None,
            Query(
                pattern=ISO_TIME,
                description="ISO 8601 time (UTC when no offset): only anomalies whose period "
                "ends at or after it.",
            ),
        ] = None,
        min_impact: Annotated[float | None, Query(ge=0, le=1e15, description="USD.")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> Response:
        cut = iso_z(_parse_time(since, "since")) if since is not None else None
        rows = [
            a
            for a in snap.anomalies
            if (team is None or a["team"] == team)
            and (service is None or a["service"] == service)
            and (severity is None or a["severity"] == severity)
            and (rule is None or a["rule"] == rule)
            # ISO-8601 UTC strings of one format order like the instants they name.
            and (cut is None or (a["period_end"] or a["period_start"] or "") >= cut)
            and (min_impact is None or (a["impact"] or 0.0) >= min_impact)
        ]
        rows.sort(key=lambda a: -(a["impact"] or 0.0))
        body = jdump(
            {
                "total": len(rows),
                "offset": offset,
                "limit": limit,
                "items": rows[offset : offset + limit],
            }
        )
        return Response(body.encode(), media_type=JSON)

    @r.get(
        "/recommendations",
        response_model=Recommendations,
        responses=error_responses(401, 403),
        summary="Right-sizing, placement and savings recommendations",
    )
    async def recommendations(
        snap: CurrentSnapshot,
        _: ReadKey,
        kind: Annotated[
            list[Literal["rightsizing", "placement", "savings"]] | None,
            Query(max_length=3, description="Which lists to return (default all)."),
        ] = None,
        team: Annotated[str | None, Query(max_length=256, description="Savings of a team.")] = None,
        workload_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
        min_saving: Annotated[
            float | None, Query(ge=0, le=1e15, description="USD per month.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> Response:
        kinds = set(kind or ("rightsizing", "placement", "savings"))
        rs = []
        if "rightsizing" in kinds:
            rs = [
                x
                for x in snap.rightsizing
                if (workload_id is None or x["workload_id"] == workload_id)
                and (min_saving is None or (x["saving_usd_per_month"] or 0.0) >= min_saving)
            ]
            rs.sort(key=lambda x: -(x["saving_usd_per_month"] or 0.0))
        pl = list(snap.placement) if "placement" in kinds else []
        sv = []
        if "savings" in kinds:
            sv = [
                x
                for x in snap.savings
                if (team is None or x["team"] == team)
                and (min_saving is None or (x["usd_per_month"] or 0.0) >= min_saving)
            ]
            sv.sort(key=lambda x: -(x["usd_per_month"] or 0.0))
        sv = sv[:limit]
        total = sum((x["usd_per_month"] or 0.0) for x in sv)
        body = jdump(
            {
                "savings_usd_per_month": total,
                "rightsizing": rs[:limit],
                "placement": pl[:limit],
                "savings": sv,
            }
        )
        return Response(body.encode(), media_type=JSON)

    return r
