"""Rate limits per user, across sockets and nodes (Redis), and their metrics.

The module's two servers share PostgreSQL and Redis and allow 5 ``message:send`` per 3 s and 3
``chat:create`` per minute; ``typing:start`` keeps its default throttle of 2 s.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from .conftest import Connect, ServerFactory
from .convo import message_rows, pair, send_many, wait_for_news
from .helpers import create_chat, failed, ok, send
from .jsclient import JsClient
from .resthelp import rest, rest_failed
from .server import ChatServer
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e

MESSAGES = 5
WINDOW_S = 3
CHATS = 3
CHATS_WINDOW_S = 60
TYPING_THROTTLE_S = 2.0
LIMITS = {
    "RATE_LIMIT_MESSAGES": str(MESSAGES),
    "RATE_LIMIT_WINDOW_S": str(WINDOW_S),
    "RATE_LIMIT_CHATS": str(CHATS),
    "RATE_LIMIT_CHATS_WINDOW_S": str(CHATS_WINDOW_S),
}


@pytest_asyncio.fixture(scope="module")
async def chat_server(module_server_factory: ServerFactory) -> ChatServer:
    return await module_server_factory.start(**LIMITS)


@pytest_asyncio.fixture(scope="module")
async def second_node(module_server_factory: ServerFactory, chat_server: ChatServer) -> ChatServer:
    return await module_server_factory.start(**LIMITS)


def limited(ack: Any, window_s: float) -> int:
    """Asserts ``RATE_LIMITED`` with 0 < ``retryAfterMs`` ≤ the window; returns it."""
    failed(ack, "RATE_LIMITED")
    retry = ack.get("retryAfterMs")
    assert isinstance(retry, int), ack
    assert not isinstance(retry, bool), ack
    assert 0 < retry <= window_s * 1000, ack
    return retry


async def refused_send(client: JsClient, chat_id: str, text: str, **fields: Any) -> int:
    ack = await client.emit_ack("message:send", {"chatId": chat_id, "text": text, **fields})
    return limited(ack, WINDOW_S)


async def refusals(server: ChatServer, action: str) -> float:
    """``chat_rate_limited_total{action=…}`` of the node (0 before the first refusal)."""
    async with httpx.AsyncClient(timeout=5.0) as http:
        response = await http.get(f"{server.url}/metrics")
    assert response.status_code == 200, response.text
    pattern = rf'^chat_rate_limited_total\{{[^}}]*action="{re.escape(action)}"[^}}]*\}} (\S+)$'
    found = re.search(pattern, response.text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_the_sixth_send_in_the_window_is_refused_and_nothing_is_stored(
    connect: Connect, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    started = time.monotonic()
    sent = await send_many(p.buyer, p.chat_id, MESSAGES)

    retry_ms = await refused_send(p.buyer, p.chat_id, "one too many", clientMessageId="x-6")
    await refused_send(p.buyer, p.chat_id, "and another")

    rows = await message_rows(db, p.chat_id)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["client_message_id"] != "x-6" for r in rows)
    assert await wait_for_news(p.seller, p.chat_id, 5) == sent
    await p.seller.assert_no_event("message:new", within=0.3)
    partner = await send(p.seller, p.chat_id, "the partner has a budget of their own")
    assert partner["seq"] == 6

    await asyncio.sleep(retry_ms / 1000 + 0.2)
    assert time.monotonic() - started <= WINDOW_S + 1.5
    again = await send(p.buyer, p.chat_id, "after the wait", clientMessageId="x-6")
    assert again["seq"] == 7
    assert len(await message_rows(db, p.chat_id)) == 7


async def test_refused_send_without_ack_emits_exception(connect: Connect) -> None:
    p = await pair(connect)
    await send_many(p.buyer, p.chat_id, MESSAGES)

    await p.buyer.emit("message:send", {"chatId": p.chat_id, "text": "no ack"})

    exception = await p.buyer.wait_for("exception")
    assert exception["code"] == "RATE_LIMITED"
    assert exception["event"] == "message:send"
    assert exception["status"] == "error"


async def test_the_limit_holds_across_two_sockets_of_the_user(
    connect: Connect, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    phone = await connect(p.buyer_id)
    await send_many(p.buyer, p.chat_id, 3)
    await send_many(phone, p.chat_id, 2)

    await refused_send(phone, p.chat_id, "phone")
    await refused_send(p.buyer, p.chat_id, "laptop")

    assert len(await message_rows(db, p.chat_id)) == MESSAGES


async def test_the_limit_holds_across_two_server_processes(
    connect: Connect, second_node: ChatServer, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    elsewhere = await connect(p.buyer_id, server=second_node)
    await send_many(p.buyer, p.chat_id, 3)
    await send_many(elsewhere, p.chat_id, 2)

    await refused_send(elsewhere, p.chat_id, "node b")
    await refused_send(p.buyer, p.chat_id, "node a")

    assert len(await message_rows(db, p.chat_id)) == MESSAGES


async def test_concurrent_sends_admit_exactly_the_limit(
    connect: Connect, second_node: ChatServer, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    elsewhere = await connect(p.buyer_id, server=second_node)

    acks = await asyncio.gather(
        *(
            (p.buyer if i % 2 else elsewhere).emit_ack(
                "message:send", {"chatId": p.chat_id, "text": f"burst {i}"}
            )
            for i in range(12)
        )
    )

    admitted = [a for a in acks if a.get("success") is True]
    for ack in acks:
        if ack.get("success") is not True:
            limited(ack, WINDOW_S)
    assert len(admitted) == MESSAGES, acks
    assert sorted(a["data"]["seq"] for a in admitted) == [1, 2, 3, 4, 5]
    assert len(await message_rows(db, p.chat_id)) == MESSAGES


async def test_chat_create_is_limited(connect: Connect, db: asyncpg.Pool) -> None:
    me = new_user_id()
    client = await connect(me)
    for _ in range(CHATS):
        await create_chat(client, me, new_user_id())
    refused_seller = new_user_id()

    ack = await client.emit_ack("chat:create", {"buyerId": me, "sellerId": refused_seller})

    limited(ack, CHATS_WINDOW_S)
    count = await db.fetchval(
        "SELECT count(*) FROM chat.chats WHERE buyer_id = $1 OR seller_id = $1", me
    )
    assert count == CHATS
    assert (
        await db.fetchval("SELECT count(*) FROM chat.chats WHERE seller_id = $1", refused_seller)
        == 0
    )
    other = await connect(refused_seller)
    by_the_other = await create_chat(other, me, refused_seller)
    assert (by_the_other["buyerId"], by_the_other["sellerId"]) == (me, refused_seller)


async def test_typing_start_reaches_the_partner_at_most_once_per_2s_per_chat(
    connect: Connect,
) -> None:
    p = await pair(connect)
    second = await pair(connect, p.buyer_id)
    ok(await p.seller.emit_ack("chat:join", {"chatId": p.chat_id}))
    ok(await second.seller.emit_ack("chat:join", {"chatId": second.chat_id}))
    started = time.monotonic()

    for _ in range(4):
        ok(await p.buyer.emit_ack("typing:start", {"chatId": p.chat_id}))
        await asyncio.sleep(0.25)
    ok(await second.buyer.emit_ack("typing:start", {"chatId": second.chat_id}))
    assert time.monotonic() - started < TYPING_THROTTLE_S - 0.3

    assert await second.seller.wait_for("typing:start") == {
        "chatId": second.chat_id,
        "userId": p.buyer_id,
    }
    await p.seller.assert_no_event(
        "typing:start", within=max(0.0, started + TYPING_THROTTLE_S - 0.2 - time.monotonic())
    )
    assert len(p.seller.events("typing:start")) == 1, p.seller.log

    await asyncio.sleep(max(0.0, started + TYPING_THROTTLE_S + 0.3 - time.monotonic()))
    ok(await p.buyer.emit_ack("typing:start", {"chatId": p.chat_id}))
    await p.seller.wait_for(
        "typing:start", lambda _: len(p.seller.events("typing:start")) == 2, timeout=2.0
    )


async def test_refusals_are_counted_in_metrics(connect: Connect, chat_server: ChatServer) -> None:
    p = await pair(connect)
    before = await refusals(chat_server, "message:send")
    await send_many(p.buyer, p.chat_id, MESSAGES)

    for i in range(3):
        await refused_send(p.buyer, p.chat_id, f"refused {i}")

    assert await refusals(chat_server, "message:send") == before + 3


async def test_rest_send_shares_the_limit_and_answers_429(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    await send_many(p.buyer, p.chat_id, MESSAGES)

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        response = await http.post(f"/api/chats/{p.chat_id}/messages", json={"text": "via REST"})

    rest_failed(response, "RATE_LIMITED")
    retry = response.json().get("retryAfterMs")
    assert isinstance(retry, int), response.text
    assert 0 < retry <= WINDOW_S * 1000
    assert len(await message_rows(db, p.chat_id)) == MESSAGES
