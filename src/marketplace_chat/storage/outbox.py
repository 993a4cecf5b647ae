"""The outbox as the dispatchers and the operators see it: claim, settle, list, retry, prune.

Claims are leases: a claimed event carries a fresh `lease_token` and a `lease_until`; only the
holder of the token can settle it, and once the lease has run out (an instance that died
mid-delivery) any dispatcher may claim it again. Within a lane (a chat) a claim takes a run of
pending events from the lane's earliest one on, in commit order, and only while none of them is
leased elsewhere or waiting for its retry: the holder posts them one after another, so a chat's
events go out in commit order, one at a time, and a lane with a backlog costs one claim for a
run instead of one claim per event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from marketplace_chat.models import Message
from marketplace_chat.storage.outbox_sql import EVENT_DATA
from marketplace_chat.storage.rows import MESSAGE_COLUMNS, message_from_row
from marketplace_chat.storage.store import PooledStore

PRUNE_BATCH = 1000  # rows per pruning statement: bounds how long one prune holds its locks
CLAIM_SCAN = 1000  # due events one claim looks at, at most


class Status(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    pos: int
    id: str
    type: str
    lane: str | None  # the events of one lane go out in pos order; None: in no order
    chat_id: str | None
    recipient_id: int | None
    sender_id: int | None
    message_seq: int | None
    data: str | None  # JSON text; None for a reminder not yet built
    created_at: datetime
    attempts: int
    lease_token: str | None
    kept: bool = True  # whether `data` is stored in the row (not built for this claim)


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event as operators see it."""

    pos: int
    id: str
    type: str
    status: Status
    chat_id: str | None
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    finished_at: datetime | None
    last_error: str | None
    data: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: delivered, or failed (retry at `retry_at`, or for good without)."""

    event: OutboxEvent
    delivered: bool
    error: str | None = None
    retry_at: datetime | None = None
    data: str | None = None  # data to keep in the row: a reminder's, or a failed message.created's
    cancelled: bool = False
    released: bool = False  # not attempted (an earlier event of its run failed): pending as it was


@dataclass(frozen=True, slots=True)
class ReminderState:
    read_seq: int
    unread_count: int
    last_message: Message | None


# The due events are looked at in due order, at most $5 of them (a backlog behind a receiver
# that is down costs each claim that much and no more), read in the order of the due index so
# that the scan stops at the limit (ordering by anything more sorted the whole backlog). Their
# lanes are read earliest due first, each for the run of its pending events from its earliest
# one on, at most $6, up to the first that is leased elsewhere or not due: a lane whose earliest
# event is in flight or waits for its retry yields nothing, and so takes no place from the lanes
# that can go; the reading stops once $2 lanes yielded a run. Of those and the events in no
# lane, the $2 that are due earliest are taken. The rows are locked skipping those locked by a
# concurrent claim, whose conditions are checked again on each row's newest version. A lane's
# run is leased only whole: it starts at the lane's earliest pending event as the statement sees
# it, and a lane's events commit in pos order (they are written under its chat's or pair's
# lock), so the run is the lane's next events unless a concurrent claim took one of them; then
# none is taken, and two claims racing for one lane never split its run between them.
# Only the look at what is due names the due index's condition (`finished_at IS NULL`, the same
# rows as `status = 'pending'`): a lookup that the planner could serve from it would read it
# whole whenever the statistics say that nothing is pending (migration 0008).
CLAIM = f"""
WITH look AS (
  SELECT pos, lane, lease_until, next_attempt_at FROM chat.outbox
   WHERE finished_at IS NULL AND next_attempt_at <= $1
   ORDER BY next_attempt_at
   LIMIT $5
), lane_runs AS (
  SELECT l.lane, l.due, run.poss
    FROM (SELECT lane, min(next_attempt_at) AS due FROM look WHERE lane IS NOT NULL
           GROUP BY lane HAVING bool_or(lease_until IS NULL OR lease_until <= $1)
           ORDER BY due) l
    CROSS JOIN LATERAL (
      SELECT array_agg(q.pos ORDER BY q.pos) AS poss
        FROM (SELECT e.pos,
                     bool_and(e.next_attempt_at <= $1
                              AND (e.lease_until IS NULL OR e.lease_until <= $1))
                       OVER (ORDER BY e.pos) AS open
                FROM (SELECT pos, next_attempt_at, lease_until FROM chat.outbox
                       WHERE lane = l.lane AND status = 'pending'
                       ORDER BY pos LIMIT $6) e) q
       WHERE q.open
    ) run
   WHERE run.poss IS NOT NULL
   ORDER BY l.due
   LIMIT $2
), loose AS (
  SELECT pos, next_attempt_at AS due
    FROM look WHERE lane IS NULL AND (lease_until IS NULL OR lease_until <= $1)
   ORDER BY due
   LIMIT $2
), units AS (
  SELECT lane, poss, due FROM lane_runs
  UNION ALL
  SELECT NULL, ARRAY[pos], due FROM loose
  ORDER BY due
  LIMIT $2
), candidates AS (
  SELECT unnest(poss) AS pos, lane FROM units
), locked AS (
  SELECT o.pos, o.lane FROM chat.outbox o
   WHERE o.pos = ANY (ARRAY(SELECT pos FROM candidates))
     AND o.status = 'pending' AND (o.lease_until IS NULL OR o.lease_until <= $1)
   FOR UPDATE OF o SKIP LOCKED
), whole AS (
  SELECT c.lane FROM candidates c LEFT JOIN locked l ON l.pos = c.pos
   WHERE c.lane IS NOT NULL
   GROUP BY c.lane HAVING bool_and(l.pos IS NOT NULL)
), claimed AS (
  SELECT pos FROM locked WHERE lane IS NULL
  UNION ALL
  SELECT l.pos FROM locked l JOIN whole w ON w.lane = l.lane
)
UPDATE chat.outbox o SET lease_token = $3, lease_until = $4
  FROM claimed WHERE o.pos = claimed.pos
