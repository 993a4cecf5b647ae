"""Reports in PostgreSQL: filed with their evidence in one statement, listed and resolved.

The snapshot is built by the statement that inserts the report, from the rows as they are at
that moment, with each message's original text (`COALESCE(original_text, text)`: the text as
sent before masking, and the text a delete replaced), and kept as JSON: later edits and deletes
change the messages, never the evidence.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import asyncpg

from marketplace_chat.errors import NotFound
from marketplace_chat.models import Report, ReportReceipt
from marketplace_chat.storage.base import EventPolicy, NewReport, ReportPage
from marketplace_chat.storage.cursor import decode_cursor, encode_cursor
from marketplace_chat.storage.outbox_sql import ISO
from marketplace_chat.storage.store import PooledStore

# The evidence: the reported message and this many before it, or the chat's latest this many.
SNAPSHOT_BEFORE = 50
NO_MESSAGE = "00000000-0000-0000-0000-000000000000"

# The same expression as the unique index `reports_once_key`, so the lookup uses it.
FIND = f"""
SELECT id, created_at FROM chat.reports
 WHERE reporter_id = $1 AND chat_id = $2
   AND COALESCE(message_id, '{NO_MESSAGE}'::uuid) = COALESCE($3::uuid, '{NO_MESSAGE}'::uuid)
"""

# $1 id, $2 chat, $3 message or NULL, $4 reporter, $5 reported user, $6 reason, $7 comment,
# $8 now, $9 how many messages the snapshot holds, $10 whether the outbox is on. No row in
# `ins` means either the message is not one of the chat's (`anchored` false) or a report of the
# same thing committed first (the unique index decides, also between two racing inserts).
CREATE = f"""
WITH anchor AS (
  SELECT seq FROM chat.messages WHERE id = $3::uuid AND chat_id = $2
), snap AS (
  SELECT m.id, m.seq, m.sender_id, m.created_at, m.edited_at, m.deleted_at,
         COALESCE(m.original_text, m.text) AS text
    FROM chat.messages m
   WHERE m.chat_id = $2 AND ($3::uuid IS NULL OR m.seq <= (SELECT seq FROM anchor))
   ORDER BY m.seq DESC LIMIT $9
), ins AS (
  INSERT INTO chat.reports (id, chat_id, message_id, reporter_id, reported_user_id, reason,
                            comment, snapshot, created_at)
  SELECT $1, $2, $3::uuid, $4, $5, $6, $7,
         jsonb_build_object(
           'messageId', $3::uuid,
           'takenAt', {ISO.format("$8::timestamptz")},
           'messages', COALESCE((
             SELECT jsonb_agg(jsonb_build_object(
                      'id', s.id, 'seq', s.seq, 'senderId', s.sender_id, 'text', s.text,
                      'createdAt', {ISO.format("s.created_at")},
                      'editedAt', {ISO.format("s.edited_at")},
                      'deletedAt', {ISO.format("s.deleted_at")}) ORDER BY s.seq)
               FROM snap s), '[]'::jsonb)),
         $8
   WHERE $3::uuid IS NULL OR EXISTS (SELECT 1 FROM anchor)
  ON CONFLICT DO NOTHING
  RETURNING id, chat_id, message_id, reporter_id, reported_user_id, reason, created_at
), event AS (
  INSERT INTO chat.outbox (type, chat_id, data, created_at, next_attempt_at)
  SELECT 'report.created', r.chat_id,
         jsonb_build_object('report', jsonb_build_object(
           'id', r.id, 'chatId', r.chat_id, 'messageId', r.message_id,
           'reporterId', r.reporter_id, 'reportedUserId', r.reported_user_id,
           'reason', r.reason, 'createdAt', {ISO.format("r.created_at")})),
         r.created_at, r.created_at
    FROM ins r WHERE $10::boolean
)
SELECT (SELECT id FROM ins) AS id, (SELECT created_at FROM ins) AS created_at,
       $3::uuid IS NULL OR EXISTS (SELECT 1 FROM anchor) AS anchored
