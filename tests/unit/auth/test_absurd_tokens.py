"""Forged and absurd tokens: every verifier answers a plain `AuthError`, whatever they hold."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog
import structlog.testing

from marketplace_chat.auth.base import LATEST_NUMERIC_DATE, claim_time, verify_guarded
from marketplace_chat.auth.cache import cache_key
from marketplace_chat.auth.local import LocalVerifier
from marketplace_chat.auth.remote import RemoteVerifier
from marketplace_chat.errors import AuthError, ErrorCode

from ..fakes import FakeClock

SECRET = "absurd-token-tests-sign-with-this-" + "x" * 40
URL = "http://marketplace-api.test/auth/me"

# Claim values no issuer means: beyond datetime's range, not finite, not a number at all.
# Each is a JSON literal, so that NaN, Infinity and huge integers reach the decoder as sent.
ABSURD_TIMES = {
    "1e308": "1e308",
    "1e20": "1e20",
    "1e18": "1e18",
    "year-10000": "253402300800",
    "nan": "NaN",
    "infinity": "Infinity",
    "minus-infinity": "-Infinity",
    "minus-1e308": "-1e308",
    "huge-integer": "1" + "0" * 400,
    "true": "true",
    "false": "false",
    "digits-string": '"1700000000"',
    "string": '"tomorrow"',
    "list": "[1]",
    "object": '{"n": 1}',
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(payload: bytes, header: bytes = b'{"alg":"HS256","typ":"JWT"}') -> str:
    """An HS256 token over raw segments, so that the payload can be any bytes at all."""
    unsigned = f"{_b64(header)}.{_b64(payload)}"
    mac = hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{_b64(mac)}"


FORGED_HEADER = _b64(b'{"alg":"HS256"}')


def forged(payload: bytes) -> str:
    """The forged token of the tracker: a plausible header, any payload, a signature of junk."""
    return f"{FORGED_HEADER}.{_b64(payload)}.AAAA"


def with_claim(name: str, literal: str) -> bytes:
    return b'{"sub":"5",' + f'"{name}":{literal}'.encode() + b"}"


GOOD = signed(b'{"sub":"5"}')

# Tokens that are not even well-formed JWTs, or whose text no codec takes.
MALFORMED = {
    "payload-not-json": signed(b"not json"),
    "payload-not-utf8": signed(b'{"sub":"\xff\xfe"}'),
    "payload-a-list": signed(b'[{"sub":"5"}]'),
    "payload-a-string": signed(b'"sub"'),
    "payload-a-number": signed(b"5"),
    "payload-deeply-nested": signed(b'{"sub":"5","x":' + b"[" * 5_000 + b"]" * 5_000 + b"}"),
    "header-a-list": signed(b'{"sub":"5"}', header=b'["HS256"]'),
    "header-not-json": signed(b'{"sub":"5"}', header=b"{alg"),
}

# Text that is no bearer token at all, whichever verifier is asked.
NOT_TOKEN_TEXT = {
    "lone-surrogate-after-a-good-token": GOOD + "\ud800",
    "lone-surrogate-alone": "\udfff",
    "lone-surrogate-inside": GOOD[:10] + "\ud800" + GOOD[10:],
    "non-ascii": GOOD + "é",
    "control-character": GOOD[:10] + "\x00" + GOOD[10:],
    "inner-space": GOOD[:10] + " " + GOOD[10:],
}
MALFORMED.update(NOT_TOKEN_TEXT)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def local(clock: FakeClock) -> LocalVerifier:
    return LocalVerifier(SECRET, ["HS256"], clock)


class CountingApi:
    """marketplace-api that would accept anything, and counts how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked += 1
        return httpx.Response(200, json={"id": 5})


@pytest.fixture
def api() -> CountingApi:
    return CountingApi()


@pytest.fixture
async def remote(api: CountingApi, clock: FakeClock) -> AsyncIterator[RemoteVerifier]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        yield RemoteVerifier(http, URL, clock)


async def code_of(verifier: LocalVerifier | RemoteVerifier, token: str) -> ErrorCode:
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token)
    return caught.value.code


@pytest.mark.parametrize("claim", ["exp", "nbf"])
@pytest.mark.parametrize("literal", ABSURD_TIMES.values(), ids=ABSURD_TIMES.keys())
async def test_local_verifier_refuses_a_signed_token_with_an_absurd_time_claim(
    clock: FakeClock, claim: str, literal: str
) -> None:
    assert (
        await code_of(local(clock), signed(with_claim(claim, literal))) is ErrorCode.TOKEN_INVALID
    )


@pytest.mark.parametrize("literal", ABSURD_TIMES.values(), ids=ABSURD_TIMES.keys())
async def test_local_verifier_refuses_a_forged_token_with_an_absurd_exp(
    clock: FakeClock, literal: str
) -> None:
    assert (
        await code_of(local(clock), forged(with_claim("exp", literal))) is ErrorCode.TOKEN_INVALID
    )