RETURNING o.pos, o.id, o.type, o.lane, o.chat_id, o.recipient_id, o.sender_id, o.message_seq,
          ({EVENT_DATA})::text AS data, o.data IS NOT NULL AS kept, o.created_at, o.attempts,
          o.lease_token
"""

SETTLE = """
UPDATE chat.outbox o
   SET status = s.status, attempts = o.attempts + s.tried,
       last_error = CASE WHEN s.released THEN o.last_error ELSE s.error END,
       next_attempt_at = COALESCE(s.retry_at, o.next_attempt_at),
       finished_at = CASE WHEN s.status = 'pending' THEN NULL ELSE $2::timestamptz END,
       data = COALESCE(s.data::jsonb, o.data), lease_token = NULL, lease_until = NULL
  FROM unnest($1::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::text[],
              $8::int[], $9::boolean[]) AS s(id, token, status, error, retry_at, data, tried,
                                             released)
 WHERE o.id = s.id AND o.lease_token = s.token
"""

# Deleted messages are not unread (see chats_sql.CHAT_SELECT).
REMINDER_STATE = f"""
SELECT COALESCE(r.seq, 0) AS read_seq,
       (SELECT count(*) FROM chat.messages u
         WHERE u.chat_id = $1 AND u.seq > COALESCE(r.seq, 0) AND u.sender_id <> $2)
     - (SELECT count(*) FROM chat.messages d
         WHERE d.chat_id = $1 AND d.deleted_at IS NOT NULL
           AND d.seq > COALESCE(r.seq, 0) AND d.sender_id <> $2) AS unread,
       m.*
  FROM chat.chats c
  LEFT JOIN chat.read_pointers r ON r.chat_id = c.id AND r.user_id = $2
  LEFT JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS} FROM chat.messages WHERE chat_id = c.id AND seq = c.last_seq
  ) m ON true
 WHERE c.id = $1
"""

LIST_COLUMNS = (
    "o.pos, o.id, o.type, o.status, o.chat_id, o.attempts, o.created_at, o.next_attempt_at, "
    f"o.finished_at, o.last_error, ({EVENT_DATA})::text AS data"
)

RETRY = """
UPDATE chat.outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, last_error = NULL,
       finished_at = NULL, lease_token = NULL, lease_until = NULL
 WHERE id = $1 AND status IN ('failed', 'delivered')
RETURNING pos
"""

PRUNE = """
DELETE FROM chat.outbox WHERE pos IN (
  SELECT pos FROM chat.outbox
   WHERE status IN ('delivered', 'cancelled') AND finished_at < $1 LIMIT $2)
"""

# Each figure from a partial index of its own: the delivered rows (most of the table) are never
# read.
STATS = """
SELECT (SELECT count(*) FROM chat.outbox WHERE finished_at IS NULL) AS pending,
       (SELECT min(created_at) FROM chat.outbox WHERE finished_at IS NULL) AS oldest,
       (SELECT count(*) FROM chat.outbox WHERE status = 'failed') AS failed
