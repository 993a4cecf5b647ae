"""The one place that turns Redis failures into `Unavailable`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from marketplace_chat.errors import Unavailable


@contextmanager
def redis_errors() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise Unavailable("Realtime state (Redis) is unavailable") from exc
