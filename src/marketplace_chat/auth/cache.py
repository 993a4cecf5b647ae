"""Verified tokens cached in Redis for 10 minutes, never past the token's own `exp`.

Key `auth:token:{sha256(token)}` holds `{"userId": …, "exp": …}`; the raw token is never stored,
and a Redis failure only means the verifier is asked again.
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
)
from marketplace_chat.batching import Coalescer
from marketplace_chat.clock import Clock
from marketplace_chat.errors import AuthError

AUTH_CACHE_TTL_S = 600  # seed: verified results are cached 10 minutes


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
        TOKEN_INVALID whatever `exp` it claims."""
        self._inner = inner
        self._lookup = lookup
        self._redis = redis
        self._clock = clock
        self._ttl = ttl_s
        self._leeway = leeway_s
        self._observe = observe
        self._records: Coalescer[tuple[str, bytes, int], None] = Coalescer(self._write)

    async def verify(self, token: str) -> Identity:
        token = require(token)
        if self._lookup:
            # A cached answer must not outlive the token, and marketplace-api is not asked about
            # a token that says it has expired.
            refuse_if_expired(token, self._clock.now(), self._leeway)
        key = cache_key(token)
        cached = await self._get(key) if self._lookup else None
        if cached is not None:
            return cached
        identity = await self._inner.verify(token)
        ttl = self._ttl
        if identity.expires_at is not None:
            ttl = min(ttl, int((identity.expires_at - self._clock.now()).total_seconds()))
        if ttl > 0:
            value = orjson.dumps({"userId": identity.user_id, "exp": _epoch(identity)})
            if self._lookup:
                with contextlib.suppress(RedisError, OSError):
                    await self._redis.set(key, value, ex=ttl)
            else:
                self._records.post((key, value, ttl))
        return identity

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
