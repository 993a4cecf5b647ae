from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import uuid
from collections.abc import AsyncIterator

import jwt
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from marketplace_chat.auth.base import Identity, expiry, unverified_claims
from marketplace_chat.auth.cache import AUTH_CACHE_TTL_S, CachingVerifier, cache_key
from marketplace_chat.errors import AuthError, ErrorCode

from ..helpers import FakeClock, new_user_id

pytestmark = pytest.mark.integration

SECRET = "cache-tests-sign-with-this-" + "x" * 40


class CountingVerifier:
    """The verifier behind the cache: reads `sub` and `exp` unverified and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_with: AuthError | None = None

    async def verify(self, token: str) -> Identity:
        self.calls.append(token)
        if self.fail_with is not None:
            raise self.fail_with
        claims = unverified_claims(token) or {}
        return Identity(int(claims.get("sub", 7)), expiry(claims))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def inner() -> CountingVerifier:
    return CountingVerifier()


@pytest.fixture
def observed() -> list[bool]:
    return []


@pytest.fixture
def cached(
    inner: CountingVerifier, redis: aioredis.Redis, clock: FakeClock, observed: list[bool]
) -> CachingVerifier:
    return CachingVerifier(inner, redis, clock, observe=observed.append)


def token(clock: FakeClock, user: int, exp_in_s: float | None = 3600) -> str:
    claims: dict[str, object] = {"sub": str(user), "jti": uuid.uuid4().hex}
    if exp_in_s is not None:
        claims["exp"] = int(clock.now().timestamp() + exp_in_s)
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_second_verification_is_answered_from_the_cache(
    cached: CachingVerifier, inner: CountingVerifier, clock: FakeClock, observed: list[bool]
) -> None:
    user = new_user_id()
    t = token(clock, user)
    first = await cached.verify(t)
    second = await cached.verify(t)
    assert first == second
    assert second.user_id == user
    assert second.expires_at == first.expires_at
    assert inner.calls == [t]
    assert observed == [False, True]


async def test_cache_key_is_the_sha256_of_the_token_and_never_the_token(
    cached: CachingVerifier, redis: aioredis.Redis, clock: FakeClock
) -> None:
    user = new_user_id()
    t = token(clock, user)
    await cached.verify(t)
    key = "auth:token:" + hashlib.sha256(t.encode()).hexdigest()
    assert cache_key(t) == key
    raw = await redis.get(key)
    assert raw is not None
    assert t.encode() not in raw
    stored = json.loads(raw)
    assert stored["userId"] == user
    assert set(stored) == {"userId", "exp"}
    async for found in redis.scan_iter(match=f"*{t[-24:]}*"):
        pytest.fail(f"the raw token is part of a key: {found!r}")


async def test_token_without_exp_is_cached_for_10_minutes(
    cached: CachingVerifier, redis: aioredis.Redis
) -> None:
    opaque = f"opaque-{uuid.uuid4().hex}"
    identity = await cached.verify(opaque)
    assert identity.expires_at is None
    assert AUTH_CACHE_TTL_S == 600
    assert AUTH_CACHE_TTL_S - 5 <= await redis.ttl(cache_key(opaque)) <= AUTH_CACHE_TTL_S


async def test_cache_never_outlives_the_tokens_exp(
    cached: CachingVerifier, redis: aioredis.Redis, clock: FakeClock
) -> None:
    t = token(clock, new_user_id(), exp_in_s=90)
    await cached.verify(t)
    assert 0 < await redis.ttl(cache_key(t)) <= 90


async def test_token_expiring_within_a_second_is_not_cached(
    cached: CachingVerifier, redis: aioredis.Redis, clock: FakeClock
) -> None:
    exp = int(clock.now().timestamp()) + 2
    t = jwt.encode({"sub": "5", "exp": exp}, SECRET, algorithm="HS256")
    clock.advance(exp - clock.now().timestamp() - 0.5)
    assert (await cached.verify(t)).user_id == 5
    assert await redis.exists(cache_key(t)) == 0


async def test_expired_token_is_refused_even_when_cached(
    cached: CachingVerifier, inner: CountingVerifier, clock: FakeClock
) -> None:
    t = token(clock, new_user_id(), exp_in_s=120)
    await cached.verify(t)
    clock.advance(120)
    with pytest.raises(AuthError) as caught:
        await cached.verify(t)
    assert caught.value.code is ErrorCode.TOKEN_EXPIRED
    assert inner.calls == [t]


async def test_failed_verification_is_not_cached(
    cached: CachingVerifier, inner: CountingVerifier, redis: aioredis.Redis, clock: FakeClock
) -> None:
    t = token(clock, new_user_id())
    inner.fail_with = AuthError("Invalid token")
    for _ in range(2):
        with pytest.raises(AuthError):
            await cached.verify(t)
    assert len(inner.calls) == 2
    assert await redis.exists(cache_key(t)) == 0


async def test_empty_token_is_token_required_without_asking(
    cached: CachingVerifier, inner: CountingVerifier
) -> None:
    with pytest.raises(AuthError) as caught:
        await cached.verify("  ")
    assert caught.value.code is ErrorCode.TOKEN_REQUIRED
    assert inner.calls == []


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _forged(kind: str, clock: FakeClock) -> str:
    if kind == "lone-surrogate":
        return "\ud800"
    if kind == "valid-token-and-a-lone-surrogate":
        return token(clock, new_user_id()) + "\ud800"
    exp = {"exp-1e308": "1e308", "exp-nan": "NaN"}[kind]
    header, payload = _b64('{"alg":"HS256"}'), _b64('{"sub":"5","exp":' + exp + "}")
    return f"{header}.{payload}.AAAA"


@pytest.mark.parametrize("lookup", [True, False], ids=["lookup", "record-only"])
@pytest.mark.parametrize(
    "kind", ["lone-surrogate", "valid-token-and-a-lone-surrogate", "exp-1e308", "exp-nan"]
)
async def test_forged_token_is_token_invalid_and_nothing_is_cached(
    inner: CountingVerifier, redis: aioredis.Redis, clock: FakeClock, kind: str, lookup: bool
) -> None:
    forged = _forged(kind, clock)
    verifier = CachingVerifier(inner, redis, clock, lookup=lookup)
    with pytest.raises(AuthError) as caught:
        await verifier.verify(forged)
    await verifier.flush()
    assert caught.value.code is ErrorCode.TOKEN_INVALID
    assert await redis.exists(cache_key(forged)) == 0


async def test_entry_this_service_did_not_write_is_a_miss_not_a_crash(
    cached: CachingVerifier, inner: CountingVerifier, redis: aioredis.Redis, clock: FakeClock
) -> None:
    t = token(clock, new_user_id())
    await redis.set(cache_key(t), b'{"userId": 5, "exp": 1e308}', ex=60)
    assert (await cached.verify(t)).user_id == int(jwt.decode(t, SECRET, ["HS256"])["sub"])
    assert inner.calls == [t]


@pytest_asyncio.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    yield client
    await client.aclose()


async def test_unreachable_redis_only_means_asking_the_verifier_again(
    inner: CountingVerifier, dead_redis: aioredis.Redis, clock: FakeClock
) -> None:
    verifier = CachingVerifier(inner, dead_redis, clock)
    t = token(clock, 5)
    assert (await verifier.verify(t)).user_id == 5
    assert (await verifier.verify(t)).user_id == 5
    assert len(inner.calls) == 2


# -- record-only mode (a local verifier, cheaper than reading Redis) ---------------------------


async def test_record_only_mode_writes_every_verified_token_without_reading(
    inner: CountingVerifier, redis: aioredis.Redis, clock: FakeClock, observed: list[bool]
) -> None:
    verifier = CachingVerifier(inner, redis, clock, observe=observed.append, lookup=False)
    users = [new_user_id() for _ in range(40)]
    tokens = [token(clock, user, exp_in_s=300) for user in users]
    identities = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [i.user_id for i in identities] == users
    await verifier.flush()
    for user, t in zip(users, tokens, strict=True):
        raw = await redis.get(cache_key(t))
        assert raw is not None
        stored = json.loads(raw)
        assert stored["userId"] == user
        assert 0 < await redis.ttl(cache_key(t)) <= 300
    assert observed == []  # this mode never reads the cache


async def test_record_only_mode_remembers_a_verified_token_until_its_record_lapses(
    inner: CountingVerifier, redis: aioredis.Redis, clock: FakeClock
) -> None:
    verifier = CachingVerifier(inner, redis, clock, ttl_s=60, lookup=False)
    user = new_user_id()
    t = token(clock, user, exp_in_s=3600)
    assert (await verifier.verify(t)).user_id == user
    await verifier.flush()
    await redis.delete(cache_key(t))
    # A reconnect within the record's life: no second check, no second record.
    assert (await verifier.verify(t)).user_id == user
    await verifier.flush()
    assert len(inner.calls) == 1
    assert await redis.exists(cache_key(t)) == 0
    # Once the record has lapsed the token is checked and recorded again.
    clock.advance(61)
    assert (await verifier.verify(t)).user_id == user
    await verifier.flush()
    assert len(inner.calls) == 2
    assert await redis.exists(cache_key(t)) == 1


async def test_record_only_mode_never_remembers_a_token_past_its_exp(
    inner: CountingVerifier, redis: aioredis.Redis, clock: FakeClock
) -> None:
    verifier = CachingVerifier(inner, redis, clock, ttl_s=600, lookup=False)
    t = token(clock, new_user_id(), exp_in_s=30)
    await verifier.verify(t)
    clock.advance(20)
    await verifier.verify(t)
    assert len(inner.calls) == 1
    clock.advance(11)  # past exp: the verifier judges it again (and refuses it, being expired)
    inner.fail_with = AuthError("Token expired", ErrorCode.TOKEN_EXPIRED)
    with pytest.raises(AuthError) as caught:
        await verifier.verify(t)
    assert caught.value.code is ErrorCode.TOKEN_EXPIRED
    assert len(inner.calls) == 2


async def test_record_only_mode_never_remembers_a_refused_token(
    inner: CountingVerifier, redis: aioredis.Redis, clock: FakeClock
) -> None:
    verifier = CachingVerifier(inner, redis, clock, lookup=False)
    t = token(clock, new_user_id())
    inner.fail_with = AuthError("Invalid token")
    for _ in range(2):
        with pytest.raises(AuthError):
            await verifier.verify(t)
    assert len(inner.calls) == 2


async def test_record_only_mode_survives_an_unreachable_redis(
    inner: CountingVerifier, dead_redis: aioredis.Redis, clock: FakeClock
) -> None:
    verifier = CachingVerifier(inner, dead_redis, clock, lookup=False)
    assert (await verifier.verify(token(clock, 9))).user_id == 9
    await asyncio.wait_for(verifier.flush(), 5)
    assert (await verifier.verify(token(clock, 9))).user_id == 9
    await asyncio.wait_for(verifier.flush(), 5)
