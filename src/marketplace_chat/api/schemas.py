"""The REST API's objects as the OpenAPI description shows them.

These models only describe: endpoints return the domain values' own `to_wire()` forms, which a
unit test holds to these fields. Request bodies are described from the socket's payload models
themselves (`request_body`), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from marketplace_chat.errors import ErrorCode
from marketplace_chat.models import Payload

# camelCase on the wire, as everywhere; FastAPI describes responses by their aliases.
_WIRE = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Message(BaseModel):
    model_config = _WIRE

    id: str = Field(description="UUID")
    chat_id: str = Field(description="UUID")
    seq: int = Field(description="1, 2, 3… in commit order within the chat, without gaps")
    sender_id: int
    text: str
    product_id: int | None
    client_message_id: str | None
    created_at: str = Field(description="ISO-8601 UTC with milliseconds")


class Chat(BaseModel):
    model_config = _WIRE

    id: str = Field(description="UUID")
    buyer_id: int
    seller_id: int
    product_id: int | None = Field(description="the chat's current product context")
    created_at: str
    updated_at: str = Field(description="last message or product change")
    last_message: Message | None
    unread_count: int = Field(description="the partner's messages after the caller's read pointer")


class ChatsPage(BaseModel):
    model_config = _WIRE

    chats: list[Chat]
    next_cursor: str | None = Field(description="`before` of the next page; null on the last")


class MessagesPage(BaseModel):
    model_config = _WIRE

    messages: list[Message] = Field(description="in chronological order")
    has_more: bool


class ReadPointer(BaseModel):
    model_config = _WIRE

    chat_id: str
    message_id: str
    seq: int
    read_at: str


class Error(BaseModel):
    """Every error of the API, whatever the route or the status."""

    model_config = _WIRE

    error: str = Field(description="what went wrong, for people; names the field when it is one")
    code: ErrorCode
    retry_after_ms: int | None = Field(default=None, description="with RATE_LIMITED")


ERROR_STATUSES = {
    401: "TOKEN_REQUIRED, TOKEN_INVALID or TOKEN_EXPIRED",
    403: "FORBIDDEN: not a participant of the chat",
    404: "NOT_FOUND",
    413: "VALIDATION_ERROR: the body is larger than MAX_REQUEST_BODY_BYTES",
    422: "VALIDATION_ERROR: the message names the field",
    429: "RATE_LIMITED, with retryAfterMs",
    500: "INTERNAL_ERROR",
    503: "AUTH_SERVICE_ERROR: marketplace-api could not verify the token",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": Error, "description": ERROR_STATUSES[s]} for s in statuses}


def request_body(
    model: type[Payload], *, example: dict[str, Any], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    """An operation's JSON body, from a socket payload model less the fields the path carries."""
    schema = model.model_json_schema(by_alias=True)
    for name in path:
        schema["properties"].pop(name, None)
        schema["required"] = [r for r in schema.get("required", []) if r != name]
    schema["title"] = model.__name__
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }
