"""Bounded lifecycles: background loops that stop through an event, and one shutdown deadline.

Two rules hold here. A loop is stopped by setting its event and waiting a bounded time for it;
a cancel is only the fallback, because a cancel that lands inside some drivers' calls (redis-py
on Python 3.11.7, for one) can be swallowed and the task keeps running. And a shutdown runs its
steps against one deadline for the whole: each step gets what is left of it, and a step still
running when its share is spent is abandoned, never awaited without a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

# Once a loop's stop bound has passed, its cancelled task gets this long to end before it is
# left behind: enough for a well-behaved cancel, short enough to keep the shutdown's deadline.
CANCEL_GRACE_S = 0.2

# Tasks given up on are held here until they end: the event loop keeps only weak references,
# and a task collected half-way would end in a "destroyed but pending" error instead.
_abandoned: set[asyncio.Task[Any]] = set()


def _abandon(task: asyncio.Task[Any]) -> None:
    _abandoned.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its step was already logged as timed out


class Pacer(Protocol):
    """How a loop waits between rounds: `pause` returns after `seconds`, or as soon as `stop`
    is set, whichever comes first."""

    async def pause(self, seconds: float, stop: asyncio.Event) -> None: ...


class EventPacer:
    """The real pacer: the event loop's own timer, cut short by the stop event."""

    async def pause(self, seconds: float, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def bounded(work: Awaitable[object], timeout_s: float, what: str) -> bool:
    """Run `work` for at most `timeout_s`; True when it finished in time.

    The work runs as its own task and this coroutine only waits on it, so a cancel the work
    swallows cannot hold the caller: on time-out the task is cancelled and left behind. Its
    errors are logged here, once, as the end of that step.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout_s))
    if not done:
        task.cancel()
        _abandon(task)
        log.warning("shutdown_step_timeout", step=what, timeout_s=round(timeout_s, 3))
        return False
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("shutdown_step_failed", step=what, error=type(exc).__name__)
    return True


class Deadline:
    """One budget for a whole sequence of steps, each of which gets what is left of it."""

    def __init__(self, total_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._ends = monotonic() + total_s

    def left(self) -> float:
        return max(0.0, self._ends - self._monotonic())

    def share(self, fraction: float, keep_s: float = 0.0) -> float:
        """`fraction` of what is left once `keep_s` is set aside for the steps after this one."""
        return max(0.0, self.left() - keep_s) * fraction

    async def run(
        self, work: Awaitable[object], what: str, share: float = 1.0, keep_s: float = 0.0
    ) -> bool:
        """`work` bounded by `share` of what is left after `keep_s` (a step that must leave
        time for the steps after it takes less than all of it)."""
        return await bounded(work, self.share(share, keep_s), what)


class BackgroundLoop:
    """Runs `body` every `interval_s` until stopped; `stop` ends it within `stop_timeout_s`.

    A failing round is logged and the next one runs as planned: a loop that died on one bad
    round would silently take the node's heartbeat with it.
    """

    def __init__(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        interval_s: float,
        *,
        pacer: Pacer | None = None,
    ) -> None:
        self.name = name
        self._body = body
        self._interval_s = interval_s
        self._pacer = pacer or EventPacer()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._body()
            except Exception as exc:  # a round's failure must not end the loop
                log.warning("loop_round_failed", loop=self.name, error=type(exc).__name__)
            self.rounds += 1
            if self._stop.is_set():
                break
            await self._pacer.pause(self._interval_s, self._stop)

    async def stop(self, timeout_s: float) -> bool:
        """Ask the loop to end and wait at most `timeout_s` (plus a short grace for a cancel);
        True when it ended, False when it had to be left behind still running."""
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return True
        done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout_s))
        if done:
            return True
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
        if not done:
            _abandon(task)
            log.warning("loop_left_running", loop=self.name)
        return bool(done)
