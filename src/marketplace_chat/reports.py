"""Reports: a participant files one about a chat or one of its messages; moderators read the
evidence and resolve it (the moderation API, `/api/admin/reports`).

Filing is idempotent per reporter and subject (a message, or the chat without one): a repeat,
also one racing the first, is answered with the first report, so a client may retry freely and
a user cannot pile up reports against someone. The evidence is taken when the report is filed
(see `storage/reports.py`).
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from marketplace_chat.clock import Clock
from marketplace_chat.errors import NotFound
from marketplace_chat.models import Report, ReportReceipt
from marketplace_chat.payloads import Payload, ReportCreate, Text, Uuid
from marketplace_chat.service import ChatService
from marketplace_chat.storage.base import NewReport, ReportPage, ReportStorage

MAX_RESOLUTION_NOTE = 2000


class ReportsQuery(Payload):
    status: Literal["open", "resolved"] = "open"
    limit: int = Field(default=50, ge=1, le=100, strict=True)
    before: Text | None = Field(default=None, max_length=200)


class ReportRef(Payload):
    id: Uuid


class ReportResolve(Payload):
    resolution: Literal["dismissed", "actioned"]
    note: Text | None = Field(default=None, max_length=MAX_RESOLUTION_NOTE)


class Reports:
    def __init__(self, store: ReportStorage, chats: ChatService, clock: Clock) -> None:
        self._store = store
        self._chats = chats
        self._clock = clock

    async def file(self, user_id: int, p: ReportCreate) -> tuple[ReportReceipt, bool]:
        """File a report (True), or the caller's first one of the same subject (False)."""
        parts = await self._chats.participants(user_id, p.chat_id)
        comment = p.comment.strip() if p.comment is not None else None
        return await self._store.create_report(
            NewReport(
                id=str(uuid.uuid4()),
                chat_id=parts.chat_id,
                message_id=p.message_id,
                reporter_id=user_id,
                reported_user_id=parts.other(user_id),
                reason=p.reason,
                comment=comment or None,
                created_at=self._clock.now(),
            )
        )

    # -- moderators ------------------------------------------------------------------------------

    async def list(self, q: ReportsQuery) -> ReportPage:
        return await self._store.list_reports(q.status, q.limit, q.before)

    async def get(self, ref: ReportRef) -> Report:
        found = await self._store.get_report(ref.id)
        if found is None:
            raise NotFound("id: no such report")
        return found

    async def resolve(self, ref: ReportRef, p: ReportResolve) -> Report:
        """Resolve an open report. The first resolution stands: resolving a resolved report
        changes nothing and answers it as it is, so a retried request is harmless and the
        answer says which resolution holds."""
        note = p.note.strip() if p.note is not None else None
        found = await self._store.resolve_report(
            ref.id, p.resolution, note or None, self._clock.now()
        )
        if found is None:
            raise NotFound("id: no such report")
        return found[0]