"""

REPORT_COLUMNS = (
    "id, chat_id, message_id, reporter_id, reported_user_id, reason, comment, status, "
    "resolution, note, resolved_at, created_at"
)
# Keyset pages on (created_at, id), newest first, read from `reports_status_idx`.
LIST_FIRST = f"""
SELECT {REPORT_COLUMNS} FROM chat.reports WHERE status = $1
 ORDER BY created_at DESC, id DESC LIMIT $2
"""
LIST_AFTER = f"""
SELECT {REPORT_COLUMNS} FROM chat.reports WHERE status = $1 AND (created_at, id) < ($3, $4)
 ORDER BY created_at DESC, id DESC LIMIT $2
"""
GET = f"SELECT {REPORT_COLUMNS}, snapshot FROM chat.reports WHERE id = $1"
RESOLVE = f"""
UPDATE chat.reports SET status = 'resolved', resolution = $2, note = $3, resolved_at = $4
 WHERE id = $1 AND status = 'open'
RETURNING {REPORT_COLUMNS}, snapshot
"""


def _report(row: asyncpg.Record, *, snapshot: bool = False) -> Report:
    return Report(
        id=str(row["id"]),
        chat_id=str(row["chat_id"]),
        message_id=str(row["message_id"]) if row["message_id"] is not None else None,
        reporter_id=row["reporter_id"],
        reported_user_id=row["reported_user_id"],
        reason=row["reason"],
        comment=row["comment"],
        status=row["status"],
        resolution=row["resolution"],
        note=row["note"],
        resolved_at=row["resolved_at"],
        created_at=row["created_at"],
        snapshot=json.loads(row["snapshot"]) if snapshot else None,
    )


class PostgresReports(PooledStore):
    def __init__(
        self, pool: asyncpg.Pool, timeout_s: float, events: EventPolicy | None = None
    ) -> None:
        super().__init__(pool, timeout_s)
        self.events = events or EventPolicy()

    async def create_report(self, report: NewReport) -> tuple[ReportReceipt, bool]:
        ids = (report.reporter_id, report.chat_id, report.message_id)
        async with self._conn() as conn:
            # A repeat is the common way to get here twice: answered without building evidence.
            first = await conn.fetchrow(FIND, *ids)
            if first is not None:
                return ReportReceipt(str(first["id"]), first["created_at"]), False
            row = await conn.fetchrow(
                CREATE,
                report.id,
                report.chat_id,
                report.message_id,
                report.reporter_id,
                report.reported_user_id,
                report.reason,
                report.comment,
                report.created_at,
                SNAPSHOT_BEFORE + 1 if report.message_id is not None else SNAPSHOT_BEFORE,
                self.events.enabled,
            )
            assert row is not None
            if not row["anchored"]:
                raise NotFound("messageId: no such message in this chat")
            if row["id"] is not None:
                return ReportReceipt(str(row["id"]), row["created_at"]), True
            # Lost a race to an identical report, committed by now: that one is the answer.
            first = await conn.fetchrow(FIND, *ids)
        assert first is not None
        return ReportReceipt(str(first["id"]), first["created_at"]), False

    async def list_reports(self, status: str, limit: int, before: str | None) -> ReportPage:
        async with self._conn() as conn:
            if before is None:
                rows = await conn.fetch(LIST_FIRST, status, limit + 1)
            else:
                at, after_id = decode_cursor(before)
                rows = await conn.fetch(LIST_AFTER, status, limit + 1, at, after_id)
        reports = [_report(row) for row in rows[:limit]]
        cursor = None
        if len(rows) > limit:
            last = reports[-1]
            cursor = encode_cursor(last.created_at, last.id)
        return ReportPage(reports, cursor)

    async def get_report(self, report_id: str) -> Report | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(GET, uuid.UUID(report_id))
        return _report(row, snapshot=True) if row is not None else None

    async def resolve_report(
        self, report_id: str, resolution: str, note: str | None, now: datetime
    ) -> tuple[Report, bool] | None:
        key = uuid.UUID(report_id)
        async with self._conn() as conn:
            row = await conn.fetchrow(RESOLVE, key, resolution, note, now)
            if row is not None:
                return _report(row, snapshot=True), True
            row = await conn.fetchrow(GET, key)
        return (_report(row, snapshot=True), False) if row is not None else None
