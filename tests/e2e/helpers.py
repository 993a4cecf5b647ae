"""Assertions on the wire objects (acks, errors, Chat, Message, events), and small shared flows."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from .jsclient import JsClient

ISO_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
CHAT_KEYS = {
    "id",
    "buyerId",
    "sellerId",
    "productId",
    "createdAt",
    "updatedAt",
    "lastMessage",
    "unreadCount",
}
MESSAGE_KEYS = {
    "id",
    "chatId",
    "seq",
    "senderId",
    "text",
    "productId",
    "clientMessageId",
    "createdAt",
}


def ok(ack: Any) -> Any:
    """The ``data`` of a success ack; fails on anything else."""
    assert isinstance(ack, dict), f"ack is not an object: {ack!r}"
    assert ack.get("success") is True, f"expected success, got {ack!r}"
    assert "data" in ack, f"success ack without data: {ack!r}"
    return ack["data"]


def failed(ack: Any, code: str) -> str:
    """Asserts a failure ack with ``code``; returns its error message."""
    assert isinstance(ack, dict), f"ack is not an object: {ack!r}"
    assert ack.get("success") is False, f"expected failure {code}, got {ack!r}"
    assert ack.get("code") == code, f"expected code {code}, got {ack!r}"
    error = ack.get("error")
    assert isinstance(error, str), f"failure ack without error string: {ack!r}"
    assert error.strip(), f"empty error message: {ack!r}"
    assert "Traceback" not in error, f"stack trace leaked: {error!r}"
    return error


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def parse_iso(value: Any) -> datetime:
    assert isinstance(value, str), f"not a string: {value!r}"
    assert ISO_MS_UTC.match(value), f"not an ISO-8601 UTC time with milliseconds: {value!r}"
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def assert_message_shape(message: Any) -> None:
    assert isinstance(message, dict), f"message is not an object: {message!r}"
    missing = MESSAGE_KEYS - message.keys()
    assert not missing, f"message lacks {missing}: {message!r}"
    assert is_uuid(message["id"]), message
    assert is_uuid(message["chatId"]), message
    assert is_positive_int(message["seq"]), message
    assert is_positive_int(message["senderId"]), message
    assert isinstance(message["text"], str), message
    assert message["text"], message
    assert message["productId"] is None or is_positive_int(message["productId"]), message
    assert message["clientMessageId"] is None or isinstance(message["clientMessageId"], str)
    parse_iso(message["createdAt"])


def assert_chat_shape(chat: Any) -> None:
    assert isinstance(chat, dict), f"chat is not an object: {chat!r}"
    missing = CHAT_KEYS - chat.keys()
    assert not missing, f"chat lacks {missing}: {chat!r}"
    assert is_uuid(chat["id"]), chat
    assert is_positive_int(chat["buyerId"]), chat
    assert is_positive_int(chat["sellerId"]), chat
    assert chat["productId"] is None or is_positive_int(chat["productId"]), chat
    parse_iso(chat["createdAt"])
    parse_iso(chat["updatedAt"])
    if chat["lastMessage"] is not None:
        assert_message_shape(chat["lastMessage"])
    assert isinstance(chat["unreadCount"], int), chat
    assert chat["unreadCount"] >= 0, chat


async def create_chat(
    client: JsClient, buyer_id: int, seller_id: int, product_id: int | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"buyerId": buyer_id, "sellerId": seller_id}
    if product_id is not None:
        payload["productId"] = product_id
    chat = ok(await client.emit_ack("chat:create", payload))
    assert isinstance(chat, dict)
    return chat


async def send(client: JsClient, chat_id: str, text: str, **fields: Any) -> dict[str, Any]:
    message = ok(await client.emit_ack("message:send", {"chatId": chat_id, "text": text, **fields}))
    assert isinstance(message, dict)
    return message


async def assert_auth_rejected(client: JsClient, code: str, wait_s: float = 8.0) -> dict[str, Any]:
    """A refused token: the client sees ``connect``, then ``auth:error {error, code}``, then the
    disconnect with reason ``io server disconnect``; returns the ``auth:error`` payload."""
    first = await client.wait_for_any(["disconnect", "connect_error"], timeout=wait_s)
    assert first.event == "disconnect", f"expected connect+auth:error+disconnect, got {first}"
    names = [name for name in client.event_names() if name != "transport:upgrade"]
    assert names == ["connect", "auth:error", "disconnect"], f"event sequence: {client.log}"
    assert first.payload == "io server disconnect", f"disconnect reason {first.payload!r}"
    error = client.events("auth:error")[0]
    assert isinstance(error, dict), error
    assert error.get("code") == code, f"expected {code}, got {error!r}"
    assert isinstance(error.get("error"), str), error
    assert error["error"], error
    return error


async def online_ids(client: JsClient, user_ids: list[int]) -> set[int]:
    """Which of ``user_ids`` the server says are online (``users:online``)."""
    data = ok(await client.emit_ack("users:online", {"userIds": user_ids}))
    return set(data["userIds"])
