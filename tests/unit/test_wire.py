"""The answer models in `wire.py` hold exactly what `to_wire()` and the error forms produce."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from marketplace_chat import wire
from marketplace_chat.errors import (
    INTERNAL,
    AuthError,
    ErrorCode,
    NotFound,
    RateLimited,
    ValidationFailed,
    token_expired,
)
from marketplace_chat.models import Chat, Message, ReadReceipt

CHAT_ID = "3f2b8c1e-9a4d-4c6b-8e2f-1a2b3c4d5e6f"
MESSAGE_ID = "0b7e2f4a-5c6d-4e8f-9a1b-2c3d4e5f6a7b"
AT = datetime(2026, 11, 26, 1, 10, 32, 123456, tzinfo=UTC)


def message(**changes: Any) -> Message:
    fields: dict[str, Any] = {
        "id": MESSAGE_ID,
        "chat_id": CHAT_ID,
        "seq": 1,
        "sender_id": 7,
        "text": "Is it still available?",
        "product_id": 99,
        "client_message_id": "c-1",
        "created_at": AT,
    }
    return Message(**{**fields, **changes})


def chat(**changes: Any) -> Chat:
    fields: dict[str, Any] = {
        "id": CHAT_ID,
        "buyer_id": 7,
        "seller_id": 8,
        "product_id": None,
        "created_at": AT,
        "updated_at": AT,
        "last_message": message(),
        "unread_count": 3,
    }
    return Chat(**{**fields, **changes})


def holds(model: type[BaseModel], body: dict[str, Any]) -> None:
    """The body validates as JSON, strictly, and the model gives back the very same keys."""
    parsed = model.model_validate_json(orjson.dumps(body))
    assert parsed.model_dump(by_alias=True, mode="json", exclude_unset=True) == body


@pytest.mark.parametrize(
    "value",
    [message(), message(product_id=None, client_message_id=None), message(seq=2**31 - 1)],
)
def test_message_wire_form_matches_its_model(value: Message) -> None:
    holds(wire.Message, value.to_wire())


@pytest.mark.parametrize("value", [chat(), chat(last_message=None, product_id=5, unread_count=0)])
def test_chat_wire_form_matches_its_model(value: Chat) -> None:
    holds(wire.Chat, value.to_wire())


def test_read_receipt_forms_match_the_ack_and_the_event_models() -> None:
    receipt = ReadReceipt(CHAT_ID, 7, MESSAGE_ID, 4, AT)
    holds(wire.ReadPointer, receipt.to_wire(with_user=False))
    holds(wire.ReadReceipt, receipt.to_wire())


@pytest.mark.parametrize(
    "error",
    [
        ValidationFailed("text: must not be empty"),
        NotFound("chatId: no such chat"),
        AuthError("The new token belongs to another user", ErrorCode.TOKEN_USER_MISMATCH),
        token_expired(),
        RateLimited("Too many message:send requests; retry later", 1500, "message:send"),
        INTERNAL,
    ],
)
def test_failure_acks_and_exception_events_match_their_models(error: Any) -> None:
    holds(wire.AckFailure, error.to_ack())
    holds(wire.ExceptionEvent, error.to_exception_event("message:send"))


def test_a_key_the_model_does_not_know_is_refused() -> None:
    body = {**message().to_wire(), "editedBy": None}
    with pytest.raises(ValidationError, match="editedBy"):
        wire.Message.model_validate_json(orjson.dumps(body))


def test_a_key_always_sent_is_required_even_when_it_may_be_null() -> None:
    body = message().to_wire()
    del body["productId"]
    with pytest.raises(ValidationError, match="productId"):
        wire.Message.model_validate_json(orjson.dumps(body))