"""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    oldest_pending: datetime | None
    failed: int


class OutboxStore(PooledStore):
    async def claim(
        self, now: datetime, limit: int, lease_until: datetime, run: int = 1
    ) -> list[OutboxEvent]:
        """Lease the due events of up to `limit` lanes (a run of at most `run` events each, the
        lane's next ones) and events in no lane, none in flight elsewhere; in no set order."""
        token = str(uuid.uuid4())
        async with self._conn() as conn:
            rows = await conn.fetch(CLAIM, now, limit, token, lease_until, CLAIM_SCAN, run)
        return [
            OutboxEvent(
                pos=r["pos"],
                id=r["id"],
                type=r["type"],
                lane=r["lane"],
                chat_id=r["chat_id"],
                recipient_id=r["recipient_id"],
                sender_id=r["sender_id"],
                message_seq=r["message_seq"],
                data=r["data"],
                created_at=r["created_at"],
                attempts=r["attempts"],
                lease_token=r["lease_token"],
                kept=r["kept"],
            )
            for r in rows
        ]

    async def settle(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Record how the attempts ended, in one statement; a lease lost meanwhile (the event
        was claimed again elsewhere after it ran out) leaves the row to its new holder."""
        if not outcomes:
            return
        statuses = []
        for o in outcomes:
            if o.released:
                statuses.append(Status.PENDING.value)
            elif o.cancelled:
                statuses.append(Status.CANCELLED.value)
            elif o.delivered:
                statuses.append(Status.DELIVERED.value)
            elif o.retry_at is not None:
                statuses.append(Status.PENDING.value)
            else:
                statuses.append(Status.FAILED.value)
        async with self._conn() as conn:
            await conn.execute(
                SETTLE,
                [o.event.id for o in outcomes],
                now,
                [o.event.lease_token for o in outcomes],
                statuses,
                [o.error for o in outcomes],
                [o.retry_at for o in outcomes],
                [o.data for o in outcomes],
                [0 if o.cancelled or o.released else 1 for o in outcomes],
                [o.released for o in outcomes],
            )

    async def reminder_state(self, chat_id: str, recipient_id: int) -> ReminderState | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(REMINDER_STATE, chat_id, recipient_id)
        if row is None:
            return None
        last = None
        if row["id"] is not None:
            last = message_from_row(row)
        return ReminderState(row["read_seq"], row["unread"], last)

    async def list(self, status: Status, limit: int, before: int | None) -> list[EventRow]:
        """Events of one status, newest first, `limit` of them from before `before` (a pos)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {LIST_COLUMNS} FROM chat.outbox o WHERE o.status = $1 "
                # the pending ones from the due index, not by walking the delivered ones
                "AND ($1 <> 'pending' OR o.finished_at IS NULL) "
                "AND ($3::bigint IS NULL OR o.pos < $3) ORDER BY o.pos DESC LIMIT $2",
                status.value,
                limit,
                before,
            )
        return [_event_row(r) for r in rows]

    async def get(self, event_id: str) -> EventRow | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {LIST_COLUMNS} FROM chat.outbox o WHERE o.id = $1", event_id
            )
        return _event_row(row) if row is not None else None

    async def retry(self, event_id: str, now: datetime) -> EventRow | None:
        """Send a failed (or delivered) event again, from a fresh count of attempts; a pending
        one is left as it is. None for an unknown id."""
        async with self._conn() as conn:
            await conn.fetchval(RETRY, event_id, now)
        return await self.get(event_id)

    async def prune(self, finished_before: datetime) -> int:
        async with self._conn() as conn:
            status = await conn.execute(PRUNE, finished_before, PRUNE_BATCH)
        return int(status.rsplit(" ", 1)[-1])

    async def stats(self) -> OutboxStats:
        async with self._conn() as conn:
            row = await conn.fetchrow(STATS)
        assert row is not None
        return OutboxStats(row["pending"], row["oldest"], row["failed"])


def _event_row(r: asyncpg.Record) -> EventRow:
    return EventRow(
        pos=r["pos"],
        id=r["id"],
        type=r["type"],
        status=Status(r["status"]),
        chat_id=r["chat_id"],
        attempts=r["attempts"],
        created_at=r["created_at"],
        next_attempt_at=r["next_attempt_at"],
        finished_at=r["finished_at"],
        last_error=r["last_error"],
        data=r["data"],
    )