@pytest.mark.parametrize("token", MALFORMED.values(), ids=MALFORMED.keys())
async def test_local_verifier_refuses_a_malformed_token(clock: FakeClock, token: str) -> None:
    assert await code_of(local(clock), token) is ErrorCode.TOKEN_INVALID


@pytest.mark.parametrize("literal", ABSURD_TIMES.values(), ids=ABSURD_TIMES.keys())
async def test_remote_verifier_refuses_an_absurd_exp_without_asking_the_api(
    remote: RemoteVerifier, api: CountingApi, literal: str
) -> None:
    assert await code_of(remote, forged(with_claim("exp", literal))) is ErrorCode.TOKEN_INVALID
    assert api.asked == 0


@pytest.mark.parametrize("token", NOT_TOKEN_TEXT.values(), ids=NOT_TOKEN_TEXT.keys())
async def test_remote_verifier_refuses_text_that_is_no_token_without_asking_the_api(
    remote: RemoteVerifier, api: CountingApi, token: str
) -> None:
    assert await code_of(remote, token) is ErrorCode.TOKEN_INVALID
    assert api.asked == 0


async def test_remote_verifier_asks_about_a_jwt_whose_payload_it_cannot_read(
    remote: RemoteVerifier, api: CountingApi
) -> None:
    """No readable `exp` is no `exp`: marketplace-api decides, as for an opaque token."""
    identity = await remote.verify(MALFORMED["payload-not-json"])
    assert (identity.user_id, identity.expires_at, api.asked) == (5, None, 1)


async def test_negative_exp_in_range_is_an_expired_token(clock: FakeClock) -> None:
    assert await code_of(local(clock), signed(with_claim("exp", "-1"))) is ErrorCode.TOKEN_EXPIRED


def test_latest_numeric_date_is_a_date_and_one_second_later_is_not() -> None:
    latest = LATEST_NUMERIC_DATE.timestamp()
    assert claim_time({"exp": latest}, "exp") == LATEST_NUMERIC_DATE
    with pytest.raises(AuthError):
        claim_time({"exp": latest + 1}, "exp")


def test_a_date_at_the_limit_leaves_room_for_leeway_and_grace() -> None:
    moment = claim_time({"exp": LATEST_NUMERIC_DATE.timestamp()}, "exp")
    assert moment is not None
    assert moment + timedelta(days=365) > moment


@pytest.mark.parametrize("token", ["\ud800", GOOD + "\udfff", "é" * 10])
def test_cache_key_of_any_text_is_a_sha256_and_holds_no_token(token: str) -> None:
    key = cache_key(token)
    assert key.startswith("auth:token:")
    assert len(key.removeprefix("auth:token:")) == 64
    assert GOOD not in key


class _Broken:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def verify(self, token: str) -> Any:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UnicodeEncodeError("utf-8", GOOD, 1, 2, "surrogates not allowed"), "TOKEN_INVALID"),
        (OverflowError("date value out of range"), "TOKEN_INVALID"),
        (ValueError("year 10000 is out of range"), "TOKEN_INVALID"),
        (KeyError("exp"), "TOKEN_INVALID"),
        (RuntimeError("event loop is closed"), "AUTH_SERVICE_ERROR"),
        (ConnectionResetError("peer reset"), "AUTH_SERVICE_ERROR"),
    ],
)
async def test_guard_turns_a_verifier_bug_into_an_auth_error_by_its_origin(
    exc: Exception, code: str
) -> None:
    with structlog.testing.capture_logs() as logs, pytest.raises(AuthError) as caught:
        await verify_guarded(_Broken(exc), GOOD, sid="s1")
    assert caught.value.code.value == code
    assert GOOD not in caught.value.message
    assert caught.value.__cause__ is None
    (record,) = logs
    assert record["event"] == "verifier_failed"
    assert record["log_level"] == "error"
    assert (record["sid"], record["error_type"]) == ("s1", type(exc).__name__)
    assert "in verify" in record["where"]
    assert "exc_info" not in record
    assert GOOD not in repr(record)


async def test_guard_passes_an_auth_error_through_unchanged() -> None:
    refusal = AuthError("Token expired", ErrorCode.TOKEN_EXPIRED)
    with structlog.testing.capture_logs() as logs, pytest.raises(AuthError) as caught:
        await verify_guarded(_Broken(refusal), GOOD)
    assert caught.value is refusal
    assert logs == []  # a refusal is the verifier's answer, not a failure


def test_json_literals_of_the_table_are_what_they_claim() -> None:
    """The table is only worth something if each literal reaches the decoder as written."""
    for literal in ABSURD_TIMES.values():
        json.loads(with_claim("exp", literal))
