"""The REST view from the tests: httpx with a bearer token, and error checks."""

from __future__ import annotations

from typing import Any

import httpx

from .server import ChatServer

# README "REST": the HTTP status that goes with each code.
STATUS_OF = {
    "VALIDATION_ERROR": 422,
    "NOT_FOUND": 404,
    "FORBIDDEN": 403,
    "RATE_LIMITED": 429,
    "TOKEN_REQUIRED": 401,
    "TOKEN_INVALID": 401,
    "TOKEN_EXPIRED": 401,
    "EDIT_WINDOW_CLOSED": 409,
}


def rest(server: ChatServer, token: str | None = None) -> httpx.AsyncClient:
    """A client of ``server``; with ``token``, every request carries ``Authorization: Bearer``."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10.0)


def body(response: httpx.Response, status: int | tuple[int, ...]) -> Any:
    """The JSON body of a response with ``status`` (one of them); fails on anything else."""
    wanted = status if isinstance(status, tuple) else (status,)
    assert response.status_code in wanted, (
        f"{response.request.method} {response.request.url}: expected {wanted}, "
        f"got {response.status_code} {response.text[:500]}"
    )
    data = response.json()
    if isinstance(data, dict):
        assert "success" not in data, f"REST bodies are not wrapped: {data}"
    return data


def rest_failed(response: httpx.Response, code: str, status: int | None = None) -> str:
    """Asserts an error ``{error, code}`` with the status that matches ``code`` (or ``status``,
    for the framework's statuses such as 405 and 413)."""
    data = body(response, status if status is not None else STATUS_OF[code])
    assert isinstance(data, dict), data
    assert data.get("code") == code, f"expected {code}, got {data}"
    assert {"error", "code"} <= set(data), data
    assert set(data) - {"error", "code", "retryAfterMs"} == set(), data
    error = data["error"]
    assert isinstance(error, str), data
    assert error.strip(), data
    assert "Traceback" not in error, data
    return error
