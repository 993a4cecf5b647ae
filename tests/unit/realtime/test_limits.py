"""The limiter's rules without Redis: which event draws on which budget, and refusals answered
on the node until their wait is over."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from marketplace_chat import asyncapi
from marketplace_chat.realtime.limits import (
    Budget,
    RedisRateLimiter,
    RefusalMemo,
    event_budgets,
)
from marketplace_chat.settings import LimitSettings

from ..fakes import FakeClock, new_user_id

# Every client event, as the gateway registers them (a test holds the registry to the gateway).
CLIENT_EVENTS = {e.name for e in asyncapi.CLIENT_EVENTS}
OWN_LOGS = {"message:send", "chat:create"}  # limited inside their use cases


class ScriptedRedis:
    """Stands in for Redis: the script answers each action with the next of `answers`, and
    counts its runs."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.calls = 0

    def register_script(self, source: str) -> Any:
        async def run(keys: list[str], args: list[Any]) -> list[int]:
            self.calls += 1
            return [self.answers.pop(0) for _ in keys]

        return run


def test_every_client_event_but_sends_and_creates_draws_on_a_budget() -> None:
    budgets = event_budgets(LimitSettings())
    assert set(budgets) == CLIENT_EVENTS - OWN_LOGS
    assert all(b.size > 0 for b in budgets.values())


def test_reads_share_one_generous_budget() -> None:
    budgets = event_budgets(LimitSettings())
    reads = {budgets[e] for e in ("chats:list", "messages:history", "messages:sync", "chat:join")}
    assert reads == {Budget("reads", 200, 10.0)}
    assert budgets["users:online"] is budgets["chats:list"]
    assert budgets["typing:start"] is budgets["typing:stop"]
    assert budgets["message:read"].size < budgets["chats:list"].size


def test_budgets_follow_their_settings_and_zero_turns_one_off() -> None:
    limits = LimitSettings(rate_limit_reads=0, rate_limit_typing=7, rate_limit_typing_window_s=3)
    budgets = event_budgets(limits)
    assert budgets["messages:history"].size == 0
    assert budgets["typing:start"] == Budget("typing", 7, 3.0)


def test_a_refusal_is_remembered_until_its_wait_is_over() -> None:
    clock = FakeClock()
    memo = RefusalMemo(clock)
    memo.remember("budget:reads:1", 1500)
    assert memo.remaining_ms("budget:reads:1") == 1500
    clock.advance(1.0)
    assert memo.remaining_ms("budget:reads:1") == 500
    assert memo.remaining_ms("budget:reads:2") == 0
    clock.advance(0.5)
    assert memo.remaining_ms("budget:reads:1") == 0
    assert len(memo) == 0


def test_an_admission_leaves_nothing_to_remember() -> None:
    memo = RefusalMemo(FakeClock())
    memo.remember("budget:reads:1", 0)
    assert len(memo) == 0


def test_lapsed_refusals_are_dropped_when_the_memo_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace_chat.realtime import limits

    monkeypatch.setattr(limits, "MEMO_PRUNE_AT", 3)
    clock = FakeClock()
    memo = RefusalMemo(clock)
    for user in range(3):
        memo.remember(f"k{user}", 100)
    clock.advance(1)
    memo.remember("fresh", 100)
    assert len(memo) == 1


async def test_a_refused_user_is_answered_without_asking_redis_until_the_wait_is_over() -> None:
    clock = FakeClock()
    redis = ScriptedRedis([0, 800, 0])
    limiter = RedisRateLimiter(redis, clock)  # type: ignore[arg-type]
    budget, user = Budget("reads", 5, 10.0), new_user_id()
    assert await limiter.draw(budget, user) == 0
    assert await limiter.draw(budget, user) == 800
    flood = [await limiter.draw(budget, user) for _ in range(1000)]
    assert flood == [800] * 1000
    assert redis.calls == 2
    clock.advance(0.8)
    assert await limiter.draw(budget, user) == 0
    assert redis.calls == 3


async def test_a_budget_of_zero_admits_without_redis() -> None:
    redis = ScriptedRedis([])
    limiter = RedisRateLimiter(redis, FakeClock())  # type: ignore[arg-type]
    assert await limiter.draw(Budget("reads", 0, 10.0), new_user_id()) == 0
    assert await limiter.admit("message:send", new_user_id(), 0, 10.0) == 0
    assert redis.calls == 0


async def test_a_refused_send_is_remembered_apart_from_other_users_and_actions() -> None:
    clock = FakeClock()
    redis = ScriptedRedis([700, 0, 0])
    limiter = RedisRateLimiter(redis, clock)  # type: ignore[arg-type]
    user = new_user_id()
    assert await limiter.admit("message:send", user, 1, 10.0) == 700
    assert await limiter.admit("message:send", user, 1, 10.0) == 700
    assert await limiter.admit("chat:create", user, 1, 10.0) == 0
    assert await limiter.admit("message:send", new_user_id(), 1, 10.0) == 0
    assert redis.calls == 3


async def test_actions_arriving_together_share_one_redis_run() -> None:
    redis = ScriptedRedis([0] * 30)
    limiter = RedisRateLimiter(redis, FakeClock())  # type: ignore[arg-type]
    budget = Budget("reads", 5, 10.0)
    waits = await asyncio.gather(
        *(limiter.draw(budget, new_user_id()) for _ in range(20)),
        *(limiter.admit("message:send", new_user_id(), 5, 10.0) for _ in range(10)),
    )
    assert waits == [0] * 30
    assert redis.calls <= 2  # the first alone, the rest that arrived meanwhile together
