from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from marketplace_chat.realtime.limits import RedisRateLimiter

from ..helpers import new_user_id

pytestmark = pytest.mark.integration

WINDOW_S = 10.0


def key(action: str, user: int) -> str:
    return f"ratelimit:{action}:{user}"


async def admissions(redis: aioredis.Redis, action: str, user: int) -> dict[bytes, float]:
    """The log: member → admission time in ms (Redis's clock)."""
    entries = await redis.zrange(key(action, user), 0, -1, withscores=True)
    return {bytes(member): float(score) for member, score in cast(list[tuple[Any, Any]], entries)}


async def redis_now_ms(redis: aioredis.Redis) -> float:
    seconds, micros = await redis.time()
    return seconds * 1000 + micros // 1000


async def test_exactly_limit_actions_are_admitted_in_the_window(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis)
    user = new_user_id()
    waits = [await limiter.admit("message:send", user, 5, WINDOW_S) for _ in range(8)]
    assert waits[:5] == [0] * 5
    assert all(0 < wait <= WINDOW_S * 1000 for wait in waits[5:])
    assert await redis.zcard(key("message:send", user)) == 5


async def test_retry_time_is_when_the_oldest_action_leaves_the_window(
    redis: aioredis.Redis,
) -> None:
    limiter = RedisRateLimiter(redis)
    user = new_user_id()
    await limiter.admit("message:send", user, 1, WINDOW_S)
    (admitted_ms,) = (await admissions(redis, "message:send", user)).values()
    now_ms = await redis_now_ms(redis)
    wait = await limiter.admit("message:send", user, 1, WINDOW_S)
    assert abs(wait - (admitted_ms + WINDOW_S * 1000 - now_ms)) <= 50


async def test_concurrent_actions_are_admitted_exactly_limit_times(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis)
    user = new_user_id()
    waits = await asyncio.gather(
        *(limiter.admit("message:send", user, 10, WINDOW_S) for _ in range(30))
    )
    assert waits.count(0) == 10


async def test_actions_that_left_the_window_no_longer_count(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis)
    user = new_user_id()
    for _ in range(3):
        assert await limiter.admit("message:send", user, 3, WINDOW_S) == 0
    assert await limiter.admit("message:send", user, 3, WINDOW_S) > 0
    # Age the log by one window instead of waiting for it: the entries are admission times in ms.
    entries = await admissions(redis, "message:send", user)
    aged = {member: at_ms - WINDOW_S * 1000 for member, at_ms in entries.items()}
    await redis.zadd(key("message:send", user), cast(Mapping[Any, float], aged))
    assert await limiter.admit("message:send", user, 3, WINDOW_S) == 0


async def test_limits_are_per_user_and_per_action(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis)
    user = new_user_id()
    assert await limiter.admit("message:send", user, 1, WINDOW_S) == 0
    assert await limiter.admit("message:send", user, 1, WINDOW_S) > 0
    assert await limiter.admit("chat:create", user, 1, WINDOW_S) == 0
    assert await limiter.admit("message:send", new_user_id(), 1, WINDOW_S) == 0


async def test_two_limiters_share_one_count(redis: aioredis.Redis) -> None:
    node_a, node_b = RedisRateLimiter(redis), RedisRateLimiter(redis)
    user = new_user_id()
    assert await node_a.admit("message:send", user, 2, WINDOW_S) == 0
    assert await node_b.admit("message:send", user, 2, WINDOW_S) == 0
    assert await node_a.admit("message:send", user, 2, WINDOW_S) > 0


async def test_zero_limit_admits_everything_and_stores_nothing(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis)
    user = new_user_id()
    assert [await limiter.admit("message:send", user, 0, WINDOW_S) for _ in range(50)] == [0] * 50
    assert await redis.exists(key("message:send", user)) == 0


async def test_the_log_expires_with_its_window(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis)
    user = new_user_id()
    await limiter.admit("message:send", user, 3, WINDOW_S)
    assert 0 < await redis.pttl(key("message:send", user)) <= WINDOW_S * 1000
