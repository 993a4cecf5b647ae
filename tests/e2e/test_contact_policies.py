"""Contact details seen from the official JS client, REST and a webhook receiver: masking on the
socket and REST sends and on edits, CONTACT_NOT_ALLOWED naming the category (the attempt kept for
moderators), flag (unchanged text, moderation flagged, a message.flagged webhook), off, a number
split over three messages, the original never in any payload a client gets, the moderators'
routes, and a chat's policy changed on one node taking effect on another."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import pytest_asyncio

from .conftest import Connect, ServerFactory
from .faultkit import eventually
from .helpers import create_chat, failed, ok, send
from .jsclient import JsClient
from .resthelp import body, rest, rest_failed
from .server import ChatServer
from .tokens import Tokens, new_user_id
from .webhookrecv import ADMIN_KEY, WebhookReceiver, hook_env, wait_types

pytestmark = pytest.mark.e2e

ALLOWED = "market.example"
PHONE_TEXT = "call me 8 916 123 45 67 or write ivan.petrov@mail.ru, see market.example/lot/5"
MASKED = "call me [hidden] or write [hidden], see market.example/lot/5"
# Fragments of the originals that no client may ever receive.
SECRETS = ("916 123", "ivan.petrov", "mail.ru", "t.me/ivan", "3 45 67")


@pytest_asyncio.fixture(scope="module")
async def chat_server(
    module_server_factory: ServerFactory, receiver: WebhookReceiver
) -> ChatServer:
    return await module_server_factory.start(**hook_env(receiver, CONTACT_ALLOWED_HOSTS=ALLOWED))


async def pair(connect: Connect) -> tuple[JsClient, JsClient, dict[str, Any]]:
    buyer_id, seller_id = new_user_id(), new_user_id()
    buyer, seller = await connect(buyer_id), await connect(seller_id)
    chat = await create_chat(buyer, buyer_id, seller_id)
    ok(await seller.emit_ack("chat:join", {"chatId": chat["id"]}))
    return buyer, seller, chat


async def set_policy(server: ChatServer, chat_id: str, policy: str | None) -> dict[str, Any]:
    async with rest(server, ADMIN_KEY) as admin:
        answer = body(
            await admin.put(f"/api/admin/chats/{chat_id}/contact-policy", json={"policy": policy}),
            200,
        )
    assert isinstance(answer, dict)
    return answer


def assert_never_seen(*clients: JsClient, extra: object = None) -> None:
    """No payload any of these clients received (acks included) holds a piece of an original."""
    seen = json.dumps([[item.event, *item.args] for c in clients for item in c.log])
    seen += json.dumps(extra, ensure_ascii=False) + json.dumps(extra)
    for secret in SECRETS:
        assert secret not in seen, f"{secret!r} reached a client"


async def test_mask_hides_every_span_on_every_path_and_only_moderators_see_the_original(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, receiver: WebhookReceiver
) -> None:
    buyer, seller, chat = await pair(connect)
    sent = await send(buyer, chat["id"], PHONE_TEXT)
    assert sent["text"] == MASKED
    assert sent["moderation"] == {"action": "masked", "categories": ["email", "phone"]}
    assert await seller.wait_for("message:new") == sent
    assert await buyer.wait_for("message:new") == sent  # the sender's own echo

    history = ok(await seller.emit_ack("messages:history", {"chatId": chat["id"]}))
    assert history["messages"] == [sent]
    synced = ok(await buyer.emit_ack("messages:sync", {"chats": {chat["id"]: 0}}))
    assert synced["chats"][0]["messages"] == [sent]
    listed = ok(await seller.emit_ack("chats:list", {}))
    assert [c["lastMessage"] for c in listed["chats"] if c["id"] == chat["id"]] == [sent]
    joined = ok(await buyer.emit_ack("chat:join", {"chatId": chat["id"]}))
    assert joined["lastMessage"] == sent

    async with rest(chat_server, tokens.mint(seller.user_id)) as http:
        views = [
            body(await http.get(f"/api/chats/{chat['id']}/messages"), 200),
            body(await http.get(f"/api/chats/{chat['id']}"), 200),
            body(await http.get("/api/chats"), 200),
        ]
    assert views[0]["messages"] == [sent]
    assert views[1]["lastMessage"] == sent

    _, created = await wait_types(receiver, chat["id"], ["chat.created", "message.created"])
    assert created.event["data"]["message"] == sent
    assert_never_seen(buyer, seller, extra=[views, created.event])

    async with rest(chat_server, ADMIN_KEY) as admin:
        moderated = body(await admin.get(f"/api/admin/messages/{sent['id']}"), 200)
    assert moderated == {**sent, "original": PHONE_TEXT, "revisions": []}


async def test_mask_on_the_rest_send_and_on_an_edit(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    buyer, seller, chat = await pair(connect)
    async with rest(chat_server, tokens.mint(buyer.user_id)) as http:
        sent = body(
            await http.post(f"/api/chats/{chat['id']}/messages", json={"text": "тг t.me/ivan"}),
            201,
        )
        assert sent["text"] == "тг [hidden]"
        assert sent["moderation"]["action"] == "masked"
        assert await seller.wait_for("message:new") == sent

        mark = seller.mark()
        edited = ok(
            await buyer.emit_ack(
                "message:edit", {"messageId": sent["id"], "text": "ok, ivan.petrov@mail.ru then"}
            )
        )
        assert edited["text"] == "ok, [hidden] then"
        assert edited["moderation"] == {"action": "masked", "categories": ["email"]}
        assert await seller.wait_for("message:updated", since=mark) == edited
        patched = body(
            await http.patch(
                f"/api/chats/{chat['id']}/messages/{sent['id']}", json={"text": "8 916 123 45 67"}
            ),
            200,
        )
        assert patched["text"] == "[hidden]"
    assert_never_seen(buyer, seller, extra=[sent, patched])

    async with rest(chat_server, ADMIN_KEY) as admin:
        moderated = body(await admin.get(f"/api/admin/messages/{sent['id']}"), 200)
    assert moderated["original"] == "8 916 123 45 67"
    assert [r["text"] for r in moderated["revisions"]] == [
        "тг t.me/ivan",
        "ok, ivan.petrov@mail.ru then",
    ]


async def test_block_refuses_with_the_category_stores_nothing_and_keeps_the_attempt(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    buyer, seller, chat = await pair(connect)
    assert await set_policy(chat_server, chat["id"], "block") == {
        "chatId": chat["id"],
        "policy": "block",
        "effective": "block",
    }
    error = failed(
        await buyer.emit_ack(
            "message:send", {"chatId": chat["id"], "text": "звони 8 916 123 45 67"}
        ),
        "CONTACT_NOT_ALLOWED",
    )
    assert "phone" in error
    async with rest(chat_server, tokens.mint(buyer.user_id)) as http:
        error = rest_failed(
            await http.post(
                f"/api/chats/{chat['id']}/messages", json={"text": "mail ivan.petrov@mail.ru"}
            ),
            "CONTACT_NOT_ALLOWED",
            422,
        )
        assert "email" in error
        # Nothing stored or delivered; a message without contacts still goes through.
        assert body(await http.get(f"/api/chats/{chat['id']}/messages"), 200)["messages"] == []
    await seller.assert_no_event("message:new", within=0.3)
    fine = await send(buyer, chat["id"], "is it still available?")
    assert fine["seq"] == 1
    assert fine["moderation"] is None

    async with rest(chat_server, ADMIN_KEY) as admin:
        first = body(
            await admin.get(f"/api/admin/contact-attempts?chatId={chat['id']}&limit=1"), 200
        )
        assert [a["text"] for a in first["attempts"]] == ["mail ivan.petrov@mail.ru"]
        assert first["attempts"][0]["categories"] == ["email"]
        assert first["attempts"][0]["senderId"] == buyer.user_id
        rest_page = body(
            await admin.get(
                "/api/admin/contact-attempts",
                params={"chatId": chat["id"], "before": first["nextCursor"]},
            ),
            200,
        )
    assert [a["text"] for a in rest_page["attempts"]] == ["звони 8 916 123 45 67"]
    assert rest_page["nextCursor"] is None
    assert_never_seen(buyer, seller)


async def test_a_refused_send_retried_with_its_client_id_is_one_attempt(
    connect: Connect, chat_server: ChatServer
) -> None:
    buyer, _seller, chat = await pair(connect)
    await set_policy(chat_server, chat["id"], "block")
    retried = {"chatId": chat["id"], "text": "звони 8 916 123 45 67", "clientMessageId": "cm-1"}
    for _ in range(3):
        failed(await buyer.emit_ack("message:send", retried), "CONTACT_NOT_ALLOWED")
    other = {**retried, "clientMessageId": "cm-2"}
    failed(await buyer.emit_ack("message:send", other), "CONTACT_NOT_ALLOWED")
    async with rest(chat_server, ADMIN_KEY) as admin:
        page = body(await admin.get(f"/api/admin/contact-attempts?chatId={chat['id']}"), 200)
    assert [a["text"] for a in page["attempts"]] == [other["text"], retried["text"]]


async def test_flag_delivers_unchanged_and_tells_marketplace_api(
    connect: Connect, chat_server: ChatServer, receiver: WebhookReceiver
) -> None:
    buyer, seller, chat = await pair(connect)
    await set_policy(chat_server, chat["id"], "flag")
    sent = await send(buyer, chat["id"], "пиши в тг ivan_petrov")
    assert sent["text"] == "пиши в тг ivan_petrov"
    assert sent["moderation"] == {"action": "flagged", "categories": ["messenger"]}
    assert await seller.wait_for("message:new") == sent
    await wait_types(receiver, chat["id"], ["chat.created", "message.created"])

    def about_this_chat() -> list[Any]:
        return [
            d
            for d in receiver.delivered()
            if d.type in ("message.created", "message.flagged")
            and d.event["data"]["message"]["chatId"] == chat["id"]
        ]

    await receiver.wait_for(lambda: len(about_this_chat()) == 2, "message.flagged")
    created, flagged = about_this_chat()
    assert created.type == "message.created"
    assert flagged.type == "message.flagged"
    assert flagged.event["data"] == {"message": sent, "categories": ["messenger"]}


async def test_off_lets_contacts_through_and_null_brings_the_default_back(
    connect: Connect, chat_server: ChatServer
) -> None:
    buyer, _, chat = await pair(connect)
    assert (await set_policy(chat_server, chat["id"], "off"))["effective"] == "off"
    sent = await send(buyer, chat["id"], "8 916 123 45 67")
    assert (sent["text"], sent["moderation"]) == ("8 916 123 45 67", None)
    assert await set_policy(chat_server, chat["id"], None) == {
        "chatId": chat["id"],
        "policy": None,
        "effective": "mask",
    }
    assert (await send(buyer, chat["id"], "8 916 123 45 67"))["text"] == "[hidden]"


async def test_a_number_split_over_three_messages_is_masked_in_the_third(
    connect: Connect,
) -> None:
    buyer, seller, chat = await pair(connect)
    first = await send(buyer, chat["id"], "8 9")
    second = await send(buyer, chat["id"], "16 12")
    third = await send(buyer, chat["id"], "3 45 67 call me")
    assert (first["moderation"], second["moderation"]) == (None, None)
    assert third["text"] == "[hidden] call me"
    assert third["moderation"] == {"action": "masked", "categories": ["phone"]}
    assert await seller.wait_for("message:new", lambda m: m["id"] == third["id"]) == third
    assert_never_seen(buyer, seller)


async def test_a_default_policy_of_off_checks_nothing(
    server_factory: ServerFactory, connect: Connect
) -> None:
    server = await server_factory.start(CONTACT_POLICY="off")
    buyer_id, seller_id = new_user_id(), new_user_id()
    buyer = await connect(buyer_id, server=server)
    chat = await create_chat(buyer, buyer_id, seller_id)
    sent = await send(buyer, chat["id"], PHONE_TEXT)
    assert (sent["text"], sent["moderation"]) == (PHONE_TEXT, None)


async def test_moderation_routes_refuse_without_the_key_with_another_and_with_a_user_token(
    chat_server: ChatServer, tokens: Tokens
) -> None:
    some = uuid.uuid4()
    for token in (None, "wrong-key", tokens.mint(new_user_id()), ADMIN_KEY + "x"):
        async with rest(chat_server, token) as http:
            rest_failed(await http.get(f"/api/admin/messages/{some}"), "FORBIDDEN")
            rest_failed(await http.get(f"/api/admin/contact-attempts?chatId={some}"), "FORBIDDEN")
            rest_failed(
                await http.put(f"/api/admin/chats/{some}/contact-policy", json={"policy": "off"}),
                "FORBIDDEN",
            )


async def test_moderation_routes_refuse_bad_input(
    chat_server: ChatServer, connect: Connect
) -> None:
    _, _, chat = await pair(connect)
    url = f"/api/admin/chats/{chat['id']}/contact-policy"
    async with rest(chat_server, ADMIN_KEY) as admin:
        rest_failed(await admin.put(url, json={"policy": "hide"}), "VALIDATION_ERROR")
        rest_failed(await admin.put(url, json={}), "VALIDATION_ERROR")
        rest_failed(await admin.put(url, json={"policy": "off", "x": 1}), "VALIDATION_ERROR")
        rest_failed(await admin.put(url, content=b"[1]"), "VALIDATION_ERROR")
        rest_failed(
            await admin.put(
                f"/api/admin/chats/{uuid.uuid4()}/contact-policy", json={"policy": "off"}
            ),
            "NOT_FOUND",
        )
        rest_failed(
            await admin.put("/api/admin/chats/nope/contact-policy", json={"policy": "off"}),
            "VALIDATION_ERROR",
        )
        rest_failed(await admin.get(f"/api/admin/messages/{uuid.uuid4()}"), "NOT_FOUND")
        rest_failed(await admin.get("/api/admin/messages/nope"), "VALIDATION_ERROR")
        rest_failed(await admin.get("/api/admin/contact-attempts"), "VALIDATION_ERROR")
        attempts = f"/api/admin/contact-attempts?chatId={chat['id']}"
        rest_failed(await admin.get(attempts + "&limit=0"), "VALIDATION_ERROR")
        rest_failed(await admin.get(attempts + "&before=zzz"), "VALIDATION_ERROR")
        # Nothing changed by the refused requests.
        assert body(await admin.get(attempts), 200) == {"attempts": [], "nextCursor": None}


async def test_a_policy_changed_on_one_node_applies_on_another_at_once(
    server_factory: ServerFactory, connect: Connect
) -> None:
    a = await server_factory.start(ADMIN_API_KEY=ADMIN_KEY)
    b = await server_factory.start(ADMIN_API_KEY=ADMIN_KEY)
    buyer_id, seller_id = new_user_id(), new_user_id()
    on_b = await connect(buyer_id, server=b)
    chat = await create_chat(on_b, buyer_id, seller_id)
    # Node b has the chat's policy (the default) in memory now.
    assert (await send(on_b, chat["id"], "8 916 123 45 67"))["text"] == "[hidden]"
    await set_policy(a, chat["id"], "block")
    payload = {"chatId": chat["id"], "text": "8 916 123 45 67"}

    async def refused_on_b() -> bool:
        ack = await on_b.emit_ack("message:send", payload)
        return bool(ack.get("code") == "CONTACT_NOT_ALLOWED")

    # Announced over Redis: well inside the 30 s bound a missed announcement would take.
    await eventually(refused_on_b, timeout=5.0, what="node b applies the new policy")


async def test_openapi_describes_the_contact_moderation_routes(chat_server: ChatServer) -> None:
    async with rest(chat_server) as http:
        spec = body(await http.get("/openapi.json"), 200)

    def answer(method: str, path: str) -> str:
        response = spec["paths"][path][method]["responses"]["200"]
        return str(response["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[1]

    assert answer("get", "/api/admin/messages/{id}") == "ModeratedMessage"
    assert answer("get", "/api/admin/contact-attempts") == "ContactAttemptsPage"
    assert answer("put", "/api/admin/chats/{chatId}/contact-policy") == "ContactPolicyState"
    put = spec["paths"]["/api/admin/chats/{chatId}/contact-policy"]["put"]
    assert put["security"] == [{"adminKey": []}]
    schema = put["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["policy"]
    assert "chatId" not in schema["properties"]
