"""Events, presence and shutdown across two instances sharing PostgreSQL and Redis: fan-out and
presence hold for all nodes together (events reach each socket once, the seed's presence keys follow
the sockets of every node, a killed node's users go offline); SIGTERM closes a node's sockets and
ends the process."""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from .conftest import ServerFactory
from .faultkit import eventually
from .helpers import create_chat, ok, online_ids, parse_iso, send
from .jsclient import Bridge, JsClient
from .server import STOP_TIMEOUT_S, ChatServer
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e


@pytest_asyncio.fixture(scope="module")
async def nodes(module_server_factory: ServerFactory) -> tuple[ChatServer, ChatServer]:
    return await module_server_factory.start(), await module_server_factory.start()


async def _on(bridge: Bridge, server: ChatServer, tokens: Tokens, user_id: int) -> JsClient:
    return await bridge.connect(server.url, token=tokens.mint(user_id), user_id=user_id)


async def test_message_reaches_sockets_on_every_node_once(
    bridge: Bridge, nodes: tuple[ChatServer, ChatServer], tokens: Tokens, user_id: int
) -> None:
    a, b = nodes
    seller_id = new_user_id()
    buyer_a = await _on(bridge, a, tokens, user_id)
    buyer_b = await _on(bridge, b, tokens, user_id)
    seller_b = await _on(bridge, b, tokens, seller_id)
    seller_a = await _on(bridge, a, tokens, seller_id)
    chat = await create_chat(buyer_a, user_id, seller_id)

    message = await send(buyer_a, chat["id"], "across nodes")

    for client in (buyer_a, buyer_b, seller_a, seller_b):
        assert await client.wait_for("message:new") == message
    await seller_b.assert_no_event("message:new", within=1.0)
    for client in (buyer_a, buyer_b, seller_a, seller_b):
        assert len(client.events("message:new")) == 1, client.log
        assert len(client.events("chat:created")) == 1, client.log


async def test_typing_crosses_nodes(
    bridge: Bridge, nodes: tuple[ChatServer, ChatServer], tokens: Tokens, user_id: int
) -> None:
    a, b = nodes
    seller_id = new_user_id()
    buyer = await _on(bridge, a, tokens, user_id)
    seller = await _on(bridge, b, tokens, seller_id)
    chat = await create_chat(buyer, user_id, seller_id)
    ok(await seller.emit_ack("chat:join", {"chatId": chat["id"]}))

    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))

    assert await seller.wait_for("typing:start") == {"chatId": chat["id"], "userId": user_id}


async def test_user_with_sockets_on_two_nodes_is_offline_only_when_both_go(
    bridge: Bridge, nodes: tuple[ChatServer, ChatServer], tokens: Tokens, user_id: int
) -> None:
    a, b = nodes
    partner_id = new_user_id()
    watcher = await _on(bridge, a, tokens, user_id)
    await create_chat(watcher, user_id, partner_id)
    on_a = await _on(bridge, a, tokens, partner_id)
    await watcher.wait_for("user:online", lambda e: e["userId"] == partner_id)
    on_b = await _on(bridge, b, tokens, partner_id)
    await watcher.assert_no_event("user:online", within=0.7, since=watcher.mark())

    await on_a.close()
    await watcher.assert_no_event("user:offline", within=1.0)
    assert ok(await watcher.emit_ack("users:online", {"userIds": [partner_id]})) == {
        "userIds": [partner_id]
    }
    await on_b.close()

    await watcher.wait_for("user:offline", lambda e: e["userId"] == partner_id)
    assert ok(await watcher.emit_ack("users:online", {"userIds": [partner_id]})) == {"userIds": []}


async def test_sigterm_closes_the_sockets_and_ends_the_process_in_time(
    bridge: Bridge, server_factory: ServerFactory, tokens: Tokens, user_id: int
) -> None:
    server = await server_factory.start()
    client = await bridge.connect(server.url, token=tokens.mint(user_id))
    chat = await create_chat(client, user_id, new_user_id())
    await send(client, chat["id"], "before the drain")
    assert server.proc is not None
    started = time.monotonic()

    server.terminate()

    await client.wait_for("disconnect", timeout=STOP_TIMEOUT_S)
    await asyncio.wait_for(server.proc.wait(), STOP_TIMEOUT_S + 5)
    assert time.monotonic() - started < STOP_TIMEOUT_S


