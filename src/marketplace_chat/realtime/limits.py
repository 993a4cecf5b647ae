"""Rate limits shared by all nodes, per user, in Redis.

Two shapes, one key per user and action:
- `ratelimit:{action}:{userId}`: a sliding log (a sorted set of the admitted actions' times) for
  the small, exact limits the clients were promised (`message:send`, `chat:create`): at most
  `limit` in any window.
- `budget:{name}:{userId}`: a budget for every other event (reads, receipts, typing, token
  refreshes, edits and deletes): a string holding one time (GCRA), so that a generous budget
  costs one short key however large it is. A full budget takes a burst of `size` events and
  refills at `size` per window.

Both read Redis's own clock, so nodes with skewed clocks agree, and both run in one script, which
decides every action that arrived while the previous run was in flight. A refusal is remembered
on the node until the wait it announced is over (`RefusalMemo`): a flood is answered without a
Redis round trip, and since a refusal changes nothing in Redis the answer is the one Redis would
give.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis

from marketplace_chat.batching import Coalescer
from marketplace_chat.clock import Clock
from marketplace_chat.realtime.connection import redis_errors
from marketplace_chat.settings import LimitSettings

# One run decides a batch of actions in order; each is admitted or refused as if alone. KEYS: one
# key per action. ARGV: four values per action: its shape (`log` or `budget`), its limit or
# size, the window in ms, and for a log a unique member. Returns a wait per action: 0 when
# admitted (and counted), else the milliseconds until it could be.
# - log: a sorted set of admission times; the wait is until the oldest leaves the window.
# - budget (GCRA): the key holds the time (ms) at which the budget is full again; an event costs
#   window / size and is admitted while that time stays within one window of now; the wait is
#   until one event's worth has refilled.
LIMITS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local waits = {}
for i = 1, #KEYS do
  local key, shape = KEYS[i], ARGV[4 * i - 3]
  local n, window = tonumber(ARGV[4 * i - 2]), tonumber(ARGV[4 * i - 1])
  local wait = 0
  if shape == 'log' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) < n then
      redis.call('ZADD', key, now, ARGV[4 * i])
      redis.call('PEXPIRE', key, window)
    else
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      wait = math.max(1, tonumber(oldest[2]) + window - now)
    end
  else
    local full_at = math.max(tonumber(redis.call('GET', key) or 0), now)
    local next_full = full_at + window / n
    if next_full - now > window then
      wait = math.max(1, math.ceil(next_full - now - window))
    else
      redis.call('SET', key, string.format('%.3f', next_full), 'PX', math.ceil(next_full - now))
    end
  end
  waits[i] = wait
end
return waits
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

EDIT_EVENTS = ("message:edit", "message:delete")


def event_budgets(limits: LimitSettings) -> dict[str, Budget]:
    """The budget each client event draws on. The reads share one generous budget, since a
    client catching up after a reconnect sends a few of each; `message:send` and `chat:create`
    are absent because their use cases keep their own sliding logs."""
    reads = Budget("reads", limits.rate_limit_reads, limits.rate_limit_reads_window_s)
    typing = Budget("typing", limits.rate_limit_typing, limits.rate_limit_typing_window_s)
    # Edits and deletes share one budget: each rewrites a stored message and tells both users.
    edits = Budget("edits", limits.rate_limit_edits, limits.rate_limit_edits_window_s)
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
        **dict.fromkeys(EDIT_EVENTS, edits),
        **_safety_budgets(limits, reads),
    }


def _safety_budgets(limits: LimitSettings, reads: Budget) -> dict[str, Budget]:
    """Blocking and reporting: a block and an unblock draw on one budget, so that toggling
    costs as much as blocking; listing one's blocks is a read."""
    blocks = Budget("blocks", limits.rate_limit_blocks, limits.rate_limit_blocks_window_s)
    return {
        "user:block": blocks,
        "user:unblock": blocks,
        "blocks:list": reads,
        "report:create": Budget(
            "reports", limits.rate_limit_reports, limits.rate_limit_reports_window_s
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
    """The actions that arrive while a Redis run is in flight are decided by the next one, so a
    busy node pays one round trip for many sends and reads."""

    def __init__(self, redis: aioredis.Redis, clock: Clock) -> None:
        self._limits: Any = redis.register_script(LIMITS)
        self._memo = RefusalMemo(clock)
        self._batches: Coalescer[tuple[str, list[Any]], int] = Coalescer(self._decide)

    async def admit(self, action: str, user_id: int, limit: int, window_s: float) -> int:
        if limit <= 0:
            return 0
        key = f"ratelimit:{action}:{user_id}"
        return await self._run(key, ["log", limit, int(window_s * 1000), uuid.uuid4().hex])

    async def draw(self, budget: Budget, user_id: int) -> int:
        if budget.size <= 0:
            return 0
        key = f"budget:{budget.name}:{user_id}"
        return await self._run(key, ["budget", budget.size, int(budget.window_s * 1000), ""])

    async def _run(self, key: str, args: list[Any]) -> int:
        wait = self._memo.remaining_ms(key)
        if wait:
            return wait
        wait = await self._batches.submit((key, args))
        self._memo.remember(key, wait)
        return wait

    async def _decide(self, actions: list[tuple[str, list[Any]]]) -> list[int]:
        keys = [key for key, _ in actions]
        args = [value for _, values in actions for value in values]
        with redis_errors():
            waits = await self._limits(keys=keys, args=args)
        return [int(wait) for wait in waits]
