"""Work that arrives while one round trip is in flight shares the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

In = TypeVar("In")
Out = TypeVar("Out")

log = structlog.get_logger("marketplace_chat")


class Coalescer(Generic[In, Out]):
    """Runs `handle` on the items that arrived while the previous run was in flight, at most
    `max_batch` at a time. A burst of N items costs a few round trips instead of N, and a lone
    item goes out at once.

    `submit` waits for its own item's result (or the run's exception); `post` hands an item over
    without waiting, and a run that fails with such items in it is logged.
    """

    def __init__(
        self, handle: Callable[[list[In]], Awaitable[Sequence[Out]]], max_batch: int = 500
    ) -> None:
        self._handle = handle
        self._max = max_batch
        self._queue: list[tuple[In, asyncio.Future[Out] | None]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._enqueue(item, future)
        return await future

    def post(self, item: In) -> None:
        self._enqueue(item, None)

    async def settled(self) -> None:
        """Wait until everything handed over so far has been handled (or has failed)."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    def _enqueue(self, item: In, future: asyncio.Future[Out] | None) -> None:
        self._queue.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            try:
                results = await self._handle([item for item, _ in batch])
            except BaseException as exc:  # every caller must hear how its call ended
                for _, future in batch:
                    if future is not None and not future.done():
                        future.set_exception(exc)
                if any(future is None for _, future in batch):
                    log.warning("batched_work_failed", error=repr(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future is not None and not future.done():
                    future.set_result(result)
