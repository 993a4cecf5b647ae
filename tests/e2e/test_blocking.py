"""Blocking and reports from the official JS client, on two nodes: a block refuses sends and new
chats at once on every node, silences typing and presence between the two, hides them from each
other's users:online and flags their chats; reports keep the evidence as filed and moderators
read and resolve them through the admin API, which nobody else can use."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from .conftest import Connect, ServerFactory
from .helpers import create_chat, failed, ok, parse_iso, send
from .jsclient import JsClient
from .resthelp import body, rest, rest_failed
from .server import ChatServer
from .tokens import Tokens, new_user_id
from .webhookrecv import ADMIN_KEY, WebhookReceiver, hook_env

pytestmark = pytest.mark.e2e


@pytest_asyncio.fixture(scope="module")
async def nodes(
    module_server_factory: ServerFactory, receiver: WebhookReceiver
) -> tuple[ChatServer, ChatServer]:
    first = await module_server_factory.start(**hook_env(receiver))
    second = await module_server_factory.start(**hook_env(receiver))
    return first, second


@pytest.fixture
def chat_server(nodes: tuple[ChatServer, ChatServer]) -> ChatServer:
    return nodes[0]


def of_pair(blocker: int, blocked: int, kind: str) -> Any:
    def match(receiver: WebhookReceiver) -> list[dict[str, Any]]:
        return [
            d.event["data"]
            for d in receiver.delivered()
            if d.type == kind
            and d.event["data"]["userId"] == blocker
            and d.event["data"]["blockedUserId"] == blocked
        ]

    return match


async def pair_on_two_nodes(
    connect: Connect, nodes: tuple[ChatServer, ChatServer]
) -> tuple[JsClient, JsClient, dict[str, Any], int, int]:
    """A buyer on the first node and a seller on the second, both in their chat."""
    buyer_id, seller_id = new_user_id(), new_user_id()
    buyer = await connect(buyer_id, server=nodes[0])
    seller = await connect(seller_id, server=nodes[1])
    chat = await create_chat(buyer, buyer_id, seller_id)
    ok(await seller.emit_ack("chat:join", {"chatId": chat["id"]}))
    return buyer, seller, chat, buyer_id, seller_id


async def test_a_block_refuses_sends_and_new_chats_on_every_node_and_flags_the_chats(
    connect: Connect,
    nodes: tuple[ChatServer, ChatServer],
    tokens: Tokens,
    db: asyncpg.Pool,
    receiver: WebhookReceiver,
) -> None:
    buyer, seller, chat, buyer_id, seller_id = await pair_on_two_nodes(connect, nodes)
    first = await send(buyer, chat["id"], "is it available?")
    await seller.wait_for("message:new", lambda m: m["id"] == first["id"])
    # the reverse chat of the pair exists too, and is flagged alike
    reverse = await create_chat(seller, seller_id, buyer_id)

    ack = ok(await seller.emit_ack("user:block", {"userId": buyer_id}))
    assert ack == {"userId": buyer_id, "blocked": True}
    mark = seller.mark()

    for client, chat_id in ((buyer, chat["id"]), (seller, chat["id"]), (buyer, reverse["id"])):
        failed(await client.emit_ack("message:send", {"chatId": chat_id, "text": "hi"}), "BLOCKED")
    async with rest(nodes[1], tokens.mint(buyer_id)) as http:
        rest_failed(
            await http.post(f"/api/chats/{chat['id']}/messages", json={"text": "hi"}),
            "BLOCKED",
            403,
        )
        seen = body(await http.get(f"/api/chats/{chat['id']}"), 200)
        assert seen["blocked"] is True
        rest_failed(
            await http.post("/api/chats", json={"buyerId": buyer_id, "sellerId": seller_id}),
            "BLOCKED",
            403,
        )
    for client, pair in ((buyer, (buyer_id, seller_id)), (seller, (buyer_id, seller_id))):
        payload = {"buyerId": pair[0], "sellerId": pair[1]}
        failed(await client.emit_ack("chat:create", payload), "BLOCKED")
    failed(
        await buyer.emit_ack(
            "chat:create", {"buyerId": buyer_id, "sellerId": seller_id, "productId": 5}
        ),
        "BLOCKED",
    )
    stored = await db.fetchval(
        "SELECT count(*) FROM chat.messages WHERE chat_id = ANY($1::uuid[])",
        [chat["id"], reverse["id"]],
    )
    assert stored == 1
    # history stays readable to both; every Chat they get says blocked
    for client in (buyer, seller):
        page = ok(await client.emit_ack("messages:history", {"chatId": chat["id"]}))
        assert [m["id"] for m in page["messages"]] == [first["id"]]
        listed = ok(await client.emit_ack("chats:list", {}))["chats"]
        assert {c["id"]: c["blocked"] for c in listed} == {chat["id"]: True, reverse["id"]: True}
        assert ok(await client.emit_ack("chat:join", {"chatId": chat["id"]}))["blocked"] is True
    assert seller.events("message:new", since=mark) == []
    assert buyer.events("chat:created", lambda c: c["id"] == chat["id"])[1:] == []

    ack = ok(await seller.emit_ack("user:unblock", {"userId": buyer_id}))
    assert ack == {"userId": buyer_id, "blocked": False}
    again = await send(buyer, chat["id"], "still there?")
    await seller.wait_for("message:new", lambda m: m["id"] == again["id"])
    assert ok(await buyer.emit_ack("chat:join", {"chatId": chat["id"]}))["blocked"] is False
    await receiver.wait_for(
        lambda: bool(of_pair(seller_id, buyer_id, "user.unblocked")(receiver)), "user.unblocked"
    )
    [blocked] = of_pair(seller_id, buyer_id, "user.blocked")(receiver)
    assert set(blocked) == {"userId", "blockedUserId", "at"}
    parse_iso(blocked["at"])


async def test_an_unblock_by_one_keeps_the_pair_blocked_while_the_other_blocks(
    connect: Connect, nodes: tuple[ChatServer, ChatServer]
) -> None:
    buyer, seller, chat, buyer_id, seller_id = await pair_on_two_nodes(connect, nodes)
    ok(await buyer.emit_ack("user:block", {"userId": seller_id}))
    ok(await seller.emit_ack("user:block", {"userId": buyer_id}))
    ok(await buyer.emit_ack("user:unblock", {"userId": seller_id}))
    failed(await buyer.emit_ack("message:send", {"chatId": chat["id"], "text": "x"}), "BLOCKED")
    assert ok(await buyer.emit_ack("chat:join", {"chatId": chat["id"]}))["blocked"] is True
    assert ok(await buyer.emit_ack("blocks:list", {})) == {"userIds": []}
    assert ok(await seller.emit_ack("blocks:list")) == {"userIds": [buyer_id]}


async def test_typing_stops_at_the_block_and_stays_silent_after(
    connect: Connect,
    nodes: tuple[ChatServer, ChatServer],
    tokens: Tokens,
    redis: aioredis.Redis,
) -> None:
    buyer, seller, chat, buyer_id, seller_id = await pair_on_two_nodes(connect, nodes)
    ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]}))
    await seller.wait_for("typing:start")

    async with rest(nodes[1], tokens.mint(seller_id)) as http:
        state = body(await http.post(f"/api/users/{buyer_id}/block"), 200)
    assert state == {"userId": buyer_id, "blocked": True}
    assert await seller.wait_for("typing:stop") == {"chatId": chat["id"], "userId": buyer_id}
    mark = seller.mark()
    buyer_mark = buyer.mark()

    assert ok(await buyer.emit_ack("typing:start", {"chatId": chat["id"]})) == {}
    assert ok(await seller.emit_ack("typing:start", {"chatId": chat["id"]})) == {}
    assert await redis.exists(f"chat:{chat['id']}:typing:{buyer_id}") == 0
    await seller.assert_no_event("typing:start", within=1.0, since=mark)
    assert buyer.events("typing:start", since=buyer_mark) == []
    assert ok(await buyer.emit_ack("typing:stop", {"chatId": chat["id"]})) == {}
    assert seller.events("typing:stop", since=mark) == []


async def test_presence_and_users_online_leave_out_a_blocked_partner(
    connect: Connect, nodes: tuple[ChatServer, ChatServer]
) -> None:
    buyer, seller, _, buyer_id, seller_id = await pair_on_two_nodes(connect, nodes)
    friend_id = new_user_id()
    friend = await connect(friend_id, server=nodes[1])
    await create_chat(buyer, buyer_id, friend_id)
    both = {"userIds": [buyer_id, friend_id]}
    assert set(ok(await seller.emit_ack("users:online", {}))["userIds"]) == {buyer_id}

    ok(await seller.emit_ack("user:block", {"userId": buyer_id}))
    assert ok(await seller.emit_ack("users:online", both))["userIds"] == [friend_id]
    assert ok(await seller.emit_ack("users:online", {}))["userIds"] == []
    assert ok(await buyer.emit_ack("users:online", {"userIds": [seller_id, friend_id]})) == {
        "userIds": [friend_id]
    }
    assert set(ok(await buyer.emit_ack("users:online", {}))["userIds"]) == {friend_id}
    # the users:online event carries the same answer as the ack
    assert (await seller.wait_for("users:online", lambda p: p["userIds"] == [friend_id])) == {
        "userIds": [friend_id]
    }

    mark, friend_mark = seller.mark(), friend.mark()
    await buyer.close()
    await friend.wait_for("user:offline", lambda p: p["userId"] == buyer_id, since=friend_mark)
    back = await connect(buyer_id, server=nodes[0])
    await friend.wait_for("user:online", lambda p: p["userId"] == buyer_id, since=friend_mark)
    assert seller.events("user:offline", since=mark) == []
    assert seller.events("user:online", since=mark) == []
    assert back.connected


async def test_blocking_through_rest_and_bad_input(
    connect: Connect,
    nodes: tuple[ChatServer, ChatServer],
    tokens: Tokens,
    db: asyncpg.Pool,
) -> None:
    me, other = new_user_id(), new_user_id()
    client = await connect(me)
    failed(await client.emit_ack("user:block", {"userId": me}), "VALIDATION_ERROR")
    for bad in ({}, {"userId": 0}, {"userId": "x"}, {"userId": other, "bogus": 1}):
        failed(await client.emit_ack("user:block", bad), "VALIDATION_ERROR")
    failed(await client.emit_ack("blocks:list", {"bogus": 1}), "VALIDATION_ERROR")
    async with rest(nodes[0], tokens.mint(me)) as http:
        rest_failed(await http.post(f"/api/users/{me}/block"), "VALIDATION_ERROR")
        rest_failed(await http.post("/api/users/abc/block"), "VALIDATION_ERROR")
        assert await db.fetchval("SELECT count(*) FROM chat.blocks WHERE blocker_id = $1", me) == 0
        first = body(await http.post(f"/api/users/{other}/block"), 200)
        assert first == body(await http.post(f"/api/users/{other}/block"), 200)
        assert body(await http.get("/api/blocks"), 200) == {"userIds": [other]}
        lifted = body(await http.delete(f"/api/users/{other}/block"), 200)
        assert lifted == {"userId": other, "blocked": False}
        assert body(await http.get("/api/blocks"), 200) == {"userIds": []}
    async with rest(nodes[0]) as anonymous:
        rest_failed(await anonymous.get("/api/blocks"), "TOKEN_REQUIRED")


# -- reports -----------------------------------------------------------------------------------


async def test_a_report_keeps_its_evidence_and_moderators_resolve_it(
    connect: Connect,
    nodes: tuple[ChatServer, ChatServer],
    tokens: Tokens,
    db: asyncpg.Pool,
    receiver: WebhookReceiver,
) -> None:
    buyer, seller, chat, buyer_id, seller_id = await pair_on_two_nodes(connect, nodes)
    await send(buyer, chat["id"], "hello")
    scam = await send(seller, chat["id"], "pay me off-site")
    stranger = await connect()

    receipt = ok(
        await buyer.emit_ack(
            "report:create",
            {"chatId": chat["id"], "messageId": scam["id"], "reason": "fraud", "comment": "scam"},
        )
    )
    assert set(receipt) == {"id", "createdAt"}
    parse_iso(receipt["createdAt"])
    repeat = {"chatId": chat["id"], "messageId": scam["id"], "reason": "spam"}
    assert ok(await buyer.emit_ack("report:create", repeat)) == receipt
    failed(await stranger.emit_ack("report:create", repeat), "FORBIDDEN")
    failed(
        await buyer.emit_ack("report:create", {**repeat, "messageId": str(uuid.uuid4())}),
        "NOT_FOUND",
    )
    failed(await buyer.emit_ack("report:create", {**repeat, "reason": "meh"}), "VALIDATION_ERROR")
    failed(
        await buyer.emit_ack("report:create", {**repeat, "comment": "x" * 1001}),
        "VALIDATION_ERROR",
    )
    async with rest(nodes[1], tokens.mint(seller_id)) as http:
        url = f"/api/chats/{chat['id']}/reports"
        theirs = body(await http.post(url, json={"reason": "abuse"}), 201)
        assert body(await http.post(url, json={"reason": "other"}), 200) == theirs
        rest_failed(
            await http.post(url, json={"reason": "abuse", "chatId": chat["id"]}), "VALIDATION_ERROR"
        )
    await receiver.wait_for(
        lambda: any(
            d.type == "report.created" and d.event["data"]["report"]["id"] == receipt["id"]
            for d in receiver.delivered()
        ),
        "report.created",
    )
    [event] = [
        d.event["data"]["report"]
        for d in receiver.delivered()
        if d.type == "report.created" and d.event["data"]["report"]["id"] == receipt["id"]
    ]
    assert event == {
        "id": receipt["id"],
        "chatId": chat["id"],
        "messageId": scam["id"],
        "reporterId": buyer_id,
        "reportedUserId": seller_id,
        "reason": "fraud",
        "createdAt": receipt["createdAt"],
    }

    # the seller covers their tracks afterwards: the evidence does not change
    await db.execute(
        "UPDATE chat.messages SET text = 'never mind', edited_at = now() WHERE id = $1",
        uuid.UUID(scam["id"]),
    )
    async with rest(nodes[0], ADMIN_KEY) as admin:
        report = body(await admin.get(f"/api/admin/reports/{receipt['id']}"), 200)
        assert report["status"] == "open"
        assert (report["reporterId"], report["reportedUserId"]) == (buyer_id, seller_id)
        assert report["comment"] == "scam"
        texts = [(m["senderId"], m["text"]) for m in report["snapshot"]["messages"]]
        assert texts == [(buyer_id, "hello"), (seller_id, "pay me off-site")]

        found = False
        cursor = None
        while not found:
            query = "/api/admin/reports?status=open&limit=1" + (
                f"&before={cursor}" if cursor else ""
            )
            page = body(await admin.get(query), 200)
            assert set(page) == {"reports", "nextCursor"}
            found = any(r["id"] == receipt["id"] for r in page["reports"])
            assert all("snapshot" not in r for r in page["reports"])
            cursor = page["nextCursor"]
            assert found or cursor is not None

        resolve = f"/api/admin/reports/{receipt['id']}/resolve"
        done = body(
            await admin.post(resolve, json={"resolution": "actioned", "note": "banned"}), 200
        )
        assert (done["status"], done["resolution"], done["note"]) == (
            "resolved",
            "actioned",
            "banned",
        )
        parse_iso(done["resolvedAt"])
        again = body(await admin.post(resolve, json={"resolution": "dismissed"}), 200)
        assert again == done
        resolved = body(await admin.get("/api/admin/reports?status=resolved&limit=100"), 200)
        assert receipt["id"] in [r["id"] for r in resolved["reports"]]

        rest_failed(await admin.get("/api/admin/reports?status=closed"), "VALIDATION_ERROR")
        rest_failed(await admin.get("/api/admin/reports?limit=0"), "VALIDATION_ERROR")
        rest_failed(await admin.get("/api/admin/reports?limit=101"), "VALIDATION_ERROR")
        rest_failed(await admin.get("/api/admin/reports?before=zzz"), "VALIDATION_ERROR")
        rest_failed(await admin.get("/api/admin/reports/not-a-uuid"), "VALIDATION_ERROR")
        rest_failed(await admin.get(f"/api/admin/reports/{uuid.uuid4()}"), "NOT_FOUND")
        rest_failed(await admin.post(resolve, json={"resolution": "maybe"}), "VALIDATION_ERROR")
        rest_failed(
            await admin.post(
                f"/api/admin/reports/{uuid.uuid4()}/resolve", json={"resolution": "dismissed"}
            ),
            "NOT_FOUND",
        )


async def test_the_moderation_routes_refuse_without_the_key_with_another_and_a_user_token(
    nodes: tuple[ChatServer, ChatServer], tokens: Tokens
) -> None:
    some = uuid.uuid4()
    for credentials in (None, "another-key", tokens.mint(new_user_id())):
        async with rest(nodes[0], credentials) as http:
            rest_failed(await http.get("/api/admin/reports"), "FORBIDDEN")
            rest_failed(await http.get(f"/api/admin/reports/{some}"), "FORBIDDEN")
            rest_failed(
                await http.post(f"/api/admin/reports/{some}/resolve", json={"resolution": "x"}),
                "FORBIDDEN",
            )


async def test_openapi_describes_the_block_report_and_moderation_routes(
    nodes: tuple[ChatServer, ChatServer],
) -> None:
    async with rest(nodes[0]) as http:
        spec = body(await http.get("/openapi.json"), 200)

    def answer(method: str, path: str, status: str) -> str:
        response = spec["paths"][path][method]["responses"][status]
        return str(response["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[1]

    assert answer("post", "/api/users/{userId}/block", "200") == "BlockState"
    assert answer("delete", "/api/users/{userId}/block", "200") == "BlockState"
    assert answer("get", "/api/blocks", "200") == "BlockedUsers"
    assert answer("post", "/api/chats/{chatId}/reports", "201") == "ReportReceipt"
    assert answer("get", "/api/admin/reports", "200") == "ReportsPage"
    assert answer("get", "/api/admin/reports/{id}", "200") == "ReportWithSnapshot"
    assert answer("post", "/api/admin/reports/{id}/resolve", "200") == "ReportWithSnapshot"
    report_body = spec["paths"]["/api/chats/{chatId}/reports"]["post"]["requestBody"]
    schema = report_body["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"messageId", "reason", "comment"}
    resolve = spec["paths"]["/api/admin/reports/{id}/resolve"]["post"]["requestBody"]
    assert resolve["content"]["application/json"]["schema"]["required"] == ["resolution"]
    snapshot = spec["components"]["schemas"]["ReportSnapshot"]
    assert set(snapshot["properties"]) == {"messageId", "takenAt", "messages"}
