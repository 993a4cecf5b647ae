from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from marketplace_chat.clock import SystemClock
from marketplace_chat.realtime.limits import Budget, RedisRateLimiter

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
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    waits = [await limiter.admit("message:send", user, 5, WINDOW_S) for _ in range(8)]
    assert waits[:5] == [0] * 5
    assert all(0 < wait <= WINDOW_S * 1000 for wait in waits[5:])
    assert await redis.zcard(key("message:send", user)) == 5


async def test_retry_time_is_when_the_oldest_action_leaves_the_window(
    redis: aioredis.Redis,
) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    await limiter.admit("message:send", user, 1, WINDOW_S)
    (admitted_ms,) = (await admissions(redis, "message:send", user)).values()
    now_ms = await redis_now_ms(redis)
    wait = await limiter.admit("message:send", user, 1, WINDOW_S)
    assert abs(wait - (admitted_ms + WINDOW_S * 1000 - now_ms)) <= 50


async def test_concurrent_actions_are_admitted_exactly_limit_times(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    waits = await asyncio.gather(
        *(limiter.admit("message:send", user, 10, WINDOW_S) for _ in range(30))
    )
    assert waits.count(0) == 10


async def test_actions_that_left_the_window_no_longer_count(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    for _ in range(3):
        assert await limiter.admit("message:send", user, 3, WINDOW_S) == 0
    assert await limiter.admit("message:send", user, 3, WINDOW_S) > 0
    # Age the log by one window instead of waiting for it: the entries are admission times in ms.
    entries = await admissions(redis, "message:send", user)
    aged = {member: at_ms - WINDOW_S * 1000 for member, at_ms in entries.items()}
    await redis.zadd(key("message:send", user), cast(Mapping[Any, float], aged))
    # A node remembers its own refusal until the wait it announced; another node asks Redis.
    assert (
        await RedisRateLimiter(redis, SystemClock()).admit("message:send", user, 3, WINDOW_S) == 0
    )


async def test_limits_are_per_user_and_per_action(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    assert await limiter.admit("message:send", user, 1, WINDOW_S) == 0
    assert await limiter.admit("message:send", user, 1, WINDOW_S) > 0
    assert await limiter.admit("chat:create", user, 1, WINDOW_S) == 0
    assert await limiter.admit("message:send", new_user_id(), 1, WINDOW_S) == 0


async def test_two_limiters_share_one_count(redis: aioredis.Redis) -> None:
    node_a, node_b = RedisRateLimiter(redis, SystemClock()), RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    assert await node_a.admit("message:send", user, 2, WINDOW_S) == 0
    assert await node_b.admit("message:send", user, 2, WINDOW_S) == 0
    assert await node_a.admit("message:send", user, 2, WINDOW_S) > 0


async def test_zero_limit_admits_everything_and_stores_nothing(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    assert [await limiter.admit("message:send", user, 0, WINDOW_S) for _ in range(50)] == [0] * 50
    assert await redis.exists(key("message:send", user)) == 0


async def test_the_log_expires_with_its_window(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    await limiter.admit("message:send", user, 3, WINDOW_S)
    assert 0 < await redis.pttl(key("message:send", user)) <= WINDOW_S * 1000


def budget_key(name: str, user: int) -> str:
    return f"budget:{name}:{user}"


READS = Budget("reads", 5, WINDOW_S)


async def test_a_full_budget_takes_a_burst_of_its_size_then_refuses(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    waits = [await RedisRateLimiter(redis, SystemClock()).draw(READS, user) for _ in range(8)]
    assert waits[:5] == [0] * 5
    # One event's worth refills in window / size.
    assert all(0 < wait <= WINDOW_S * 1000 / READS.size for wait in waits[5:]), waits
    assert await limiter.draw(READS, user) > 0


async def test_a_budget_is_one_short_key_that_expires_when_full_again(
    redis: aioredis.Redis,
) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    # an event's worth refills in 0.36 s, far slower than the draws however busy the machine
    window_s = 3600.0
    big = Budget("reads", 10_000, window_s)
    for _ in range(300):
        await limiter.draw(big, user)
    assert await redis.type(budget_key("reads", user)) == b"string"
    assert 0 < await redis.pttl(budget_key("reads", user)) <= window_s * 1000 * 300 / 10_000 + 1


async def test_a_budget_refills_at_its_size_per_window(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    for _ in range(READS.size):
        assert await limiter.draw(READS, user) == 0
    # Move the budget's clock back by two events' worth instead of waiting for them to refill.
    full_at = float(cast(bytes, await redis.get(budget_key("reads", user))))
    await redis.set(budget_key("reads", user), str(full_at - 2 * WINDOW_S * 1000 / READS.size))
    fresh = RedisRateLimiter(redis, SystemClock())
    waits = [await fresh.draw(READS, user) for _ in range(3)]
    assert waits[:2] == [0, 0]
    assert waits[2] > 0


async def test_concurrent_draws_are_admitted_exactly_size_times(redis: aioredis.Redis) -> None:
    nodes = [RedisRateLimiter(redis, SystemClock()) for _ in range(3)]
    user = new_user_id()
    waits = await asyncio.gather(*(nodes[i % 3].draw(READS, user) for i in range(30)))
    assert waits.count(0) == READS.size


async def test_budgets_are_per_user_and_per_name(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    one = Budget("reads", 1, WINDOW_S)
    assert await limiter.draw(one, user) == 0
    assert await limiter.draw(one, user) > 0
    assert await limiter.draw(Budget("typing", 1, WINDOW_S), user) == 0
    assert await limiter.draw(one, new_user_id()) == 0


async def test_a_zero_budget_admits_everything_and_stores_nothing(redis: aioredis.Redis) -> None:
    limiter = RedisRateLimiter(redis, SystemClock())
    user = new_user_id()
    off = Budget("reads", 0, WINDOW_S)
    assert [await limiter.draw(off, user) for _ in range(50)] == [0] * 50
    assert await redis.exists(budget_key("reads", user)) == 0
