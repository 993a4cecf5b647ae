"""typing:start / typing:stop and their Redis key."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from .conftest import Connect
from .helpers import create_chat, failed, ok, send
from .jsclient import JsClient
from .tokens import new_user_id

pytestmark = pytest.mark.e2e

TYPING_TTL_S = 10
AUTO_STOP_WITHIN_S = 12


async def _typing_pair(
    connect: Connect, buyer_id: int
) -> tuple[JsClient, JsClient, dict[str, Any], int]:
    """A buyer socket in the chat (it created it) and a seller socket that joined it."""
    seller_id = new_user_id()
    buyer = await connect(buyer_id)
    seller = await connect(seller_id)
    chat = await create_chat(buyer, buyer_id, seller_id)
    ok(await seller.emit_ack("chat:join", {"chatId": chat["id"]}))
    return buyer, seller, chat, seller_id


async def test_typing_start_reaches_only_the_partners_sockets_in_the_chat(
    connect: Connect, user_id: int
) -> None:
    seller_id = new_user_id()
    buyer = await connect(user_id)
    buyer_other = await connect(user_id)
    seller_joined = await connect(seller_id)
    seller_not_joined = await connect(seller_id)
    stranger = await connect()
    chat = await create_chat(buyer, user_id, seller_id)
    ok(await buyer_other.emit_ack("chat:join", {"chatId": chat["id"]}))
    ok(await seller_joined.emit_ack("chat:join", {"chatId": chat["id"]}))

    assert ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]})) == {}

    assert await seller_joined.wait_for("typing:start") == {"chatId": chat["id"], "userId": user_id}
    await seller_not_joined.assert_no_event("typing:start", within=1.0, since=0)
    for client in (buyer, buyer_other, stranger):
        assert client.events("typing:start") == [], client.log
    assert len(seller_joined.events("typing:start")) == 1


async def test_typing_key_lives_in_redis_for_at_most_10s(
    connect: Connect, redis: aioredis.Redis, user_id: int
) -> None:
    buyer, _, chat, _ = await _typing_pair(connect, user_id)

    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))

    key = f"chat:{chat['id']}:typing:{user_id}"
    ttl = await redis.ttl(key)
    assert 0 < ttl <= TYPING_TTL_S, f"{key} TTL {ttl}"


async def test_typing_stop_clears_the_key_and_reaches_the_partner(
    connect: Connect, redis: aioredis.Redis, user_id: int
) -> None:
    buyer, seller, chat, _ = await _typing_pair(connect, user_id)
    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))
    await seller.wait_for("typing:start")

    assert ok(await buyer.emit_ack("typing:stop", {"chatId": chat["id"]})) == {}

    assert await seller.wait_for("typing:stop") == {"chatId": chat["id"], "userId": user_id}
    assert await redis.exists(f"chat:{chat['id']}:typing:{user_id}") == 0
    assert buyer.events("typing:stop") == []


async def test_typing_stops_by_itself_within_12s_of_the_last_start(
    connect: Connect, redis: aioredis.Redis, user_id: int
) -> None:
    buyer, seller, chat, _ = await _typing_pair(connect, user_id)
    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))
    await asyncio.sleep(2.5)
    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))
    last_start = time.monotonic()
    ttl = await redis.ttl(f"chat:{chat['id']}:typing:{user_id}")
    assert ttl > TYPING_TTL_S - 2, f"a repeated typing:start did not refresh the TTL ({ttl})"

    stop = await seller.wait_for_received("typing:stop", timeout=AUTO_STOP_WITHIN_S + 1)

    assert stop.payload == {"chatId": chat["id"], "userId": user_id}
    assert stop.at - last_start <= AUTO_STOP_WITHIN_S
    assert stop.at - last_start >= TYPING_TTL_S - 1.5, "typing stopped before 10 s had passed"


async def test_sending_a_message_stops_typing(
    connect: Connect, redis: aioredis.Redis, user_id: int
) -> None:
    buyer, seller, chat, _ = await _typing_pair(connect, user_id)
    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))
    await seller.wait_for("typing:start")

    await send(buyer, chat["id"], "done typing")

    assert await seller.wait_for("typing:stop", timeout=3) == {
        "chatId": chat["id"],
        "userId": user_id,
    }
    assert await redis.exists(f"chat:{chat['id']}:typing:{user_id}") == 0


async def test_typists_disconnect_stops_typing(
    connect: Connect, redis: aioredis.Redis, user_id: int
) -> None:
    buyer, seller, chat, _ = await _typing_pair(connect, user_id)
    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))
    await seller.wait_for("typing:start")

    await buyer.close()

    assert await seller.wait_for("typing:stop", timeout=3) == {
        "chatId": chat["id"],
        "userId": user_id,
    }
    assert await redis.exists(f"chat:{chat['id']}:typing:{user_id}") == 0


async def test_non_participant_cannot_type(
    connect: Connect, redis: aioredis.Redis, user_id: int
) -> None:
    _, seller, chat, _ = await _typing_pair(connect, user_id)
    stranger = await connect()

    failed(await stranger.emit_ack("typing:start", {"chatId": chat["id"]}), "FORBIDDEN")
    failed(await stranger.emit_ack("typing:stop", {"chatId": chat["id"]}), "FORBIDDEN")

    assert await redis.exists(f"chat:{chat['id']}:typing:{stranger.user_id}") == 0
    await seller.assert_no_event("typing:start", within=0.5, since=0)
