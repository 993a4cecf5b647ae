"""The remote verifier: marketplace-api's ``GET /auth/me`` (a fake here) checks each token."""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from .conftest import ServerFactory
from .fakeapi import Answer, FakeMarketplaceApi, user_body
from .helpers import assert_auth_rejected, online_ids
from .jsclient import Bridge
from .server import ChatServer, free_port
from .tokens import OTHER_SECRET, Tokens

pytestmark = pytest.mark.e2e

VERIFY_TIMEOUT_S = 1.0


def remote_env(api_url: str) -> dict[str, str | None]:
    # No JWT_SECRET: tokens signed with a key the service does not know must still be accepted
    # when marketplace-api vouches for them.
    return {
        "AUTH_VERIFIER": "remote",
        "MARKETPLACE_API_URL": api_url,
        "AUTH_VERIFY_TIMEOUT_S": str(VERIFY_TIMEOUT_S),
        "JWT_SECRET": None,
    }


@pytest_asyncio.fixture(scope="module")
async def chat_server(
    module_server_factory: ServerFactory, fake_api: FakeMarketplaceApi
) -> ChatServer:
    return await module_server_factory.start(**remote_env(fake_api.url))


def remote_token(tokens: Tokens, user_id: int, exp_in: float = 3600) -> str:
    return tokens.mint(user_id, exp_in=exp_in, secret=OTHER_SECRET)


SHAPES = ["id", "userId", "sub", "user.id", "user.userId", "user.sub", "data.id", "data.userId"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_user_id_is_read_from_each_accepted_place(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
    shape: str,
) -> None:
    token = remote_token(tokens, user_id)
    fake_api.accept(token, user_id, shape)

    client = await bridge.connect(chat_server.url, token=token)

    assert await online_ids(client, [user_id]) == {user_id}
    [request] = fake_api.requests_for(token)
    assert request.method == "GET"
    assert request.path == "/auth/me"
    assert request.authorization == f"Bearer {token}"


async def test_user_id_as_string_of_digits_is_accepted(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
) -> None:
    token = remote_token(tokens, user_id)
    fake_api.answer(token, Answer(200, user_body(str(user_id), "data.id")))

    client = await bridge.connect(chat_server.url, token=token)

    assert await online_ids(client, [user_id]) == {user_id}


@pytest.mark.parametrize("status", [401, 403])
async def test_refusal_by_marketplace_api_is_token_invalid(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
    status: int,
) -> None:
    token = remote_token(tokens, user_id)
    fake_api.answer(token, Answer(status, {"message": "nope"}))

    client = await bridge.connect(chat_server.url, token=token, wait=False)

    await assert_auth_rejected(client, "TOKEN_INVALID")
    assert len(fake_api.requests_for(token)) == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(Answer(500, {"message": "boom"}), id="500"),
        pytest.param(Answer(503, "<html>down</html>"), id="503-html"),
        pytest.param(Answer(200, {"email": "x@example.test"}), id="2xx-without-id"),
        pytest.param(Answer(200, {"user": {"name": "x"}}), id="2xx-user-without-id"),
        pytest.param(Answer(200, "<html>hello</html>"), id="2xx-not-json"),
    ],
)
async def test_unusable_answer_is_auth_service_error(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
    answer: Answer,
) -> None:
    token = remote_token(tokens, user_id)
    fake_api.answer(token, answer)

    client = await bridge.connect(chat_server.url, token=token, wait=False)

    await assert_auth_rejected(client, "AUTH_SERVICE_ERROR")


async def test_slow_marketplace_api_is_auth_service_error_after_the_timeout(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
) -> None:
    token = remote_token(tokens, user_id)
    fake_api.answer(token, Answer(200, user_body(user_id, "id"), delay_s=VERIFY_TIMEOUT_S + 3))
    started = time.monotonic()

    client = await bridge.connect(chat_server.url, token=token, wait=False)

    await assert_auth_rejected(client, "AUTH_SERVICE_ERROR")
    [auth_error] = client.received("auth:error")
    assert auth_error.at - started < VERIFY_TIMEOUT_S + 2.5, "the verify timeout was not applied"


