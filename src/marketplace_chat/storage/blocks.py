"""Blocks in PostgreSQL: the `chat.blocks` rows, the `blocked` flag of the pair's chats, and
their webhook events, in one transaction.

Two users have at most two chats (one per direction of roles); both carry `blocked`, true while
a block exists in either direction, so that a send learns it from the chat row it locks anyway.
A block and a `chat:create` of the same pair take the same transaction-scoped advisory lock,
so a chat created while a block commits is either refused or flagged, never missed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from marketplace_chat.batching import Coalescer
from marketplace_chat.models import BlockChange, Participants
from marketplace_chat.storage.base import EventPolicy
from marketplace_chat.storage.outbox_sql import ISO
from marketplace_chat.storage.store import PooledStore

# One key per unordered pair: a collision only makes two unrelated pairs wait for each other.
PAIR_LOCK = """
SELECT pg_advisory_xact_lock(hashtextextended(
  'chat.pair:' || least($1::bigint, $2::bigint) || ':' || greatest($1::bigint, $2::bigint), 0))
"""
PAIR_BLOCKED = """
SELECT EXISTS (SELECT 1 FROM chat.blocks
                WHERE (blocker_id = $1 AND blocked_id = $2)
                   OR (blocker_id = $2 AND blocked_id = $1))
"""
# The pair's chats, locked in id order as the sends' batches lock them, so the two cannot
# deadlock on each other.
PAIR_CHATS = """
SELECT id, buyer_id, seller_id FROM chat.chats
 WHERE (buyer_id = $1 AND seller_id = $2) OR (buyer_id = $2 AND seller_id = $1)
 ORDER BY id FOR UPDATE
"""


def _event(kind: str, source: str) -> str:
    """The outbox row of a block change, written only when `source` returned a row and the
    outbox is on ($5); one lane per pair ($6) keeps a block and its unblock in order."""
    return f"""
INSERT INTO chat.outbox (type, lane, data, created_at, next_attempt_at)
SELECT '{kind}', $6::uuid,
       jsonb_build_object('userId', $1::bigint, 'blockedUserId', $2::bigint,
                          'at', {ISO.format("$3::timestamptz")}),
       $3, $3
  FROM {source} WHERE $5::boolean
"""


BLOCK = f"""
WITH ins AS (
  INSERT INTO chat.blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)
  ON CONFLICT DO NOTHING
  RETURNING blocker_id
), flag AS (
  UPDATE chat.chats SET blocked = true
   WHERE id = ANY($4::uuid[]) AND EXISTS (SELECT 1 FROM ins)
), event AS ({_event("user.blocked", "ins")})
SELECT EXISTS (SELECT 1 FROM ins) AS changed, true AS pair_blocked
"""

# The statement's snapshot predates its own delete, which touches only one direction: the other
# one is read as it stands (and the pair's lock keeps it so until the commit).
UNBLOCK = f"""
WITH del AS (
  DELETE FROM chat.blocks WHERE blocker_id = $1 AND blocked_id = $2
  RETURNING blocker_id
), reverse AS (
  SELECT EXISTS (SELECT 1 FROM chat.blocks WHERE blocker_id = $2 AND blocked_id = $1) AS held
), flag AS (
  UPDATE chat.chats SET blocked = (SELECT held FROM reverse)
   WHERE id = ANY($4::uuid[]) AND EXISTS (SELECT 1 FROM del)
), event AS ({_event("user.unblocked", "del")})
SELECT EXISTS (SELECT 1 FROM del) AS changed, (SELECT held FROM reverse) AS pair_blocked
"""

# Several `hidden_among` lookups in one statement: row i of the arrays asks whether the users
# `$2[i]` and `$3[i]` are in a block (either way), for lookup `$1[i]`; two primary-key probes a row.
HIDDEN_AMONG = """
SELECT p.lookup, p.other
  FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS p(lookup, asker, other)
 WHERE EXISTS (SELECT 1 FROM chat.blocks WHERE blocker_id = p.asker AND blocked_id = p.other)
    OR EXISTS (SELECT 1 FROM chat.blocks WHERE blocker_id = p.other AND blocked_id = p.asker)
"""
# Lookups per statement: each names up to 500 users (a `users:online` bound).
HIDDEN_BATCH = 64


LANES = uuid.UUID("6f1d4b0e-1c7a-4f5e-9b2d-8a3c5e7f9b10")


def pair_lane(a: int, b: int) -> uuid.UUID:
    """The outbox lane of a pair's block events, the same whoever blocks whom."""
    low, high = sorted((a, b))
    return uuid.uuid5(LANES, f"{low}:{high}")


class PostgresBlocks(PooledStore):
    def __init__(
        self, pool: asyncpg.Pool, timeout_s: float, events: EventPolicy | None = None
    ) -> None:
        super().__init__(pool, timeout_s)
        self.events = events or EventPolicy()
        # A reconnect storm sends a `users:online` a socket: the lookups in flight share one
        # statement instead of a round trip each.
        self._hidden: Coalescer[tuple[int, Sequence[int]], set[int]] = Coalescer(
            self._hidden_of, HIDDEN_BATCH
        )

    async def block(self, blocker_id: int, blocked_id: int, now: datetime) -> BlockChange:
        return await self._change(BLOCK, blocker_id, blocked_id, now)

    async def unblock(self, blocker_id: int, blocked_id: int, now: datetime) -> BlockChange:
        return await self._change(UNBLOCK, blocker_id, blocked_id, now)

    async def _change(
        self, statement: str, blocker_id: int, blocked_id: int, now: datetime
    ) -> BlockChange:
        async with self._conn() as conn, conn.transaction():
            # Its own statement: the next ones then see whatever a chat:create of the pair,
            # which held the lock before us, committed.
            await conn.execute(PAIR_LOCK, blocker_id, blocked_id)
            chats = await conn.fetch(PAIR_CHATS, blocker_id, blocked_id)
            row = await conn.fetchrow(
                statement,
                blocker_id,
                blocked_id,
                now,
                [c["id"] for c in chats],
                self.events.enabled,
                pair_lane(blocker_id, blocked_id),
            )
        assert row is not None
        return BlockChange(
            changed=row["changed"],
            chats=tuple(Participants(str(c["id"]), c["buyer_id"], c["seller_id"]) for c in chats),
            pair_blocked=row["pair_blocked"],
        )

    async def blocked_by(self, blocker_id: int) -> list[int]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT blocked_id FROM chat.blocks WHERE blocker_id = $1 "
                "ORDER BY created_at DESC, blocked_id",
                blocker_id,
            )
        return [row["blocked_id"] for row in rows]

    async def chat_blocked(self, chat_id: str) -> bool:
        async with self._conn() as conn:
            blocked = await conn.fetchval("SELECT blocked FROM chat.chats WHERE id = $1", chat_id)
        return bool(blocked)

    async def hidden_among(self, user_id: int, user_ids: Sequence[int]) -> set[int]:
        if not user_ids:
            return set()
        return await self._hidden.submit((user_id, user_ids))

    async def _hidden_of(self, lookups: list[tuple[int, Sequence[int]]]) -> list[set[int]]:
        index: list[int] = []
        askers: list[int] = []
        others: list[int] = []
        for i, (user_id, user_ids) in enumerate(lookups):
            for other in dict.fromkeys(user_ids):
                index.append(i)
                askers.append(user_id)
                others.append(other)
        async with self._conn() as conn:
            rows = await conn.fetch(HIDDEN_AMONG, index, askers, others)
        hidden: list[set[int]] = [set() for _ in lookups]
        for row in rows:
            hidden[row["lookup"]].add(row["other"])
        return hidden
