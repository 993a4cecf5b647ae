"""The one place that turns Redis failures into `Unavailable`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError
from socketio.redis_manager import parse_redis_sentinel_url

from marketplace_chat.errors import Unavailable


@contextmanager
def redis_errors() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise Unavailable("Realtime state (Redis) is unavailable") from exc


def connect(url: str, timeout_s: float = 5.0) -> aioredis.Redis:
    """A client for `redis://`, `rediss://`, `unix://` or `redis+sentinel://host:port,…/db/service`
    (the same URL forms the Socket.IO Redis manager takes)."""
    if url.startswith("redis+sentinel://"):
        sentinels, service, options = parse_redis_sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            sentinels, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, **options
        )
        client: aioredis.Redis = sentinel.master_for(service or "mymaster")
        return client
    return aioredis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
