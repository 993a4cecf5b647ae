"""Background loops stop through their event within a bound, and a shutdown keeps one deadline,
whatever a step or a loop's round does with the cancel it is sent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from marketplace_chat.lifecycle import CANCEL_GRACE_S, BackgroundLoop, Deadline, bounded

from .fakes import FakeClock, FakePacer, until

INTERVAL_S = 5.0
# A bound for the waits that must give up: short, so that the tests stay quick.
STOP_BOUND_S = 0.05


async def _noop() -> None:
    return None


def _loop(body: Callable[[], Awaitable[None]] = _noop) -> tuple[BackgroundLoop, FakePacer]:
    pacer = FakePacer(FakeClock())
    loop = BackgroundLoop("test", body, INTERVAL_S, pacer=pacer)
    return loop, pacer


async def test_loop_runs_one_round_per_interval_of_the_clock() -> None:
    loop, pacer = _loop()
    loop.start()
    await until(lambda: pacer.paused == 1)
    assert loop.rounds == 1

    pacer.advance(INTERVAL_S - 0.1)
    await until(lambda: pacer.paused == 1)
    assert loop.rounds == 1
    pacer.advance(0.1)
    await until(lambda: loop.rounds == 2 and pacer.paused == 1)

    assert await loop.stop(STOP_BOUND_S)


async def test_stop_ends_a_paused_loop_without_waiting_for_the_interval() -> None:
    loop, pacer = _loop()
    loop.start()
    await until(lambda: pacer.paused == 1)

    started = time.monotonic()
    assert await loop.stop(10.0)
    assert time.monotonic() - started < 1.0
    assert not loop.running
    assert loop.rounds == 1


async def test_stop_lets_the_round_in_progress_finish_and_starts_no_other() -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def slow_round() -> None:
        entered.set()
        await gate.wait()

    loop, pacer = _loop(slow_round)
    loop.start()
    await entered.wait()
    stopping = asyncio.ensure_future(loop.stop(10.0))
    await until(lambda: loop.stopping)
    gate.set()

    assert await stopping
    assert loop.rounds == 1
    assert pacer.paused == 0


async def test_a_failing_round_is_logged_and_the_next_one_runs() -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("redis down")

    loop, pacer = _loop(flaky)
    loop.start()
    await until(lambda: pacer.paused == 1)
    pacer.advance(INTERVAL_S)
    await until(lambda: calls == 2)

    assert loop.running
    assert await loop.stop(STOP_BOUND_S)


async def test_stop_gives_up_within_its_bound_on_a_round_that_swallows_the_cancel() -> None:
    """What redis-py does on Python 3.11.7 to a cancel that lands inside one of its calls."""
    release = asyncio.Event()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # the cancel is lost...
            await release.wait()
        await release.wait()  # ...and the round carries on

    loop, _ = _loop(stubborn)
    loop.start()
    await until(lambda: loop.rounds == 0 and loop.running)
    await asyncio.sleep(0)

    started = time.monotonic()
    assert not await loop.stop(STOP_BOUND_S)
    assert time.monotonic() - started < STOP_BOUND_S + CANCEL_GRACE_S + 0.5
    assert loop.running

    release.set()  # the round ends by itself later; the set event then ends the loop
    await until(lambda: not loop.running)
    assert loop.rounds == 1


async def test_bounded_step_returns_in_time_even_if_the_step_swallows_its_cancel() -> None:
    release = asyncio.Event()
    finished = asyncio.Event()

    async def stubborn() -> None:
        try:
            await release.wait()
        except asyncio.CancelledError:
            await release.wait()
        finished.set()

    started = time.monotonic()
    assert not await bounded(stubborn(), STOP_BOUND_S, "stubborn")
    assert time.monotonic() - started < STOP_BOUND_S + 0.5

    release.set()
    await finished.wait()


async def test_bounded_step_that_fails_counts_as_ended() -> None:
    async def broken() -> None:
        raise RuntimeError("postgres down")

    assert await bounded(broken(), 1.0, "broken")


async def test_each_step_of_a_deadline_gets_what_is_left_of_it() -> None:
    clock = FakeClock()
    deadline = Deadline(8.0, clock.monotonic)
    clock.advance(3.0)
    assert deadline.left() == 5.0
    clock.advance(6.0)
    assert deadline.left() == 0.0

    hung = asyncio.Event()
    started = time.monotonic()
    assert not await deadline.run(hung.wait(), "hung")  # nothing left: given up at once
    assert time.monotonic() - started < 0.5
