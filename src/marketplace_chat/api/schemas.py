"""The REST API's objects as the OpenAPI description shows them.

These models only describe: endpoints return the domain values' own `to_wire()` forms, which a
unit test holds to these fields. Request bodies are described from the socket's payload models
themselves (`request_body`), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from marketplace_chat.errors import ErrorCode
from marketplace_chat.models import Payload

_WIRE = ConfigDict(extra="forbid")


class Message(BaseModel):
    model_config = _WIRE

    id: str = Field(description="UUID")
    chatId: str = Field(description="UUID")  # noqa: N815 - the wire's camelCase
    seq: int = Field(description="1, 2, 3… in commit order within the chat, without gaps")
    senderId: int  # noqa: N815
    text: str
    productId: int | None  # noqa: N815
    clientMessageId: str | None  # noqa: N815
    createdAt: str = Field(description="ISO-8601 UTC with milliseconds")  # noqa: N815


class Chat(BaseModel):
    model_config = _WIRE

    id: str = Field(description="UUID")
    buyerId: int  # noqa: N815
    sellerId: int  # noqa: N815
    productId: int | None = Field(description="the chat's current product context")  # noqa: N815
    createdAt: str  # noqa: N815
    updatedAt: str = Field(description="last message or product change")  # noqa: N815
    lastMessage: Message | None  # noqa: N815
    unreadCount: int = Field(description="the partner's messages after the caller's read pointer")  # noqa: N815


class ChatsPage(BaseModel):
    model_config = _WIRE

    chats: list[Chat]
    nextCursor: str | None = Field(description="`before` of the next page; null on the last")  # noqa: N815


class MessagesPage(BaseModel):
    model_config = _WIRE

    messages: list[Message] = Field(description="in chronological order")
    hasMore: bool  # noqa: N815


class ReadPointer(BaseModel):
    model_config = _WIRE

    chatId: str  # noqa: N815
    messageId: str  # noqa: N815
    seq: int
    readAt: str  # noqa: N815


class Error(BaseModel):
    """Every error of the API, whatever the route or the status."""

    model_config = _WIRE

    error: str = Field(description="what went wrong, for people; names the field when it is one")
    code: ErrorCode
    retryAfterMs: int | None = Field(default=None, description="with RATE_LIMITED")  # noqa: N815


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
