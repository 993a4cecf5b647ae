"""README "REST" and "Limits": what the REST edge does with hostile or sloppy HTTP. The token is
verified before a body is read, bodies are capped, every error on every path is
``{error, code}``, query strings follow the socket's validation, and browsers get CORS."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from .conftest import Connect, ServerFactory
from .convo import message_rows, pair
from .helpers import failed
from .resthelp import body, rest, rest_failed
from .server import ChatServer
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e

MAX_BODY = 65_536  # README "Limits": MAX_REQUEST_BODY_BYTES' default
ALLOWED_ORIGIN = "https://shop.example"
HUGE = 25_000_000
# What anonymous 25 MB bodies may add to the server's peak RSS: allocator noise, not a body.
RSS_GROWTH_LIMIT_KB = 8_000


@pytest_asyncio.fixture(scope="module")
async def chat_server(module_server_factory: ServerFactory) -> ChatServer:
    """Default limits, and one allowed browser origin so that CORS has something to refuse."""
    return await module_server_factory.start(CORS_ORIGINS=f"{ALLOWED_ORIGIN},https://b.example")


def _reset_peak_rss(server: ChatServer) -> None:
    """Start the server's peak RSS (VmHWM) afresh from its current RSS (Linux clear_refs 5)."""
    assert server.proc is not None
    Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")


def _rss_kb(server: ChatServer, field: str = "VmRSS") -> int:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


async def _chunks(size: int, chunk: int = 16_384) -> AsyncIterator[bytes]:
    """A body of ``size`` bytes sent chunked (no Content-Length), as a stream of spaces."""
    sent = 0
    while sent < size:
        part = min(chunk, size - sent)
        sent += part
        yield b" " * part


# -- the token before the body ---------------------------------------------------------------


async def test_anonymous_25_mb_posts_are_refused_401_without_being_read(
    chat_server: ChatServer,
) -> None:
    payload = b'{"text": "' + b"a" * HUGE + b'"}'
    async with rest(chat_server) as http:
        _reset_peak_rss(chat_server)
        before = _rss_kb(chat_server)
        for path in ("/api/chats", "/api/chats/00000000-0000-4000-8000-000000000000/messages"):
            for _ in range(2):
                started = time.monotonic()
                response = await http.post(
                    path, content=payload, headers={"Content-Type": "application/json"}
                )
                rest_failed(response, "TOKEN_REQUIRED")
                assert time.monotonic() - started < 5.0
        grown = _rss_kb(chat_server, "VmHWM") - before

    assert grown < RSS_GROWTH_LIMIT_KB, f"peak RSS grew by {grown} kB"


async def test_a_bad_token_is_refused_before_a_chunked_body_is_read(
    chat_server: ChatServer,
) -> None:
    async with rest(chat_server, "not-a-jwt") as http:
        _reset_peak_rss(chat_server)
        before = _rss_kb(chat_server)
        response = await http.post("/api/chats", content=_chunks(HUGE))
        grown = _rss_kb(chat_server, "VmHWM") - before

    rest_failed(response, "TOKEN_INVALID")
    assert grown < RSS_GROWTH_LIMIT_KB, f"peak RSS grew by {grown} kB"


# -- the body cap ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_the_cap_is_413_and_changes_nothing(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, db: asyncpg.Pool, chunked: bool
) -> None:
    p = await pair(connect)
    padded = b'{"text": "too big"' + b" " * MAX_BODY + b"}"

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        response = await http.post(
            f"/api/chats/{p.chat_id}/messages",
            content=_chunks(MAX_BODY + 1) if chunked else padded,
            headers={"Content-Type": "application/json"},
        )

    error = rest_failed(response, "VALIDATION_ERROR", status=413)
    assert str(MAX_BODY) in error, error
    assert await message_rows(db, p.chat_id) == []


