"""Forged tokens with absurd claims, no secret needed: refused cleanly on every path, in bulk too.

Each is refused as TOKEN_INVALID (the socket sees connect, `auth:error`, then the disconnect; REST
answers 401; `auth:refresh-token` fails), a few hundred of them in a row leave another user's
events working, and the server logs neither an ERROR nor any part of a token.
"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from .conftest import Connect, ServerFactory
from .fakeapi import FakeMarketplaceApi
from .helpers import assert_auth_rejected, create_chat, failed, online_ids, send
from .jsclient import Bridge
from .resthelp import rest, rest_failed
from .server import ChatServer
from .test_logs import _assert_no_token_in
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e

FLOOD = 300  # forged connects before the legitimate user acts
FLOOD_BATCH = 25  # of them open at once


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def forged(exp: str) -> str:
    """The tracker's token: a plausible header, a user id and an `exp`, a signature of junk."""
    header, payload = _b64('{"alg":"HS256"}'), _b64('{"sub":"1","exp":' + exp + "}")
    return f"{header}.{payload}.AAAA"


ABSURD_EXP = {
    "exp-1e308": "1e308",
    "exp-1e20": "1e20",
    "exp-nan": "NaN",
    "exp-infinity": "Infinity",
    "exp-minus-infinity": "-Infinity",
    "exp-minus-1e308": "-1e308",
    "exp-year-10000": "253402300800",
    "exp-1e18": "1e18",
}
FORGED = {name: forged(exp) for name, exp in ABSURD_EXP.items()}
# Text no HTTP header can carry, so only the Socket.IO paths see it.
WITH_SURROGATE = {
    "forged-and-a-lone-surrogate": forged("1e308") + "\ud800",
    "lone-surrogate-inside": forged("1")[:12] + "\udc00" + forged("1")[12:],
}


def usable_prefixes(tokens: list[str]) -> list[str]:
    """What of each token a log line could hold in the clear: the text before a surrogate."""
    return [token.split("\ud800")[0].split("\udc00")[0] for token in tokens]


@pytest.mark.parametrize(
    "token", [*FORGED.values(), *WITH_SURROGATE.values()], ids=[*FORGED, *WITH_SURROGATE]
)
async def test_forged_token_in_auth_is_refused_as_token_invalid(
    bridge: Bridge, chat_server: ChatServer, token: str
) -> None:
    client = await bridge.connect(chat_server.url, token=token, wait=False)

    await assert_auth_rejected(client, "TOKEN_INVALID")


@pytest.mark.parametrize("token", FORGED.values(), ids=FORGED.keys())
async def test_forged_token_in_the_query_over_polling_is_refused_as_token_invalid(
    bridge: Bridge, chat_server: ChatServer, token: str
) -> None:
    client = await bridge.connect(
        chat_server.url, query={"token": token}, transports=["polling"], wait=False
    )

    await assert_auth_rejected(client, "TOKEN_INVALID")


@pytest.mark.parametrize("token", FORGED.values(), ids=FORGED.keys())
async def test_forged_token_on_rest_is_401_token_invalid(
    chat_server: ChatServer, token: str
) -> None:
    async with rest(chat_server, token) as http:
        rest_failed(await http.get("/api/chats"), "TOKEN_INVALID")


async def test_forged_token_in_auth_refresh_is_token_invalid_and_the_old_token_stays(
    connect: Connect,
) -> None:
    user_id = new_user_id()
    client = await connect(user_id)
    for token in [*FORGED.values(), *WITH_SURROGATE.values()]:
        failed(await client.emit_ack("auth:refresh-token", {"token": token}), "TOKEN_INVALID")

    assert await online_ids(client, [user_id]) == {user_id}


@pytest.mark.parametrize(
    "token", [*FORGED.values(), *WITH_SURROGATE.values()], ids=[*FORGED, *WITH_SURROGATE]
)
async def test_forged_token_is_token_invalid_with_the_remote_verifier_too(
    bridge: Bridge, remote_server: ChatServer, token: str
) -> None:
    client = await bridge.connect(remote_server.url, token=token, wait=False)

    await assert_auth_rejected(client, "TOKEN_INVALID")


@pytest.fixture
async def remote_server(server_factory: ServerFactory, fake_api: FakeMarketplaceApi) -> ChatServer:
    return await server_factory.start(
        AUTH_VERIFIER="remote", MARKETPLACE_API_URL=fake_api.url, JWT_SECRET=None
    )


async def test_hundreds_of_forged_connects_leave_others_working_and_the_log_clean(
    bridge: Bridge, server_factory: ServerFactory, tokens: Tokens
) -> None:
    server = await server_factory.start()
    kinds = [*FORGED.values(), *WITH_SURROGATE.values()]
    for start in range(0, FLOOD, FLOOD_BATCH):
        batch = [
            await bridge.connect(server.url, token=kinds[i % len(kinds)], wait=False)
            for i in range(start, start + FLOOD_BATCH)
        ]
        await asyncio.gather(*(assert_auth_rejected(c, "TOKEN_INVALID") for c in batch))
        await bridge.close_all()

    buyer_id, seller_id = new_user_id(), new_user_id()
    buyer = await bridge.connect(server.url, token=tokens.mint(buyer_id))
    seller = await bridge.connect(server.url, token=tokens.mint(seller_id))
    chat = await create_chat(buyer, buyer_id, seller_id)
    message = await send(buyer, chat["id"], "still here")
    received = await seller.wait_for("message:new", timeout=5)
    assert received["id"] == message["id"]
    assert await online_ids(buyer, [buyer_id, seller_id]) == {buyer_id, seller_id}

    lines = [json.loads(line) for line in server.log_text().splitlines() if line.strip()]
    errors = [line for line in lines if line.get("level") in ("error", "critical")]
    assert not errors, f"ERROR lines in the server log: {errors[:3]}"
    refused = [line for line in lines if line.get("event") == "connection_refused"]
    assert len(refused) == FLOOD
    _assert_no_token_in(server, usable_prefixes(kinds))
