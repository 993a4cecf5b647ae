"""Hostile payloads from the real JS client: text PostgreSQL cannot store, unknown event names,
JSON bombs, ids a JavaScript client cannot represent. Each gets a clear error, changes nothing
and never fails another user's request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from .conftest import Connect
from .helpers import assert_auth_rejected, create_chat, failed, ok, send
from .jsclient import Bridge, JsClient
from .resthelp import rest, rest_failed
from .server import ChatServer
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e

NOT_STORABLE = "must be valid Unicode text without NUL characters or lone surrogates"
NOT_AN_ID = "must be a positive integer up to 9007199254740991"
TOO_DEEP = "payload: nested deeper than 32 levels"
# "*" is the catch-all's own name in the library, and must not reach it as an event.
UNKNOWN_NAMES = ["foo", "chat:CREATE", "", "*", "x" * 100]
# An ack id far above the ones the client library issues itself, for packets written by hand.
RAW_ACK_ID = 900_001


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def _pair(connect: Connect) -> tuple[JsClient, JsClient, dict[str, Any]]:
    buyer_id, seller_id = new_user_id(), new_user_id()
    buyer = await connect(buyer_id)
    seller = await connect(seller_id)
    chat = await create_chat(buyer, buyer_id, seller_id)
    return buyer, seller, chat


async def _stored(db: asyncpg.Pool, chat_id: str) -> list[tuple[int, str]]:
    rows = await db.fetch(
        "SELECT seq, text FROM chat.messages WHERE chat_id = $1 ORDER BY seq", chat_id
    )
    return [(row["seq"], row["text"]) for row in rows]


def with_text(text: str) -> Callable[[Any], bool]:
    return lambda message: isinstance(message, dict) and message.get("text") == text


POISON: list[tuple[str, dict[str, Any]]] = [
    ("text", {"text": "poison\u0000"}),
    ("text", {"text": "\ud800"}),
    ("clientMessageId", {"text": "fine", "clientMessageId": "c\u0000"}),
    ("clientMessageId", {"text": "fine", "clientMessageId": "\udfff"}),
]


async def test_poison_messages_in_a_burst_fail_alone_and_every_valid_one_is_acked_and_delivered(
    connect: Connect, db: asyncpg.Pool
) -> None:
    pairs = [await _pair(connect) for _ in range(10)]
    sends: list[tuple[JsClient, dict[str, Any], str | None]] = []
    for n in range(12):
        for buyer, _, chat in pairs:
            sends.append((buyer, {"chatId": chat["id"], "text": f"m{n}"}, None))
        if n % 3 == 0:
            # Poison from some of the same users, in the middle of everyone's burst.
            field, payload = POISON[(n // 3) % len(POISON)]
            poisoner, _, chat = pairs[n % len(pairs)]
            sends.append((poisoner, {"chatId": chat["id"], **payload}, field))

    acks = await asyncio.gather(
        *(client.emit_ack("message:send", payload) for client, payload, _ in sends)
    )

    for (_, _, refused_field), ack in zip(sends, acks, strict=True):
        if refused_field is None:
            ok(ack)
        else:
            assert failed(ack, "VALIDATION_ERROR") == f"{refused_field}: {NOT_STORABLE}"
    valid = {f"m{n}" for n in range(12)}
    for _, seller, chat in pairs:
        for text in valid:
            await seller.wait_for("message:new", with_text(text))
        delivered = [m["text"] for m in seller.events("message:new")]
        assert sorted(delivered) == sorted(valid), "each valid message exactly once"
        stored = await _stored(db, chat["id"])
        assert [seq for seq, _ in stored] == list(range(1, 13))
        assert {text for _, text in stored} == valid


async def test_unknown_event_with_an_ack_is_a_validation_error_naming_it(
    connect: Connect,
) -> None:
    client = await connect()
    for name in UNKNOWN_NAMES:
        ack = await client.emit_ack(name, {"chatId": "x"})
        assert failed(ack, "VALIDATION_ERROR") == f"Unknown event {name!r}"
    assert ok(await client.emit_ack("users:online", {"userIds": []})) == {"userIds": []}


async def test_unknown_event_without_an_ack_gets_an_exception_naming_it(
    connect: Connect,
) -> None:
    client = await connect()
    for name in UNKNOWN_NAMES:
        since = client.mark()
        await client.emit(name, {"chatId": "x"})
        exception = await client.wait_for("exception", since=since)
        assert exception == {
            "status": "error",
            "message": f"Unknown event {name!r}",
            "code": "VALIDATION_ERROR",
            "event": name,
        }


async def test_reserved_event_names_sent_by_hand_are_unknown_events_and_end_nothing(
    connect: Connect,
) -> None:
    """The library would run its own connect/disconnect handler for these names."""
    buyer, seller, chat = await _pair(connect)
    for name in ["disconnect", "connect"]:
        ack = await buyer.send_packet(f'2/chat,{RAW_ACK_ID}["{name}"]', ack_id=RAW_ACK_ID)
        assert failed(ack, "VALIDATION_ERROR") == f"Unknown event {name!r}"
    await send(buyer, chat["id"], "still here")
    await seller.wait_for("message:new", lambda m: m["text"] == "still here")


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(f"2/chat,{RAW_ACK_ID}{{}}", id="object"),
        pytest.param(f"2/chat,{RAW_ACK_ID}[]", id="empty-list"),
        pytest.param(f"2/chat,{RAW_ACK_ID}[5]", id="number-as-name"),
        pytest.param(f"2/chat,{RAW_ACK_ID}", id="no-data"),
        pytest.param(f'2/chat,{RAW_ACK_ID}["message:send",{{"chatId":', id="broken-json"),
    ],
)
async def test_event_packet_that_is_no_event_gets_a_validation_error(
    connect: Connect, packet: str
) -> None:
    client = await connect()
    ack = await client.send_packet(packet, ack_id=RAW_ACK_ID)
    assert failed(ack, "VALIDATION_ERROR").startswith("payload: ")
    assert ok(await client.emit_ack("users:online", {"userIds": []})) == {"userIds": []}


@pytest.mark.parametrize(
    "args_json",
    [
        pytest.param(f"[{nested(1000)}]", id="payload-1000-deep"),
        pytest.param(
            '[{"chatId":"00000000-0000-4000-8000-000000000000","text":' + nested(1000) + "}]",
            id="field-1000-deep",
        ),
        pytest.param(f"[{nested(33)}]", id="payload-33-deep"),
    ],
)
async def test_json_nested_too_deep_with_an_ack_is_a_validation_error(
    connect: Connect, args_json: str
) -> None:
    client = await connect()
    ack = await client.emit_ack("message:send", args_json=args_json)
    assert failed(ack, "VALIDATION_ERROR") == TOO_DEEP
    assert ok(await client.emit_ack("users:online", {"userIds": []})) == {"userIds": []}


async def test_json_nested_too_deep_without_an_ack_gets_an_exception_naming_the_event(
    connect: Connect,
) -> None:
    client = await connect()
    await client.emit("message:send", args_json=f"[{nested(1000)}]")
    exception = await client.wait_for("exception")
    assert exception == {
        "status": "error",
        "message": TOO_DEEP,
        "code": "VALIDATION_ERROR",
        "event": "message:send",
    }


async def test_json_nested_within_the_limit_is_judged_by_its_payload(connect: Connect) -> None:
    client = await connect()
    ack = await client.emit_ack("message:send", args_json=f"[{nested(30)}]")
    assert failed(ack, "VALIDATION_ERROR") == "payload: must be an object"


@pytest.mark.parametrize("value", ["9007199254740993", "9007199254740992", 2**53 + 2])
@pytest.mark.parametrize("field", ["buyerId", "sellerId", "productId"])
async def test_id_above_what_javascript_represents_exactly_is_a_validation_error(
    connect: Connect, db: asyncpg.Pool, field: str, value: object
) -> None:
    buyer_id = new_user_id()
    client = await connect(buyer_id)
    payload: dict[str, object] = {"buyerId": buyer_id, "sellerId": new_user_id(), field: value}
    ack = await client.emit_ack("chat:create", payload)
    assert failed(ack, "VALIDATION_ERROR") == f"{field}: {NOT_AN_ID}"
    chats = await db.fetchval(
        "SELECT count(*) FROM chat.chats WHERE buyer_id = $1 OR seller_id = $1", buyer_id
    )
    assert chats == 0


async def test_largest_exact_javascript_integer_is_accepted_as_an_id(connect: Connect) -> None:
    buyer_id = new_user_id()
    client = await connect(buyer_id)
    chat = await create_chat(client, buyer_id, 2**53 - 1, product_id=2**53 - 1)
    assert (chat["sellerId"], chat["productId"]) == (2**53 - 1, 2**53 - 1)


async def test_user_ids_above_what_javascript_represents_exactly_are_refused_by_position(
    connect: Connect,
) -> None:
    client = await connect()
    ack = await client.emit_ack("users:online", {"userIds": [5, "9007199254740993"]})
    assert failed(ack, "VALIDATION_ERROR") == f"userIds.1: {NOT_AN_ID}"


async def test_token_for_a_user_id_above_what_javascript_represents_exactly_is_refused(
    bridge: Bridge, chat_server: ChatServer, tokens: Tokens
) -> None:
    client = await bridge.connect(chat_server.url, token=tokens.mint("9007199254740993"))
    await assert_auth_rejected(client, "TOKEN_INVALID")


@pytest.mark.parametrize("token", ["\ud800", "a.b\u0000.c"])
async def test_handshake_token_that_is_not_text_is_token_invalid(
    bridge: Bridge, chat_server: ChatServer, token: str
) -> None:
    client = await bridge.connect(chat_server.url, token=token)
    await assert_auth_rejected(client, "TOKEN_INVALID")


async def test_refreshed_token_that_is_not_text_is_token_invalid_as_in_a_handshake(
    connect: Connect,
) -> None:
    client = await connect()
    for token in ("\ud800", "abc\u0000def"):
        failed(await client.emit_ack("auth:refresh-token", {"token": token}), "TOKEN_INVALID")
    assert ok(await client.emit_ack("users:online", {"userIds": []})) == {"userIds": []}


@pytest.mark.parametrize(("field", "payload"), POISON)
async def test_rest_send_of_text_postgresql_cannot_store_is_a_validation_error(
    connect: Connect,
    chat_server: ChatServer,
    tokens: Tokens,
    db: asyncpg.Pool,
    field: str,
    payload: dict[str, Any],
) -> None:
    buyer, _, chat = await _pair(connect)
    assert buyer.user_id is not None
    async with rest(chat_server, tokens.mint(buyer.user_id)) as http:
        # As a browser sends it: JSON escapes a lone surrogate, which UTF-8 cannot carry.
        response = await http.post(
            f"/api/chats/{chat['id']}/messages",
            content=json.dumps(payload, ensure_ascii=True),
            headers={"Content-Type": "application/json"},
        )
    assert rest_failed(response, "VALIDATION_ERROR") == f"{field}: {NOT_STORABLE}"
    assert await _stored(db, chat["id"]) == []


async def test_unknown_event_with_a_long_name_is_named_in_part(connect: Connect) -> None:
    client = await connect()
    ack = await client.emit_ack("y" * 5000, {})
    assert failed(ack, "VALIDATION_ERROR") == f"Unknown event {'y' * 100 + '…'!r}"
