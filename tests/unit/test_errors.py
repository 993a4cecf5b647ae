from __future__ import annotations

import pytest

from marketplace_chat.errors import (
    HTTP_STATUS,
    INTERNAL,
    AuthError,
    ChatError,
    ErrorCode,
    Forbidden,
    NotFound,
    RateLimited,
    Unavailable,
    ValidationFailed,
    token_expired,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ValidationFailed("text: must not be empty"), "VALIDATION_ERROR"),
        (NotFound("chatId: no such chat"), "NOT_FOUND"),
        (Forbidden("not yours"), "FORBIDDEN"),
        (AuthError("Invalid token"), "TOKEN_INVALID"),
        (Unavailable("db down"), "INTERNAL_ERROR"),
        (AuthError("gone", ErrorCode.AUTH_SERVICE_ERROR), "AUTH_SERVICE_ERROR"),
    ],
)
def test_failure_ack_carries_message_and_code(error: ChatError, code: str) -> None:
    assert error.to_ack() == {"success": False, "error": error.message, "code": code}


def test_exception_event_has_the_nestjs_shape_and_names_the_event() -> None:
    event = NotFound("chatId: no such chat").to_exception_event("chat:join")
    assert event == {
        "status": "error",
        "message": "chatId: no such chat",
        "code": "NOT_FOUND",
        "event": "chat:join",
    }


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationFailed("x"), 422),
        (NotFound("x"), 404),
        (Forbidden("x"), 403),
        (AuthError("x"), 401),
        (AuthError("x", ErrorCode.TOKEN_EXPIRED), 401),
        (AuthError("x", ErrorCode.TOKEN_REQUIRED), 401),
        (AuthError("x", ErrorCode.TOKEN_USER_MISMATCH), 403),
        (AuthError("x", ErrorCode.AUTH_SERVICE_ERROR), 503),
        (Unavailable("x"), 500),
    ],
)
def test_http_form_is_status_and_error_body(error: ChatError, status: int) -> None:
    assert error.to_http() == (status, {"error": "x", "code": error.code.value})


def test_every_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)


def test_codes_are_their_own_names_on_the_wire() -> None:
    assert all(code.value == code.name for code in ErrorCode)


def test_rate_limited_adds_retry_after_ms_to_every_wire_form() -> None:
    error = RateLimited("Too many message:send requests; retry later", 1500)
    assert error.to_ack() == {
        "success": False,
        "error": "Too many message:send requests; retry later",
        "code": "RATE_LIMITED",
        "retryAfterMs": 1500,
    }
    assert error.to_exception_event("message:send")["retryAfterMs"] == 1500
    assert error.to_exception_event("message:send")["event"] == "message:send"
    assert error.to_http() == (
        429,
        {
            "error": "Too many message:send requests; retry later",
            "code": "RATE_LIMITED",
            "retryAfterMs": 1500,
        },
    )


def test_token_expired_is_the_seed_message_and_code() -> None:
    assert token_expired().to_ack() == {
        "success": False,
        "error": "Token expired",
        "code": "TOKEN_EXPIRED",
    }


def test_explicit_code_overrides_only_that_instance() -> None:
    assert AuthError("x", ErrorCode.TOKEN_EXPIRED).code is ErrorCode.TOKEN_EXPIRED
    assert AuthError("x").code is ErrorCode.TOKEN_INVALID


def test_internal_error_tells_nothing_of_the_cause() -> None:
    assert INTERNAL.to_ack() == {
        "success": False,
        "error": "Internal server error",
        "code": "INTERNAL_ERROR",
    }
