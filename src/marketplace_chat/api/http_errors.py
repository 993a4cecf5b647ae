"""Every error of the HTTP edge as `{error, code}`: the service's errors, the framework's own
(unknown path, wrong method, a body too large, parameters FastAPI refused) and crashes.

This is the one place that maps errors to HTTP; a ChatError keeps the status of its code.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from marketplace_chat.errors import INTERNAL, ChatError, ErrorCode, RateLimited, ValidationFailed

log = structlog.get_logger(__name__)

# What a framework status means in the service's codes. 404 and 405 both say "no such
# operation"; any other client error is a malformed request.
FRAMEWORK_CODES: dict[int, tuple[ErrorCode, str]] = {
    404: (ErrorCode.NOT_FOUND, "Not found: no such path"),
    405: (ErrorCode.NOT_FOUND, "Method not allowed on this path"),
    413: (ErrorCode.VALIDATION_ERROR, "payload: the body is too large"),
}


def http_error_body(status: int, detail: object) -> dict[str, str]:
    """The `{error, code}` of a framework `HTTPException`; its detail is kept when it is ours."""
    code, default = FRAMEWORK_CODES.get(
        status,
        (ErrorCode.VALIDATION_ERROR, "Bad request")
        if status < 500
        else (ErrorCode.INTERNAL_ERROR, INTERNAL.message),
    )
    message = detail if isinstance(detail, str) and detail.startswith("payload:") else default
    return {"error": message, "code": code.value}


def install_error_handlers(api: FastAPI, on_rate_limited: Callable[[RateLimited], None]) -> None:
    @api.exception_handler(ChatError)
    async def chat_error(request: Request, exc: ChatError) -> JSONResponse:
        if isinstance(exc, RateLimited):
            on_rate_limited(exc)
        status, body = exc.to_http()
        return JSONResponse(body, status_code=status)

    @api.exception_handler(HTTPException)
    async def framework_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            http_error_body(exc.status_code, exc.detail),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path"))
        status, body = ValidationFailed(f"{field or 'payload'}: {first['msg']}").to_http()
        return JSONResponse(body, status_code=status)

    @api.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("request_crashed", path=request.url.path, error=type(exc).__name__)
        status, body = INTERNAL.to_http()
        return JSONResponse(body, status_code=status)
