"""The Chat object and chat:create, chat:join, chat:leave."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from .conftest import Connect
from .helpers import assert_chat_shape, create_chat, failed, ok, send
from .tokens import new_user_id

pytestmark = pytest.mark.e2e


async def _chat_rows(db: asyncpg.Pool, *user_ids: int) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT id, buyer_id, seller_id FROM chat.chats"
            " WHERE buyer_id = ANY($1::bigint[]) OR seller_id = ANY($1::bigint[])",
            list(user_ids),
        )
    )


async def test_create_chat_returns_a_new_chat(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    seller_id = new_user_id()
    buyer = await connect(user_id)

    chat = await create_chat(buyer, user_id, seller_id)

    assert_chat_shape(chat)
    assert chat["buyerId"] == user_id
    assert chat["sellerId"] == seller_id
    assert chat["productId"] is None
    assert chat["lastMessage"] is None
    assert chat["unreadCount"] == 0
    [row] = await _chat_rows(db, user_id)
    assert (str(row["id"]), row["buyer_id"], row["seller_id"]) == (chat["id"], user_id, seller_id)


async def test_create_chat_is_idempotent_per_pair(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    seller_id = new_user_id()
    buyer = await connect(user_id)
    seller = await connect(seller_id)

    first = await create_chat(buyer, user_id, seller_id)
    again = await create_chat(buyer, user_id, seller_id)
    by_seller = await create_chat(seller, user_id, seller_id)

    assert first["id"] == again["id"] == by_seller["id"]
    assert len(await _chat_rows(db, user_id)) == 1


async def test_swapped_roles_make_a_second_chat(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    other = new_user_id()
    client = await connect(user_id)

    as_buyer = await create_chat(client, user_id, other)
    as_seller = await create_chat(client, other, user_id)

    assert as_buyer["id"] != as_seller["id"]
    assert (as_seller["buyerId"], as_seller["sellerId"]) == (other, user_id)
    assert len(await _chat_rows(db, user_id)) == 2


async def test_creating_a_chat_of_two_other_users_is_forbidden(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    buyer_id, seller_id = new_user_id(), new_user_id()
    client = await connect(user_id)

    ack = await client.emit_ack("chat:create", {"buyerId": buyer_id, "sellerId": seller_id})

    failed(ack, "FORBIDDEN")
    assert await _chat_rows(db, buyer_id, seller_id, user_id) == []


async def test_chat_with_oneself_is_validation_error(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    client = await connect(user_id)

    ack = await client.emit_ack("chat:create", {"buyerId": user_id, "sellerId": user_id})

    failed(ack, "VALIDATION_ERROR")
    assert await _chat_rows(db, user_id) == []


async def test_ids_given_as_strings_of_digits_are_normalised(
    connect: Connect, user_id: int
) -> None:
    seller_id = new_user_id()
    client = await connect(user_id)

    ack = await client.emit_ack(
        "chat:create", {"buyerId": str(user_id), "sellerId": str(seller_id), "productId": "77"}
    )

    chat = ok(ack)
    assert_chat_shape(chat)
    assert (chat["buyerId"], chat["sellerId"], chat["productId"]) == (user_id, seller_id, 77)


async def test_product_id_sets_the_context_also_of_an_existing_chat(
    connect: Connect, db: asyncpg.Pool, user_id: int
) -> None:
    seller_id = new_user_id()
    client = await connect(user_id)

    first = await create_chat(client, user_id, seller_id, product_id=5)
    second = await create_chat(client, user_id, seller_id, product_id=7)
    unchanged = await create_chat(client, user_id, seller_id)

    assert first["productId"] == 5
    assert second["productId"] == 7
    assert unchanged["productId"] == 7
    context = await db.fetchval(
        "SELECT product_id FROM chat.chat_context WHERE chat_id = $1", first["id"]
    )
    assert context == 7


async def test_new_chat_is_announced_to_every_socket_of_both_participants(
    connect: Connect, user_id: int
) -> None:
    seller_id = new_user_id()
    buyer_1 = await connect(user_id)
    buyer_2 = await connect(user_id)
    seller = await connect(seller_id)
    stranger = await connect()

    chat = await create_chat(buyer_1, user_id, seller_id)

    for client in (buyer_1, buyer_2, seller):
        announced = await client.wait_for("chat:created")
        assert_chat_shape(announced)
        assert announced["id"] == chat["id"]
    await stranger.assert_no_event("chat:created", within=0.5)
    for client in (buyer_1, buyer_2, seller):
        assert len(client.events("chat:created")) == 1, client.log


async def test_existing_chat_is_announced_only_to_the_calling_socket(
    connect: Connect, user_id: int
) -> None:
    seller_id = new_user_id()
    buyer_1 = await connect(user_id)
    buyer_2 = await connect(user_id)
    seller = await connect(seller_id)
    chat = await create_chat(buyer_1, user_id, seller_id)
    for client in (buyer_1, buyer_2, seller):
        await client.wait_for("chat:created")
    marks = {client.name: client.mark() for client in (buyer_1, buyer_2, seller)}

    again = await create_chat(seller, user_id, seller_id)

    assert again["id"] == chat["id"]
    assert (await seller.wait_for("chat:created", since=marks[seller.name]))["id"] == chat["id"]
    await buyer_1.assert_no_event("chat:created", within=0.7, since=marks[buyer_1.name])
    assert buyer_2.events("chat:created", since=marks[buyer_2.name]) == []
    assert len(seller.events("chat:created", since=marks[seller.name])) == 1


async def test_creating_socket_joins_the_chat_room(connect: Connect, user_id: int) -> None:
    seller_id = new_user_id()
    buyer_creator = await connect(user_id)
    buyer_other = await connect(user_id)
    seller = await connect(seller_id)
    chat = await create_chat(buyer_creator, user_id, seller_id)

    ok(await seller.emit_ack("typing:start", {"chatId": chat["id"]}))

    typing = await buyer_creator.wait_for("typing:start")
    assert typing == {"chatId": chat["id"], "userId": seller_id}
    await buyer_other.assert_no_event("typing:start", within=0.5, since=0)


async def test_participant_can_join_and_gets_the_chat(connect: Connect, user_id: int) -> None:
    seller_id = new_user_id()
    buyer = await connect(user_id)
    seller = await connect(seller_id)
    chat = await create_chat(buyer, user_id, seller_id, product_id=3)
    sent = await send(buyer, chat["id"], "hello")
    await send(buyer, chat["id"], "anyone?")

    joined = ok(await seller.emit_ack("chat:join", {"chatId": chat["id"]}))
    own_view = ok(await buyer.emit_ack("chat:join", {"chatId": chat["id"]}))

    assert_chat_shape(joined)
    assert joined["id"] == chat["id"]
    assert joined["productId"] == 3
    assert joined["lastMessage"]["text"] == "anyone?"
    assert joined["lastMessage"]["seq"] == sent["seq"] + 1
    assert joined["unreadCount"] == 2
    assert own_view["unreadCount"] == 0


async def test_non_participant_cannot_join(connect: Connect, user_id: int) -> None:
    buyer = await connect(user_id)
    chat = await create_chat(buyer, user_id, new_user_id())
    stranger = await connect()

    failed(await stranger.emit_ack("chat:join", {"chatId": chat["id"]}), "FORBIDDEN")

    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))
    await stranger.assert_no_event("typing:start", within=0.5)


async def test_joining_an_unknown_chat_is_not_found(connect: Connect) -> None:
    client = await connect()

    ack = await client.emit_ack("chat:join", {"chatId": str(uuid.uuid4())})

    failed(ack, "NOT_FOUND")


async def test_leaving_a_chat_stops_its_typing_events(connect: Connect, user_id: int) -> None:
    seller_id = new_user_id()
    buyer = await connect(user_id)
    seller = await connect(seller_id)
    chat = await create_chat(buyer, user_id, seller_id)
    ok(await seller.emit_ack("chat:join", {"chatId": chat["id"]}))

    assert ok(await seller.emit_ack("chat:leave", {"chatId": chat["id"]})) == {}
    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))

    await seller.assert_no_event("typing:start", within=1.0)
    message = await send(buyer, chat["id"], "messages still arrive")
    await seller.wait_for("message:new", lambda m: m["id"] == message["id"])


async def test_non_participant_cannot_leave(connect: Connect, user_id: int) -> None:
    buyer = await connect(user_id)
    chat = await create_chat(buyer, user_id, new_user_id())
    stranger = await connect()

    failed(await stranger.emit_ack("chat:leave", {"chatId": chat["id"]}), "FORBIDDEN")