async def test_a_body_of_exactly_the_cap_is_read(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    p = await pair(connect)
    start = b'{"text": "just fits"'
    padded = start + b" " * (MAX_BODY - len(start) - 1) + b"}"
    assert len(padded) == MAX_BODY

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        response = await http.post(f"/api/chats/{p.chat_id}/messages", content=padded)

    assert body(response, 201)["text"] == "just fits"


# -- one error shape -------------------------------------------------------------------------

DEEP_ARRAY = b'{"text": ' + b"[" * 1000 + b"]" * 1000 + b"}"
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "code"),
    [
        pytest.param("GET", "/nope", None, 404, "NOT_FOUND", id="unknown-path"),
        pytest.param("GET", "/api/nope", None, 404, "NOT_FOUND", id="unknown-api-path"),
        pytest.param("DELETE", "/api/chats", None, 405, "NOT_FOUND", id="wrong-method"),
        pytest.param("PUT", "/health", None, 405, "NOT_FOUND", id="wrong-method-ops"),
        pytest.param("POST", "/api/chats", b"{bad", 422, "VALIDATION_ERROR", id="bad-json"),
        pytest.param("POST", "/api/chats", b"\xff\xfe", 422, "VALIDATION_ERROR", id="not-utf8"),
        pytest.param("POST", "/api/chats", b"", 422, "VALIDATION_ERROR", id="empty-body"),
        pytest.param("POST", "/api/chats", b'"x"', 422, "VALIDATION_ERROR", id="string-body"),
        pytest.param("POST", "M", DEEP_ARRAY, 422, "VALIDATION_ERROR", id="deep-array"),
        pytest.param("POST", "M", DEEP_OBJECT, 422, "VALIDATION_ERROR", id="deep-object"),
    ],
)
async def test_every_failure_is_error_and_code_with_its_status(
    connect: Connect,
    chat_server: ChatServer,
    tokens: Tokens,
    db: asyncpg.Pool,
    method: str,
    path: str,
    content: bytes | None,
    status: int,
    code: str,
) -> None:
    p = await pair(connect)
    url = f"/api/chats/{p.chat_id}/messages" if path == "M" else path

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        response = await http.request(method, url, content=content)

    rest_failed(response, code, status=status)
    assert await message_rows(db, p.chat_id) == []


async def test_a_deep_body_names_the_nesting(chat_server: ChatServer, tokens: Tokens) -> None:
    async with rest(chat_server, tokens.mint(new_user_id())) as http:
        response = await http.post("/api/chats", content=DEEP_OBJECT)

    assert "nested" in rest_failed(response, "VALIDATION_ERROR")


# -- the socket's validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("limit=007", "limit", id="leading-zeros"),
        pytest.param("limit=50.0", "limit", id="fraction-form"),
        pytest.param("limit=%2B5", "limit", id="plus-sign"),
        pytest.param("limit=1e1", "limit", id="exponent"),
        pytest.param("limit=%205", "limit", id="space"),
        pytest.param("limit=", "limit", id="empty"),
        pytest.param("limit=5&limit=6", "limit", id="repeated"),
        pytest.param("limt=5", "limt", id="unknown-parameter"),
    ],
)
@pytest.mark.parametrize("route", ["chats", "messages"])
async def test_query_strings_are_validated_like_socket_payloads(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, query: str, field: str, route: str
) -> None:
    p = await pair(connect)
    path = "/api/chats" if route == "chats" else f"/api/chats/{p.chat_id}/messages"

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        response = await http.get(f"{path}?{query}")
        plain = await http.get(f"{path}?limit=50")

    assert field in rest_failed(response, "VALIDATION_ERROR").lower()
    body(plain, 200)


async def test_the_socket_refuses_what_the_query_string_refuses(connect: Connect) -> None:
    p = await pair(connect)
    for limit in ("007", "50.0"):  # a JS number 50.0 is 50 on the wire, so strings only
        ack = await p.buyer.emit_ack("chats:list", {"limit": limit})
        assert "limit" in failed(ack, "VALIDATION_ERROR").lower()


# -- CORS ------------------------------------------------------------------------------------


async def test_a_preflight_from_an_allowed_origin_is_answered(chat_server: ChatServer) -> None:
    headers = {
        "Origin": ALLOWED_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with rest(chat_server) as http:
        response = await http.options("/api/chats", headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed


async def test_responses_carry_cors_headers_for_allowed_origins_only(
    chat_server: ChatServer, tokens: Tokens
) -> None:
    async with rest(chat_server, tokens.mint(new_user_id())) as http:
        allowed = await http.get("/api/chats", headers={"Origin": ALLOWED_ORIGIN})
        refused = await http.get("/api/chats", headers={"Origin": "https://evil.example"})
        anonymous = await http.get(
            "/api/chats", headers={"Origin": ALLOWED_ORIGIN, "Authorization": ""}
        )

    body(allowed, 200)
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in refused.headers
    rest_failed(anonymous, "TOKEN_REQUIRED")
    assert anonymous.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
