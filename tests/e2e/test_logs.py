"""Never log a token, whichever way it came and however its check ended."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import ServerFactory
from .fakeapi import Answer, FakeMarketplaceApi
from .helpers import assert_auth_rejected, create_chat, ok
from .jsclient import Bridge
from .server import ChatServer
from .tokens import OTHER_SECRET, Tokens, new_user_id, sleep_until

pytestmark = pytest.mark.e2e

# The default level is what production runs; DEBUG is what an operator turns on to chase a bug,
# and it must not start leaking credentials either (library debug logs print request lines and
# headers).
LOG_LEVELS = [pytest.param(None, id="default-level"), pytest.param("DEBUG", id="debug-level")]


def _assert_no_token_in(server: ChatServer, used: list[str]) -> None:
    log = server.log_text()
    assert log.strip(), "the server wrote no log at all: is its output captured?"
    leaks = []
    for line in log.splitlines():
        for token in used:
            signature = token.rsplit(".", 1)[-1]
            if token in line or (len(signature) >= 16 and signature in line):
                leaks.append(line.replace(token, "<TOKEN>").replace(signature, "<SIGNATURE>"))
    assert not leaks, "tokens in the server log:\n" + "\n".join(leaks[:10])


@pytest.mark.parametrize("log_level", LOG_LEVELS)
async def test_no_token_in_the_logs_with_the_local_verifier(
    bridge: Bridge, server_factory: ServerFactory, tokens: Tokens, log_level: str | None
) -> None:
    server = await server_factory.start(LOG_LEVEL=log_level)
    user_id, seller_id = new_user_id(), new_user_id()
    short, exp = tokens.expiring_soon(user_id, seconds=1)
    good = tokens.mint(user_id)
    in_query = tokens.mint(user_id)
    in_header = tokens.mint(user_id)
    bad = tokens.mint(user_id, secret=OTHER_SECRET)
    expired = tokens.mint(user_id, exp_in=-30)
    refresh = tokens.mint(user_id)
    mismatch = tokens.mint(new_user_id())
    used = [short, good, in_query, in_header, bad, expired, refresh, mismatch]

    client = await bridge.connect(server.url, token=short, transports=["polling", "websocket"])
    chat = await create_chat(client, user_id, seller_id)
    await bridge.connect(server.url, token=good)
    await bridge.connect(server.url, query={"token": in_query}, transports=["polling"])
    await bridge.connect(server.url, headers={"Authorization": f"Bearer {in_header}"})
    for rejected in (bad, expired):
        await assert_auth_rejected(
            await bridge.connect(server.url, token=rejected, wait=False),
            "TOKEN_EXPIRED" if rejected is expired else "TOKEN_INVALID",
        )
        await assert_auth_rejected(
            await bridge.connect(server.url, query={"token": rejected}, wait=False),
            "TOKEN_EXPIRED" if rejected is expired else "TOKEN_INVALID",
        )
    await client.emit_ack("auth:refresh-token", {"token": mismatch})
    await client.emit_ack("auth:refresh-token", {"token": bad})
    await sleep_until(exp + 0.3)
    await client.emit_ack("message:send", {"chatId": chat["id"], "text": "expired"})
    ok(await client.emit_ack("auth:refresh-token", {"token": refresh}))
    await bridge.close_all()
    await asyncio.sleep(0.5)  # the server logs the disconnects

    _assert_no_token_in(server, used)


@pytest.mark.parametrize("log_level", LOG_LEVELS)
async def test_no_token_in_the_logs_with_the_remote_verifier(
    bridge: Bridge,
    server_factory: ServerFactory,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    log_level: str | None,
) -> None:
    server = await server_factory.start(
        AUTH_VERIFIER="remote",
        MARKETPLACE_API_URL=fake_api.url,
        AUTH_VERIFY_TIMEOUT_S="1",
        JWT_SECRET=None,
        LOG_LEVEL=log_level,
    )
    user_id = new_user_id()
    answers = {
        "ok": Answer(200, {"id": user_id}),
        "refused": Answer(401, {"message": "no"}),
        "broken": Answer(500, {"message": "boom"}),
        "slow": Answer(200, {"id": user_id}, delay_s=2.5),
        "no-id": Answer(200, {"email": "x@example.test"}),
    }
    used = []
    for name, answer in answers.items():
        token = tokens.mint(user_id, secret=OTHER_SECRET)
        fake_api.answer(token, answer)
        used.append(token)
        for handshake in ({"query": {"token": token}}, {"token": token}):
            client = await bridge.connect(
                server.url, wait=False, transports=["polling", "websocket"], **handshake
            )
            await client.wait_for("connect" if name == "ok" else "disconnect", timeout=8)
    expired = tokens.mint(user_id, exp_in=-30, secret=OTHER_SECRET)
    used.append(expired)
    await assert_auth_rejected(
        await bridge.connect(server.url, token=expired, wait=False), "TOKEN_EXPIRED"
    )
    await bridge.close_all()
    await asyncio.sleep(0.5)  # the server logs the disconnects

    _assert_no_token_in(server, used)
