"""Each socket's events in a lane: a few run at once, a bounded number wait, the rest are refused.

A flood from one socket therefore becomes a queue of packets, not thousands of tasks, and
cannot take the database pool or the event loop from everyone else.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Work = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Lane:
    running: int = 0
    waiting: deque[Work] = field(default_factory=deque)


class Lanes:
    """At most `max_running` events of one socket run at once and `max_waiting` wait, in arrival
    order; 0 turns a bound off. A socket that left drops what was waiting."""

    def __init__(self, max_running: int, max_waiting: int) -> None:
        self._max_running = max_running
        self._max_waiting = max_waiting
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def close(self) -> None:
        """Start nothing more: what waits is dropped, what runs finishes."""
        self.closed = True
        for lane in self._lanes.values():
            lane.waiting.clear()

    @property
    def running(self) -> int:
        return len(self._tasks)

    @property
    def sockets(self) -> int:
        """Sockets with an event running or waiting: an idle or departed socket holds nothing."""
        return len(self._lanes)

    @property
    def waiting(self) -> int:
        return sum(len(lane.waiting) for lane in self._lanes.values())

    def admit(self, sid: str, work: Work, still_there: Callable[[], bool]) -> bool:
        """Run or queue `work` for socket `sid`; False when its lane is full (nothing started)."""
        lane = self._lanes.get(sid)
        if lane is None:
            lane = self._lanes[sid] = _Lane()
        if self._max_running <= 0 or lane.running < self._max_running:
            self._start(sid, lane, work, still_there)
        elif self._max_waiting <= 0 or len(lane.waiting) < self._max_waiting:
            lane.waiting.append(work)
        else:
            return False
        return True

    def _start(self, sid: str, lane: _Lane, work: Work, still_there: Callable[[], bool]) -> None:
        lane.running += 1
        task = asyncio.ensure_future(work())
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, sid, lane, still_there))

    def _finished(
        self, task: asyncio.Task[None], sid: str, lane: _Lane, still_there: Callable[[], bool]
    ) -> None:
        self._tasks.discard(task)
        lane.running -= 1
        if lane.waiting and still_there() and not self.closed:
            self._start(sid, lane, lane.waiting.popleft(), still_there)
        elif not lane.running:
            self._lanes.pop(sid, None)
