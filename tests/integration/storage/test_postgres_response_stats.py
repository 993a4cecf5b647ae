"""Response statistics from the stored messages: the chats a buyer started inside the window,
the seller's first message after the buyer's first, median and p90 of the waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketplace_chat.storage.postgres import PostgresStorage

from ..helpers import new_user_id, send

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(days=30)


async def chat_of(storage: PostgresStorage, seller: int, started: datetime) -> tuple[str, int]:
    buyer = new_user_id()
    chat, _ = await storage.create_chat(buyer, seller, None, buyer, started)
    return chat.id, buyer


async def test_first_replies_of_the_chats_buyers_started_in_the_window(
    storage: PostgresStorage,
) -> None:
    seller = new_user_id()
    t0 = NOW - timedelta(days=10)

    async def asked(wait_s: float | None, *, extra_buyer_message: bool = False) -> None:
        chat_id, buyer = await chat_of(storage, seller, t0)
        await send(storage, chat_id, buyer, "is it available?", when=t0)
        if extra_buyer_message:
            await send(storage, chat_id, buyer, "hello?", when=t0 + timedelta(seconds=30))
        if wait_s is not None:
            await send(storage, chat_id, seller, "yes", when=t0 + timedelta(seconds=wait_s))
            await send(storage, chat_id, seller, "later", when=t0 + timedelta(seconds=wait_s * 2))

    await asked(60.5)
    await asked(3600, extra_buyer_message=True)
    await asked(None)
    await asked(2 * 86_400)
    started_by_seller, buyer = await chat_of(storage, seller, t0)
    await send(storage, started_by_seller, seller, "I have one for you", when=t0)
    await send(storage, started_by_seller, buyer, "thanks", when=t0 + timedelta(seconds=5))
    old, old_buyer = await chat_of(storage, seller, NOW - timedelta(days=40))
    await send(storage, old, old_buyer, "old", when=NOW - timedelta(days=40))
    await send(storage, old, seller, "reply", when=NOW - timedelta(days=1))

    stats = await storage.response_stats(seller, SINCE)
    assert (stats.chats, stats.answered, stats.answered_within_24h) == (4, 3, 2)
    assert stats.median_first_reply_s == pytest.approx(3600.0)
    assert stats.p90_first_reply_s == pytest.approx(3600 + (172_800 - 3600) * 0.8)


async def test_nothing_answered_gives_null_median_and_p90(storage: PostgresStorage) -> None:
    seller = new_user_id()
    chat_id, buyer = await chat_of(storage, seller, NOW - timedelta(days=1))
    await send(storage, chat_id, buyer, "anyone?", when=NOW - timedelta(days=1))
    stats = await storage.response_stats(seller, SINCE)
    assert (stats.chats, stats.answered, stats.answered_within_24h) == (1, 0, 0)
    assert stats.median_first_reply_s is None
    assert stats.p90_first_reply_s is None
    empty = await storage.response_stats(new_user_id(), SINCE)
    assert (empty.chats, empty.median_first_reply_s) == (0, None)
