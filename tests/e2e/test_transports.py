"""The same conversation over WebSocket-only clients and over long-polling with upgrade
(the JS client's default), mixed in one chat."""

from __future__ import annotations

import pytest

from .conftest import Connect
from .helpers import assert_auth_rejected, create_chat, send
from .jsclient import Bridge
from .server import ChatServer
from .tokens import OTHER_SECRET, Tokens, new_user_id

pytestmark = pytest.mark.e2e

WEBSOCKET = ["websocket"]
POLLING_WITH_UPGRADE = ["polling", "websocket"]
TRANSPORTS = [
    pytest.param(WEBSOCKET, id="websocket"),
    pytest.param(POLLING_WITH_UPGRADE, id="polling-upgrade"),
]


@pytest.mark.parametrize("buyer_transports", TRANSPORTS)
@pytest.mark.parametrize("seller_transports", TRANSPORTS)
async def test_conversation_works_over_each_transport(
    connect: Connect,
    user_id: int,
    buyer_transports: list[str],
    seller_transports: list[str],
) -> None:
    seller_id = new_user_id()
    buyer = await connect(user_id, transports=buyer_transports)
    seller = await connect(seller_id, transports=seller_transports)
    chat = await create_chat(buyer, user_id, seller_id)
    await seller.wait_for("chat:created")

    question = await send(buyer, chat["id"], "hello over " + buyer_transports[0])
    answer = await send(seller, chat["id"], "hello back over " + seller_transports[0])

    assert await seller.wait_for("message:new", lambda m: m["id"] == question["id"]) == question
    assert await buyer.wait_for("message:new", lambda m: m["id"] == answer["id"]) == answer


async def test_polling_client_upgrades_to_websocket(connect: Connect) -> None:
    client = await connect(transports=POLLING_WITH_UPGRADE)

    assert await client.wait_for("transport:upgrade") == "websocket"
    assert client.connected


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_token_in_query_and_header_work_over_each_transport(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens, transports: list[str]
) -> None:
    by_query = await bridge.connect(
        chat_server.url, query={"token": tokens.mint(new_user_id())}, transports=transports
    )
    by_header = await bridge.connect(
        chat_server.url,
        headers={"Authorization": f"Bearer {tokens.mint(new_user_id())}"},
        transports=transports,
    )

    for client in (by_query, by_header):
        ack = await client.emit_ack("users:online", {})
        assert ack["success"] is True, ack


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_rejected_handshake_looks_the_same_over_each_transport(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens, transports: list[str]
) -> None:
    client = await bridge.connect(
        chat_server.url,
        token=tokens.mint(new_user_id(), secret=OTHER_SECRET),
        transports=transports,
        wait=False,
    )

    await assert_auth_rejected(client, "TOKEN_INVALID")
