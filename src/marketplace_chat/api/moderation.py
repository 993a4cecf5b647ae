"""`/api/admin/reports`: the moderators' view of reports, behind the same `ADMIN_API_KEY`
check as every admin route (403 `FORBIDDEN` before anything else is read)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from marketplace_chat import wire
from marketplace_chat.api import schemas
from marketplace_chat.api.admin import ADMIN_ERRORS, operator_only
from marketplace_chat.api.inputs import json_object, query_args
from marketplace_chat.payloads import parse
from marketplace_chat.reports import ReportRef, ReportResolve, Reports, ReportsQuery

ReportIdPath = Annotated[str, Path(alias="id", description="the report id (UUID)")]


def moderation_router(reports: Reports, api_key: str | None) -> APIRouter:
    router = APIRouter(
        prefix="/api/admin", tags=["moderation"], dependencies=[Depends(operator_only(api_key))]
    )

    @router.get(
        "/reports",
        response_model=None,
        responses={200: {"model": wire.ReportsPage}, **ADMIN_ERRORS},
    )
    async def list_reports(request: Request) -> dict[str, Any]:
        """Reports by `status` (`open`, the default, or `resolved`), newest first, without
        their snapshots; `limit` 1 to 100 (default 50), `before` the previous nextCursor."""
        page = await reports.list(parse(ReportsQuery, query_args(request, ints=["limit"])))
        return {"reports": [r.to_wire() for r in page.reports], "nextCursor": page.next_cursor}

    @router.get(
        "/reports/{id}",
        response_model=None,
        responses={200: {"model": wire.ReportWithSnapshot}, **ADMIN_ERRORS},
    )
    async def get_report(report_id: ReportIdPath) -> dict[str, Any]:
        """One report with its snapshot: the messages as they were when it was filed, with
        their original texts."""
        return (await reports.get(parse(ReportRef, {"id": report_id}))).to_wire()

    @router.post(
        "/reports/{id}/resolve",
        response_model=None,
        responses={200: {"model": wire.ReportWithSnapshot}, **ADMIN_ERRORS},
        openapi_extra=schemas.request_body(
            ReportResolve, example={"resolution": "actioned", "note": "seller warned"}
        ),
    )
    async def resolve_report(request: Request, report_id: ReportIdPath) -> dict[str, Any]:
        """Resolve an open report. The first resolution stands: resolving it again changes
        nothing and answers the report as it is (200), so a retry is harmless."""
        ref = parse(ReportRef, {"id": report_id})
        p = parse(ReportResolve, await json_object(request))
        return (await reports.resolve(ref, p)).to_wire()

    return router
