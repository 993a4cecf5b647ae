"""Webhooks to marketplace-api, seen from a real HTTP receiver: envelopes, headers and signatures
of every event type from socket and REST sends, reminders (fired, grouped, dropped by a read),
retries with the same delivery id, a receiver that is down for a while, the admin routes, two
instances delivering together, and an event committed just before a kill -9."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import uuid
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from .conftest import Connect, ServerFactory
from .faultkit import eventually
from .helpers import create_chat, parse_iso, send
from .resthelp import body, rest, rest_failed
from .server import ChatServer
from .tokens import Tokens, new_user_id
from .webhookrecv import ADMIN_KEY, SECRET, Delivery, WebhookReceiver, hook_env, wait_types

pytestmark = pytest.mark.e2e


@pytest_asyncio.fixture(scope="module")
async def chat_server(
    module_server_factory: ServerFactory, receiver: WebhookReceiver
) -> ChatServer:
    return await module_server_factory.start(**hook_env(receiver))


def assert_signed_envelope(delivery: Delivery, event_type: str) -> dict[str, Any]:
    headers = delivery.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-chat-event"] == event_type
    assert headers["x-chat-delivery"] == delivery.id
    assert delivery.verified(SECRET), headers["x-chat-signature"]
    event = delivery.event
    assert set(event) == {"id", "type", "createdAt", "data"}
    assert event["type"] == event_type
    uuid.UUID(event["id"])
    parse_iso(event["createdAt"])
    data = event["data"]
    assert isinstance(data, dict)
    return data


async def test_socket_send_delivers_chat_created_then_message_created_signed(
    connect: Connect, receiver: WebhookReceiver
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    client = await connect(buyer)
    chat = await create_chat(client, buyer, seller, product_id=42)
    message = await send(client, chat["id"], "Is it still available?")
    created, new = await wait_types(receiver, chat["id"], ["chat.created", "message.created"])
    assert assert_signed_envelope(created, "chat.created") == {
        "chat": {
            "id": chat["id"],
            "buyerId": buyer,
            "sellerId": seller,
            "productId": 42,
            "createdAt": chat["createdAt"],
        }
    }
    assert assert_signed_envelope(new, "message.created") == {
        "message": message,
        "chat": {"id": chat["id"], "buyerId": buyer, "sellerId": seller, "productId": 42},
        "recipientId": seller,
    }
    assert created.event["createdAt"] == chat["createdAt"]
    assert new.event["createdAt"] == message["createdAt"]


async def test_rest_send_and_rest_chat_deliver_the_same_events(
    chat_server: ChatServer, tokens: Tokens, receiver: WebhookReceiver
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    async with rest(chat_server, tokens.mint(seller)) as http:
        chat = body(await http.post("/api/chats", json={"buyerId": buyer, "sellerId": seller}), 201)
        message = body(
            await http.post(f"/api/chats/{chat['id']}/messages", json={"text": "hi"}), 201
        )
        repeat = {"text": "again", "clientMessageId": "c-1"}
        first = body(await http.post(f"/api/chats/{chat['id']}/messages", json=repeat), 201)
        body(await http.post(f"/api/chats/{chat['id']}/messages", json=repeat), 201)
    deliveries = await wait_types(
        receiver, chat["id"], ["chat.created", "message.created", "message.created"]
    )
    data = assert_signed_envelope(deliveries[1], "message.created")
    assert data["message"] == message
    assert data["recipientId"] == buyer
    assert assert_signed_envelope(deliveries[2], "message.created")["message"] == first


async def test_a_burst_gives_one_reminder_with_the_current_unread_count(
    connect: Connect, receiver: WebhookReceiver
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    client = await connect(buyer)
    chat = await create_chat(client, buyer, seller)
    sent = [await send(client, chat["id"], f"hello {i}") for i in range(3)]

    def reminded() -> bool:
        return any(d.type == "message.unread" for d in receiver.delivered(chat["id"]))

    await receiver.wait_for(reminded, "message.unread")
    reminders = [d for d in receiver.delivered(chat["id"]) if d.type == "message.unread"]
    assert len(reminders) == 1
    assert assert_signed_envelope(reminders[0], "message.unread") == {
        "chatId": chat["id"],
        "recipientId": seller,
        "senderId": buyer,
        "unreadCount": 3,
        "lastMessage": sent[-1],
        "recipientOnline": False,
    }
    assert parse_iso(reminders[0].event["createdAt"]) == parse_iso(sent[0]["createdAt"])


async def test_a_reminder_says_whether_the_recipient_is_connected(
    connect: Connect, receiver: WebhookReceiver
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    client = await connect(buyer)
    await connect(seller)  # connected, but has not read
    chat = await create_chat(client, buyer, seller)
    await send(client, chat["id"], "are you there?")

    def reminded() -> bool:
        return any(d.type == "message.unread" for d in receiver.delivered(chat["id"]))

    await receiver.wait_for(reminded, "message.unread")
    reminder = next(d for d in receiver.delivered(chat["id"]) if d.type == "message.unread")
    assert reminder.event["data"]["recipientOnline"] is True


async def test_a_read_before_the_reminder_is_due_drops_it(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, receiver: WebhookReceiver
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    client = await connect(buyer)
    chat = await create_chat(client, buyer, seller)
    message = await send(client, chat["id"], "read me")
    async with rest(chat_server, tokens.mint(seller)) as http:
        body(
            await http.post(f"/api/chats/{chat['id']}/read", json={"messageId": message["id"]}), 200
        )
    # A later chat's reminder falls due after the dropped one would have: once it is here, the
    # first had its chance to arrive.
    other = await create_chat(client, buyer, new_user_id())
    await send(client, other["id"], "and me")

    def later_reminded() -> bool:
        return any(d.type == "message.unread" for d in receiver.delivered(other["id"]))

    await receiver.wait_for(later_reminded, "the later chat's reminder")
    assert [d.type for d in receiver.delivered(chat["id"])] == ["chat.created", "message.created"]


async def test_failed_attempts_are_retried_with_the_same_delivery_id(
    connect: Connect, receiver: WebhookReceiver
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    client = await connect(buyer)
    chat = await create_chat(client, buyer, seller)
    await wait_types(receiver, chat["id"], ["chat.created"])
    receiver.fail_next[chat["id"]] = 2
    await send(client, chat["id"], "third time lucky")
    created = (await wait_types(receiver, chat["id"], ["chat.created", "message.created"]))[1]
    attempts = receiver.attempts(created.id)
    assert [a.status for a in attempts] == [503, 503, 200]
    assert {a.body for a in attempts} == {created.body}
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.9
    assert gaps[1] >= 1.9


async def test_a_receiver_down_for_a_while_gets_everything_in_order_when_back(
    connect: Connect, receiver: WebhookReceiver, db: asyncpg.Pool
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    client = await connect(buyer)
    await receiver.stop()
    try:
        chat = await create_chat(client, buyer, seller)
        texts = [f"while down {i}" for i in range(3)]
        for text in texts:
            await send(client, chat["id"], text)

        async def tried() -> bool:
            attempts = await db.fetchval(
                "SELECT attempts FROM chat.outbox WHERE chat_id = $1 AND type = 'chat.created'",
                chat["id"],
            )
            return bool(attempts)

        await eventually(tried, 10.0, "an attempt while the receiver is down")
    finally:
        await receiver.start()
    deliveries = await wait_types(receiver, chat["id"], ["chat.created"] + ["message.created"] * 3)
    assert [d.event["data"]["message"]["text"] for d in deliveries[1:]] == texts


async def test_admin_routes_refuse_without_the_key_with_another_and_with_a_user_token(
    chat_server: ChatServer, tokens: Tokens
) -> None:
    for token in (None, "wrong-key", tokens.mint(new_user_id()), ADMIN_KEY + "x"):
        async with rest(chat_server, token) as http:
            rest_failed(await http.get("/api/admin/webhooks?status=failed"), "FORBIDDEN")
            rest_failed(await http.post(f"/api/admin/webhooks/{uuid.uuid4()}/retry"), "FORBIDDEN")


async def cli(env: dict[str, str], *args: str) -> list[str]:
    """`marketplace-chat …` against the test database; its stdout lines (exit code 0)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "marketplace_chat",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60.0)
    assert proc.returncode == 0, err.decode()
    return [line for line in out.decode().splitlines() if line.startswith('{"id"')]


