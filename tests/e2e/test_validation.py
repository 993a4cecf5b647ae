"""Bad input of any kind to any event is VALIDATION_ERROR naming the field, changes
nothing, and leaves the connection usable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from marketplace_chat import asyncapi

from .conftest import Connect
from .helpers import create_chat, failed, ok, send
from .tokens import new_user_id

pytestmark = pytest.mark.e2e

NO_PAYLOAD: Any = object()


@dataclass(frozen=True)
class Ctx:
    user_id: int
    seller_id: int
    chat_id: str
    message_id: str


@dataclass(frozen=True)
class Case:
    event: str
    payload: Callable[[Ctx], Any]
    fields: tuple[str, ...] = ()  # the error names one of these; () when no field applies


# Every client event, as the gateway registers them (a unit test holds the registry to it).
EVENTS = [e.name for e in asyncapi.CLIENT_EVENTS]
# Every field of these is optional, so a missing or null payload may fairly mean {}.
ALL_OPTIONAL = {"chats:list", "messages:sync", "users:online", "blocks:list"}


def _const(value: Any) -> Callable[[Ctx], Any]:
    return lambda _ctx: value


def _not_an_object_cases() -> list[Any]:
    shapes: list[tuple[str, Any]] = [
        ("no-payload", NO_PAYLOAD),
        ("null", None),
        ("string", "chatId"),
        ("array", [1, 2]),
        ("number", 42),
        ("boolean", True),
    ]
    params = []
    for event in EVENTS:
        for name, value in shapes:
            if event in ALL_OPTIONAL and name in ("no-payload", "null"):
                continue
            params.append(pytest.param(Case(event, _const(value)), id=f"{event}-{name}"))
    return params


def _chat_id_cases(event: str) -> list[Any]:
    return [
        pytest.param(Case(event, lambda c: {}, ("chatId",)), id=f"{event}-missing-chatId"),
        pytest.param(
            Case(event, lambda c: {"chatId": "not-a-uuid"}, ("chatId",)), id=f"{event}-bad-uuid"
        ),
        pytest.param(Case(event, lambda c: {"chatId": 123}, ("chatId",)), id=f"{event}-int-chatId"),
        pytest.param(
            Case(event, lambda c: {"chatId": None}, ("chatId",)), id=f"{event}-null-chatId"
        ),
        pytest.param(
            Case(event, lambda c: {"chatId": c.chat_id, "bogus": 1}, ("bogus",)),
            id=f"{event}-unknown-field",
        ),
    ]


def _create(**fields: Any) -> Callable[[Ctx], Any]:
    def build(c: Ctx) -> Any:
        payload: dict[str, Any] = {"buyerId": c.user_id, "sellerId": new_user_id()}
        payload.update(fields)
        return {k: v for k, v in payload.items() if v is not NO_PAYLOAD}

    return build


def _send(**fields: Any) -> Callable[[Ctx], Any]:
    def build(c: Ctx) -> Any:
        payload: dict[str, Any] = {"chatId": c.chat_id, "text": "hello"}
        payload.update(fields)
        return {k: v for k, v in payload.items() if v is not NO_PAYLOAD}

    return build


def P(case: Case, name: str) -> Any:  # noqa: N802 - reads like pytest.param
    return pytest.param(case, id=f"{case.event}-{name}")


FIELD_CASES = [
    P(Case("chat:create", _create(buyerId=NO_PAYLOAD), ("buyerId",)), "missing-buyerId"),
    P(Case("chat:create", _create(sellerId=NO_PAYLOAD), ("sellerId",)), "missing-sellerId"),
    P(Case("chat:create", _create(sellerId="abc"), ("sellerId",)), "sellerId-not-digits"),
    P(Case("chat:create", _create(sellerId=0), ("sellerId",)), "sellerId-zero"),
    P(Case("chat:create", _create(sellerId=-3), ("sellerId",)), "sellerId-negative"),
    P(Case("chat:create", _create(sellerId=1.5), ("sellerId",)), "sellerId-float"),
    P(Case("chat:create", _create(sellerId=True), ("sellerId",)), "sellerId-boolean"),
    P(Case("chat:create", _create(sellerId=[5]), ("sellerId",)), "sellerId-array"),
    P(Case("chat:create", _create(sellerId={"id": 5}), ("sellerId",)), "sellerId-object"),
    P(
        Case("chat:create", _create(sellerId="9223372036854775808"), ("sellerId",)),
        "sellerId-beyond-bigint",
    ),
    P(Case("chat:create", _create(productId=0), ("productId",)), "productId-zero"),
    P(Case("chat:create", _create(productId="x"), ("productId",)), "productId-not-digits"),
    P(Case("chat:create", _create(bogus=1), ("bogus",)), "unknown-field"),
    *_chat_id_cases("chat:join"),
    *_chat_id_cases("chat:leave"),
    *_chat_id_cases("typing:start"),
    *_chat_id_cases("typing:stop"),
    P(Case("message:send", _send(chatId=NO_PAYLOAD), ("chatId",)), "missing-chatId"),
    P(Case("message:send", _send(chatId="nope"), ("chatId",)), "bad-uuid"),
    P(Case("message:send", _send(text=NO_PAYLOAD), ("text",)), "missing-text"),
    P(Case("message:send", _send(text=5), ("text",)), "text-number"),
    P(Case("message:send", _send(text=None), ("text",)), "text-null"),
    P(Case("message:send", _send(text=["a"]), ("text",)), "text-array"),
    P(Case("message:send", _send(productId=-1), ("productId",)), "productId-negative"),
    P(Case("message:send", _send(productId="abc"), ("productId",)), "productId-not-digits"),
    P(Case("message:send", _send(clientMessageId=5), ("clientMessageId",)), "cmid-number"),
    P(Case("message:send", _send(bogus=True), ("bogus",)), "unknown-field"),
    P(Case("chats:list", lambda c: {"limit": 0}, ("limit",)), "limit-0"),
    P(Case("chats:list", lambda c: {"limit": 101}, ("limit",)), "limit-101"),
    P(Case("chats:list", lambda c: {"limit": "ten"}, ("limit",)), "limit-string"),
    P(Case("chats:list", lambda c: {"bogus": 1}, ("bogus",)), "unknown-field"),
    P(Case("messages:history", lambda c: {}, ("chatId",)), "missing-chatId"),
    P(Case("messages:history", lambda c: {"chatId": "x"}, ("chatId",)), "bad-uuid"),
    P(
        Case("messages:history", lambda c: {"chatId": c.chat_id, "limit": 0}, ("limit",)),
        "limit-0",
    ),
    P(
        Case("messages:history", lambda c: {"chatId": c.chat_id, "limit": 101}, ("limit",)),
        "limit-101",
    ),
    P(
        Case(
            "messages:history",
            lambda c: {"chatId": c.chat_id, "before": c.message_id, "after": c.message_id},
            ("before", "after"),
        ),
        "before-and-after",
    ),
    P(
        Case("messages:history", lambda c: {"chatId": c.chat_id, "before": "x"}, ("before",)),
        "before-bad-uuid",
    ),
    P(Case("messages:sync", lambda c: {"chats": "x"}, ("chats",)), "chats-string"),
    P(Case("messages:sync", lambda c: {"chats": {"not-a-uuid": 1}}, ("chats",)), "chats-bad-key"),
    P(Case("messages:sync", lambda c: {"chats": {c.chat_id: "abc"}}, ("chats",)), "chats-bad-seq"),
    P(Case("messages:sync", lambda c: {"limit": 0}, ("limit",)), "limit-0"),
    P(Case("message:read", lambda c: {"chatId": c.chat_id}, ("messageId",)), "missing-messageId"),
    P(
        Case("message:read", lambda c: {"chatId": c.chat_id, "messageId": "x"}, ("messageId",)),
        "bad-messageId",
    ),
    P(Case("message:read", lambda c: {"messageId": c.message_id}, ("chatId",)), "missing-chatId"),
    P(Case("users:online", lambda c: {"userIds": "1,2"}, ("userIds",)), "string"),
    P(Case("users:online", lambda c: {"userIds": 5}, ("userIds",)), "number"),
    P(Case("users:online", lambda c: {"userIds": [0]}, ("userIds",)), "zero-id"),
    P(Case("users:online", lambda c: {"userIds": [-1]}, ("userIds",)), "negative-id"),
    P(Case("users:online", lambda c: {"userIds": ["abc"]}, ("userIds",)), "non-digit-id"),
    P(Case("users:online", lambda c: {"userIds": [1.5]}, ("userIds",)), "float-id"),
    P(Case("users:online", lambda c: {"bogus": 1}, ("bogus",)), "unknown-field"),
    P(Case("auth:refresh-token", lambda c: {"token": 5}, ("token",)), "token-number"),
    *[
        P(Case(event, fields, ("userId",)), name)
        for event in ("user:block", "user:unblock")
        for name, fields in (
            ("missing-userId", lambda c: {}),
            ("self", lambda c: {"userId": c.user_id}),
            ("zero", lambda c: {"userId": 0}),
            ("float", lambda c: {"userId": 1.5}),
            ("not-digits", lambda c: {"userId": "abc"}),
        )
    ],
    P(Case("blocks:list", lambda c: {"bogus": 1}, ("bogus",)), "unknown-field"),
    P(Case("report:create", lambda c: {"chatId": c.chat_id}, ("reason",)), "missing-reason"),
    P(
        Case("report:create", lambda c: {"chatId": c.chat_id, "reason": "x"}, ("reason",)),
        "unknown-reason",
    ),
    P(
        Case(
            "report:create",
            lambda c: {"chatId": c.chat_id, "reason": "spam", "comment": "x" * 1001},
            ("comment",),
        ),
        "comment-too-long",
    ),
    P(
        Case(
            "report:create",
            lambda c: {"chatId": c.chat_id, "reason": "spam", "comment": "a\x00b"},
            ("comment",),
        ),
        "comment-nul",
    ),
    P(
        Case(
            "report:create",
            lambda c: {"chatId": c.chat_id, "reason": "spam", "messageId": "x"},
            ("messageId",),
        ),
        "bad-messageId",
    ),
    P(Case("report:create", lambda c: {"reason": "spam"}, ("chatId",)), "missing-chatId"),
]


async def _state(db: asyncpg.Pool, redis: aioredis.Redis, ctx: Ctx) -> tuple[Any, ...]:
    chats = await db.fetchval(
        "SELECT count(*) FROM chat.chats WHERE buyer_id = $1 OR seller_id = $1", ctx.user_id
    )
    messages = await db.fetch(
        "SELECT id, text FROM chat.messages WHERE chat_id = $1 ORDER BY seq", ctx.chat_id
    )
    context = await db.fetchval(
        "SELECT product_id FROM chat.chat_context WHERE chat_id = $1", ctx.chat_id
    )
    typing = await redis.exists(f"chat:{ctx.chat_id}:typing:{ctx.user_id}")
    safety = await db.fetchrow(
        "SELECT (SELECT count(*) FROM chat.blocks WHERE blocker_id = $1) AS blocks, "
        "(SELECT count(*) FROM chat.reports WHERE reporter_id = $1) AS reports",
        ctx.user_id,
    )
    return chats, [tuple(m) for m in messages], context, typing, tuple(safety or ())


@pytest.mark.parametrize("case", [*_not_an_object_cases(), *FIELD_CASES])
async def test_bad_input_is_validation_error_and_changes_nothing(
    connect: Connect, db: asyncpg.Pool, redis: aioredis.Redis, user_id: int, case: Case
) -> None:
    seller_id = new_user_id()
    client = await connect(user_id)
    chat = await create_chat(client, user_id, seller_id)
    message = await send(client, chat["id"], "first")
    ctx = Ctx(user_id, seller_id, chat["id"], message["id"])
    before = await _state(db, redis, ctx)
    payload = case.payload(ctx)
    args = () if payload is NO_PAYLOAD else (payload,)

    error = failed(await client.emit_ack(case.event, *args), "VALIDATION_ERROR")

    if case.fields:
        assert any(f.lower() in error.lower() for f in case.fields), (
            f"error {error!r} names none of {case.fields}"
        )
    assert await _state(db, redis, ctx) == before
    assert client.connected
    assert ok(await client.emit_ack("users:online", {"userIds": [user_id]})) == {
        "userIds": [user_id]
    }
    assert client.events("disconnect") == []


@pytest.mark.parametrize("event", EVENTS)
async def test_bad_input_without_ack_emits_exception_naming_the_event(
    connect: Connect, event: str
) -> None:
    client = await connect()

    await client.emit(event, "not an object")

    exception = await client.wait_for("exception")
    assert exception["status"] == "error"
    assert exception["code"] == "VALIDATION_ERROR"
    assert exception["event"] == event
    assert client.connected
