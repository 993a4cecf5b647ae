"""Edits and deletes with the JS client, across two instances: `message:updated` and
`message:deleted` reach every socket of both participants once, on every node; the sender-only
rule, the edit window, deleted messages, the views (history, inbox, unread), `messages:sync` with
`{ seq, rev }`, the REST routes and the shared rate budget."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from .conftest import Connect, ServerFactory
from .convo import Pair, pair, send_many, sync
from .helpers import failed, ok, parse_iso, send
from .jsclient import JsClient
from .resthelp import body, rest, rest_failed
from .server import ChatServer
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e


@pytest_asyncio.fixture(scope="module")
async def second_node(module_server_factory: ServerFactory) -> ChatServer:
    """Another instance on the same PostgreSQL and Redis as ``chat_server``."""
    return await module_server_factory.start()


async def everywhere(connect: Connect, second_node: ChatServer) -> tuple[Pair, list[JsClient]]:
    """A pair, plus a second socket of each participant on the other node."""
    p = await pair(connect)
    buyer_b = await connect(p.buyer_id, server=second_node)
    seller_b = await connect(p.seller_id, server=second_node)
    return p, [p.buyer, p.seller, buyer_b, seller_b]


async def edit(client: JsClient, message_id: str, text: str) -> Any:
    return await client.emit_ack("message:edit", {"messageId": message_id, "text": text})


async def delete(client: JsClient, message_id: str) -> Any:
    return await client.emit_ack("message:delete", {"messageId": message_id})


async def test_an_edit_reaches_every_socket_of_both_participants_on_every_node(
    connect: Connect, second_node: ChatServer
) -> None:
    p, sockets = await everywhere(connect, second_node)
    message = await send(p.buyer, p.chat_id, "is it available?")

    edited = ok(await edit(p.buyer, message["id"], "  is it still available?  "))

    assert edited["text"] == "is it still available?"
    assert (edited["id"], edited["seq"], edited["createdAt"]) == (
        message["id"],
        message["seq"],
        message["createdAt"],
    )
    assert edited["rev"] == message["rev"] + 1
    assert parse_iso(edited["editedAt"]) >= parse_iso(message["createdAt"])
    assert edited["deletedAt"] is None
    for client in sockets:
        assert await client.wait_for("message:updated") == edited
    marks = [c.mark() for c in sockets]
    await sockets[-1].assert_no_event("message:updated", within=0.5)
    for client, since in zip(sockets, marks, strict=True):
        assert client.events("message:updated", since=since) == [], client.log
        assert len(client.events("message:updated")) == 1, client.log


async def test_a_delete_reaches_every_socket_as_a_tombstone_and_twice_changes_nothing(
    connect: Connect, second_node: ChatServer
) -> None:
    p, sockets = await everywhere(connect, second_node)
    message = await send(p.buyer, p.chat_id, "oops")

    ack = ok(await delete(p.buyer, message["id"]))

    assert set(ack) == {"chatId", "messageId", "deletedAt"}
    assert (ack["chatId"], ack["messageId"]) == (p.chat_id, message["id"])
    parse_iso(ack["deletedAt"])
    for client in sockets:
        assert await client.wait_for("message:deleted") == {**ack, "seq": message["seq"]}

    mark = [c.mark() for c in sockets]
    assert ok(await delete(p.buyer, message["id"])) == ack
    await sockets[1].assert_no_event("message:deleted", within=0.5, since=mark[1])
    for client, since in zip(sockets, mark, strict=True):
        assert client.events("message:deleted", since=since) == []

    [shown] = ok(await p.seller.emit_ack("messages:history", {"chatId": p.chat_id}))["messages"]
    assert (shown["text"], shown["deletedAt"], shown["seq"]) == ("", ack["deletedAt"], 1)
    assert shown["rev"] == message["rev"] + 1


async def test_only_the_sender_may_edit_or_delete(connect: Connect) -> None:
    p = await pair(connect)
    message = await send(p.buyer, p.chat_id, "mine")
    outsider = await connect(new_user_id())

    for client in (p.seller, outsider):
        failed(await edit(client, message["id"], "not yours"), "FORBIDDEN")
        failed(await delete(client, message["id"]), "FORBIDDEN")

    [shown] = ok(await p.buyer.emit_ack("messages:history", {"chatId": p.chat_id}))["messages"]
    assert shown == message
    await p.buyer.assert_no_event("message:updated", within=0.3, since=0)
    assert p.buyer.events("message:deleted") == []


async def test_a_deleted_or_unknown_message_is_not_found(connect: Connect) -> None:
    p = await pair(connect)
    message = await send(p.buyer, p.chat_id, "soon gone")
    ok(await delete(p.buyer, message["id"]))

    failed(await edit(p.buyer, message["id"], "back"), "NOT_FOUND")
    failed(await edit(p.buyer, str(uuid.uuid4()), "x"), "NOT_FOUND")
    failed(await delete(p.buyer, str(uuid.uuid4())), "NOT_FOUND")
    await p.seller.assert_no_event("message:updated", within=0.3, since=0)


async def test_an_edit_after_the_window_is_refused(connect: Connect, db: asyncpg.Pool) -> None:
    p = await pair(connect)
    message = await send(p.buyer, p.chat_id, "long ago")
    # Sent 15 minutes and a second ago, as far as the stored row says.
    await db.execute(
        "UPDATE chat.messages SET created_at = created_at - interval '901 seconds' WHERE id = $1",
        uuid.UUID(message["id"]),
    )

    error = failed(await edit(p.buyer, message["id"], "too late"), "EDIT_WINDOW_CLOSED")
    assert "900" in error
    row = await db.fetchrow(
        "SELECT text, edited_at FROM chat.messages WHERE id = $1", uuid.UUID(message["id"])
    )
    assert row is not None
    assert (row["text"], row["edited_at"]) == ("long ago", None)
    await p.seller.assert_no_event("message:updated", within=0.3, since=0)
    ok(await delete(p.buyer, message["id"]))  # a delete has no window


async def test_bad_payloads_are_refused_and_change_nothing(connect: Connect) -> None:
    p = await pair(connect)
    message = await send(p.buyer, p.chat_id, "keep")
    cases: list[tuple[str, Any, str]] = [
        ("message:edit", {"messageId": message["id"], "text": "   "}, "text"),
        ("message:edit", {"messageId": message["id"], "text": "x" * 4001}, "text"),
        ("message:edit", {"messageId": message["id"], "text": "a\u0000b"}, "text"),
        ("message:edit", {"messageId": message["id"]}, "text"),
        ("message:edit", {"messageId": "nope", "text": "x"}, "messageId"),
        ("message:edit", {"messageId": message["id"], "text": "x", "chatId": p.chat_id}, "chatId"),
        ("message:delete", {}, "messageId"),
        ("message:delete", {"messageId": 5}, "messageId"),
        ("message:delete", "a string", "payload"),
    ]
    for event, payload, field in cases:
        error = failed(await p.buyer.emit_ack(event, payload), "VALIDATION_ERROR")
        assert error.startswith(field), (event, payload, error)
    [shown] = ok(await p.buyer.emit_ack("messages:history", {"chatId": p.chat_id}))["messages"]
    assert shown == message


async def test_the_inbox_shows_the_edit_and_does_not_count_deleted_messages(
    connect: Connect,
) -> None:
    p = await pair(connect)
    first, _, last = await send_many(p.buyer, p.chat_id, 3)
    ok(await delete(p.buyer, first["id"]))
    edited = ok(await edit(p.buyer, last["id"], "the last, edited"))

    chat = ok(await p.seller.emit_ack("chat:join", {"chatId": p.chat_id}))
    assert chat["unreadCount"] == 2
    assert chat["lastMessage"] == edited
    assert chat["rev"] == edited["rev"]
    [listed] = [
        c for c in ok(await p.seller.emit_ack("chats:list", {}))["chats"] if c["id"] == p.chat_id
    ]
    assert listed["unreadCount"] == 2


async def test_sync_with_seq_and_rev_answers_what_changed_while_away(connect: Connect) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 4)
    seen = {"seq": 4, "rev": sent[-1]["rev"]}
    await p.seller.close()
    edited = ok(await edit(p.buyer, sent[1]["id"], "m1, edited"))
    ok(await delete(p.buyer, sent[2]["id"]))
    newer = await send(p.buyer, p.chat_id, "m4")
    seller = await connect(p.seller_id)

    data = ok(await seller.emit_ack("messages:sync", {"chats": {p.chat_id: seen}}))

    [entry] = [e for e in data["chats"] if e["chatId"] == p.chat_id]
    assert set(entry) == {"chatId", "messages", "hasMore", "changed", "changedHasMore", "rev"}
    assert entry["messages"] == [newer]
    assert [m["id"] for m in entry["changed"]] == [sent[1]["id"], sent[2]["id"]]
    assert entry["changed"][0] == edited
    assert (entry["changed"][1]["text"], entry["changed"][1]["seq"]) == ("", 3)
    assert entry["changedHasMore"] is False
    assert entry["rev"] == newer["rev"]

    # the plain form is answered as it always was
    plain = await sync(seller, {"chats": {p.chat_id: 4}})
    assert plain[p.chat_id] == {"chatId": p.chat_id, "messages": [newer], "hasMore": False}
    failed(
        await seller.emit_ack("messages:sync", {"chats": {p.chat_id: {"seq": 4}}}),
        "VALIDATION_ERROR",
    )
    failed(
        await seller.emit_ack("messages:sync", {"chats": {p.chat_id: {"seq": 4, "rev": -1}}}),
        "VALIDATION_ERROR",
    )


async def test_rest_edits_and_deletes_follow_the_socket_rules(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    message = await send(p.buyer, p.chat_id, "over http")
    other = await pair(connect, p.buyer_id)
    path = f"/api/chats/{p.chat_id}/messages/{message['id']}"

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        edited = body(await http.patch(path, json={"text": "edited over http"}), 200)
        assert edited["text"] == "edited over http"
        assert await p.seller.wait_for("message:updated") == edited
        rest_failed(
            await http.patch(path, json={"text": "x", "messageId": "y"}), "VALIDATION_ERROR"
        )
        rest_failed(await http.patch(path, json={"text": ""}), "VALIDATION_ERROR")
        elsewhere = f"/api/chats/{other.chat_id}/messages/{message['id']}"
        rest_failed(await http.patch(elsewhere, json={"text": "x"}), "NOT_FOUND")
        rest_failed(await http.delete(elsewhere), "NOT_FOUND")
        rest_failed(
            await http.patch(f"/api/chats/{p.chat_id}/messages/nope", json={"text": "x"}),
            "VALIDATION_ERROR",
        )

    async with rest(chat_server, tokens.mint(p.seller_id)) as http:
        rest_failed(await http.patch(path, json={"text": "not mine"}), "FORBIDDEN")
        rest_failed(await http.delete(path), "FORBIDDEN")
    async with rest(chat_server, tokens.mint(new_user_id())) as http:
        rest_failed(await http.delete(path), "FORBIDDEN")

    await db.execute(
        "UPDATE chat.messages SET created_at = created_at - interval '1 hour' WHERE id = $1",
        uuid.UUID(message["id"]),
    )
    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        rest_failed(await http.patch(path, json={"text": "late"}), "EDIT_WINDOW_CLOSED")
        deleted = body(await http.delete(path), 200)
        assert deleted == {**deleted, "chatId": p.chat_id, "messageId": message["id"]}
        assert await p.seller.wait_for("message:deleted") == {**deleted, "seq": message["seq"]}
        assert body(await http.delete(path), 200) == deleted


async def test_edits_and_deletes_share_one_budget_with_rest(
    server_factory: ServerFactory, bridge: Any, tokens: Tokens
) -> None:
    server = await server_factory.start(RATE_LIMIT_EDITS="2", RATE_LIMIT_EDITS_WINDOW_S="60")
    user = new_user_id()
    client = await bridge.connect(server.url, token=tokens.mint(user), user_id=user)

    failed(await delete(client, str(uuid.uuid4())), "NOT_FOUND")
    failed(await edit(client, str(uuid.uuid4()), "x"), "NOT_FOUND")
    refused = await delete(client, str(uuid.uuid4()))
    failed(refused, "RATE_LIMITED")
    assert refused["retryAfterMs"] > 0
    async with rest(server, tokens.mint(user)) as http:
        path = f"/api/chats/{uuid.uuid4()}/messages/{uuid.uuid4()}"
        rest_failed(await http.delete(path), "RATE_LIMITED")