async def test_an_event_failed_for_good_is_listed_and_sent_again_by_the_admin_api_and_cli(
    connect: Connect,
    chat_server: ChatServer,
    receiver: WebhookReceiver,
    local_env: dict[str, str],
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    client = await connect(buyer)
    chat = await create_chat(client, buyer, seller)
    chat_id = chat["id"]
    receiver.poisoned_chats.add(chat_id)
    await send(client, chat_id, "poisoned")  # queued behind the failing chat.created
    async with rest(chat_server, ADMIN_KEY) as admin:

        async def failed_listed() -> bool:
            page = body(await admin.get("/api/admin/webhooks?status=failed&limit=100"), 200)
            ordered = [w for w in page["webhooks"] if w["type"] != "message.unread"]
            return bool(sum(w["chatId"] == chat_id for w in ordered) == 2)

        await eventually(failed_listed, 30.0, "both of the chat's events listed as failed")
        page = body(await admin.get("/api/admin/webhooks?status=failed&limit=100"), 200)
        failed = [
            w for w in page["webhooks"] if w["chatId"] == chat_id and w["type"] != "message.unread"
        ]
        assert [w["type"] for w in failed] == ["message.created", "chat.created"]  # newest first
        entry = failed[-1]
        assert entry["status"] == "failed"
        assert entry["attempts"] == 3
        assert entry["lastError"] == "HTTP 500"
        assert entry["data"]["chat"]["id"] == chat_id
        rest_failed(await admin.get("/api/admin/webhooks?status=done"), "VALIDATION_ERROR")
        rest_failed(await admin.get("/api/admin/webhooks?limit=0"), "VALIDATION_ERROR")
        rest_failed(await admin.post("/api/admin/webhooks/not-a-uuid/retry"), "VALIDATION_ERROR")
        rest_failed(await admin.post(f"/api/admin/webhooks/{uuid.uuid4()}/retry"), "NOT_FOUND")
        receiver.poisoned_chats.discard(chat_id)
        again = body(await admin.post(f"/api/admin/webhooks/{entry['id']}/retry"), 200)
        assert (again["id"], again["status"], again["attempts"]) == (entry["id"], "pending", 0)
    listed = await cli(local_env, "webhooks", "list", "--status", "failed", "--limit", "100")
    queued = next(json.loads(line) for line in listed if chat_id in line)
    assert queued["type"] == "message.created"
    retried = await cli(local_env, "webhooks", "retry", queued["id"])
    assert json.loads(retried[-1])["status"] == "pending"
    deliveries = await wait_types(receiver, chat_id, ["chat.created", "message.created"])
    assert deliveries[0].id == entry["id"]


async def test_two_instances_deliver_each_event_once_and_each_chat_in_order(
    connect: Connect,
    chat_server: ChatServer,
    module_server_factory: ServerFactory,
    receiver: WebhookReceiver,
) -> None:
    second = await module_server_factory.start(**hook_env(receiver))
    buyer = new_user_id()
    clients = [await connect(buyer), await connect(buyer, server=second)]
    chats = [await create_chat(clients[i % 2], buyer, new_user_id()) for i in range(4)]
    for round_ in range(5):
        await asyncio.gather(
            *(send(clients[i % 2], c["id"], f"r{round_}") for i, c in enumerate(chats))
        )
    for chat in chats:
        deliveries = await wait_types(
            receiver, chat["id"], ["chat.created"] + ["message.created"] * 5
        )
        seqs = [d.event["data"]["message"]["seq"] for d in deliveries[1:]]
        assert seqs == [1, 2, 3, 4, 5]
        for d in deliveries:
            assert len(receiver.attempts(d.id)) == 1
