"""Rate limits shared by all nodes, per user, in Redis.

Two shapes, one key per user and action:
- `ratelimit:{action}:{userId}`: a sliding log (a sorted set of the admitted actions' times) for
  the small, exact limits the clients were promised (`message:send`, `chat:create`): at most
  `limit` in any window.
- `budget:{name}:{userId}`: a budget for every other event (reads, receipts, typing, token
  refreshes): a string holding one time (GCRA), so that a generous budget costs one short key
  however large it is. A full budget takes a burst of `size` events and refills at `size` per
  window.

Both read Redis's own clock, so nodes with skewed clocks agree. A refusal is remembered on the
node until the wait it announced is over (`RefusalMemo`): a flood is answered without a Redis
round trip, and since a refusal changes nothing in Redis the answer is the one Redis would give.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis

from marketplace_chat.clock import Clock
from marketplace_chat.realtime.connection import redis_errors
from marketplace_chat.settings import LimitSettings

# Returns 0 when admitted, else the milliseconds until the oldest admitted action leaves the window.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

# GCRA: the key holds the time (ms) at which the budget is full again. An event costs
# window / size; it is admitted while that time stays within one window of now. Returns 0 when
# admitted, else the milliseconds until one event's worth has refilled.
DRAW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost = window / size
local full_at = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local next_full = full_at + cost
if next_full - now > window then
  return math.max(1, math.ceil(next_full - now - window))
end
redis.call('SET', KEYS[1], string.format('%.3f', next_full), 'PX', math.ceil(next_full - now))
return 0
"""

MEMO_PRUNE_AT = 10_000  # remembered refusals past which the lapsed ones are dropped


@dataclass(frozen=True, slots=True)
class Budget:
    """`size` events per `window_s` for one user on all nodes together; size 0 is no limit."""

    name: str
    size: int
    window_s: float


READ_EVENTS = (
    "chats:list",
    "messages:history",
    "messages:sync",
    "users:online",
    "chat:join",
    "chat:leave",
)


def event_budgets(limits: LimitSettings) -> dict[str, Budget]:
    """The budget each client event draws on. The reads share one generous budget, since a
    client catching up after a reconnect sends a few of each; `message:send` and `chat:create`
    are absent because their use cases keep their own sliding logs."""
    reads = Budget("reads", limits.rate_limit_reads, limits.rate_limit_reads_window_s)
    typing = Budget("typing", limits.rate_limit_typing, limits.rate_limit_typing_window_s)
    return {
        **dict.fromkeys(READ_EVENTS, reads),
        "message:read": Budget(
            "receipts", limits.rate_limit_receipts, limits.rate_limit_receipts_window_s
        ),
        "typing:start": typing,
        "typing:stop": typing,
        "auth:refresh-token": Budget(
            "refresh", limits.rate_limit_refresh, limits.rate_limit_refresh_window_s
        ),
    }


class RateLimiter(Protocol):
    async def admit(self, action: str, user_id: int, limit: int, window_s: float) -> int:
        """Sliding log: 0 when the action may go ahead (and is counted), else the ms to wait."""
        ...

    async def draw(self, budget: Budget, user_id: int) -> int:
        """One event from the user's budget: 0 when it may go ahead, else the ms to wait."""
        ...


class RefusalMemo:
    """The refusals this node announced, until their wait is over, so that the next events of a
    refused user are answered at once with the remaining wait."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until: dict[str, datetime] = {}

    def remaining_ms(self, key: str) -> int:
        until = self._until.get(key)
        if until is None:
            return 0
        left = (until - self._clock.now()).total_seconds() * 1000
        if left <= 0:
            del self._until[key]
            return 0
        return max(1, round(left))

    def remember(self, key: str, wait_ms: int) -> None:
        if wait_ms <= 0:
            return
        now = self._clock.now()
        if len(self._until) >= MEMO_PRUNE_AT:
            self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[key] = now + timedelta(milliseconds=wait_ms)

    def __len__(self) -> int:
        return len(self._until)


class RedisRateLimiter:
    def __init__(self, redis: aioredis.Redis, clock: Clock) -> None:
        self._admit: Any = redis.register_script(ADMIT)
        self._draw: Any = redis.register_script(DRAW)
        self._memo = RefusalMemo(clock)

    async def admit(self, action: str, user_id: int, limit: int, window_s: float) -> int:
        if limit <= 0:
            return 0
        key = f"ratelimit:{action}:{user_id}"
        return await self._run(self._admit, key, [limit, int(window_s * 1000), uuid.uuid4().hex])

    async def draw(self, budget: Budget, user_id: int) -> int:
        if budget.size <= 0:
            return 0
        key = f"budget:{budget.name}:{user_id}"
        return await self._run(self._draw, key, [budget.size, int(budget.window_s * 1000)])

    async def _run(self, script: Any, key: str, args: list[Any]) -> int:
        wait = self._memo.remaining_ms(key)
        if wait:
            return wait
        with redis_errors():
            wait = int(await script(keys=[key], args=args))
        self._memo.remember(key, wait)
        return wait
