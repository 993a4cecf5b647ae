"""``message:send``: a repeated ``clientMessageId`` from the same sender in the same chat returns
the first message: no second row, no seq used up. A retry of a recent message publishes it again
(the node that stored it may have died before telling anyone), always with the same ``id``, so a
client that keeps one message per ``id`` sees each message once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from .conftest import Connect
from .convo import message_rows, pair, seqs, wait_for_news
from .helpers import ok, send

pytestmark = pytest.mark.e2e


async def test_retry_returns_the_first_message_and_uses_no_seq(
    connect: Connect, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    first = await send(p.buyer, p.chat_id, "original", clientMessageId="cm-1")
    between = await send(p.seller, p.chat_id, "reply")

    retried = await send(p.buyer, p.chat_id, "edited on retry", productId=4, clientMessageId="cm-1")
    after = await send(p.buyer, p.chat_id, "next")

    assert retried == first
    assert retried["text"] == "original"
    assert retried["productId"] is None
    assert (between["seq"], after["seq"]) == (2, 3)
    rows = await message_rows(db, p.chat_id)
    assert [(r["seq"], r["client_message_id"]) for r in rows] == [(1, "cm-1"), (2, None), (3, None)]
    for client in (p.buyer, p.seller):
        news = await wait_for_news(client, p.chat_id, 4)
        # The retry's repeat comes between the reply and the next message, as the same message.
        assert news == [first, between, first, after], f"{client.name}: {news}"
    await p.seller.assert_no_event("message:new", within=0.5)
    chat = ok(await p.seller.emit_ack("chat:join", {"chatId": p.chat_id}))
    assert chat["productId"] is None


async def test_same_id_from_the_other_participant_is_a_new_message(
    connect: Connect, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    mine = await send(p.buyer, p.chat_id, "mine", clientMessageId="shared")

    theirs = await send(p.seller, p.chat_id, "theirs", clientMessageId="shared")

    assert theirs["id"] != mine["id"]
    assert (theirs["seq"], theirs["senderId"], theirs["text"]) == (2, p.seller_id, "theirs")
    assert len(await message_rows(db, p.chat_id)) == 2
    assert len(await wait_for_news(p.buyer, p.chat_id, 2)) == 2


async def test_same_id_in_another_chat_is_a_new_message(connect: Connect, db: asyncpg.Pool) -> None:
    p = await pair(connect)
    other = await pair(connect, p.buyer_id)
    here = await send(p.buyer, p.chat_id, "here", clientMessageId="same")

    there = await send(other.buyer, other.chat_id, "there", clientMessageId="same")

    assert there["id"] != here["id"]
    assert (there["chatId"], there["seq"], there["text"]) == (other.chat_id, 1, "there")
    assert len(await message_rows(db, p.chat_id)) == 1
    assert len(await message_rows(db, other.chat_id)) == 1
    assert len(await wait_for_news(other.seller, other.chat_id, 1)) == 1
    await p.seller.assert_no_event("message:new", within=0.3, predicate=lambda m: m["seq"] > 1)


async def test_ten_identical_sends_racing_on_two_sockets_make_one_message(
    connect: Connect, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    buyer_2 = await connect(p.buyer_id)

    acks = await asyncio.gather(
        *(
            send(p.buyer if i % 2 else buyer_2, p.chat_id, f"race {i}", clientMessageId="race")
            for i in range(10)
        )
    )

    assert all(ack == acks[0] for ack in acks), acks
    assert acks[0]["seq"] == 1
    rows = await message_rows(db, p.chat_id)
    assert [(str(r["id"]), r["seq"]) for r in rows] == [(acks[0]["id"], 1)]
    for client in (p.buyer, buyer_2, p.seller):
        news = await wait_for_news(client, p.chat_id, 10)
        assert news, f"{client.name}: {client.log}"
        assert all(m == acks[0] for m in news), f"{client.name}: {news}"
    assert (await send(p.seller, p.chat_id, "after the race"))["seq"] == 2


async def test_repeats_mixed_into_a_burst_keep_seq_gapless(
    connect: Connect, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    buyer_2 = await connect(p.buyer_id)

    acks = await asyncio.gather(
        *(send(p.buyer, p.chat_id, f"dup {i}", clientMessageId="dup") for i in range(5)),
        *(send(buyer_2, p.chat_id, f"dup {i}", clientMessageId="dup") for i in range(5)),
        *(send(p.buyer, p.chat_id, f"new {i}", clientMessageId=f"new-{i}") for i in range(8)),
        *(send(p.seller, p.chat_id, f"seller {i}") for i in range(4)),
    )

    duplicates = acks[:10]
    assert all(ack == duplicates[0] for ack in duplicates), duplicates
    distinct = {a["id"]: a["seq"] for a in acks}
    assert sorted(distinct.values()) == list(range(1, 14))
    rows = await message_rows(db, p.chat_id)
    assert [r["seq"] for r in rows] == list(range(1, 14))
    news = await wait_for_news(p.seller, p.chat_id, 13 + 9)
    assert len(news) == 13 + 9, news  # every repeat of the duplicate is the same message
    assert sorted(set(seqs(news))) == list(range(1, 14)), news
    assert {m["id"] for m in news if m["seq"] == duplicates[0]["seq"]} == {duplicates[0]["id"]}
