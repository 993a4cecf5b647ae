"""The errors a client can see, and their wire forms.

    ChatError(code, message)            everything a client may be told
     ├── ValidationFailed               VALIDATION_ERROR: the message names the field
     ├── NotFound                       NOT_FOUND
     ├── Forbidden                      FORBIDDEN
     ├── RateLimited                    RATE_LIMITED, carries retry_after_ms
     ├── AuthError                      TOKEN_REQUIRED / TOKEN_INVALID / TOKEN_EXPIRED /
     │                                  TOKEN_USER_MISMATCH / AUTH_SERVICE_ERROR
     └── Unavailable                    INTERNAL_ERROR: a backend failed; nothing was changed

Anything else raised inside a handler is a bug: the edges log it and answer `INTERNAL_ERROR`
without a trace. Library exceptions are translated where they are raised (storage, realtime,
auth), so the middle only ever sees this tree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "VALIDATION_ERROR"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    RATE_LIMITED = "RATE_LIMITED"
    TOKEN_REQUIRED = "TOKEN_REQUIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_USER_MISMATCH = "TOKEN_USER_MISMATCH"
    AUTH_SERVICE_ERROR = "AUTH_SERVICE_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    BLOCKED = "BLOCKED"
    CONTACT_NOT_ALLOWED = "CONTACT_NOT_ALLOWED"
    EDIT_WINDOW_CLOSED = "EDIT_WINDOW_CLOSED"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOKEN_REQUIRED: 401,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.TOKEN_USER_MISMATCH: 403,
    ErrorCode.AUTH_SERVICE_ERROR: 503,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.BLOCKED: 403,
    ErrorCode.CONTACT_NOT_ALLOWED: 422,
    ErrorCode.EDIT_WINDOW_CLOSED: 409,
}


class ChatError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_ack(self) -> dict[str, Any]:
        return {"success": False, "error": self.message, "code": self.code.value}

    def to_exception_event(self, event: str) -> dict[str, Any]:
        """The payload NestJS gateways emit as `exception` when the client gave no ack."""
        return {"status": "error", "message": self.message, "code": self.code.value, "event": event}

    def to_http(self) -> tuple[int, dict[str, Any]]:
        return HTTP_STATUS[self.code], {"error": self.message, "code": self.code.value}


class ValidationFailed(ChatError):
    code = ErrorCode.VALIDATION_ERROR


class NotFound(ChatError):
    code = ErrorCode.NOT_FOUND


class Forbidden(ChatError):
    code = ErrorCode.FORBIDDEN


class Blocked(ChatError):
    """One of the two users has blocked the other: nothing between them is stored or sent."""

    code = ErrorCode.BLOCKED


class ContactNotAllowed(ChatError):
    code = ErrorCode.CONTACT_NOT_ALLOWED


class EditWindowClosed(ChatError):
    code = ErrorCode.EDIT_WINDOW_CLOSED


class Unavailable(ChatError):
    """A backend (PostgreSQL, Redis) failed or timed out; the action had no effect."""

    code = ErrorCode.INTERNAL_ERROR


class RateLimited(ChatError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, retry_after_ms: int, action: str = "") -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.action = action

    def to_ack(self) -> dict[str, Any]:
        return {**super().to_ack(), "retryAfterMs": self.retry_after_ms}

    def to_exception_event(self, event: str) -> dict[str, Any]:
        return {**super().to_exception_event(event), "retryAfterMs": self.retry_after_ms}

    def to_http(self) -> tuple[int, dict[str, Any]]:
        status, body = super().to_http()
        return status, {**body, "retryAfterMs": self.retry_after_ms}


class AuthError(ChatError):
    code = ErrorCode.TOKEN_INVALID


def token_expired() -> AuthError:
    return AuthError("Token expired", ErrorCode.TOKEN_EXPIRED)


INTERNAL = ChatError("Internal server error", ErrorCode.INTERNAL_ERROR)
