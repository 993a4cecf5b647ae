"""Calls that arrive while one round trip is in flight share the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Coalescer(Generic[In, Out]):
    """Runs `handle` on the items submitted while the previous run was in flight, at most
    `max_batch` at a time; each caller gets its own item's result (or the run's exception).

    A burst of N calls costs a few round trips instead of N, and a lone call goes out at once.
    """

    def __init__(
        self, handle: Callable[[list[In]], Awaitable[Sequence[Out]]], max_batch: int = 500
    ) -> None:
        self._handle = handle
        self._max = max_batch
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._queue.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            try:
                results = await self._handle([item for item, _ in batch])
            except BaseException as exc:  # every caller must hear how its call ended
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
