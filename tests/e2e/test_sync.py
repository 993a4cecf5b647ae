"""``messages:sync``: catching up after a reconnect, per chat, without gaps or repeats.

README: every listed chat is answered (empty ``messages`` when nothing is new); of the caller's
other chats, those with messages after the caller's read pointer (from 0 without one).
"""

from __future__ import annotations

import uuid

import pytest

from .conftest import Connect
from .convo import pair, send_many, seqs, sync, wait_for_news
from .helpers import create_chat, failed, ok, send
from .tokens import new_user_id

pytestmark = pytest.mark.e2e


async def test_listed_chat_gives_the_messages_after_the_given_seq(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 5)

    got = await sync(p.seller, {"chats": {p.chat_id: 2}})

    assert got == {p.chat_id: {"chatId": p.chat_id, "messages": sent[2:], "hasMore": False}}


async def test_listed_chat_with_nothing_new_comes_with_empty_messages(connect: Connect) -> None:
    p = await pair(connect)
    await send_many(p.buyer, p.chat_id, 3)
    empty = await pair(connect, p.buyer_id)

    got = await sync(p.buyer, {"chats": {p.chat_id: 3, empty.chat_id: 0}})

    assert got == {
        p.chat_id: {"chatId": p.chat_id, "messages": [], "hasMore": False},
        empty.chat_id: {"chatId": empty.chat_id, "messages": [], "hasMore": False},
    }


async def test_listed_seq_counts_even_behind_the_read_pointer(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 4)
    ok(await p.seller.emit_ack("message:read", {"chatId": p.chat_id, "messageId": sent[3]["id"]}))

    got = await sync(p.seller, {"chats": {p.chat_id: 1}})

    assert got[p.chat_id]["messages"] == sent[1:]


async def test_unlisted_chats_count_from_the_read_pointer_or_from_zero(connect: Connect) -> None:
    me = new_user_id()
    me_client = await connect(me)
    read_part = await pair(connect, me)
    never_read = await pair(connect, me)
    all_read = await pair(connect, me)
    silent = await pair(connect, me)
    a = await send_many(read_part.seller, read_part.chat_id, 5)
    b = [
        await send(never_read.buyer, never_read.chat_id, "mine"),
        await send(never_read.seller, never_read.chat_id, "theirs"),
    ]
    c = await send_many(all_read.seller, all_read.chat_id, 2)
    ok(
        await me_client.emit_ack(
            "message:read", {"chatId": read_part.chat_id, "messageId": a[2]["id"]}
        )
    )
    ok(
        await me_client.emit_ack(
            "message:read", {"chatId": all_read.chat_id, "messageId": c[1]["id"]}
        )
    )

    got = await sync(me_client, {})

    assert set(got) == {read_part.chat_id, never_read.chat_id}, got
    assert got[read_part.chat_id]["messages"] == a[3:]
    assert got[never_read.chat_id]["messages"] == b
    assert silent.chat_id not in got
    assert await sync(me_client, {"chats": {}}) == got
    assert await sync(me_client, None) == got


async def test_listed_and_unlisted_chats_together(connect: Connect) -> None:
    me = new_user_id()
    me_client = await connect(me)
    listed = await pair(connect, me)
    unlisted = await pair(connect, me)
    a = await send_many(listed.seller, listed.chat_id, 3)
    b = await send_many(unlisted.seller, unlisted.chat_id, 2)

    got = await sync(me_client, {"chats": {listed.chat_id: 1}})

    assert got[listed.chat_id]["messages"] == a[1:]
    assert got[unlisted.chat_id]["messages"] == b
    assert len(got) == 2


async def test_has_more_is_per_chat_with_a_small_limit(connect: Connect) -> None:
    me = new_user_id()
    me_client = await connect(me)
    long = await pair(connect, me)
    short = await pair(connect, me)
    exact = await pair(connect, me)
    a = await send_many(long.seller, long.chat_id, 5)
    b = await send_many(short.seller, short.chat_id, 1)
    c = await send_many(exact.seller, exact.chat_id, 2)

    got = await sync(me_client, {"limit": 2})

    assert got[long.chat_id] == {"chatId": long.chat_id, "messages": a[:2], "hasMore": True}
    assert got[short.chat_id] == {"chatId": short.chat_id, "messages": b, "hasMore": False}
    assert got[exact.chat_id] == {"chatId": exact.chat_id, "messages": c, "hasMore": False}

    rest = await sync(me_client, {"chats": {long.chat_id: 2}, "limit": 2})
    assert rest[long.chat_id] == {"chatId": long.chat_id, "messages": a[2:4], "hasMore": True}
    last = await sync(me_client, {"chats": {long.chat_id: 4}, "limit": 2})
    assert last[long.chat_id] == {"chatId": long.chat_id, "messages": a[4:], "hasMore": False}


async def test_a_chat_of_others_is_forbidden(connect: Connect) -> None:
    p = await pair(connect)
    await send_many(p.buyer, p.chat_id, 2)
    stranger = await connect()
    own = await create_chat(stranger, new_user_id(), stranger.user_id or 0)

    ack = await stranger.emit_ack("messages:sync", {"chats": {own["id"]: 0, p.chat_id: 0}})

    failed(ack, "FORBIDDEN")


async def test_an_unknown_chat_is_not_found(connect: Connect) -> None:
    client = await connect()

    failed(await client.emit_ack("messages:sync", {"chats": {str(uuid.uuid4()): 0}}), "NOT_FOUND")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"limit": 0}, id="limit-0"),
        pytest.param({"limit": 101}, id="limit-101"),
        pytest.param({"limit": "5"}, id="limit-string"),
        pytest.param({"chats": {"not-a-uuid": 0}}, id="bad-chat-id"),
        pytest.param({"chats": [1, 2]}, id="chats-array"),
    ],
)
async def test_bad_sync_payload_is_refused(connect: Connect, payload: object) -> None:
    p = await pair(connect)

    failed(await p.buyer.emit_ack("messages:sync", payload), "VALIDATION_ERROR")


async def test_negative_or_fractional_seq_is_refused(connect: Connect) -> None:
    p = await pair(connect)

    for seq in (-1, 1.5, "2"):
        failed(
            await p.buyer.emit_ack("messages:sync", {"chats": {p.chat_id: seq}}),
            "VALIDATION_ERROR",
        )


async def test_reconnecting_client_misses_nothing_and_fetches_nothing_twice(
    connect: Connect,
) -> None:
    p = await pair(connect)
    seller_phone = await connect(p.seller_id)
    before = [
        await send(p.buyer, p.chat_id, "are you there?"),
        await send(p.seller, p.chat_id, "yes"),
        await send(p.buyer, p.chat_id, "price?"),
    ]
    seen = await wait_for_news(p.seller, p.chat_id, 3)
    assert seen == before
    last_seen = max(seqs(seen))
    await p.seller.close()

    missed = [
        await send(p.buyer, p.chat_id, "hello?"),
        await send(seller_phone, p.chat_id, "answered from the phone"),
        await send(p.buyer, p.chat_id, "ok, 40?"),
        await send(p.buyer, p.chat_id, "deal?"),
    ]
    back = await connect(p.seller_id)
    fetched = (await sync(back, {"chats": {p.chat_id: last_seen}}))[p.chat_id]["messages"]

    assert fetched == missed
    assert seqs(seen + fetched) == list(range(1, 8))
    after = await send(p.buyer, p.chat_id, "still there?")
    assert after["seq"] == 8
    assert await wait_for_news(back, p.chat_id, 1) == [after]
