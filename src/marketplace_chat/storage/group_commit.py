"""Group commit of message inserts.

While a write is in flight, the sends that arrive queue up; the next write commits all of them
in a single multi-row statement, which is its own transaction (one round trip: no BEGIN and
COMMIT around it). Two writes may be in flight at once, so that the next batch is on the wire
while PostgreSQL flushes the previous one. Each caller still waits for the commit that holds
its own row, so an ack never runs ahead of durability, and seq stays gapless and in commit
order: the statement locks its chats' rows (in id order, so two writes never deadlock) before
it bumps each chat's `last_seq` by the number of its new rows and numbers them in arrival
order, so a write that shares a chat with the one before it waits for that one's commit and
numbers after it. A send whose client id is already in a write in flight joins that write's
row instead of racing it.

A batch is as good as its worst row, so a batch that fails for any reason but the database being
out of reach is rolled back and bisected: each half is committed as a batch of its own, in
arrival order, until the rows that fail are alone. A lone row goes to the single-message path,
which settles races on a client id (a unique violation from a concurrent send on another node)
and otherwise fails with that row's own error. So one bad row costs about 2·log2(batch) extra
statements, every other row still commits with its gapless seq and its ack, and a batch that
succeeds costs the one statement it always did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

from marketplace_chat.errors import Blocked
from marketplace_chat.models import Message, SendResult
from marketplace_chat.storage.base import EventPolicy, NewMessage
from marketplace_chat.storage.outbox_sql import OUTBOX_CTES
from marketplace_chat.storage.pool import unreachable
from marketplace_chat.storage.rows import INSERT_COLUMNS, MESSAGE_COLUMNS, REFUSED_COLUMNS

MAX_BATCH = 256  # rows per statement; bounds the statement's size and a batch's latency
MAX_IN_FLIGHT = 2  # writes at once: one on the wire while the other commits
WRITERS = MAX_IN_FLIGHT  # connections of the writers' own pool

# The writers' sessions plan the batch statement once. PostgreSQL's default re-plans a prepared
# statement whenever its generic plan is estimated dearer than a plan for the actual arrays,
# which for this statement is always (it guesses ten rows for each array): planning its dozen
# CTEs cost more CPU than executing a small batch (a lone row's statement took 1.2-2.2 ms of
# PostgreSQL CPU planned afresh, 0.3-0.9 ms on the kept plan; at 25 rows a tenth to a fifth
# less). The generic plan is the same shape, index lookups per input row, whatever the batch, once
# the tables hold rows (the pool's sessions plan again as they grow: `pool.FIRST_REPLAN`).
WRITER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}

BLOCKED = Blocked("one of the participants has blocked the other")


# $1..$7: the batch's columns, in arrival order; $8 whether events are written to the outbox,
# $9 the reminder delay in seconds; $10..$12 the moderation action, its categories (a
# comma-joined list, as text[] cannot hold rows of different lengths) and the original text.
# Chats are locked in id order so that two nodes' batches cannot deadlock on each other.
SEND_BATCH_TEMPLATE = f"""
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[],
                       $6::text[], $7::timestamptz[], $10::text[], $11::text[], $12::text[])
         WITH ORDINALITY AS t(id, chat_id, sender_id, text, product_id, client_message_id,
                              created_at, moderation_action, moderation_categories,
                              original_text, ord)
), locked AS (
  SELECT id, buyer_id, seller_id, blocked FROM chat.chats
   WHERE id IN (SELECT chat_id FROM input)
   ORDER BY id FOR UPDATE
), existing AS (
  SELECT i.ord, {", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))}
    FROM input i
    JOIN chat.messages m ON m.chat_id = i.chat_id AND m.client_message_id = i.client_message_id
                        -- "+ 0": the (chat_id, client_message_id) key, never the sender's
                        -- seq index, which would walk every message of the sender in the chat
                        AND m.sender_id + 0 = i.sender_id
), fresh AS (
  SELECT i.*, row_number() OVER (PARTITION BY i.chat_id ORDER BY i.ord) AS n,
         -- rows up to the next one that names a product share its product context
         count(i.product_id) OVER (PARTITION BY i.chat_id ORDER BY i.ord) AS product_run
    FROM input i
   WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.ord = i.ord)
     AND i.chat_id IN (SELECT id FROM locked WHERE NOT blocked)
), counts AS (
  SELECT chat_id, count(*) AS k, max(created_at) AS at FROM fresh GROUP BY chat_id
), bump AS (
  UPDATE chat.chats c
     SET last_seq = c.last_seq + counts.k, rev = c.rev + counts.k,
         updated_at = GREATEST(c.updated_at, counts.at)
    FROM counts
   WHERE c.id = counts.chat_id
  RETURNING c.id, c.last_seq - counts.k AS base, c.rev - counts.k AS rev_base
), ins AS (
  INSERT INTO chat.messages ({INSERT_COLUMNS})
  SELECT f.id, f.chat_id, b.base + f.n, f.sender_id, f.text, f.product_id, f.client_message_id,
         f.created_at, b.rev_base + f.n, f.moderation_action,
         string_to_array(f.moderation_categories, ','), f.original_text
    FROM fresh f JOIN bump b ON b.id = f.chat_id
  RETURNING {MESSAGE_COLUMNS}
), ctx AS (
  INSERT INTO chat.chat_context (chat_id, product_id, updated_at)
  SELECT DISTINCT ON (chat_id) chat_id, product_id, created_at
    FROM fresh WHERE product_id IS NOT NULL
   ORDER BY chat_id, ord DESC
  ON CONFLICT (chat_id) DO UPDATE
    SET product_id = EXCLUDED.product_id, updated_at = EXCLUDED.updated_at
), created AS (
  SELECT ins.*, f.ord, l.buyer_id, l.seller_id,
         COALESCE(max(f.product_id) OVER (PARTITION BY f.chat_id, f.product_run),
                  prior.product_id) AS chat_product_id
    FROM ins
    JOIN fresh f ON f.id = ins.id
    JOIN locked l ON l.id = ins.chat_id
    LEFT JOIN chat.chat_context prior ON prior.chat_id = ins.chat_id
   WHERE $8::boolean
){{outbox}}
SELECT {MESSAGE_COLUMNS}, true AS created, false AS blocked FROM ins
UNION ALL
SELECT {MESSAGE_COLUMNS}, false AS created, false AS blocked FROM existing
UNION ALL
SELECT {REFUSED_COLUMNS}, false AS created, true AS blocked
  FROM input i JOIN locked l ON l.id = i.chat_id
 WHERE l.blocked AND NOT EXISTS (SELECT 1 FROM existing e WHERE e.ord = i.ord)
