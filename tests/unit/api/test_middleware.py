"""The body cap and the REST API's CORS, on a bare ASGI app (no FastAPI, no server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from marketplace_chat.api.middleware import ApiCors, BodyLimit

LIMIT = 1000


def _app(reads: list[int]) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        reads.append(len(body))
        return JSONResponse({"bytes": len(body)})

    async def too_large(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return Starlette(
        routes=[Route("/api/echo", echo, methods=["POST"]), Route("/echo", echo, methods=["POST"])],
        exception_handlers={HTTPException: too_large},
    )


def _client(reads: list[int], *, origins: str = "*") -> httpx.AsyncClient:
    app = ApiCors(BodyLimit(_app(reads), limit=LIMIT), origins=origins)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 100):
        yield b"x" * 100


async def test_a_body_up_to_the_limit_is_read_whole() -> None:
    reads: list[int] = []
    async with _client(reads) as http:
        declared = await http.post("/api/echo", content=b"x" * LIMIT)
        chunked = await http.post("/api/echo", content=_chunks(LIMIT))

    assert (declared.json(), chunked.json()) == ({"bytes": LIMIT}, {"bytes": LIMIT})


async def test_a_declared_length_over_the_limit_is_413_before_anything_is_received() -> None:
    received: list[Message] = []
    refused: list[HTTPException] = []

    async def receive() -> Message:
        message: Message = {"type": "http.request", "body": b"", "more_body": False}
        received.append(message)
        return message

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    async def app(scope: Scope, limited: Receive, send: Send) -> None:
        with pytest.raises(HTTPException) as caught:
            await limited()
        refused.append(caught.value)

    scope: Scope = {"type": "http", "headers": [(b"content-length", str(LIMIT + 1).encode())]}
    await BodyLimit(app, limit=LIMIT)(scope, receive, send)

    assert [(e.status_code, str(LIMIT) in e.detail) for e in refused] == [(413, True)]
    assert received == []


async def test_a_chunked_body_is_cut_off_when_it_passes_the_limit() -> None:
    reads: list[int] = []
    async with _client(reads) as http:
        response = await http.post("/api/echo", content=_chunks(LIMIT + 100))

    assert response.status_code == 413
    assert reads == []


async def test_cors_answers_preflights_on_api_paths_only() -> None:
    preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}
    async with _client([], origins="https://a.example, https://b.example") as http:
        api = await http.options("/api/echo", headers=preflight)
        other = await http.options("/echo", headers=preflight)
        refused = await http.options(
            "/api/echo", headers={**preflight, "Origin": "https://evil.example"}
        )

    assert api.status_code == 200
    assert api.headers["access-control-allow-origin"] == "https://a.example"
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in refused.headers
