from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from marketplace_chat.auth.local import LocalVerifier
from marketplace_chat.errors import AuthError, ErrorCode
from marketplace_chat.payloads import MAX_TOKEN_LENGTH

from ..fakes import FakeClock, new_user_id

SECRET = "test-secret-long-enough-for-any-hmac-algorithm-" + "x" * 32


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def claims(clock: FakeClock, **extra: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    return {"iat": now, "exp": now + 3600, **extra}


def hs256(payload: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(payload, key, algorithm="HS256")


def local(clock: FakeClock, **options: Any) -> LocalVerifier:
    return LocalVerifier(SECRET, ["HS256"], clock, **options)


async def refused(verifier: LocalVerifier, token: str) -> ErrorCode:
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token)
    return caught.value.code


async def test_good_hs256_token_gives_its_user_and_expiry(clock: FakeClock) -> None:
    user = new_user_id()
    payload = claims(clock, sub=str(user))
    identity = await local(clock).verify(hs256(payload))
    assert identity.user_id == user
    assert identity.expires_at == datetime.fromtimestamp(payload["exp"], UTC)


async def test_numeric_sub_is_a_user_id(clock: FakeClock) -> None:
    user = new_user_id()
    identity = await local(clock).verify(hs256(claims(clock, sub=user)))
    assert identity.user_id == user


async def test_token_without_exp_never_expires(clock: FakeClock) -> None:
    identity = await local(clock).verify(hs256({"sub": "5"}))
    assert identity.expires_at is None


async def test_surrounding_whitespace_is_ignored(clock: FakeClock) -> None:
    identity = await local(clock).verify(f"  {hs256(claims(clock, sub='5'))}\n")
    assert identity.user_id == 5


async def test_expired_token_is_token_expired(clock: FakeClock) -> None:
    token = hs256(claims(clock, sub="5"))
    clock.advance(3600)
    assert await refused(local(clock), token) is ErrorCode.TOKEN_EXPIRED


async def test_token_one_second_before_exp_is_still_good(clock: FakeClock) -> None:
    token = hs256(claims(clock, sub="5"))
    clock.advance(3599)
    assert (await local(clock).verify(token)).user_id == 5


async def test_leeway_keeps_a_just_expired_token_good(clock: FakeClock) -> None:
    token = hs256(claims(clock, sub="5"))
    clock.advance(3605)
    assert (await local(clock, leeway_s=10).verify(token)).user_id == 5
    clock.advance(5)
    assert await refused(local(clock, leeway_s=10), token) is ErrorCode.TOKEN_EXPIRED


async def test_bad_signature_is_token_invalid(clock: FakeClock) -> None:
    token = hs256(claims(clock, sub="5"), key=SECRET[::-1])
    assert await refused(local(clock), token) is ErrorCode.TOKEN_INVALID


async def test_tampered_payload_is_token_invalid(clock: FakeClock) -> None:
    header, _, signature = hs256(claims(clock, sub="5")).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(clock, sub="6")).encode()).decode()
    token = f"{header}.{forged.rstrip('=')}.{signature}"
    assert await refused(local(clock), token) is ErrorCode.TOKEN_INVALID


async def test_alg_none_is_token_invalid(clock: FakeClock) -> None:
    token = jwt.encode(claims(clock, sub="5"), "", algorithm="none")
    assert await refused(local(clock), token) is ErrorCode.TOKEN_INVALID


def test_verifier_refuses_to_be_configured_with_alg_none(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="none"):
        LocalVerifier(SECRET, ["HS256", "None"], clock)


async def test_algorithm_outside_the_configured_ones_is_token_invalid(clock: FakeClock) -> None:
    token = jwt.encode(claims(clock, sub="5"), SECRET, algorithm="HS512")
    assert await refused(local(clock), token) is ErrorCode.TOKEN_INVALID


async def test_future_nbf_is_token_invalid(clock: FakeClock) -> None:
    token = hs256(claims(clock, sub="5", nbf=int(clock.now().timestamp()) + 600))
    assert await refused(local(clock), token) is ErrorCode.TOKEN_INVALID


async def test_leeway_admits_a_slightly_future_nbf(clock: FakeClock) -> None:
    token = hs256(claims(clock, sub="5", nbf=int(clock.now().timestamp()) + 5))
    assert (await local(clock, leeway_s=60).verify(token)).user_id == 5


async def test_past_nbf_is_fine(clock: FakeClock) -> None:
    token = hs256(claims(clock, sub="5", nbf=int(clock.now().timestamp()) - 5))
    assert (await local(clock).verify(token)).user_id == 5


@pytest.mark.parametrize(
    "ids",
    [
        {},
        {"sub": "0"},
        {"sub": 0},
        {"sub": "abc"},
        {"sub": "-5"},
        {"sub": True},
        {"userId": 1.5},
        {"id": None},
        {"sub": str(2**63)},
        {"uid": 5},
    ],
)
async def test_token_without_usable_user_id_is_token_invalid(
    clock: FakeClock, ids: dict[str, Any]
) -> None:
    assert await refused(local(clock), hs256(claims(clock, **ids))) is ErrorCode.TOKEN_INVALID