"""


SEND_BATCH = SEND_BATCH_TEMPLATE.replace("{outbox}", OUTBOX_CTES)
# With the outbox off, the statement leaves out its two inserts into it: even with no rows to
# insert, each opened the table and its seven indexes on every batch (about a sixth of a lone
# row's statement). `$9` keeps its type from a CTE that nothing reads, so nothing runs it.
SEND_BATCH_NO_EVENTS = SEND_BATCH_TEMPLATE.replace(
    "{outbox}", ", no_events AS (SELECT $9::float8 AS reminder_after_s)"
)


@dataclass(slots=True)
class _Pending:
    message: NewMessage
    futures: list[asyncio.Future[SendResult | None]] = field(default_factory=list)


Key = tuple[str, int, str]


class GroupCommitter:
    """At most MAX_IN_FLIGHT writers; callers queue behind them and are committed together.

    `write_one` is the single-message path, for a row of a failed batch that is left alone.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        write_one: Callable[[NewMessage], Awaitable[SendResult | None]],
        to_message: Callable[[asyncpg.Record], Message],
        timeout_s: float,
        events: EventPolicy | None = None,
        *,
        dedicated: bool = False,
    ) -> None:
        """`dedicated`: `pool` holds a connection for each writer (see WRITERS), so taking one
        never waits and needs no timer; a shared pool's wait is bounded by `timeout_s`."""
        self._pool = pool
        self._acquire_timeout = None if dedicated else timeout_s
        self._write_one = write_one
        self._to_message = to_message
        self._events = events or EventPolicy()
        self._statement = SEND_BATCH if self._events.enabled else SEND_BATCH_NO_EVENTS
        self._queue: list[_Pending] = []
        # The client ids of the writes in flight, so that a repeat joins the first one's row.
        self._in_flight: dict[Key, _Pending] = {}
        self._writers: set[asyncio.Task[None]] = set()
        self._starting = 0  # writers created that have not taken their batch yet

    async def add(self, message: NewMessage) -> SendResult | None:
        """The committed message (or the first one with its client id); None: no such chat."""
        future: asyncio.Future[SendResult | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(message, [future]))
        self._start_writers()
        return await future

    def _start_writers(self) -> None:
        """A writer takes the queue when it first runs, so the sends of one burst share it; a
        second one starts only once the first has taken its batch."""
        if self._starting or len(self._writers) >= MAX_IN_FLIGHT:
            return
        self._starting += 1
        writer = asyncio.get_running_loop().create_task(self._drain())
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)

    async def _drain(self) -> None:
        self._starting -= 1
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            batch = self._join_in_flight(_merge_duplicates(batch))
            if batch:
                await self._write(batch)

    def _join_in_flight(self, batch: list[_Pending]) -> list[_Pending]:
        """Sends of a client id that a write in flight holds wait for that write's row."""
        fresh: list[_Pending] = []
        for pending in batch:
            key = _key(pending.message)
            if key is None:
                fresh.append(pending)
            elif key in self._in_flight:
                self._in_flight[key].futures.extend(pending.futures)
            else:
                self._in_flight[key] = pending
                fresh.append(pending)
        return fresh

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            await self._commit(batch)
        except BaseException as exc:  # every waiter must hear how its write ended
            for pending in batch:
                for future in pending.futures:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            for pending in batch:
                key = _key(pending.message)
                if key is not None and self._in_flight.get(key) is pending:
                    del self._in_flight[key]

    async def _commit(self, batch: list[_Pending], split: bool = False) -> None:
        """Commit the batch, or isolate the rows that make it fail (see the module docstring).
        A lone send takes the batch statement too (one round trip); a row that a bisection
        left alone goes straight to the single-message path.

        Raises only when the database is out of reach: then no row of the batch can commit.
        """
        if split and len(batch) == 1:
            await self._commit_alone(batch[0])
            return
        try:
            rows = await self._write_batch([p.message for p in batch])
        except Exception as exc:
            if unreachable(exc):
                raise
            if len(batch) == 1:
                await self._commit_alone(batch[0])
                return
            half = len(batch) // 2
            await self._commit(batch[:half], split=True)
            await self._commit(batch[half:], split=True)
            return
        for ordinal, pending in enumerate(batch, start=1):
            row = rows.get(ordinal)
            if row is not None and row["blocked"]:
                _fail(pending, BLOCKED)
                continue
            result = SendResult(self._to_message(row), row["created"]) if row is not None else None
            _resolve(pending, result)

    async def _commit_alone(self, pending: _Pending) -> None:
        try:
            result = await self._write_one(pending.message)
        except Exception as exc:
            if unreachable(exc):
                raise
            _fail(pending, exc)
            return
        _resolve(pending, result)

    async def _write_batch(self, messages: list[NewMessage]) -> dict[int, asyncpg.Record]:
        ordinals = {m.id: i for i, m in enumerate(messages, start=1)}
        async with self._pool.acquire(timeout=self._acquire_timeout) as conn:
            records = await conn.fetch(
                self._statement,
                [m.id for m in messages],
                [m.chat_id for m in messages],
                [m.sender_id for m in messages],
                [m.text for m in messages],
                [m.product_id for m in messages],
                [m.client_message_id for m in messages],
                [m.created_at for m in messages],
                self._events.enabled,
                self._events.reminder_after_s,
                [m.moderation.action if m.moderation else None for m in messages],
                [",".join(m.moderation.categories) if m.moderation else None for m in messages],
                [m.original_text for m in messages],
            )
        by_ordinal: dict[int, asyncpg.Record] = {}
        for record in records:
            if record["created"] or record["blocked"]:
                by_ordinal[ordinals[str(record["id"])]] = record
        # A repeated client id returns the first message, whose id is not the new one's.
        for i, m in enumerate(messages, start=1):
            if i not in by_ordinal and m.client_message_id is not None:
                for record in records:
                    if not record["created"] and _same_key(record, m):
                        by_ordinal[i] = record
                        break
        return by_ordinal


