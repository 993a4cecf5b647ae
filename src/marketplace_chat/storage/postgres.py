"""PostgreSQL storage on asyncpg: one statement per use case wherever the rules allow it."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from marketplace_chat.batching import Coalescer
from marketplace_chat.errors import Blocked, NotFound, Unavailable, ValidationFailed
from marketplace_chat.models import (
    Chat,
    Message,
    Participants,
    ReadReceipt,
    ResponseStats,
    SendResult,
)
from marketplace_chat.storage import revisions
from marketplace_chat.storage.base import (
    Changed,
    ChatPage,
    ChatSync,
    Check,
    EventPolicy,
    MessagePage,
    NewMessage,
    Revision,
)
from marketplace_chat.storage.blocks import PAIR_BLOCKED, PAIR_LOCK
from marketplace_chat.storage.group_commit import BLOCKED, GroupCommitter
from marketplace_chat.storage.outbox_sql import ISO, OUTBOX_CTES
from marketplace_chat.storage.pool import DRIVER_ERRORS, create_pool, pooled, unreachable
from marketplace_chat.storage.pool import configure_connection as configure_connection
from marketplace_chat.storage.rows import INSERT_COLUMNS, MESSAGE_COLUMNS, REFUSED_COLUMNS
from marketplace_chat.storage.rows import message_from_row as _message

# Participants never change, so a bounded in-process map spares a query on every event.
PARTICIPANTS_CACHE_SIZE = 100_000


# A chat as one viewer ($2) sees it. The unread count reads only the (chat_id, seq) index, less
# the deleted messages among them, counted from the partial index of deleted messages (for most
# chats one probe that finds nothing).
CHAT_SELECT = """
SELECT c.id, c.buyer_id, c.seller_id, c.created_at, c.updated_at, c.last_seq, c.rev, c.blocked,
       ctx.product_id AS ctx_product_id,
       m.id AS m_id, m.seq AS m_seq, m.sender_id AS m_sender_id, m.text AS m_text,
       m.product_id AS m_product_id, m.client_message_id AS m_client_message_id,
       m.created_at AS m_created_at, m.rev AS m_rev, m.edited_at AS m_edited_at,
       m.deleted_at AS m_deleted_at, m.moderation_action AS m_moderation_action,
       m.moderation_categories AS m_moderation_categories,
       (SELECT count(*) FROM chat.messages u
         WHERE u.chat_id = c.id AND u.seq > COALESCE(r.seq, 0) AND u.sender_id <> $2)
     - (SELECT count(*) FROM chat.messages d
         WHERE d.chat_id = c.id AND d.deleted_at IS NOT NULL
           AND d.seq > COALESCE(r.seq, 0) AND d.sender_id <> $2) AS unread
"""
CHAT_JOINS = """
LEFT JOIN chat.chat_context ctx ON ctx.chat_id = c.id
LEFT JOIN chat.messages m ON m.chat_id = c.id AND m.seq = c.last_seq
LEFT JOIN chat.read_pointers r ON r.chat_id = c.id AND r.user_id = $2
"""

GET_CHAT = f"{CHAT_SELECT} FROM chat.chats c {CHAT_JOINS} WHERE c.id = $1"

# $1 user, $2 page size + 1, optional $3/$4 the cursor's (updated_at, id).
LIST_CHATS = (
    """
WITH mine AS (
  (SELECT id, updated_at FROM chat.chats WHERE buyer_id = $1 {cond}
    ORDER BY updated_at DESC, id DESC LIMIT $3)
  UNION ALL
  (SELECT id, updated_at FROM chat.chats WHERE seller_id = $1 {cond}
    ORDER BY updated_at DESC, id DESC LIMIT $3)
), page AS (SELECT id FROM mine ORDER BY updated_at DESC, id DESC LIMIT $3)
"""
    + f"""{CHAT_SELECT} FROM page JOIN chat.chats c ON c.id = page.id {CHAT_JOINS}
