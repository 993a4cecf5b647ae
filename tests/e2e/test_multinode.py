"""PROTOCOL §5 to §7 and §10 across two instances sharing PostgreSQL and Redis: fan-out and
presence hold for all nodes together; SIGTERM closes a node's sockets and ends the process."""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio

from .conftest import ServerFactory
from .helpers import create_chat, ok, send
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
