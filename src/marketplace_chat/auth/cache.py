"""Verified tokens cached in Redis for 10 minutes, never past the token's own `exp`.

Key `auth:token:{sha256(token)}` holds `{"userId": …, "exp": …}`; the raw token is never stored,
and a Redis failure only means the verifier is asked again. With the local verifier the
service never reads these keys back: it keeps what it verified in process, by the token's digest,
for as long as the record lives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from marketplace_chat.auth.base import (
    Identity,
    Verifier,
    expiry,
    refuse_if_expired,
    require,
    token_digest,
    token_digest_bytes,
)
from marketplace_chat.batching import Coalescer
from marketplace_chat.clock import Clock
from marketplace_chat.errors import AuthError, token_expired

AUTH_CACHE_TTL_S = 600  # seed: verified results are cached 10 minutes
# Verified tokens a record-only verifier remembers in process (about 0.3 kB each); past it the
# lapsed ones are dropped, then the oldest.
MEMO_MAX = 100_000


def cache_key(token: str) -> str:
    return "auth:token:" + token_digest(token)


class CachingVerifier:
    def __init__(
        self,
        inner: Verifier,
        redis: aioredis.Redis,
        clock: Clock,
        *,
        ttl_s: int = AUTH_CACHE_TTL_S,
        leeway_s: float = 0.0,
        observe: Callable[[bool], None] | None = None,
        lookup: bool = True,
    ) -> None:
        """`lookup` False (for a verifier cheaper than a Redis round trip, the local one) skips
        reading the cache; verified tokens are still recorded in it, off the connect path: the
        records made while one write is in flight go to Redis together in the next pipeline, so
        that a burst of connects costs a few round trips rather than one each. Such a verifier
        also judges a token's `exp` itself, after its signature, so that a forged token is
        TOKEN_INVALID whatever `exp` it claims. Its verified tokens are remembered in process
        for as long as their record lives in Redis (`ttl_s`, never past `exp`): the cache the
        contract asks for, without a round trip. A token read from Redis instead (the remote
        verifier's) is looked up there every time: a key deleted there is forgotten at once."""
        self._inner = inner
        self._lookup = lookup
        self._redis = redis
        self._clock = clock
        self._ttl = ttl_s
        self._leeway = leeway_s
        self._observe = observe
        self._records: Coalescer[tuple[str, bytes, int], None] = Coalescer(self._write)
        # Record-only mode: the tokens verified here, by sha256 digest (never the token), each
        # with the identity and the moment its Redis record lapses. A socket that reconnects
        # (a reconnect storm brings every token back within seconds) is answered from it,
        # without the signature check and without writing the record again.
        self._memo: dict[bytes, tuple[Identity, float]] = {}

    async def verify(self, token: str) -> Identity:
        token = require(token)
        if not self._lookup:
            return await self._verify_remembered(token)
        # A cached answer must not outlive the token, and marketplace-api is not asked about a
        # token that says it has expired.
        refuse_if_expired(token, self._clock.now(), self._leeway)
        key = cache_key(token)
        cached = await self._get(key)
        if cached is not None:
            return cached
        identity = await self._inner.verify(token)
        ttl = self._ttl
        if identity.expires_at is not None:
            ttl = min(ttl, int((identity.expires_at - self._clock.now()).total_seconds()))
        if ttl > 0:
            value = orjson.dumps({"userId": identity.user_id, "exp": _epoch(identity)})
            with contextlib.suppress(RedisError, OSError):
                await self._redis.set(key, value, ex=ttl)
        return identity

    async def _verify_remembered(self, token: str) -> Identity:
        digest = token_digest_bytes(token)
        now = self._clock.now()
        remembered = self._memo.get(digest)
        if remembered is not None:
            identity, lapses = remembered
            if now.timestamp() < lapses:
                if identity.expired(now, self._leeway):
                    raise token_expired()
                return identity
            del self._memo[digest]
        identity = await self._inner.verify(token)
        ttl = self._ttl
        if identity.expires_at is not None:
            ttl = min(ttl, int((identity.expires_at - now).total_seconds()))
        if ttl > 0:
            value = orjson.dumps({"userId": identity.user_id, "exp": _epoch(identity)})
            self._records.post(("auth:token:" + digest.hex(), value, ttl))
            self._remember(digest, identity, now.timestamp() + ttl)
        return identity

    def _remember(self, digest: bytes, identity: Identity, lapses: float) -> None:
        memo = self._memo
        if len(memo) >= MEMO_MAX:
            now = self._clock.now().timestamp()
            self._memo = memo = {k: v for k, v in memo.items() if v[1] > now}
            while len(memo) >= MEMO_MAX:
                del memo[next(iter(memo))]
        memo[digest] = (identity, lapses)

    async def flush(self) -> None:
        """Wait until every record made so far is written (or has failed to be)."""
        await self._records.settled()

    async def _write(self, records: list[tuple[str, bytes, int]]) -> list[None]:
        with contextlib.suppress(RedisError, OSError):
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value, ttl in records:
                    pipe.set(key, value, ex=ttl)
                await pipe.execute()
        return [None] * len(records)

    async def _get(self, key: str) -> Identity | None:
        try:
            raw = await self._redis.get(key)
        except (RedisError, OSError):
            raw = None
        if self._observe is not None:
            self._observe(raw is not None)
        if raw is None:
            return None
        try:
            value = orjson.loads(raw)
            return Identity(int(value["userId"]), expiry(value))
        except (orjson.JSONDecodeError, AuthError, LookupError, TypeError, ValueError):
            return None  # not an entry this service wrote: ask the verifier


def _epoch(identity: Identity) -> float | None:
    return identity.expires_at.timestamp() if identity.expires_at else None