ORDER BY c.updated_at DESC, c.id DESC"""
)
LIST_CHATS_FIRST = LIST_CHATS.format(cond="")
LIST_CHATS_AFTER = LIST_CHATS.format(cond="AND (updated_at, id) < ($4, $5)")

# One statement, run in a transaction: a repeated client id returns the first message without
# bumping seq; otherwise seq is bumped (locking the chat row) and the row inserted. When two
# sends with the same client id race, the unique constraint makes the loser's insert a no-op and
# the statement returns nothing: the caller rolls back (undoing the bump) and reads the winner.
SEND = f"""
WITH existing AS (
  SELECT {MESSAGE_COLUMNS} FROM chat.messages
   WHERE $6::text IS NOT NULL AND chat_id = $2 AND client_message_id = $6
     AND sender_id + 0 = $3  -- the client id's key, never the sender's seq index (see 0005)
), bump AS (
  UPDATE chat.chats SET last_seq = last_seq + 1, rev = rev + 1,
         updated_at = GREATEST(updated_at, $7)
   WHERE id = $2 AND NOT blocked AND NOT EXISTS (SELECT 1 FROM existing)
  RETURNING last_seq, rev, buyer_id, seller_id
), ins AS (
  INSERT INTO chat.messages ({INSERT_COLUMNS})
  SELECT $1, $2, bump.last_seq, $3, $4, $5, $6, $7, bump.rev, $10, $11::text[], $12 FROM bump
  ON CONFLICT (chat_id, sender_id, client_message_id) DO NOTHING
  RETURNING {MESSAGE_COLUMNS}
), ctx AS (
  INSERT INTO chat.chat_context (chat_id, product_id, updated_at)
  SELECT $2, $5, $7 FROM ins WHERE $5::bigint IS NOT NULL
  ON CONFLICT (chat_id) DO UPDATE
    SET product_id = EXCLUDED.product_id, updated_at = EXCLUDED.updated_at
), created AS (
  SELECT ins.*, 1 AS ord, bump.buyer_id, bump.seller_id,
         COALESCE($5::bigint, prior.product_id) AS chat_product_id
    FROM ins CROSS JOIN bump
    LEFT JOIN chat.chat_context prior ON prior.chat_id = $2
   WHERE $8::boolean
){OUTBOX_CTES}
SELECT {MESSAGE_COLUMNS}, true AS created, false AS blocked FROM ins
UNION ALL
SELECT {MESSAGE_COLUMNS}, false AS created, false AS blocked FROM existing
UNION ALL
SELECT {REFUSED_COLUMNS}, false AS created, true AS blocked
  FROM (SELECT $1::uuid AS id, $2::uuid AS chat_id, $3::bigint AS sender_id,
               $6::text AS client_message_id, $7::timestamptz AS created_at) i
  JOIN chat.chats c ON c.id = i.chat_id
 WHERE c.blocked AND NOT EXISTS (SELECT 1 FROM existing)
"""

HISTORY_LATEST = (
    f"SELECT {MESSAGE_COLUMNS} FROM chat.messages WHERE chat_id = $1 ORDER BY seq DESC LIMIT $2"
)
# One round trip with the anchor: no row at all means the anchor is not a message of the chat;
# a row of NULLs, that the anchor exists and the page is empty.
HISTORY_AROUND = """
SELECT m.* FROM (SELECT seq FROM chat.messages WHERE id = $2 AND chat_id = $1) a
LEFT JOIN LATERAL (
  SELECT {columns} FROM chat.messages
   WHERE chat_id = $1 AND seq {op} a.seq ORDER BY seq {order} LIMIT $3
) m ON true
"""
HISTORY_BEFORE = HISTORY_AROUND.format(columns=MESSAGE_COLUMNS, op="<", order="DESC")
HISTORY_AFTER = HISTORY_AROUND.format(columns=MESSAGE_COLUMNS, op=">", order="")

SET_CONTEXT = """
WITH ctx AS (
  INSERT INTO chat.chat_context (chat_id, product_id, updated_at) VALUES ($1, $2, $3)
  ON CONFLICT (chat_id) DO UPDATE
    SET product_id = EXCLUDED.product_id, updated_at = EXCLUDED.updated_at
)
UPDATE chat.chats SET updated_at = $3 WHERE id = $1
"""

# $1 user, $2/$3/$5 the listed chats with their seq and (NULL for the plain form) rev, $4 the page
# size + 1. The new messages of each chat, then (`changed`) for the chats listed with a rev the
# messages up to their seq edited or deleted after it, oldest change first, from the index of
# changed messages; one statement, so both parts and the chat's rev are of one moment.
SYNC = f"""
WITH mine AS (
  SELECT c.id, c.last_seq, c.rev, COALESCE(s.seq, r.seq, 0) AS from_seq,
         s.seq IS NOT NULL AS listed, s.rev AS since_rev
    FROM chat.chats c
    LEFT JOIN unnest($2::uuid[], $3::bigint[], $5::bigint[]) AS s(chat_id, seq, rev)
      ON s.chat_id = c.id
    LEFT JOIN chat.read_pointers r ON r.chat_id = c.id AND r.user_id = $1
   WHERE c.buyer_id = $1 OR c.seller_id = $1
)
SELECT mine.id AS sync_chat_id, mine.rev AS chat_rev, mine.since_rev, false AS changed,
       m.seq AS ord, m.*
  FROM mine
  LEFT JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS} FROM chat.messages
     WHERE chat_id = mine.id AND seq > mine.from_seq ORDER BY seq LIMIT $4
  ) m ON true
 WHERE mine.listed OR mine.last_seq > mine.from_seq
