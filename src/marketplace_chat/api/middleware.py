"""ASGI middleware of the HTTP edge: a cap on request bodies and CORS for the REST API."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/api/"
# Browsers cache a preflight answer this long (seconds), sparing one OPTIONS per request.
PREFLIGHT_MAX_AGE_S = 600


class BodyLimit:
    """Refuses a request body larger than `limit` bytes with 413, when the app first reads it.

    A declared `Content-Length` over the limit is refused before a byte is read; a chunked body
    is counted as it arrives and cut off when it passes the limit. Nothing is checked before the
    app asks for the body, so an endpoint verifies the caller's token first and an anonymous
    client gets 401 whatever it sends. The 413 is an `HTTPException`, which the error handlers
    turn into `{error, code}`.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > self.limit:
                raise self._too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> HTTPException:
        return HTTPException(413, f"payload: the body is larger than {self.limit} bytes")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class ApiCors:
    """CORS for browser clients of `/api/*`: preflights answered, origins from `CORS_ORIGINS`.

    Tokens travel in the `Authorization` header, never in cookies, so credentials stay off and
    `*` may be answered as it is. Other paths (health, metrics, docs) are left as they are.
    """

    def __init__(self, app: ASGIApp, origins: str) -> None:
        self.app = app
        allowed = ["*"] if origins.strip() == "*" else [o.strip() for o in origins.split(",")]
        self.cors = CORSMiddleware(
            app,
            allow_origins=[o for o in allowed if o],
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=PREFLIGHT_MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
