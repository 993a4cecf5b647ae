"""Handshake authentication with the local verifier (HS256 with JWT_SECRET)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from .conftest import Connect
from .helpers import assert_auth_rejected, online_ids
from .jsclient import Bridge
from .server import ChatServer
from .tokens import OTHER_SECRET, Tokens, new_user_id

pytestmark = pytest.mark.e2e


async def test_token_in_auth_is_accepted(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens, user_id: int
) -> None:
    client = await bridge.connect(chat_server.url, auth={"token": tokens.mint(user_id)})

    assert await online_ids(client, [user_id]) == {user_id}


async def test_token_in_query_is_accepted(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens, user_id: int
) -> None:
    client = await bridge.connect(chat_server.url, query={"token": tokens.mint(user_id)})

    assert await online_ids(client, [user_id]) == {user_id}


async def test_token_in_authorization_header_is_accepted(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens, user_id: int
) -> None:
    headers = {"Authorization": f"Bearer {tokens.mint(user_id)}"}
    client = await bridge.connect(chat_server.url, headers=headers)

    assert await online_ids(client, [user_id]) == {user_id}


async def test_auth_token_wins_over_query_token(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens
) -> None:
    auth_user, query_user = new_user_id(), new_user_id()
    client = await bridge.connect(
        chat_server.url,
        auth={"token": tokens.mint(auth_user)},
        query={"token": tokens.mint(query_user)},
    )

    assert await online_ids(client, [auth_user, query_user]) == {auth_user}


@pytest.mark.parametrize(
    "claim",
    [pytest.param("userId", id="userId"), pytest.param("id", id="id")],
)
async def test_user_id_claim_falls_back_to_user_id_and_id(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens, user_id: int, claim: str
) -> None:
    client = await bridge.connect(chat_server.url, token=tokens.mint(user_id, claim=claim))

    assert await online_ids(client, [user_id]) == {user_id}


@pytest.mark.parametrize(
    "handshake",
    [
        pytest.param({}, id="no-auth-at-all"),
        pytest.param({"auth": {}}, id="auth-without-token"),
        pytest.param({"auth": {"token": ""}}, id="empty-auth-token"),
        pytest.param({"query": {"token": ""}}, id="empty-query-token"),
        pytest.param({"headers": {"Authorization": "Bearer "}}, id="empty-bearer"),
    ],
)
async def test_missing_or_empty_token_is_token_required(
    bridge: Bridge, chat_server: ChatServer, handshake: dict[str, Any]
) -> None:
    client = await bridge.connect(chat_server.url, wait=False, **handshake)

    await assert_auth_rejected(client, "TOKEN_REQUIRED")


def _bad_tokens(tokens: Tokens, user_id: int) -> dict[str, str]:
    return {
        "bad-signature": tokens.mint(user_id, secret=OTHER_SECRET),
        "alg-none": tokens.alg_none(user_id),
        "future-nbf": tokens.mint(user_id, nbf_in=600),
        "no-user-id": tokens.mint(None),
        "non-numeric-sub": tokens.mint("abc"),
        "zero-sub": tokens.mint(0),
        "negative-sub": tokens.mint(-5),
        "not-a-jwt": "definitely-not-a-jwt",
        "tampered-payload": _tamper(tokens.mint(user_id)),
    }


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{header}.{flipped}.{signature}"


@pytest.mark.parametrize(
    "kind",
    [
        "bad-signature",
        "alg-none",
        "future-nbf",
        "no-user-id",
        "non-numeric-sub",
        "zero-sub",
        "negative-sub",
        "not-a-jwt",
        "tampered-payload",
    ],
)
async def test_unverifiable_token_is_token_invalid(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens, user_id: int, kind: str
) -> None:
    client = await bridge.connect(
        chat_server.url, token=_bad_tokens(tokens, user_id)[kind], wait=False
    )

    await assert_auth_rejected(client, "TOKEN_INVALID")


async def test_expired_token_is_token_expired(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens, user_id: int
) -> None:
    client = await bridge.connect(
        chat_server.url, token=tokens.mint(user_id, exp_in=-30), wait=False
    )

    await assert_auth_rejected(client, "TOKEN_EXPIRED")


async def test_rejected_token_is_not_registered_online(
    bridge: Bridge,
    chat_server: ChatServer,
    tokens: Tokens,
    redis: aioredis.Redis,
    connect: Connect,
    user_id: int,
) -> None:
    rejected = await bridge.connect(
        chat_server.url, token=tokens.mint(user_id, secret=OTHER_SECRET), wait=False
    )
    await assert_auth_rejected(rejected, "TOKEN_INVALID")

    observer = await connect()
    assert await online_ids(observer, [user_id]) == set()
    assert await redis.exists(f"user:{user_id}:online") == 0
    assert not await redis.sismember("online:users", str(user_id))


async def test_event_right_after_connect_is_handled_as_the_user(
    connect: Connect, user_id: int
) -> None:
    seller = new_user_id()
    client = await connect(user_id)

    ack = await client.emit_ack("chat:create", {"buyerId": user_id, "sellerId": seller})

    assert ack["success"] is True, ack
    assert ack["data"]["buyerId"] == user_id
