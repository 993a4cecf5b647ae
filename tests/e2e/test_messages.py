"""message:send, message:new, acks, and the ``exception`` event."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from .conftest import Connect
from .helpers import assert_message_shape, create_chat, failed, ok, send
from .jsclient import JsClient
from .tokens import new_user_id

pytestmark = pytest.mark.e2e


async def _rows(db: asyncpg.Pool, chat_id: str) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT id, seq, sender_id, text, product_id, client_message_id"
            " FROM chat.messages WHERE chat_id = $1 ORDER BY seq",
            chat_id,
        )
    )


async def _pair(connect: Connect, buyer_id: int) -> tuple[JsClient, JsClient, dict[str, Any]]:
    seller_id = new_user_id()
    buyer = await connect(buyer_id)
    seller = await connect(seller_id)
    chat = await create_chat(buyer, buyer_id, seller_id)
    return buyer, seller, chat


async def test_send_returns_the_message_committed_before_the_ack(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    buyer, _, chat = await _pair(connect, user_id)

    message = await send(buyer, chat["id"], "Is it still available?", clientMessageId="m-1")

    assert_message_shape(message)
    assert message["chatId"] == chat["id"]
    assert message["senderId"] == user_id
    assert message["text"] == "Is it still available?"
    assert message["seq"] == 1
    assert message["productId"] is None
    assert message["clientMessageId"] == "m-1"
    [row] = await _rows(db, chat["id"])
    assert (str(row["id"]), row["seq"], row["sender_id"], row["text"]) == (
        message["id"],
        1,
        user_id,
        "Is it still available?",
    )


async def test_text_is_trimmed(connect: Connect, db: asyncpg.Pool, user_id: int) -> None:
    buyer, _, chat = await _pair(connect, user_id)

    message = await send(buyer, chat["id"], "  \n hello there \t ")

    assert message["text"] == "hello there"
    [row] = await _rows(db, chat["id"])
    assert row["text"] == "hello there"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   \n\t ", id="whitespace"),
        pytest.param("x" * 4001, id="4001-chars"),
        pytest.param("😀" * 4001, id="4001-code-points"),
    ],
)
async def test_empty_or_over_long_text_is_validation_error(
    connect: Connect, db: asyncpg.Pool, user_id: int, text: str
) -> None:
    buyer, _, chat = await _pair(connect, user_id)

    error = failed(
        await buyer.emit_ack("message:send", {"chatId": chat["id"], "text": text}),
        "VALIDATION_ERROR",
    )

    assert "text" in error.lower()
    assert await _rows(db, chat["id"]) == []


@pytest.mark.parametrize(
    "text", [pytest.param("x" * 4000, id="ascii"), pytest.param("😀" * 4000, id="emoji")]
)
async def test_text_of_max_length_in_code_points_is_accepted(
    connect: Connect, user_id: int, text: str
) -> None:
    buyer, _, chat = await _pair(connect, user_id)

    message = await send(buyer, chat["id"], text)

    assert message["text"] == text


async def test_message_new_reaches_every_socket_of_both_participants_once(
    connect: Connect, user_id: int
) -> None:
    seller_id = new_user_id()
    buyer_sender = await connect(user_id)
    buyer_other = await connect(user_id)
    seller_joined = await connect(seller_id)
    seller_not_joined = await connect(seller_id)
    stranger = await connect()
    chat = await create_chat(buyer_sender, user_id, seller_id)
    ok(await seller_joined.emit_ack("chat:join", {"chatId": chat["id"]}))

    message = await send(buyer_sender, chat["id"], "hi")

    everyone = (buyer_sender, buyer_other, seller_joined, seller_not_joined)
    for client in everyone:
        assert await client.wait_for("message:new") == message
    await stranger.assert_no_event("message:new", within=1.0, since=0)
    for client in everyone:
        assert len(client.events("message:new")) == 1, f"{client.name}: {client.log}"


async def test_partner_is_told_only_after_the_commit(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    buyer, seller, chat = await _pair(connect, user_id)

    await buyer.emit("message:send", {"chatId": chat["id"], "text": "committed?"})
    told = await seller.wait_for("message:new")

    row = await db.fetchrow("SELECT text FROM chat.messages WHERE id = $1", told["id"])
    assert row is not None
    assert row["text"] == "committed?"


async def test_seq_numbers_messages_without_gaps_under_concurrency(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    buyer, seller, chat = await _pair(connect, user_id)

    sent = await asyncio.gather(
        *(send(client, chat["id"], f"m{i}") for i in range(6) for client in (buyer, seller))
    )

    assert sorted(m["seq"] for m in sent) == list(range(1, 13))
    assert [row["seq"] for row in await _rows(db, chat["id"])] == list(range(1, 13))


async def test_product_id_updates_the_chat_context(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    buyer, seller, chat = await _pair(connect, user_id)

    message = await send(buyer, chat["id"], "what about this one?", productId=99)

    assert message["productId"] == 99
    context = await db.fetchval(
        "SELECT product_id FROM chat.chat_context WHERE chat_id = $1", chat["id"]
    )
    assert context == 99
    assert ok(await seller.emit_ack("chat:join", {"chatId": chat["id"]}))["productId"] == 99


async def test_repeated_client_message_id_returns_the_first_message(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    buyer, seller, chat = await _pair(connect, user_id)
    first = await send(buyer, chat["id"], "once", clientMessageId="retry-1")
    await seller.wait_for("message:new")

    again = await send(buyer, chat["id"], "once, retried", clientMessageId="retry-1")

    assert again == first
    assert len(await _rows(db, chat["id"])) == 1
    await seller.assert_no_event("message:new", within=1.0)
    assert len(seller.events("message:new")) == 1
    assert len(buyer.events("message:new")) == 1


async def test_same_client_message_id_of_the_other_sender_is_a_new_message(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    buyer, seller, chat = await _pair(connect, user_id)
    first = await send(buyer, chat["id"], "mine", clientMessageId="same-id")

    second = await send(seller, chat["id"], "theirs", clientMessageId="same-id")

    assert second["id"] != first["id"]
    assert second["seq"] == 2
    assert len(await _rows(db, chat["id"])) == 2


async def test_non_participant_cannot_send(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    _, seller, chat = await _pair(connect, user_id)
    stranger = await connect()

    ack = await stranger.emit_ack("message:send", {"chatId": chat["id"], "text": "spam"})

    failed(ack, "FORBIDDEN")
    assert await _rows(db, chat["id"]) == []
    await seller.assert_no_event("message:new", within=0.5, since=0)


async def test_sending_to_an_unknown_chat_is_not_found(connect: Connect) -> None:
    client = await connect()

    ack = await client.emit_ack("message:send", {"chatId": str(uuid.uuid4()), "text": "hello?"})

    failed(ack, "NOT_FOUND")


async def test_failed_send_without_ack_emits_exception(connect: Connect, user_id: int) -> None:
    _, _, chat = await _pair(connect, user_id)
    stranger = await connect()

    await stranger.emit("message:send", {"chatId": chat["id"], "text": "spam"})

    exception = await stranger.wait_for("exception")
    assert exception["status"] == "error"
    assert exception["code"] == "FORBIDDEN"
    assert exception["event"] == "message:send"
    assert isinstance(exception["message"], str)
    assert exception["message"]
    assert stranger.connected


async def test_invalid_send_without_ack_emits_exception(connect: Connect, user_id: int) -> None:
    buyer, _, chat = await _pair(connect, user_id)

    await buyer.emit("message:send", {"chatId": chat["id"], "text": ""})

    exception = await buyer.wait_for("exception")
    assert exception["status"] == "error"
    assert exception["code"] == "VALIDATION_ERROR"
    assert exception["event"] == "message:send"
    assert "text" in exception["message"].lower()


async def test_successful_send_without_ack_emits_no_exception(
    connect: Connect, user_id: int
) -> None:
    buyer, seller, chat = await _pair(connect, user_id)

    await buyer.emit("message:send", {"chatId": chat["id"], "text": "fire and forget"})

    await seller.wait_for("message:new")
    await buyer.assert_no_event("exception", within=0.5, since=0)
