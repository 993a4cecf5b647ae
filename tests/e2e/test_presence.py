"""user:online / user:offline, users:online, and presence state in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from .conftest import Connect
from .helpers import create_chat, failed, ok, parse_iso
from .jsclient import JsClient
from .tokens import new_user_id

pytestmark = pytest.mark.e2e

ONLINE_TTL_S = 300


async def _partners(connect: Connect, watcher_id: int, partner_id: int) -> JsClient:
    """A connected watcher who shares a chat with ``partner_id`` (who is not connected)."""
    watcher = await connect(watcher_id)
    await create_chat(watcher, watcher_id, partner_id)
    return watcher


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


async def test_first_socket_announces_online_to_chat_partners(
    connect: Connect, user_id: int
) -> None:
    partner_id = new_user_id()
    watcher = await _partners(connect, user_id, partner_id)
    stranger = await connect()

    await connect(partner_id)

    assert await watcher.wait_for("user:online", lambda e: e["userId"] == partner_id) == {
        "userId": partner_id
    }
    await stranger.assert_no_event("user:online", within=0.5, since=0)


async def test_second_socket_of_same_user_does_not_announce_online(
    connect: Connect, user_id: int
) -> None:
    partner_id = new_user_id()
    watcher = await _partners(connect, user_id, partner_id)
    await connect(partner_id)
    await watcher.wait_for("user:online", lambda e: e["userId"] == partner_id)
    mark = watcher.mark()

    await connect(partner_id)

    await watcher.assert_no_event("user:online", within=1.0, since=mark)


async def test_offline_is_announced_only_when_the_last_socket_goes(
    connect: Connect, user_id: int
) -> None:
    partner_id = new_user_id()
    watcher = await _partners(connect, user_id, partner_id)
    first = await connect(partner_id)
    second = await connect(partner_id)
    await watcher.wait_for("user:online", lambda e: e["userId"] == partner_id)

    await first.close()
    await watcher.assert_no_event("user:offline", within=1.0)
    before = datetime.now(UTC)
    await second.close()

    offline = await watcher.wait_for("user:offline", lambda e: e["userId"] == partner_id)
    assert set(offline) >= {"userId", "lastSeenAt"}
    last_seen = parse_iso(offline["lastSeenAt"])
    assert before - timedelta(seconds=2) <= last_seen <= datetime.now(UTC) + timedelta(seconds=1)
    assert len(watcher.events("user:offline")) == 1


async def test_presence_keys_follow_the_users_sockets(
    connect: Connect, redis: aioredis.Redis, user_id: int
) -> None:
    first = await connect(user_id)
    second = await connect(user_id)
    key = f"user:{user_id}:online"

    assert await redis.get(key) == second.sid
    assert 0 < await redis.ttl(key) <= ONLINE_TTL_S
    assert await redis.sismember("online:users", str(user_id))

    await second.close()

    async def points_at_first() -> bool:
        return bool(await redis.get(key) == first.sid)

    await _eventually(points_at_first)
    assert await redis.sismember("online:users", str(user_id))

    await first.close()

    async def gone() -> bool:
        return not await redis.exists(key) and not await redis.sismember(
            "online:users", str(user_id)
        )

    await _eventually(gone)


async def test_users_online_with_user_ids_answers_by_ack_and_event(
    connect: Connect, user_id: int
) -> None:
    online_id, offline_id = new_user_id(), new_user_id()
    client = await connect(user_id)
    await connect(online_id)

    data = ok(await client.emit_ack("users:online", {"userIds": [online_id, offline_id, user_id]}))

    assert sorted(data["userIds"]) == sorted([online_id, user_id])
    event = await client.wait_for("users:online")
    assert sorted(event["userIds"]) == sorted([online_id, user_id])


async def test_users_online_without_user_ids_lists_online_chat_partners(
    connect: Connect, user_id: int
) -> None:
    online_partner, offline_partner, online_stranger = new_user_id(), new_user_id(), new_user_id()
    client = await connect(user_id)
    await create_chat(client, user_id, online_partner)
    await create_chat(client, offline_partner, user_id)
    await connect(online_partner)
    await connect(online_stranger)

    data = ok(await client.emit_ack("users:online", {}))

    assert data["userIds"] == [online_partner]
    event = await client.wait_for("users:online")
    assert event["userIds"] == [online_partner]


async def test_users_online_accepts_up_to_500_ids(connect: Connect, user_id: int) -> None:
    client = await connect(user_id)
    many = [new_user_id() for _ in range(499)] + [user_id]

    assert ok(await client.emit_ack("users:online", {"userIds": many}))["userIds"] == [user_id]
    failed(
        await client.emit_ack("users:online", {"userIds": [*many, new_user_id()]}),
        "VALIDATION_ERROR",
    )