# Proving "exactly once" needs a quiet moment after the awaited events, in which a duplicate
# (a second delivery through the other node) would have arrived.
QUIET_S = 1.0
# docs/deploy.md: a node that dies without cleaning up is reaped within 30 s.
DEAD_NODE_REAPED_S = 30.0


def _counts(client: JsClient, *events: str) -> dict[str, int]:
    return {event: len(client.events(event)) for event in events}


async def test_buyer_and_seller_on_two_nodes_get_every_event_once(
    bridge: Bridge, nodes: tuple[ChatServer, ChatServer], tokens: Tokens, user_id: int
) -> None:
    a, b = nodes
    buyer_id, seller_id = user_id, new_user_id()
    buyer = await _on(bridge, a, tokens, buyer_id)
    chat = await create_chat(buyer, buyer_id, seller_id)
    chat_id = chat["id"]
    seller = await _on(bridge, b, tokens, seller_id)
    assert await buyer.wait_for("user:online") == {"userId": seller_id}
    ok(await seller.emit_ack("chat:join", {"chatId": chat_id}))

    buyer_typing = {"chatId": chat_id, "userId": buyer_id}
    ok(await buyer.emit_ack("typing:start", {"chatId": chat_id}))
    assert await seller.wait_for("typing:start") == buyer_typing
    ok(await buyer.emit_ack("typing:stop", {"chatId": chat_id}))
    assert await seller.wait_for("typing:stop") == buyer_typing

    seller_typing = {"chatId": chat_id, "userId": seller_id}
    ok(await seller.emit_ack("typing:start", {"chatId": chat_id}))
    assert await buyer.wait_for("typing:start") == seller_typing
    message = await send(seller, chat_id, "sent on node B")
    for client in (buyer, seller):
        assert await client.wait_for("message:new") == message
    # Sending ends the typist's indicator, across the nodes too.
    assert await buyer.wait_for("typing:stop") == seller_typing

    receipt = ok(
        await buyer.emit_ack("message:read", {"chatId": chat_id, "messageId": message["id"]})
    )
    read_event = {"chatId": chat_id, "userId": buyer_id, **receipt}
    assert receipt["seq"] == message["seq"]
    for client in (buyer, seller):
        assert await client.wait_for("message:read") == read_event

    await seller.close()
    offline = await buyer.wait_for("user:offline")
    assert offline["userId"] == seller_id
    parse_iso(offline["lastSeenAt"])

    await asyncio.sleep(QUIET_S)
    events = ("user:online", "user:offline", "typing:start", "typing:stop")
    assert _counts(buyer, *events, "message:new", "message:read") == {
        "user:online": 1,
        "user:offline": 1,
        "typing:start": 1,
        "typing:stop": 1,
        "message:new": 1,
        "message:read": 1,
    }, buyer.log
    assert _counts(seller, "typing:start", "typing:stop", "message:new", "message:read") == {
        "typing:start": 1,
        "typing:stop": 1,
        "message:new": 1,
        "message:read": 1,
    }, seller.log


async def test_messages_and_reads_reach_each_socket_of_both_users_once(
    bridge: Bridge, nodes: tuple[ChatServer, ChatServer], tokens: Tokens, user_id: int
) -> None:
    a, b = nodes
    seller_id = new_user_id()
    buyer_a = await _on(bridge, a, tokens, user_id)
    buyer_b = await _on(bridge, b, tokens, user_id)
    seller_a = await _on(bridge, a, tokens, seller_id)
    seller_b = await _on(bridge, b, tokens, seller_id)
    sockets = (buyer_a, buyer_b, seller_a, seller_b)
    chat = await create_chat(seller_b, user_id, seller_id)
    first = await send(seller_b, chat["id"], "one from the seller on B")
    second = await send(buyer_a, chat["id"], "one from the buyer on A")

    receipt = ok(
        await buyer_b.emit_ack("message:read", {"chatId": chat["id"], "messageId": first["id"]})
    )

    read_event = {"chatId": chat["id"], "userId": user_id, **receipt}
    for client in sockets:
        await client.wait_for("message:new", lambda m: m["id"] == second["id"])
        assert await client.wait_for("message:read") == read_event
    await asyncio.sleep(QUIET_S)
    for client in sockets:
        assert [m["id"] for m in client.events("message:new")] == [first["id"], second["id"]], (
            client.log
        )
        assert client.events("message:read") == [read_event], client.log