UNION ALL
SELECT mine.id, mine.rev, mine.since_rev, true, m.rev, m.*
  FROM mine
  JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS} FROM chat.messages
     WHERE chat_id = mine.id AND rev > mine.since_rev AND seq <= mine.from_seq
       AND (edited_at IS NOT NULL OR deleted_at IS NOT NULL)
     ORDER BY rev LIMIT $4
  ) m ON true
 WHERE mine.since_rev IS NOT NULL
 ORDER BY 1, 4, 5
"""


# A new chat's event, written in the transaction that creates the chat.
CHAT_CREATED_EVENT = f"""
INSERT INTO chat.outbox (id, type, lane, chat_id, data, created_at, next_attempt_at)
SELECT gen_random_uuid(), 'chat.created', c.id, c.id,
       jsonb_build_object('chat', jsonb_build_object(
         'id', c.id, 'buyerId', c.buyer_id, 'sellerId', c.seller_id,
         'productId', ctx.product_id, 'createdAt', {ISO.format("c.created_at")})),
       c.created_at, c.created_at
  FROM chat.chats c LEFT JOIN chat.chat_context ctx ON ctx.chat_id = c.id
 WHERE c.id = $1
"""

# A recipient who read up to a message needs no reminder of it: the pending one is dropped, so
# that the next message schedules a fresh one.
DROP_REMINDERS = """
UPDATE chat.outbox SET status = 'cancelled', finished_at = $4, lease_token = NULL
 WHERE type = 'message.unread' AND status = 'pending'
   AND chat_id = $1 AND recipient_id = $2 AND message_seq <= $3
"""


# A seller's chats active since $2 (updated_at is at least the time of every message, so the
# seller's activity index bounds the scan), each with its first message if the buyer sent it
# inside the window (an exact lookup of seq 1), and the seller's first message after it: two
# probes of the (chat, sender, seq) index per chat, answered from the index alone.
RESPONSE_STATS = """
WITH starts AS (
  SELECT c.id, c.seller_id, f.created_at AS asked_at
    FROM chat.chats c
    JOIN chat.messages f ON f.chat_id = c.id AND f.sender_id = c.buyer_id AND f.seq = 1
   WHERE c.seller_id = $1 AND c.updated_at >= $2 AND f.created_at >= $2
), replies AS (
  SELECT extract(epoch FROM r.created_at - s.asked_at)::float8 AS wait_s
    FROM starts s
    LEFT JOIN LATERAL (
      SELECT m.created_at FROM chat.messages m
       WHERE m.chat_id = s.id AND m.sender_id = s.seller_id ORDER BY m.seq LIMIT 1
    ) r ON true
)
SELECT count(*) AS chats, count(wait_s) AS answered,
       count(*) FILTER (WHERE wait_s <= 86400) AS within_24h,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_s) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_s) AS p90
  FROM replies
