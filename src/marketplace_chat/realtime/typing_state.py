"""Typing indicators in Redis.

- `chat:{chatId}:typing:{userId}` (seed): set while the user types, TTL 10 s.
- `chat:{chatId}:typing:{userId}:sent`: present for 2 s after a `typing:start` reached the
  partner; while it exists, repeats only refresh the TTL and reach no one.
- `chat:{chatId}:typing:{userId}:owner`: the token of the latest start (node and counter), kept
  a little longer than the indicator, so that exactly one party tells the partner it stopped:
  an explicit stop deletes it, and a node's expiry timer only speaks while it still holds it.
"""

from __future__ import annotations

from typing import Any, Protocol

import redis.asyncio as aioredis

from marketplace_chat.realtime.connection import redis_errors

TYPING_TTL_S = 10.0  # seed: a typing key lives 10 s
OWNER_TTL_S = 15.0  # outlives the indicator and the timer that ends it

START = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[4])
if tonumber(ARGV[3]) <= 0 then return 1 end
if redis.call('SET', KEYS[2], '1', 'PX', ARGV[3], 'NX') then return 1 end
return 0
"""

STOP = """
redis.call('DEL', KEYS[2])
local owned = redis.call('DEL', KEYS[3])
local typing = redis.call('DEL', KEYS[1])
if owned + typing > 0 then return 1 end
return 0
"""

# Ends the indicator only if no other start took it over, and no stop ended it, since `token`.
EXPIRE = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""


def typing_key(chat_id: str, user_id: int) -> str:
    return f"chat:{chat_id}:typing:{user_id}"


def _keys(chat_id: str, user_id: int) -> list[str]:
    key = typing_key(chat_id, user_id)
    return [key, key + ":sent", key + ":owner"]


class TypingState(Protocol):
    async def start(self, chat_id: str, user_id: int, token: str, throttle_s: float) -> bool:
        """Mark the user typing for 10 s; True when the partner should be told now."""
        ...

    async def stop(self, chat_id: str, user_id: int) -> bool:
        """Clear the indicator; True when it was set (the partner should be told)."""
        ...

    async def expire(self, chat_id: str, user_id: int, token: str) -> bool:
        """End an indicator this node set with `token`; False if another start took it over."""
        ...


class RedisTypingState:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._start: Any = redis.register_script(START)
        self._stop: Any = redis.register_script(STOP)
        self._expire: Any = redis.register_script(EXPIRE)

    async def start(self, chat_id: str, user_id: int, token: str, throttle_s: float) -> bool:
        with redis_errors():
            told = await self._start(
                keys=_keys(chat_id, user_id),
                args=[
                    token,
                    int(TYPING_TTL_S * 1000),
                    int(throttle_s * 1000),
                    int(OWNER_TTL_S * 1000),
                ],
            )
        return bool(told)

    async def stop(self, chat_id: str, user_id: int) -> bool:
        with redis_errors():
            return bool(await self._stop(keys=_keys(chat_id, user_id)))

    async def expire(self, chat_id: str, user_id: int, token: str) -> bool:
        with redis_errors():
            return bool(await self._expire(keys=_keys(chat_id, user_id), args=[token]))
