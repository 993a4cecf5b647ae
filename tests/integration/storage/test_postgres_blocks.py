"""Blocks on PostgreSQL: the rows, the `blocked` flag of both of the pair's chats, the events,
and what a block does to chat creation, sends and the partners of presence."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest

from marketplace_chat.errors import ChatError, ErrorCode
from marketplace_chat.storage.base import EventPolicy
from marketplace_chat.storage.blocks import PostgresBlocks, pair_lane
from marketplace_chat.storage.postgres import PostgresStorage

from ..conftest import DB_TIMEOUT_S
from ..helpers import T0, at, draft, new_user_id, send

pytestmark = pytest.mark.integration

ON = EventPolicy(enabled=True, reminder_after_s=60.0)


@pytest.fixture
def blocks(pool: asyncpg.Pool) -> PostgresBlocks:
    return PostgresBlocks(pool, DB_TIMEOUT_S, ON)


async def flags(pool: asyncpg.Pool, a: int, b: int) -> list[bool]:
    """`blocked` of the pair's chats, in (a as buyer, b as buyer) order."""
    rows = await pool.fetch(
        "SELECT blocked FROM chat.chats WHERE (buyer_id = $1 AND seller_id = $2) "
        "OR (buyer_id = $2 AND seller_id = $1) ORDER BY buyer_id = $1 DESC",
        a,
        b,
    )
    return [r["blocked"] for r in rows]


async def pair_events(pool: asyncpg.Pool, a: int, b: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT type, data::text AS data, chat_id FROM chat.outbox WHERE lane = $1 ORDER BY pos",
        str(pair_lane(a, b)),
    )
    return [{"type": r["type"], "data": json.loads(r["data"]), "chat": r["chat_id"]} for r in rows]


async def both_ways(storage: PostgresStorage) -> tuple[int, int, str, str]:
    """Two users with a chat in each direction of roles."""
    a, b = new_user_id(), new_user_id()
    first, _ = await storage.create_chat(a, b, None, a, T0)
    second, _ = await storage.create_chat(b, a, None, b, T0)
    return a, b, first.id, second.id


async def test_a_block_flags_both_chats_of_the_pair_and_writes_one_event(
    storage: PostgresStorage, blocks: PostgresBlocks, pool: asyncpg.Pool
) -> None:
    a, b, first, second = await both_ways(storage)
    change = await blocks.block(a, b, at(1))
    assert change.changed
    assert change.pair_blocked
    assert {c.chat_id for c in change.chats} == {first, second}
    assert await flags(pool, a, b) == [True, True]
    again = await blocks.block(a, b, at(2))
    assert not again.changed
    assert await pair_events(pool, a, b) == [
        {
            "type": "user.blocked",
            "data": {"userId": a, "blockedUserId": b, "at": "2026-11-26T01:10:33.123Z"},
            "chat": None,
        }
    ]
    assert await blocks.blocked_by(a) == [b]
    assert await blocks.blocked_by(b) == []
    seen = await storage.get_chat(first, b)
    assert seen is not None
    assert seen.blocked


async def test_an_unblock_by_one_keeps_the_pair_blocked_while_the_other_still_blocks(
    storage: PostgresStorage, blocks: PostgresBlocks, pool: asyncpg.Pool
) -> None:
    a, b, _, _ = await both_ways(storage)
    await blocks.block(a, b, at(1))
    await blocks.block(b, a, at(2))
    lifted = await blocks.unblock(a, b, at(3))
    assert lifted.changed
    assert lifted.pair_blocked
    assert await flags(pool, a, b) == [True, True]
    assert not (await blocks.unblock(a, b, at(4))).changed
    last = await blocks.unblock(b, a, at(5))
    assert last.changed
    assert not last.pair_blocked
    assert await flags(pool, a, b) == [False, False]
    assert [e["type"] for e in await pair_events(pool, a, b)] == [
        "user.blocked",
        "user.blocked",
        "user.unblocked",
        "user.unblocked",
    ]


