"""Rate limits shared by all nodes: a sliding log per user and action in Redis.

Key `ratelimit:{action}:{userId}`: a sorted set of the admitted actions' times (ms, Redis's own
clock, so nodes with skewed clocks agree), trimmed to the window on every call.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import redis.asyncio as aioredis

from marketplace_chat.realtime.connection import redis_errors

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


class RateLimiter(Protocol):
    async def admit(self, action: str, user_id: int, limit: int, window_s: float) -> int:
        """0 when the action may go ahead (and is counted), else the ms to wait."""
        ...


class RedisRateLimiter:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._admit: Any = redis.register_script(ADMIT)

    async def admit(self, action: str, user_id: int, limit: int, window_s: float) -> int:
        if limit <= 0:
            return 0
        with redis_errors():
            wait = await self._admit(
                keys=[f"ratelimit:{action}:{user_id}"],
                args=[limit, int(window_s * 1000), uuid.uuid4().hex],
            )
        return int(wait)
