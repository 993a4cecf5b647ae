"""Read pointers (``message:read``) and ``unreadCount``.

``unreadCount`` counts the other participant's messages after the caller's read pointer; the
pointer only moves forward, and a move is told to every socket of both participants.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from .conftest import Connect
from .convo import Pair, chats_page, pair, send_many
from .helpers import failed, ok, parse_iso, send
from .jsclient import JsClient

pytestmark = pytest.mark.e2e

RECEIPT_KEYS = {"chatId", "messageId", "seq", "readAt"}


async def _read(client: JsClient, chat_id: str, message_id: str) -> dict[str, Any]:
    data = ok(await client.emit_ack("message:read", {"chatId": chat_id, "messageId": message_id}))
    assert isinstance(data, dict)
    assert set(data) == RECEIPT_KEYS, data
    parse_iso(data["readAt"])
    return data


async def _unread(client: JsClient, chat_id: str) -> tuple[int, int]:
    """The caller's unreadCount of the chat in ``chats:list`` and in ``chat:join``."""
    chats, _ = await chats_page(client, limit=100)
    [listed] = [c for c in chats if c["id"] == chat_id]
    joined = ok(await client.emit_ack("chat:join", {"chatId": chat_id}))
    return listed["unreadCount"], joined["unreadCount"]


