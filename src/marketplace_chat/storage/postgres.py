"""PostgreSQL storage on asyncpg: one statement per use case wherever the rules allow it."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime

import asyncpg

from marketplace_chat.batching import Coalescer
from marketplace_chat.errors import Blocked, NotFound, Unavailable
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
from marketplace_chat.storage.chats_sql import (
    CHAT_CREATED_EVENT,
    GET_CHAT,
    LIST_CHATS_AFTER,
    LIST_CHATS_FIRST,
    RESPONSE_STATS,
    SET_CONTEXT,
    chat_from_row,
)
from marketplace_chat.storage.cursor import decode_cursor, encode_cursor
from marketplace_chat.storage.group_commit import BLOCKED, WRITER_SETTINGS, WRITERS, GroupCommitter
from marketplace_chat.storage.messages_sql import (
    DROP_REMINDERS,
    HISTORY_AFTER,
    HISTORY_BEFORE,
    HISTORY_LATEST,
    SEND,
    SYNC,
)
from marketplace_chat.storage.pool import DRIVER_ERRORS, create_pool
from marketplace_chat.storage.pool import configure_connection as configure_connection
from marketplace_chat.storage.rows import MESSAGE_COLUMNS
from marketplace_chat.storage.rows import message_from_row as _message
from marketplace_chat.storage.store import PooledStore, unavailable

# Participants never change, so a bounded in-process map spares a query on every event.
PARTICIPANTS_CACHE_SIZE = 100_000


class PostgresStorage(PooledStore):
    def __init__(
        self,
        pool: asyncpg.Pool,
        timeout_s: float,
        *,
        group_commit: bool = True,
        events: EventPolicy | None = None,
        writers: asyncpg.Pool | None = None,
    ) -> None:
        """`writers`: the group commit's own connections (see `group_commit.WRITER_SETTINGS`);
        without them it writes through `pool`."""
        super().__init__(pool, timeout_s)
        self._writers = writers
        self.events = events or EventPolicy()
        self._committer = (
            GroupCommitter(
                writers or pool,
                self._add_one,
                _message,
                timeout_s,
                self.events,
                dedicated=writers is not None,
            )
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
        try:
            writers = await create_pool(
                dsn,
                min_size=min(min_size, WRITERS),
                max_size=WRITERS,
                timeout_s=timeout_s,
                settings=WRITER_SETTINGS,
            )
        except DRIVER_ERRORS as exc:
            await pool.close()
            raise Unavailable(f"PostgreSQL is not reachable: {type(exc).__name__}") from None
        return cls(pool, timeout_s, events=events, writers=writers)

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool, shared with the outbox's dispatcher."""
        return self._pool

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
        chat = chat_from_row(row)
        self._remember(chat.participants)
        return chat, created

    async def get_chat(self, chat_id: str, viewer: int) -> Chat | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(GET_CHAT, chat_id, viewer)
        return chat_from_row(row) if row is not None else None

    async def add_message(self, message: NewMessage) -> SendResult:
        if self._committer is None:
            result = await self._add_one(message)
        else:
            try:
                result = await self._committer.add(message)
            except DRIVER_ERRORS as exc:
                raise unavailable(exc) from None
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
                # The statement's last part reads the chat as it was when the statement began,
                # so a block that committed while the send waited for the chat's row refused
                # the send without saying so; a fresh read tells it from a missing chat.
                if row is None and await conn.fetchval(
                    "SELECT blocked FROM chat.chats WHERE id = $1", message.chat_id
                ):
                    raise BLOCKED from None
        return SendResult(_message(row), created=row["created"]) if row is not None else None

    async def list_chats(self, user_id: int, limit: int, before: str | None) -> ChatPage:
        async with self._conn() as conn:
            if before is None:
                rows = await conn.fetch(LIST_CHATS_FIRST, user_id, user_id, limit + 1)
            else:
                at, after_id = decode_cursor(before)
                rows = await conn.fetch(LIST_CHATS_AFTER, user_id, user_id, limit + 1, at, after_id)
        chats = [chat_from_row(row) for row in rows[:limit]]
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
        if self._writers is not None:
            await self._writers.close()
        await self._pool.close()

    def terminate(self) -> None:
        """Drop every connection at once: the end of a shutdown that ran out of time to close
        the pool gracefully (a database that stopped answering)."""
        if self._writers is not None:
            self._writers.terminate()
        self._pool.terminate()


class _LostRaceError(Exception):
    """A concurrent send with the same client message id committed first."""