def _same_key(record: asyncpg.Record, message: NewMessage) -> bool:
    return (
        str(record["chat_id"]) == message.chat_id
        and record["sender_id"] == message.sender_id
        and record["client_message_id"] == message.client_message_id
    )


def _key(message: NewMessage) -> Key | None:
    if message.client_message_id is None:
        return None
    return (message.chat_id, message.sender_id, message.client_message_id)


def _merge_duplicates(batch: list[_Pending]) -> list[_Pending]:
    """Sends of the same client id inside one batch share the first one's row."""
    first: dict[Key, _Pending] = {}
    merged: list[_Pending] = []
    for pending in batch:
        m = pending.message
        if m.client_message_id is None:
            merged.append(pending)
            continue
        key = (m.chat_id, m.sender_id, m.client_message_id)
        if key in first:
            first[key].futures.extend(pending.futures)
        else:
            first[key] = pending
            merged.append(pending)
    return merged


def _fail(pending: _Pending, exc: Exception) -> None:
    for future in pending.futures:
        if not future.done():
            future.set_exception(exc)


def _resolve(pending: _Pending, result: SendResult | None) -> None:
    """The first waiter of a merged group gets the result as committed; later ones, a repeat."""
    for index, future in enumerate(pending.futures):
        if future.done():
            continue
        if index and result is not None:
            future.set_result(SendResult(result.message, created=False))
        else:
            future.set_result(result)
