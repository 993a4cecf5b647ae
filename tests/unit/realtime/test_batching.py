from __future__ import annotations

import asyncio

import pytest

from marketplace_chat.realtime.batching import Coalescer


async def test_calls_made_during_a_run_share_the_next_one_and_get_their_own_result() -> None:
    runs: list[list[int]] = []

    async def double(items: list[int]) -> list[int]:
        runs.append(items)
        await asyncio.sleep(0.01)
        return [2 * i for i in items]

    batcher: Coalescer[int, int] = Coalescer(double, max_batch=4)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    assert results == [2 * i for i in range(10)]
    assert runs == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert await batcher.submit(21) == 42  # a lone call later goes out on its own
    assert runs[-1] == [21]


async def test_a_failed_run_fails_its_callers_and_not_the_next_run() -> None:
    async def flaky(items: list[str]) -> list[str]:
        await asyncio.sleep(0)
        if "bad" in items:
            raise RuntimeError("backend down")
        return [s.upper() for s in items]

    batcher: Coalescer[str, str] = Coalescer(flaky)
    first = asyncio.ensure_future(batcher.submit("a"))
    await asyncio.sleep(0)  # `a` is in flight; the next two share a run
    together = [asyncio.ensure_future(batcher.submit(s)) for s in ("bad", "b")]
    assert await first == "A"
    for future in together:
        with pytest.raises(RuntimeError, match="backend down"):
            await future
    assert await batcher.submit("c") == "C"