"""


def _chat(row: asyncpg.Record) -> Chat:
    return Chat(
        id=str(row["id"]),
        buyer_id=row["buyer_id"],
        seller_id=row["seller_id"],
        product_id=row["ctx_product_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_message=_message(row, "m_") if row["m_id"] is not None else None,
        unread_count=row["unread"],
        last_seq=row["last_seq"],
        rev=row["rev"],
        blocked=row["blocked"],
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def encode_cursor(updated_at: datetime, chat_id: str) -> str:
    # Integer arithmetic: a float timestamp can lose the last microsecond, and the cursor would
    # then skip the chats that share the page's last updated_at.
    micros = (updated_at - EPOCH) // MICROSECOND
    return base64.urlsafe_b64encode(f"{micros}:{chat_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, chat_id = raw.split(":", 1)
        return EPOCH + int(micros) * MICROSECOND, uuid.UUID(chat_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("before: not a cursor this service issued") from None


class PostgresStorage:
    def __init__(
        self,
        pool: asyncpg.Pool,
        timeout_s: float,
        *,
        group_commit: bool = True,
        events: EventPolicy | None = None,
    ) -> None:
        self._pool = pool
        self._timeout = timeout_s
        self.events = events or EventPolicy()
        self._committer = (
            GroupCommitter(pool, self._add_one, _message, timeout_s, self.events)
            if group_commit
            else None
        )
        self._participants: OrderedDict[str, Participants] = OrderedDict()
        # A reconnect storm asks for thousands of users' partners at once (each arrival and
        # departure is announced to them): the lookups in flight share one query.
        self._partners: Coalescer[int, list[int]] = Coalescer(self._partners_of, max_batch=1000)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        timeout_s: float,
        events: EventPolicy | None = None,
    ) -> PostgresStorage:
        try:
            pool = await create_pool(dsn, min_size=min_size, max_size=max_size, timeout_s=timeout_s)
        except DRIVER_ERRORS as exc:
            raise Unavailable(f"PostgreSQL is not reachable: {type(exc).__name__}") from None
        return cls(pool, timeout_s, events=events)

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool, shared with the outbox's dispatcher."""
        return self._pool

    def _conn(self) -> AbstractAsyncContextManager[PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection; every driver or network failure leaves as `Unavailable`."""
        return pooled(self._pool, self._timeout, _unavailable)

    async def participants(self, chat_id: str) -> Participants | None:
        cached = self._participants.get(chat_id)
        if cached is not None:
            return cached
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT buyer_id, seller_id FROM chat.chats WHERE id = $1", chat_id
            )
        if row is None:
            return None
        found = Participants(chat_id, row["buyer_id"], row["seller_id"])
        self._remember(found)
        return found

    def _remember(self, participants: Participants) -> None:
        self._participants[participants.chat_id] = participants
        if len(self._participants) > PARTICIPANTS_CACHE_SIZE:
            self._participants.popitem(last=False)

    async def create_chat(
        self, buyer_id: int, seller_id: int, product_id: int | None, viewer: int, now: datetime
    ) -> tuple[Chat, bool]:
        async with self._conn() as conn, conn.transaction():
            # A block of the pair commits either before this (and is seen) or after (and flags
            # the new chat): both hold the pair's lock.
            await conn.execute(PAIR_LOCK, buyer_id, seller_id)
            if await conn.fetchval(PAIR_BLOCKED, buyer_id, seller_id):
                raise Blocked("One of you has blocked the other")
            chat_id = await conn.fetchval(
                "INSERT INTO chat.chats (id, buyer_id, seller_id, created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (buyer_id, seller_id) DO NOTHING "
                "RETURNING id",
                uuid.uuid4(),
                buyer_id,
                seller_id,
                now,
            )
            created = chat_id is not None
            if not created:
                chat_id = await conn.fetchval(
                    "SELECT id FROM chat.chats WHERE buyer_id = $1 AND seller_id = $2",
                    buyer_id,
                    seller_id,
                )
            if product_id is not None:
                await conn.execute(SET_CONTEXT, chat_id, product_id, now)
            if created and self.events.enabled:
                await conn.execute(CHAT_CREATED_EVENT, chat_id)
            row = await conn.fetchrow(GET_CHAT, chat_id, viewer)
        assert row is not None
        chat = _chat(row)
        self._remember(chat.participants)
        return chat, created

    async def get_chat(self, chat_id: str, viewer: int) -> Chat | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(GET_CHAT, chat_id, viewer)
        return _chat(row) if row is not None else None

    async def add_message(self, message: NewMessage) -> SendResult:
        if self._committer is None:
            result = await self._add_one(message)
        else:
            try:
                result = await self._committer.add(message)
            except DRIVER_ERRORS as exc:
                raise _unavailable(exc) from None
        if result is None:
            raise NotFound("chatId: no such chat")
        return result

    async def _add_one(self, message: NewMessage) -> SendResult | None:
        """The single-message path: one transaction, races on the client id settled in it."""
        args = (
            message.id,
            message.chat_id,
            message.sender_id,
            message.text,
            message.product_id,
            message.client_message_id,
            message.created_at,
            self.events.enabled,
            self.events.reminder_after_s,
            message.moderation.action if message.moderation else None,
            list(message.moderation.categories) if message.moderation else None,
            message.original_text,
        )
        async with self._conn() as conn:
            row: asyncpg.Record | None = None
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(SEND, *args)
                    if row is None:
                        raise _LostRaceError
                if row["blocked"]:
                    raise BLOCKED
            except _LostRaceError:
                row = await conn.fetchrow(
                    f"SELECT {MESSAGE_COLUMNS}, false AS created FROM chat.messages "
                    "WHERE chat_id = $1 AND sender_id + 0 = $2 AND client_message_id = $3",
                    message.chat_id,
                    message.sender_id,
                    message.client_message_id,
                )
        return SendResult(_message(row), created=row["created"]) if row is not None else None

    async def list_chats(self, user_id: int, limit: int, before: str | None) -> ChatPage:
        async with self._conn() as conn:
            if before is None:
                rows = await conn.fetch(LIST_CHATS_FIRST, user_id, user_id, limit + 1)
            else:
                at, after_id = decode_cursor(before)
                rows = await conn.fetch(LIST_CHATS_AFTER, user_id, user_id, limit + 1, at, after_id)
        chats = [_chat(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = chats[-1]
            next_cursor = encode_cursor(last.updated_at, last.id)
        return ChatPage(chats, next_cursor)

    async def history(
        self, chat_id: str, before: str | None, after: str | None, limit: int
    ) -> MessagePage:
        anchor_id = before or after
        async with self._conn() as conn:
            if anchor_id is None:
                rows = await conn.fetch(HISTORY_LATEST, chat_id, limit + 1)
            else:
                query = HISTORY_AFTER if after is not None else HISTORY_BEFORE
                rows = await conn.fetch(query, chat_id, anchor_id, limit + 1)
                if not rows:
                    field = "before" if before else "after"
                    raise NotFound(f"{field}: no such message in this chat")
                rows = [r for r in rows if r["id"] is not None]
        page = [_message(r) for r in rows[:limit]]
        if after is None:
            page.reverse()
        return MessagePage(page, len(rows) > limit)

    async def sync(
        self,
        user_id: int,
        since: Mapping[str, int] | None,
        limit: int,
        revs: Mapping[str, int] | None = None,
    ) -> Sequence[ChatSync]:
        since, revs = since or {}, revs or {}
        async with self._conn() as conn:
            rows = await conn.fetch(
                SYNC,
                user_id,
                list(since),
                list(since.values()),
                limit + 1,
                [revs.get(chat_id) for chat_id in since],
            )
        fresh: dict[str, list[Message]] = {}
        changed: dict[str, list[Message]] = {}
        chat_revs: dict[str, int] = {}
        for row in rows:
            chat_id = str(row["sync_chat_id"])
            if row["since_rev"] is not None:
                chat_revs[chat_id] = row["chat_rev"]
                changed.setdefault(chat_id, [])
            if row["changed"]:
                changed[chat_id].append(_message(row))
                continue
            messages = fresh.setdefault(chat_id, [])
            if row["id"] is not None:
                messages.append(_message(row))
        return [
            ChatSync(
                chat_id,
                messages[:limit],
                len(messages) > limit,
                changed=changed[chat_id][:limit] if chat_id in chat_revs else None,
                changed_has_more=len(changed.get(chat_id, ())) > limit,
                rev=chat_revs.get(chat_id),
            )
            for chat_id, messages in fresh.items()
        ]

    # -- edits and deletes ---------------------------------------------------------------------

    async def edit_message(
        self, message_id: str, revision: Revision, now: datetime, check: Check
    ) -> Changed | None:
        async with self._conn() as conn:
            return await revisions.edit(conn, message_id, revision, now, check, self.events.enabled)

    async def delete_message(self, message_id: str, now: datetime, check: Check) -> Changed | None:
        async with self._conn() as conn:
            return await revisions.delete(conn, message_id, now, check, self.events.enabled)

    async def mark_read(
        self, chat_id: str, user_id: int, message_id: str, now: datetime
    ) -> tuple[ReadReceipt, bool]:
        async with self._conn() as conn:
            seq = await conn.fetchval(
                "SELECT seq FROM chat.messages WHERE id = $1 AND chat_id = $2", message_id, chat_id
            )
            if seq is None:
                raise NotFound("messageId: no such message in this chat")
            row = await conn.fetchrow(
                "INSERT INTO chat.read_pointers (chat_id, user_id, seq, message_id, read_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chat_id, user_id) DO UPDATE "
                "SET seq = EXCLUDED.seq, message_id = EXCLUDED.message_id, "
                "read_at = EXCLUDED.read_at WHERE chat.read_pointers.seq < EXCLUDED.seq "
                "RETURNING seq, message_id, read_at",
                chat_id,
                user_id,
                seq,
                message_id,
                now,
            )
            moved = row is not None
            if moved and self.events.enabled:
                await conn.execute(DROP_REMINDERS, chat_id, user_id, seq, now)
            if not moved:
                row = await conn.fetchrow(
                    "SELECT seq, message_id, read_at FROM chat.read_pointers "
                    "WHERE chat_id = $1 AND user_id = $2",
                    chat_id,
                    user_id,
                )
        assert row is not None
        receipt = ReadReceipt(chat_id, user_id, str(row["message_id"]), row["seq"], row["read_at"])
        return receipt, moved

    async def partners(self, user_id: int) -> list[int]:
        return await self._partners.submit(user_id)

    async def _partners_of(self, user_ids: list[int]) -> list[list[int]]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                # Users who blocked each other are no partners for presence.
                "SELECT buyer_id AS user_id, seller_id AS partner FROM chat.chats "
                "WHERE buyer_id = ANY($1::bigint[]) AND NOT blocked "
                "UNION SELECT seller_id, buyer_id FROM chat.chats "
                "WHERE seller_id = ANY($1::bigint[]) AND NOT blocked",
                user_ids,
            )
        found: dict[int, list[int]] = {}
        for row in rows:
            found.setdefault(row["user_id"], []).append(row["partner"])
        return [found.get(user_id, []) for user_id in user_ids]

    async def response_stats(self, seller_id: int, since: datetime) -> ResponseStats:
        async with self._conn() as conn:
            row = await conn.fetchrow(RESPONSE_STATS, seller_id, since)
        assert row is not None
        return ResponseStats(
            user_id=seller_id,
            window_days=0,
            chats=row["chats"],
            answered=row["answered"],
            answered_within_24h=row["within_24h"],
            median_first_reply_s=row["median"],
            p90_first_reply_s=row["p90"],
        )

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()

    def terminate(self) -> None:
        """Drop every connection at once: the end of a shutdown that ran out of time to close
        the pool gracefully (a database that stopped answering)."""
        self._pool.terminate()


def _unavailable(exc: BaseException) -> Unavailable:
    """The client-facing error of a driver failure: an outage, or a refusal of this one request
    (a row that slipped past validation), which must not read as an outage in the logs."""
    if unreachable(exc):
        return Unavailable("The database is unavailable")
    return Unavailable("The database refused the request")


class _LostRaceError(Exception):
    """A concurrent send with the same client message id committed first."""
