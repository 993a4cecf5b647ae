from __future__ import annotations

import asyncio

import pytest

from marketplace_chat.batching import Coalescer


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


async def test_posted_items_are_handled_in_order_and_settled_waits_for_them() -> None:
    handled: list[list[str]] = []

    async def record(items: list[str]) -> list[None]:
        await asyncio.sleep(0.01)
        handled.append(items)
        return [None] * len(items)

    batcher: Coalescer[str, None] = Coalescer(record)
    for item in "abc":
        batcher.post(item)
    await asyncio.sleep(0)
    batcher.post("d")  # arrives while the first run is in flight
    await batcher.settled()
    assert handled == [["a", "b", "c"], ["d"]]


async def test_a_failed_run_of_posted_items_does_not_stop_later_ones() -> None:
    handled: list[str] = []

    async def flaky(items: list[str]) -> list[None]:
        if "bad" in items:
            raise RuntimeError("backend down")
        handled.extend(items)
        return [None] * len(items)

    batcher: Coalescer[str, None] = Coalescer(flaky)
    batcher.post("bad")
    await batcher.settled()
    batcher.post("good")
    await batcher.settled()
    assert handled == ["good"]