async def test_presence_keys_follow_a_user_with_a_socket_on_each_node(
    bridge: Bridge,
    nodes: tuple[ChatServer, ChatServer],
    tokens: Tokens,
    redis: aioredis.Redis,
    user_id: int,
) -> None:
    a, b = nodes
    partner_id = new_user_id()
    key = f"user:{partner_id}:online"
    watcher = await _on(bridge, a, tokens, user_id)
    await create_chat(watcher, user_id, partner_id)
    on_a = await _on(bridge, a, tokens, partner_id)
    await watcher.wait_for("user:online", lambda e: e["userId"] == partner_id)
    on_b = await _on(bridge, b, tokens, partner_id)
    # At `connect` the socket is registered, and the key holds the latest socket.
    assert await redis.get(key) == on_b.sid
    assert await redis.sismember("online:users", str(partner_id))

    await on_b.close()

    async def holds_the_remaining_socket() -> bool:
        return bool(await redis.get(key) == on_a.sid)

    await eventually(holds_the_remaining_socket, 5.0, f"{key} = the socket left on node A")
    assert await redis.sismember("online:users", str(partner_id))
    assert 0 < await redis.ttl(key) <= 300
    assert await online_ids(watcher, [partner_id]) == {partner_id}
    assert watcher.events("user:offline") == [], watcher.log

    await on_a.close()

    offline = await watcher.wait_for("user:offline")
    assert offline["userId"] == partner_id
    assert not await redis.sismember("online:users", str(partner_id))
    assert not await redis.exists(key)
    await asyncio.sleep(QUIET_S)
    assert _counts(watcher, "user:online", "user:offline") == {
        "user:online": 1,
        "user:offline": 1,
    }, watcher.log


async def test_users_of_a_killed_node_go_offline_and_the_others_stay_online(
    bridge: Bridge,
    server_factory: ServerFactory,
    tokens: Tokens,
    redis: aioredis.Redis,
    user_id: int,
) -> None:
    a = await server_factory.start()
    b = await server_factory.start()
    gone_id, both_id = new_user_id(), new_user_id()
    watcher = await _on(bridge, a, tokens, user_id)
    await create_chat(watcher, user_id, gone_id)
    await create_chat(watcher, both_id, user_id)
    await _on(bridge, b, tokens, gone_id)
    both_a = await _on(bridge, a, tokens, both_id)
    both_b = await _on(bridge, b, tokens, both_id)
    await eventually(
        lambda: {e["userId"] for e in watcher.events("user:online")} == {gone_id, both_id},
        5,
        "user:online for both partners",
    )
    assert await redis.get(f"user:{both_id}:online") == both_b.sid
    assert b.proc is not None
    mark = watcher.mark()
    killed_at = time.monotonic()

    b.proc.kill()
    await b.proc.wait()

    offline = await watcher.wait_for("user:offline", timeout=DEAD_NODE_REAPED_S, since=mark)
    took = time.monotonic() - killed_at
    assert offline["userId"] == gone_id, watcher.log[mark:]
    assert took < DEAD_NODE_REAPED_S
    assert not await redis.sismember("online:users", str(gone_id))
    assert not await redis.exists(f"user:{gone_id}:online")
    # The user with a socket left on node A stays online, and the key names that socket.
    assert await redis.sismember("online:users", str(both_id))
    assert await redis.get(f"user:{both_id}:online") == both_a.sid
    assert await redis.sismember("online:users", str(user_id))
    assert await online_ids(watcher, [gone_id, both_id, user_id]) == {both_id, user_id}
    await asyncio.sleep(QUIET_S)
    assert [e["userId"] for e in watcher.events("user:offline")] == [gone_id], watcher.log


BURST = 200


async def test_a_burst_of_sends_reaches_the_partner_on_the_other_node_once_each(
    bridge: Bridge, nodes: tuple[ChatServer, ChatServer], tokens: Tokens, user_id: int
) -> None:
    a, b = nodes
    seller_id = new_user_id()
    buyer = await _on(bridge, a, tokens, user_id)
    seller = await _on(bridge, b, tokens, seller_id)
    chat = await create_chat(buyer, user_id, seller_id)

    sent = await asyncio.gather(*(send(buyer, chat["id"], f"burst {n}") for n in range(BURST)))

    ids = {m["id"] for m in sent}
    await eventually(
        lambda: len(seller.events("message:new")) >= BURST, 10, f"{BURST} message:new on node B"
    )
    await asyncio.sleep(QUIET_S)
    received = [m["id"] for m in seller.events("message:new")]
    assert len(received) == BURST, f"{len(received)} of {BURST}"
    assert set(received) == ids