async def test_malformed_exp_is_token_invalid(clock: FakeClock) -> None:
    token = hs256({"sub": "5", "exp": "tomorrow"})
    assert await refused(local(clock), token) is ErrorCode.TOKEN_INVALID


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({"sub": "1", "userId": 2, "id": 3}, 1),
        ({"userId": 2, "id": 3}, 2),
        ({"id": "3"}, 3),
        ({"sub": "not-a-number", "userId": 2}, 2),
    ],
)
async def test_user_id_is_sub_then_user_id_then_id(
    clock: FakeClock, ids: dict[str, Any], expected: int
) -> None:
    assert (await local(clock).verify(hs256(claims(clock, **ids)))).user_id == expected


async def test_configured_user_id_claim_comes_first(clock: FakeClock) -> None:
    verifier = local(clock, user_id_claim="uid")
    assert (await verifier.verify(hs256(claims(clock, uid=9, sub="1")))).user_id == 9
    assert (await verifier.verify(hs256(claims(clock, userId=2)))).user_id == 2


async def test_issuer_is_checked_when_configured(clock: FakeClock) -> None:
    verifier = local(clock, issuer="marketplace-api")
    good = hs256(claims(clock, sub="5", iss="marketplace-api"))
    assert (await verifier.verify(good)).user_id == 5
    wrong = hs256(claims(clock, sub="5", iss="someone-else"))
    assert await refused(verifier, wrong) is ErrorCode.TOKEN_INVALID
    assert await refused(verifier, hs256(claims(clock, sub="5"))) is ErrorCode.TOKEN_INVALID


async def test_audience_is_checked_when_configured(clock: FakeClock) -> None:
    verifier = local(clock, audience="chat")
    assert (await verifier.verify(hs256(claims(clock, sub="5", aud="chat")))).user_id == 5
    assert (await verifier.verify(hs256(claims(clock, sub="5", aud=["x", "chat"])))).user_id == 5
    wrong = hs256(claims(clock, sub="5", aud="billing"))
    assert await refused(verifier, wrong) is ErrorCode.TOKEN_INVALID
    assert await refused(verifier, hs256(claims(clock, sub="5"))) is ErrorCode.TOKEN_INVALID


async def test_audience_is_ignored_when_not_configured(clock: FakeClock) -> None:
    token = hs256(claims(clock, sub="5", aud="anything", iss="anyone"))
    assert (await local(clock).verify(token)).user_id == 5


@pytest.mark.parametrize("token", ["", "   ", "\n"])
async def test_empty_token_is_token_required(clock: FakeClock, token: str) -> None:
    assert await refused(local(clock), token) is ErrorCode.TOKEN_REQUIRED


@pytest.mark.parametrize(
    "token", ["not-a-jwt", "a.b.c", "x" * (MAX_TOKEN_LENGTH + 1), "\ud800", "a.b\u0000.c"]
)
async def test_garbage_token_is_token_invalid(clock: FakeClock, token: str) -> None:
    assert await refused(local(clock), token) is ErrorCode.TOKEN_INVALID


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


async def test_rs256_token_is_checked_with_the_public_key(clock: FakeClock) -> None:
    private, public = _rsa_pair()
    verifier = LocalVerifier(public, ["RS256", "ES256"], clock)
    token = jwt.encode(claims(clock, sub="5"), private, algorithm="RS256")
    assert (await verifier.verify(token)).user_id == 5
    other, _ = _rsa_pair()
    forged = jwt.encode(claims(clock, sub="5"), other, algorithm="RS256")
    assert await refused(verifier, forged) is ErrorCode.TOKEN_INVALID


async def test_es256_token_is_checked_with_the_public_key(clock: FakeClock) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = LocalVerifier(public.decode(), ["RS256", "ES256"], clock)
    token = jwt.encode(claims(clock, sub="5"), private, algorithm="ES256")
    assert (await verifier.verify(token)).user_id == 5


async def test_public_key_used_as_an_hmac_secret_is_token_invalid(clock: FakeClock) -> None:
    _, public = _rsa_pair()
    verifier = LocalVerifier(public, ["RS256"], clock)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(json.dumps(claims(clock, sub="5")).encode())
    unsigned = f"{header}.{body.decode().rstrip('=')}"
    mac = hmac.new(public.encode(), unsigned.encode(), hashlib.sha256).digest()
    token = f"{unsigned}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    assert await refused(verifier, token) is ErrorCode.TOKEN_INVALID


async def test_numeric_jti_does_not_invalidate_the_token(clock: FakeClock) -> None:
    assert (await local(clock).verify(hs256(claims(clock, sub="5", jti=77)))).user_id == 5


async def test_iat_slightly_ahead_of_this_clock_does_not_invalidate_the_token(
    clock: FakeClock,
) -> None:
    token = hs256(claims(clock, sub="5", iat=int(clock.now().timestamp()) + 30))
    assert (await local(clock).verify(token)).user_id == 5
