"""After the handshake: per-action token expiry, the grace disconnect, auth:refresh-token."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
import pytest
import pytest_asyncio

from .conftest import Connect, ServerFactory
from .helpers import create_chat, failed, ok, parse_iso, send
from .jsclient import Bridge
from .server import ChatServer
from .tokens import OTHER_SECRET, Tokens, new_user_id, sleep_until

pytestmark = pytest.mark.e2e

TOKEN_EXPIRED_ACK = {"success": False, "error": "Token expired", "code": "TOKEN_EXPIRED"}
TOKEN_EXPIRED_EVENT = {"error": "Token expired", "code": "TOKEN_EXPIRED"}
GRACE_S = 2


@pytest_asyncio.fixture(scope="module")
async def grace_server(module_server_factory: ServerFactory) -> ChatServer:
    return await module_server_factory.start(AUTH_EXPIRED_GRACE_S=str(GRACE_S))


async def _count_messages(db: asyncpg.Pool, chat_id: str) -> int:
    count = await db.fetchval("SELECT count(*) FROM chat.messages WHERE chat_id = $1", chat_id)
    return int(count)


async def test_action_after_expiry_is_refused_with_token_expired(
    connect: Connect, tokens: Tokens, db: asyncpg.Pool, user_id: int
) -> None:
    token, exp = tokens.expiring_soon(user_id)
    buyer = await connect(user_id, token=token)
    chat = await create_chat(buyer, user_id, new_user_id())
    await sleep_until(exp + 0.3)

    ack = await buyer.emit_ack("message:send", {"chatId": chat["id"], "text": "too late"})

    assert ack == TOKEN_EXPIRED_ACK
    assert await buyer.wait_for("auth:token-expired") == TOKEN_EXPIRED_EVENT
    assert await _count_messages(db, chat["id"]) == 0
    assert buyer.connected


async def test_action_without_ack_after_expiry_gets_token_expired_event(
    connect: Connect, tokens: Tokens, db: asyncpg.Pool, user_id: int
) -> None:
    token, exp = tokens.expiring_soon(user_id)
    buyer = await connect(user_id, token=token)
    chat = await create_chat(buyer, user_id, new_user_id())
    await sleep_until(exp + 0.3)

    await buyer.emit("message:send", {"chatId": chat["id"], "text": "too late"})

    assert await buyer.wait_for("auth:token-expired") == TOKEN_EXPIRED_EVENT
    assert await _count_messages(db, chat["id"]) == 0


async def test_expired_socket_gets_no_message_from_partner(
    connect: Connect, tokens: Tokens, user_id: int
) -> None:
    seller_id = new_user_id()
    token, exp = tokens.expiring_soon(user_id)
    buyer = await connect(user_id, token=token)
    seller = await connect(seller_id)
    chat = await create_chat(buyer, user_id, seller_id)
    ok(await seller.emit_ack("chat:join", {"chatId": chat["id"]}))
    await sleep_until(exp + 0.3)
    mark = buyer.mark()

    message = await send(seller, chat["id"], "are you there?")
    ok(await seller.emit_ack("typing:start", {"chatId": chat["id"]}))

    await seller.wait_for("message:new", lambda m: m["id"] == message["id"])
    await asyncio.sleep(1.5)
    expired_at = datetime.fromtimestamp(exp, UTC).isoformat()
    assert buyer.events("message:new", since=mark) == [], f"token expired at {expired_at}"
    assert buyer.events("typing:start", since=mark) == [], f"token expired at {expired_at}"


async def test_refresh_token_returns_new_expiry(
    connect: Connect, tokens: Tokens, user_id: int
) -> None:
    client = await connect(user_id)
    new_exp = int(time.time()) + 7200

    data = ok(
        await client.emit_ack("auth:refresh-token", {"token": tokens.mint(user_id, exp=new_exp)})
    )

    assert parse_iso(data["expiresAt"]).timestamp() == pytest.approx(new_exp, abs=1)


async def test_refresh_with_token_without_exp_has_null_expiry(
    connect: Connect, tokens: Tokens, user_id: int
) -> None:
    client = await connect(user_id)

    data = ok(
        await client.emit_ack("auth:refresh-token", {"token": tokens.mint(user_id, exp_in=None)})
    )

    assert data["expiresAt"] is None


async def test_refresh_after_expiry_restores_actions_and_delivery(
    connect: Connect, tokens: Tokens, user_id: int
) -> None:
    seller_id = new_user_id()
    token, exp = tokens.expiring_soon(user_id)
    buyer = await connect(user_id, token=token)
    seller = await connect(seller_id)
    chat = await create_chat(buyer, user_id, seller_id)
    await sleep_until(exp + 0.3)
    assert (await buyer.emit_ack("typing:stop", {"chatId": chat["id"]})) == TOKEN_EXPIRED_ACK

    ok(await buyer.emit_ack("auth:refresh-token", {"token": tokens.mint(user_id)}))
    message = await send(seller, chat["id"], "welcome back")
    own = await send(buyer, chat["id"], "thanks")

    got = await buyer.wait_for("message:new", lambda m: m["id"] == message["id"])
    assert got["text"] == "welcome back"
    assert own["senderId"] == user_id


async def test_refresh_with_other_users_token_is_refused_and_old_token_stays(
    connect: Connect, tokens: Tokens, user_id: int
) -> None:
    token, exp = tokens.expiring_soon(user_id, seconds=4)
    buyer = await connect(user_id, token=token)
    chat = await create_chat(buyer, user_id, new_user_id())

    ack = await buyer.emit_ack("auth:refresh-token", {"token": tokens.mint(new_user_id())})

    failed(ack, "TOKEN_USER_MISMATCH")
    message = await send(buyer, chat["id"], "still me")
    assert message["senderId"] == user_id
    await sleep_until(exp + 0.3)
    assert (await buyer.emit_ack("typing:start", {"chatId": chat["id"]})) == TOKEN_EXPIRED_ACK


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"token": 12345}, id="token-not-a-string"),
        pytest.param({"token": None}, id="token-null"),
    ],
)
async def test_refresh_without_token_is_validation_error(
    connect: Connect, payload: dict[str, object]
) -> None:
    client = await connect()

    error = failed(await client.emit_ack("auth:refresh-token", payload), "VALIDATION_ERROR")

    assert "token" in error.lower()
    assert client.connected


@pytest.mark.parametrize(
    ("kind", "code"),
    [("bad-signature", "TOKEN_INVALID"), ("expired", "TOKEN_EXPIRED")],
)
async def test_refresh_with_unverifiable_token_is_refused(
    connect: Connect, tokens: Tokens, user_id: int, kind: str, code: str
) -> None:
    client = await connect(user_id)
    new_token = (
        tokens.mint(user_id, secret=OTHER_SECRET)
        if kind == "bad-signature"
        else tokens.mint(user_id, exp_in=-30)
    )

    failed(await client.emit_ack("auth:refresh-token", {"token": new_token}), code)

    assert await client.emit_ack("users:online", {"userIds": [user_id]}) == {
        "success": True,
        "data": {"userIds": [user_id]},
    }


async def test_socket_expired_longer_than_grace_is_disconnected(
    bridge: Bridge, grace_server: ChatServer, tokens: Tokens, user_id: int
) -> None:
    token, exp = tokens.expiring_soon(user_id, seconds=1)
    client = await bridge.connect(grace_server.url, token=token)
    offset = time.time() - time.monotonic()

    reason = await client.wait_for_disconnect(timeout=(exp - time.time()) + GRACE_S + 8)

    assert reason == "io server disconnect"
    [gone] = client.received("disconnect")
    assert gone.at + offset >= exp + GRACE_S - 0.5, "disconnected before the grace period ended"


async def test_refreshed_socket_outlives_the_grace_period(
    bridge: Bridge, grace_server: ChatServer, tokens: Tokens, user_id: int
) -> None:
    token, exp = tokens.expiring_soon(user_id, seconds=1)
    client = await bridge.connect(grace_server.url, token=token)
    ok(await client.emit_ack("auth:refresh-token", {"token": tokens.mint(user_id)}))

    await sleep_until(exp + GRACE_S + 2)

    assert client.connected
    ok(await client.emit_ack("users:online", {"userIds": [user_id]}))