async def test_read_tells_every_socket_of_both_participants(
    connect: Connect, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    buyer_2 = await connect(p.buyer_id)
    seller_2 = await connect(p.seller_id)
    stranger = await connect()
    sent = await send_many(p.buyer, p.chat_id, 3)

    receipt = await _read(p.seller, p.chat_id, sent[1]["id"])

    assert receipt["chatId"] == p.chat_id
    assert receipt["messageId"] == sent[1]["id"]
    assert receipt["seq"] == 2
    told = {**receipt, "userId": p.seller_id}
    for client in (p.buyer, buyer_2, p.seller, seller_2):
        assert await client.wait_for("message:read") == told
    await stranger.assert_no_event("message:read", within=0.5, since=0)
    for client in (p.buyer, buyer_2, p.seller, seller_2):
        assert len(client.events("message:read")) == 1, client.log
    row = await db.fetchrow(
        "SELECT seq, message_id FROM chat.read_pointers WHERE chat_id = $1 AND user_id = $2",
        p.chat_id,
        p.seller_id,
    )
    assert row is not None
    assert (row["seq"], str(row["message_id"])) == (2, sent[1]["id"])


async def test_pointer_never_moves_back(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 4)
    current = await _read(p.seller, p.chat_id, sent[2]["id"])
    await p.buyer.wait_for("message:read")
    marks = (p.buyer.mark(), p.seller.mark())

    older = await _read(p.seller, p.chat_id, sent[0]["id"])
    same = await _read(p.seller, p.chat_id, sent[2]["id"])

    assert older == current
    assert same == current
    await p.buyer.assert_no_event("message:read", within=0.7, since=marks[0])
    await p.seller.assert_no_event("message:read", within=0.0, since=marks[1])
    assert await _unread(p.seller, p.chat_id) == (1, 1)

    forward = await _read(p.seller, p.chat_id, sent[3]["id"])
    assert forward["seq"] == 4
    assert await p.buyer.wait_for("message:read", since=marks[0]) == {
        **forward,
        "userId": p.seller_id,
    }
    assert await _unread(p.seller, p.chat_id) == (0, 0)


async def test_unread_counts_only_the_partners_messages_after_the_pointer(
    connect: Connect,
) -> None:
    p = await pair(connect)
    b1 = await send(p.buyer, p.chat_id, "b1")  # seq 1
    await send(p.seller, p.chat_id, "s1")  # seq 2
    b2 = await send(p.buyer, p.chat_id, "b2")  # seq 3
    await send(p.buyer, p.chat_id, "b3")  # seq 4
    s2 = await send(p.seller, p.chat_id, "s2")  # seq 5
    await send(p.buyer, p.chat_id, "b4")  # seq 6

    assert await _unread(p.seller, p.chat_id) == (4, 4)
    assert await _unread(p.buyer, p.chat_id) == (2, 2)

    await _read(p.seller, p.chat_id, b1["id"])
    assert await _unread(p.seller, p.chat_id) == (3, 3)
    await _read(p.seller, p.chat_id, b2["id"])
    assert await _unread(p.seller, p.chat_id) == (2, 2)
    await _read(p.seller, p.chat_id, s2["id"])  # the pointer may rest on one's own message
    assert await _unread(p.seller, p.chat_id) == (1, 1)
    assert await _unread(p.buyer, p.chat_id) == (2, 2)

    await send(p.seller, p.chat_id, "s3")  # seq 7
    assert await _unread(p.seller, p.chat_id) == (1, 1)
    assert await _unread(p.buyer, p.chat_id) == (3, 3)
    await _read(p.buyer, p.chat_id, s2["id"])
    assert await _unread(p.buyer, p.chat_id) == (1, 1)


async def _sender(
    p: Pair, client: JsClient, reader: JsClient, count: int, every: int
) -> tuple[list[Any], list[tuple[int, dict[str, Any]]]]:
    """Sends ``count`` messages at once; ``reader`` reads every ``every``-th as soon as it is
    acknowledged. Returns the messages and (read message's seq, read ack) pairs."""
    reads: list[tuple[int, dict[str, Any]]] = []

    async def one(i: int) -> Any:
        message = await send(client, p.chat_id, f"{client.name}-{i}")
        if i % every == 0:
            reads.append((message["seq"], await _read(reader, p.chat_id, message["id"])))
        return message

    return list(await asyncio.gather(*(one(i) for i in range(count)))), reads


async def test_unread_counts_stay_right_under_concurrent_sends_and_reads(
    connect: Connect,
) -> None:
    p = await pair(connect)

    (from_buyer, seller_reads), (from_seller, buyer_reads) = await asyncio.gather(
        _sender(p, p.buyer, p.seller, 20, 3), _sender(p, p.seller, p.buyer, 12, 2)
    )

    all_seqs = sorted(m["seq"] for m in from_buyer + from_seller)
    assert all_seqs == list(range(1, 33))
    for read_seq, receipt in seller_reads + buyer_reads:
        assert receipt["seq"] >= read_seq, (read_seq, receipt)
    seller_pointer = max(seq for seq, _ in seller_reads)
    buyer_pointer = max(seq for seq, _ in buyer_reads)
    # Reading the first message again acks the pointer as it stands, which must be the furthest.
    assert (await _read(p.seller, p.chat_id, from_buyer[0]["id"]))["seq"] == seller_pointer
    assert (await _read(p.buyer, p.chat_id, from_seller[0]["id"]))["seq"] == buyer_pointer
    seller_unread = sum(1 for m in from_buyer if m["seq"] > seller_pointer)
    buyer_unread = sum(1 for m in from_seller if m["seq"] > buyer_pointer)
    assert await _unread(p.seller, p.chat_id) == (seller_unread, seller_unread)
    assert await _unread(p.buyer, p.chat_id) == (buyer_unread, buyer_unread)
    told = await p.buyer.wait_for(
        "message:read", lambda r: r["userId"] == p.seller_id and r["seq"] == seller_pointer
    )
    assert told["seq"] == seller_pointer


@pytest.mark.parametrize("which", ["unknown", "another-chats"])
async def test_reading_a_message_not_of_the_chat_is_not_found(connect: Connect, which: str) -> None:
    p = await pair(connect)
    other = await pair(connect, p.buyer_id)
    sent = await send(p.buyer, p.chat_id, "here")
    current = await _read(p.seller, p.chat_id, sent["id"])
    foreign = await send(other.buyer, other.chat_id, "there")
    message_id = str(uuid.uuid4()) if which == "unknown" else foreign["id"]
    mark = p.buyer.mark()

    ack = await p.seller.emit_ack("message:read", {"chatId": p.chat_id, "messageId": message_id})

    failed(ack, "NOT_FOUND")
    assert await _read(p.seller, p.chat_id, sent["id"]) == current
    await p.buyer.assert_no_event("message:read", within=0.5, since=mark)


async def test_non_participant_cannot_read(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send(p.buyer, p.chat_id, "private")
    stranger = await connect()

    ack = await stranger.emit_ack("message:read", {"chatId": p.chat_id, "messageId": sent["id"]})

    failed(ack, "FORBIDDEN")
    await p.buyer.assert_no_event("message:read", within=0.5, since=0)


async def test_read_without_message_id_is_refused(connect: Connect) -> None:
    p = await pair(connect)

    error = failed(
        await p.seller.emit_ack("message:read", {"chatId": p.chat_id}), "VALIDATION_ERROR"
    )

    assert "messageid" in error.lower()
