from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest

from marketplace_chat.auth.remote import RemoteVerifier
from marketplace_chat.errors import AuthError, ErrorCode

from ..fakes import FakeClock, new_user_id

URL = "http://marketplace-api.test/auth/me"
SECRET = "remote-tests-do-not-check-signatures-" + "x" * 32

Handler = Callable[[httpx.Request], httpx.Response]


class FakeApi:
    """marketplace-api's /auth/me: answers with `handler` and keeps every request it saw."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.handler: Handler = lambda _: httpx.Response(200, json={"id": 1})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def client(api: FakeApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        yield http


@pytest.fixture
def observed() -> list[str]:
    return []


@pytest.fixture
def verifier(client: httpx.AsyncClient, clock: FakeClock, observed: list[str]) -> RemoteVerifier:
    return RemoteVerifier(client, URL, clock, observe=lambda _s, outcome: observed.append(outcome))


def answer(status: int, body: Any = None, **kw: Any) -> Handler:
    return lambda _: httpx.Response(status, json=body, **kw)


def token_for(clock: FakeClock, exp_in_s: int = 3600) -> str:
    exp = int(clock.now().timestamp()) + exp_in_s
    return jwt.encode({"sub": "1", "exp": exp}, SECRET, algorithm="HS256")


OPAQUE = "opaque-token"


async def refused(verifier: RemoteVerifier, token: str = OPAQUE) -> ErrorCode:
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token)
    return caught.value.code


async def test_asks_the_api_with_the_bearer_token(api: FakeApi, verifier: RemoteVerifier) -> None:
    await verifier.verify("opaque-token")
    (request,) = api.requests
    assert request.method == "GET"
    assert str(request.url) == URL
    assert request.headers["Authorization"] == "Bearer opaque-token"


@pytest.mark.parametrize(
    "body",
    [
        {"id": "{user}"},
        {"userId": "{user}"},
        {"sub": "{user}"},
        {"user": {"id": "{user}"}},
        {"user": {"userId": "{user}"}},
        {"data": {"sub": "{user}"}},
        {"data": {"id": "{user}", "email": "a@b.c"}},
        {"id": None, "user": {"id": "{user}"}},
    ],
)
@pytest.mark.parametrize("as_text", [False, True])
async def test_user_id_is_found_where_marketplace_api_puts_it(
    api: FakeApi, verifier: RemoteVerifier, body: dict[str, Any], as_text: bool
) -> None:
    user = new_user_id()

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if value == "{user}":
            return str(user) if as_text else user
        return value

    api.handler = answer(200, fill(body))
    assert (await verifier.verify("opaque-token")).user_id == user


async def test_top_level_id_wins_over_nested_ones(api: FakeApi, verifier: RemoteVerifier) -> None:
    api.handler = answer(200, {"id": 1, "user": {"id": 2}, "data": {"id": 3}})
    assert (await verifier.verify("opaque-token")).user_id == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_refusal_by_the_api_is_token_invalid(
    api: FakeApi, verifier: RemoteVerifier, status: int
) -> None:
    api.handler = answer(status, {"message": "Unauthorized"})
    assert await refused(verifier) is ErrorCode.TOKEN_INVALID


@pytest.mark.parametrize("status", [500, 502, 503, 404, 302])
async def test_api_failure_is_auth_service_error(
    api: FakeApi, verifier: RemoteVerifier, status: int
) -> None:
    api.handler = answer(status, {"id": 5})
    assert await refused(verifier) is ErrorCode.AUTH_SERVICE_ERROR


@pytest.mark.parametrize(
    "error",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("garbled"),
    ],
)
async def test_unreachable_api_is_auth_service_error(
    api: FakeApi, verifier: RemoteVerifier, observed: list[str], error: Exception
) -> None:
    def fail(_: httpx.Request) -> httpx.Response:
        raise error

    api.handler = fail
    assert await refused(verifier) is ErrorCode.AUTH_SERVICE_ERROR
    assert observed == ["error"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": 0},
        {"id": -4},
        {"id": True},
        {"id": "abc"},
        {"id": 1.5},
        {"user": "5"},
        {"data": [5]},
        {"profile": {"id": 5}},
        [5],
        "5",
        None,
    ],
)
async def test_success_without_a_user_id_is_auth_service_error(
    api: FakeApi, verifier: RemoteVerifier, body: Any
) -> None:
    api.handler = answer(200, body)
    assert await refused(verifier) is ErrorCode.AUTH_SERVICE_ERROR


@pytest.mark.parametrize("content", [b"<html>ok</html>", b"", b"\xff\xfe"])
async def test_non_json_success_is_auth_service_error(
    api: FakeApi, verifier: RemoteVerifier, content: bytes
) -> None:
    api.handler = lambda _: httpx.Response(200, content=content)
    assert await refused(verifier) is ErrorCode.AUTH_SERVICE_ERROR


async def test_expired_jwt_is_token_expired_without_asking_the_api(
    api: FakeApi, verifier: RemoteVerifier, clock: FakeClock
) -> None:
    token = token_for(clock, exp_in_s=60)
    clock.advance(60)
    assert await refused(verifier, token) is ErrorCode.TOKEN_EXPIRED
    assert api.requests == []


async def test_leeway_lets_a_just_expired_jwt_be_asked_about(
    api: FakeApi, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    token = token_for(clock, exp_in_s=60)
    clock.advance(65)
    verifier = RemoteVerifier(client, URL, clock, leeway_s=10)
    assert (await verifier.verify(token)).user_id == 1
    assert len(api.requests) == 1


async def test_identity_carries_the_jwt_expiry(
    api: FakeApi, verifier: RemoteVerifier, clock: FakeClock
) -> None:
    token = token_for(clock, exp_in_s=120)
    identity = await verifier.verify(token)
    expected = datetime.fromtimestamp(int(clock.now().timestamp()) + 120, UTC)
    assert identity.expires_at == expected


async def test_opaque_token_has_no_expiry(verifier: RemoteVerifier) -> None:
    assert (await verifier.verify("opaque-token")).expires_at is None


@pytest.mark.parametrize("token", ["", "  "])
async def test_empty_token_is_token_required_without_asking_the_api(
    api: FakeApi, verifier: RemoteVerifier, token: str
) -> None:
    assert await refused(verifier, token) is ErrorCode.TOKEN_REQUIRED
    assert api.requests == []


async def test_outcome_is_observed_by_status(
    api: FakeApi, verifier: RemoteVerifier, observed: list[str]
) -> None:
    await verifier.verify("opaque-token")
    api.handler = answer(401)
    await refused(verifier)
    assert observed == ["200", "401"]


async def test_api_that_never_answers_is_auth_service_error_after_the_timeout(
    clock: FakeClock,
) -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(timeout=0.2) as http:
            verifier = RemoteVerifier(http, f"http://127.0.0.1:{port}/auth/me", clock)
            started = time.monotonic()
            assert await refused(verifier) is ErrorCode.AUTH_SERVICE_ERROR
            assert time.monotonic() - started < 2
    finally:
        server.close()
        await server.wait_closed()


async def test_closed_port_is_auth_service_error(clock: FakeClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient(timeout=1) as http:
        verifier = RemoteVerifier(http, f"http://127.0.0.1:{port}/auth/me", clock)
        assert await refused(verifier) is ErrorCode.AUTH_SERVICE_ERROR
