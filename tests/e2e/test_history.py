"""``seq`` (1, 2, 3… per chat, gapless) and ``messages:history`` paging."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from .conftest import Connect
from .convo import (
    history,
    history_page,
    message_rows,
    pair,
    send_concurrently,
    send_many,
    seqs,
    wait_for_news,
)
from .helpers import assert_message_shape, failed, send

pytestmark = pytest.mark.e2e


# -- seq -------------------------------------------------------------------------------------


async def test_seq_counts_each_chat_from_one_in_acks_and_message_new(connect: Connect) -> None:
    p = await pair(connect)
    other = await pair(connect, p.buyer_id)

    first = [
        await send(p.buyer, p.chat_id, "a"),
        await send(p.seller, p.chat_id, "b"),
        await send(p.buyer, p.chat_id, "c"),
    ]
    in_other_chat = await send(other.buyer, other.chat_id, "elsewhere")

    assert seqs(first) == [1, 2, 3]
    assert in_other_chat["seq"] == 1
    for client in (p.buyer, p.seller):
        await client.wait_for("message:new", lambda m: m["seq"] == 3)
        got = client.events("message:new", lambda m: m["chatId"] == p.chat_id)
        assert got == first, f"{client.name}: {got}"


async def test_seq_is_gapless_under_30_concurrent_sends_from_both_sides(
    connect: Connect, db: asyncpg.Pool
) -> None:
    p = await pair(connect)

    sent = await asyncio.gather(
        *(
            send(p.buyer if i % 2 else p.seller, p.chat_id, f"burst {i}", clientMessageId=f"b{i}")
            for i in range(30)
        )
    )

    assert sorted(seqs(sent)) == list(range(1, 31))
    by_id = {m["id"]: m for m in sent}
    assert len(by_id) == 30
    for client in (p.buyer, p.seller):
        news = await wait_for_news(client, p.chat_id, 30)
        assert sorted(seqs(news)) == list(range(1, 31)), f"{client.name}: {seqs(news)}"
        assert {m["id"]: m for m in news} == by_id
    rows = await message_rows(db, p.chat_id)
    assert [r["seq"] for r in rows] == list(range(1, 31))
    assert {str(r["id"]): r["seq"] for r in rows} == {m["id"]: m["seq"] for m in sent}
    await p.seller.assert_no_event("message:new", within=0.5)


# -- messages:history ------------------------------------------------------------------------


async def test_history_is_chronological_and_equals_what_was_sent(connect: Connect) -> None:
    p = await pair(connect)
    sent = [
        await send(p.buyer, p.chat_id, "one"),
        await send(p.seller, p.chat_id, "two"),
        await send(p.buyer, p.chat_id, "three", productId=5, clientMessageId="x-3"),
    ]

    for client in (p.buyer, p.seller):
        messages, has_more = await history_page(client, p.chat_id)
        for message in messages:
            assert_message_shape(message)
        assert messages == sent
        assert has_more is False


async def test_history_of_an_empty_chat(connect: Connect) -> None:
    p = await pair(connect)

    assert await history_page(p.buyer, p.chat_id) == ([], False)
    assert await history_page(p.buyer, p.chat_id, limit=1) == ([], False)


async def test_history_default_is_the_newest_50(connect: Connect) -> None:
    p = await pair(connect)
    await send_concurrently(p.buyer, p.chat_id, 55)

    messages, has_more = await history_page(p.buyer, p.chat_id)

    assert seqs(messages) == list(range(6, 56))
    assert has_more is True


async def test_history_limit_bounds_are_accepted(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 3)

    assert await history_page(p.buyer, p.chat_id, limit=1) == ([sent[-1]], True)
    assert await history_page(p.buyer, p.chat_id, limit=100) == (sent, False)


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(0, id="0"),
        pytest.param(101, id="101"),
        pytest.param(-1, id="negative"),
        pytest.param("5", id="string"),
        pytest.param(5.5, id="fraction"),
        pytest.param(True, id="bool"),
    ],
)
async def test_history_limit_out_of_range_or_of_wrong_type_is_refused(
    connect: Connect, limit: Any
) -> None:
    p = await pair(connect)
    await send_many(p.buyer, p.chat_id, 2)

    error = failed(await history(p.buyer, p.chat_id, limit=limit), "VALIDATION_ERROR")

    assert "limit" in error.lower()


async def test_exactly_limit_messages_have_no_more(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 3)

    assert await history_page(p.buyer, p.chat_id, limit=3) == (sent, False)
    assert await history_page(p.buyer, p.chat_id, limit=3, after=sent[0]["id"]) == (
        sent[1:],
        False,
    )
    assert await history_page(p.buyer, p.chat_id, limit=2, before=sent[2]["id"]) == (
        sent[:2],
        False,
    )


async def test_limit_plus_one_messages_have_more(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.seller, p.chat_id, 4)

    assert await history_page(p.buyer, p.chat_id, limit=3) == (sent[1:], True)
    assert await history_page(p.buyer, p.chat_id, limit=2, after=sent[0]["id"]) == (
        sent[1:3],
        True,
    )
    assert await history_page(p.buyer, p.chat_id, limit=2, before=sent[3]["id"]) == (
        sent[1:3],
        True,
    )


async def test_before_the_first_and_after_the_last_are_empty(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 3)

    assert await history_page(p.buyer, p.chat_id, before=sent[0]["id"]) == ([], False)
    assert await history_page(p.buyer, p.chat_id, after=sent[-1]["id"]) == ([], False)


async def test_paging_back_with_before_gives_every_message_once(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_concurrently(p.buyer, p.chat_id, 10)

    pages: list[list[int]] = []
    messages, has_more = await history_page(p.buyer, p.chat_id, limit=3)
    pages.append(seqs(messages))
    while has_more:
        messages, has_more = await history_page(
            p.buyer, p.chat_id, limit=3, before=messages[0]["id"]
        )
        pages.append(seqs(messages))

    assert pages == [[8, 9, 10], [5, 6, 7], [2, 3, 4], [1]]
    assert sorted(s for page in pages for s in page) == seqs(sent)


async def test_paging_forward_with_after_gives_every_message_once(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_concurrently(p.seller, p.chat_id, 7)

    collected: list[Any] = []
    messages, has_more = await history_page(p.buyer, p.chat_id, limit=3, after=sent[0]["id"])
    collected += messages
    while has_more:
        messages, has_more = await history_page(
            p.buyer, p.chat_id, limit=3, after=messages[-1]["id"]
        )
        collected += messages

    assert collected == sent[1:]


async def test_before_and_after_together_are_refused(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 3)

    ack = await history(p.buyer, p.chat_id, before=sent[2]["id"], after=sent[0]["id"])

    error = failed(ack, "VALIDATION_ERROR")
    assert "before" in error.lower() or "after" in error.lower()


@pytest.mark.parametrize("anchor", ["before", "after"])
async def test_unknown_message_id_as_anchor_is_not_found(connect: Connect, anchor: str) -> None:
    p = await pair(connect)
    await send_many(p.buyer, p.chat_id, 2)

    failed(await history(p.buyer, p.chat_id, **{anchor: str(uuid.uuid4())}), "NOT_FOUND")


@pytest.mark.parametrize("anchor", ["before", "after"])
async def test_message_of_another_chat_as_anchor_is_not_found(
    connect: Connect, anchor: str
) -> None:
    p = await pair(connect)
    other = await pair(connect, p.buyer_id)
    await send_many(p.buyer, p.chat_id, 2)
    foreign = await send(other.buyer, other.chat_id, "not in that chat")

    failed(await history(p.buyer, p.chat_id, **{anchor: foreign["id"]}), "NOT_FOUND")


async def test_non_participant_is_forbidden(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 2)
    stranger = await connect()

    failed(await history(stranger, p.chat_id), "FORBIDDEN")
    failed(await history(stranger, p.chat_id, after=sent[0]["id"]), "FORBIDDEN")


async def test_unknown_chat_is_not_found(connect: Connect) -> None:
    client = await connect()

    failed(await history(client, str(uuid.uuid4())), "NOT_FOUND")


async def test_history_without_chat_id_is_refused(connect: Connect) -> None:
    client = await connect()

    error = failed(await client.emit_ack("messages:history", {"limit": 5}), "VALIDATION_ERROR")

    assert "chatid" in error.lower()
