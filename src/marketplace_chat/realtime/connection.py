"""The one place that turns Redis failures into `Unavailable`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from socketio.redis_manager import parse_redis_sentinel_url

from marketplace_chat.errors import Unavailable


@contextmanager
def redis_errors() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise Unavailable("Realtime state (Redis) is unavailable") from exc


MAX_CONNECTIONS = 64  # per client; a burst waits for a free connection instead of failing
POOL_WAIT_S = 5.0


def connect(url: str, timeout_s: float | None = 5.0, *, retry_once: bool = True) -> aioredis.Redis:
    """A client for `redis://`, `rediss://`, `unix://` or `redis+sentinel://host:port,…/db/service`
    (the same URL forms the Socket.IO Redis manager takes).

    Its pool blocks: under a burst of commands the surplus waits for a connection, where
    redis-py's default pool would refuse with "Too many connections". `timeout_s` None leaves
    reads unbounded, as a pub/sub listener needs.
    """
    if url.startswith("redis+sentinel://"):
        sentinels, service, options = parse_redis_sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            sentinels, socket_timeout=timeout_s, socket_connect_timeout=5.0, **options
        )
        client: aioredis.Redis = sentinel.master_for(service or "mymaster")
        return client
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        socket_timeout=timeout_s,
        socket_connect_timeout=5.0,
        # A connection pooled before a Redis restart can be found closed only by the command
        # that uses it; one retry on a fresh connection spares that command a failure. The
        # fan-out's stream clients recover on their own (a buffer, a resumed read that notices
        # a gap) and must see the loss: they take `retry_once=False`.
        **(
            {"retry": Retry(NoBackoff(), 1), "retry_on_error": [RedisConnectionError]}
            if retry_once
            else {}
        ),
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it
