from __future__ import annotations

from typing import Any

import pytest

from marketplace_chat.gateway.sessions import token_from_handshake


def environ(query: str = "", authorization: str | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {"QUERY_STRING": query}
    if authorization is not None:
        env["HTTP_AUTHORIZATION"] = authorization
    return env


def test_auth_token_wins_over_query_and_header() -> None:
    env = environ("token=from-query", "Bearer from-header")
    assert token_from_handshake({"token": "from-auth"}, env) == "from-auth"


def test_query_token_wins_over_header() -> None:
    env = environ("EIO=4&transport=websocket&token=from-query", "Bearer from-header")
    assert token_from_handshake(None, env) == "from-query"


def test_bearer_header_is_the_last_resort() -> None:
    assert token_from_handshake({}, environ(authorization="Bearer from-header")) == "from-header"


@pytest.mark.parametrize(
    "auth", [None, {}, {"token": ""}, {"token": "   "}, {"token": 123}, {"token": None}, "tok"]
)
def test_missing_or_unusable_auth_token_falls_back_to_the_query(auth: object) -> None:
    assert token_from_handshake(auth, environ("token=from-query")) == "from-query"


def test_blank_query_token_falls_back_to_the_header() -> None:
    env = environ("token=&token=%20", "Bearer from-header")
    assert token_from_handshake(None, env) == "from-header"


def test_first_usable_query_token_is_taken() -> None:
    assert token_from_handshake(None, environ("token=&token=second&token=third")) == "second"


def test_query_token_is_url_decoded() -> None:
    assert token_from_handshake(None, environ("token=a.b%2Ec")) == "a.b.c"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Bearer ", None),
        ("Bearer", None),
        ("Basic dXNlcjpwYXNz", None),
        ("abc", None),
    ],
)
def test_authorization_header_needs_the_bearer_scheme(header: str, expected: str | None) -> None:
    assert token_from_handshake(None, environ(authorization=header)) == expected


def test_no_token_anywhere_is_none() -> None:
    assert token_from_handshake(None, {}) is None
    assert token_from_handshake({"other": "x"}, environ("foo=bar")) is None
