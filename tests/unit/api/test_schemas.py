"""The OpenAPI objects describe exactly what the endpoints send: the domain values' wire forms."""

from __future__ import annotations

from datetime import UTC, datetime

from marketplace_chat.api import schemas
from marketplace_chat.models import Chat, Message, ReadReceipt
from marketplace_chat.payloads import MessageSend

NOW = datetime(2026, 11, 26, 1, 10, 32, 123000, tzinfo=UTC)
MESSAGE = Message("m-1", "c-1", 1, 7, "hi", None, "client-1", NOW)


def test_message_and_chat_wire_forms_validate_against_their_schemas() -> None:
    chat = Chat("c-1", 7, 8, 3, NOW, NOW, MESSAGE, 1)

    assert (
        schemas.Message.model_validate(MESSAGE.to_wire()).model_dump(by_alias=True)
        == MESSAGE.to_wire()
    )
    assert schemas.Chat.model_validate(chat.to_wire()).model_dump(by_alias=True) == chat.to_wire()
    empty = Chat("c-2", 7, 8, None, NOW, NOW, None, 0).to_wire()
    assert schemas.Chat.model_validate(empty).model_dump(by_alias=True) == empty


def test_pages_and_read_pointer_validate_against_their_schemas() -> None:
    receipt = ReadReceipt("c-1", 7, "m-1", 1, NOW).to_wire(with_user=False)

    schemas.ReadPointer.model_validate(receipt)
    schemas.HistoryPage.model_validate({"messages": [MESSAGE.to_wire()], "hasMore": False})
    schemas.ChatsPage.model_validate({"chats": [], "nextCursor": None})


def test_a_request_body_is_the_socket_payload_less_the_path_fields() -> None:
    body = schemas.request_body(MessageSend, example={"text": "x"}, path=("chatId",))
    schema = body["requestBody"]["content"]["application/json"]["schema"]

    assert set(schema["properties"]) == {"text", "productId", "clientMessageId"}
    assert schema["required"] == ["text"]
    assert schema["additionalProperties"] is False