async def test_unreachable_marketplace_api_is_auth_service_error(
    bridge: Bridge, server_factory: ServerFactory, tokens: Tokens, user_id: int
) -> None:
    server = await server_factory.start(**remote_env(f"http://127.0.0.1:{free_port()}"))

    client = await bridge.connect(server.url, token=remote_token(tokens, user_id), wait=False)

    await assert_auth_rejected(client, "AUTH_SERVICE_ERROR")


async def test_expired_jwt_is_token_expired_without_asking_marketplace_api(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
) -> None:
    token = remote_token(tokens, user_id, exp_in=-30)
    fake_api.accept(token, user_id)

    client = await bridge.connect(chat_server.url, token=token, wait=False)

    await assert_auth_rejected(client, "TOKEN_EXPIRED")
    assert fake_api.requests_for(token) == []


async def test_second_connection_with_same_token_uses_the_cache(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
) -> None:
    token = remote_token(tokens, user_id)
    fake_api.accept(token, user_id)

    first = await bridge.connect(chat_server.url, token=token)
    await first.close()
    second = await bridge.connect(chat_server.url, token=token)
    third = await bridge.connect(chat_server.url, query={"token": token})

    assert await online_ids(second, [user_id]) == {user_id}
    assert third.connected
    assert len(fake_api.requests_for(token)) == 1


async def test_failed_verification_is_not_cached(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
) -> None:
    token = remote_token(tokens, user_id)
    fake_api.answer(token, Answer(500, {"message": "boom"}))
    failed = await bridge.connect(chat_server.url, token=token, wait=False)
    await assert_auth_rejected(failed, "AUTH_SERVICE_ERROR")

    fake_api.accept(token, user_id)
    client = await bridge.connect(chat_server.url, token=token)

    assert await online_ids(client, [user_id]) == {user_id}
    assert len(fake_api.requests_for(token)) == 2


async def _all_keys(redis: aioredis.Redis) -> set[str]:
    return {key async for key in redis.scan_iter(count=1000)}


async def _mentions(redis: aioredis.Redis, key: str, needle: str) -> bool:
    kind = await redis.type(key)
    if kind == "string":
        value = await redis.get(key)
        return value is not None and needle in value
    if kind == "hash":
        values: dict[Any, Any] = await redis.hgetall(key)
        return any(needle in f"{k}={v}" for k, v in values.items())
    return False


async def test_cached_result_is_in_redis_under_a_hash_of_the_token(
    bridge: Bridge,
    chat_server: ChatServer,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    redis: aioredis.Redis,
    user_id: int,
) -> None:
    token = remote_token(tokens, user_id, exp_in=120)
    fake_api.accept(token, user_id)
    before = await _all_keys(redis)

    client = await bridge.connect(chat_server.url, token=token)
    assert client.connected

    after = await _all_keys(redis)
    new_keys = after - before - {f"user:{user_id}:online", "online:users"}
    # The cached result: a new key that expires by itself and holds the verified user id.
    cache_keys = {
        key: ttl
        for key in new_keys
        if (ttl := await redis.ttl(key)) > 0 and await _mentions(redis, key, str(user_id))
    }
    assert cache_keys, f"no new expiring Redis key holds the verified user; new keys: {new_keys}"
    signature = token.rsplit(".", 1)[1]
    for key in after:
        assert token not in key, f"raw token in Redis key {key!r}"
        assert signature not in key, f"token signature in Redis key {key!r}"
    for key, ttl in cache_keys.items():
        # 10 minutes at most, and never beyond the token's own exp (120 s from now).
        assert ttl <= 121, f"{key} has TTL {ttl}"


async def test_verify_path_is_configurable(
    bridge: Bridge,
    server_factory: ServerFactory,
    fake_api: FakeMarketplaceApi,
    tokens: Tokens,
    user_id: int,
) -> None:
    server = await server_factory.start(
        **remote_env(fake_api.url), AUTH_VERIFY_PATH="/api/v2/users/me"
    )
    token = remote_token(tokens, user_id)
    fake_api.accept(token, user_id)

    client = await bridge.connect(server.url, token=token)

    assert client.connected
    assert [r.path for r in fake_api.requests_for(token)] == ["/api/v2/users/me"]