async def test_without_webhooks_a_block_writes_no_event(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    quiet = PostgresBlocks(pool, DB_TIMEOUT_S)
    a, b, _, _ = await both_ways(storage)
    await quiet.block(a, b, at(1))
    await quiet.unblock(a, b, at(2))
    assert await pair_events(pool, a, b) == []


async def test_a_blocked_pair_cannot_create_a_chat_in_either_direction(
    storage: PostgresStorage, blocks: PostgresBlocks, pool: asyncpg.Pool
) -> None:
    a, b = new_user_id(), new_user_id()
    existing, _ = await storage.create_chat(a, b, None, a, T0)
    await blocks.block(b, a, at(1))
    for buyer, seller in ((a, b), (b, a)):
        with pytest.raises(ChatError) as refused:
            await storage.create_chat(buyer, seller, None, buyer, at(2))
        assert refused.value.code is ErrorCode.BLOCKED
    count = await pool.fetchval(
        "SELECT count(*) FROM chat.chats WHERE buyer_id = ANY($1) AND seller_id = ANY($1)",
        [a, b],
    )
    assert count == 1
    await blocks.unblock(b, a, at(3))
    again, created = await storage.create_chat(a, b, None, a, at(4))
    assert (again.id, created, again.blocked) == (existing.id, False, False)


async def test_a_chat_created_while_a_block_commits_is_refused_or_flagged(
    storage: PostgresStorage, blocks: PostgresBlocks, pool: asyncpg.Pool
) -> None:
    for _ in range(10):
        a, b = new_user_id(), new_user_id()
        results = await asyncio.gather(
            storage.create_chat(a, b, None, a, T0), blocks.block(b, a, T0), return_exceptions=True
        )
        created = results[0]
        if isinstance(created, BaseException):
            assert isinstance(created, ChatError)
            assert created.code is ErrorCode.BLOCKED
        assert await flags(pool, a, b) in ([], [True])


async def test_sends_are_refused_on_both_paths_once_blocked(
    pool: asyncpg.Pool, blocks: PostgresBlocks
) -> None:
    for group_commit in (True, False):
        storage = PostgresStorage(pool, DB_TIMEOUT_S, group_commit=group_commit)
        a, b, first, second = await both_ways(storage)
        await send(storage, first, a, "before")
        await blocks.block(a, b, at(1))
        for chat_id, sender in ((first, a), (first, b), (second, a)):
            with pytest.raises(ChatError) as refused:
                await storage.add_message(draft(chat_id, sender, "after"))
            assert refused.value.code is ErrorCode.BLOCKED
        page = await storage.history(first, None, None, 10)
        assert [m.text for m in page.messages] == ["before"]


async def test_a_block_that_commits_while_a_lone_send_waits_refuses_it_as_blocked(
    pool: asyncpg.Pool, blocks: PostgresBlocks
) -> None:
    storage = PostgresStorage(pool, DB_TIMEOUT_S, group_commit=False)
    a, _, first, _ = await both_ways(storage)
    async with pool.acquire() as blocker:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("UPDATE chat.chats SET blocked = true WHERE id = $1", first)
        sending = asyncio.ensure_future(storage.add_message(draft(first, a, "racing")))
        for _ in range(500):  # until the send waits for the chat's row
            waiting = await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%UPDATE chat.chats SET last_seq%'"
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting
        await tx.commit()
    with pytest.raises(ChatError) as refused:
        await sending
    assert refused.value.code is ErrorCode.BLOCKED
    assert (await storage.history(first, None, None, 10)).messages == []


async def test_partners_and_hidden_users_leave_out_blocked_pairs(
    storage: PostgresStorage, blocks: PostgresBlocks
) -> None:
    me, friend, foe, stranger = (new_user_id() for _ in range(4))
    await storage.create_chat(me, friend, None, me, T0)
    await storage.create_chat(foe, me, None, foe, T0)
    assert set(await storage.partners(me)) == {friend, foe}
    await blocks.block(foe, me, at(1))
    assert await storage.partners(me) == [friend]
    assert await storage.partners(foe) == []
    assert await blocks.hidden_among(me, [friend, foe, stranger]) == {foe}
    assert await blocks.hidden_among(foe, [me, friend]) == {me}
    await blocks.block(me, stranger, at(2))
    assert await blocks.hidden_among(stranger, [me]) == {me}
    assert await blocks.hidden_among(me, []) == set()


async def test_hidden_lookups_in_flight_together_each_get_their_own_answer(
    storage: PostgresStorage, blocks: PostgresBlocks
) -> None:
    me, foe, friend, other = (new_user_id() for _ in range(4))
    await blocks.block(me, foe, at(1))
    await blocks.block(other, me, at(2))
    asked = [
        (me, [foe, friend, other, foe]),
        (foe, [me, friend]),
        (friend, [me, foe, other]),
        (other, [me]),
        (me, [friend]),
    ] * 40
    answers = await asyncio.gather(*(blocks.hidden_among(user, ids) for user, ids in asked))
    assert answers == [{foe, other}, {me}, set(), {me}, set()] * 40


async def test_chat_blocked_reads_the_chat_row(
    storage: PostgresStorage, blocks: PostgresBlocks
) -> None:
    a, b, first, second = await both_ways(storage)
    assert not await blocks.chat_blocked(first)
    await blocks.block(a, b, at(1))
    assert await blocks.chat_blocked(first)
    assert await blocks.chat_blocked(second)
    assert not await blocks.chat_blocked("00000000-0000-0000-0000-000000000001")


async def test_racing_blocks_of_one_pair_settle_on_one_row_and_one_event(
    storage: PostgresStorage, blocks: PostgresBlocks, pool: asyncpg.Pool
) -> None:
    a, b, _, _ = await both_ways(storage)
    changes = await asyncio.gather(*(blocks.block(a, b, at(1)) for _ in range(8)))
    assert sum(c.changed for c in changes) == 1
    assert len(await pair_events(pool, a, b)) == 1
    assert await flags(pool, a, b) == [True, True]
