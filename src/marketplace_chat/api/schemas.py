"""The REST API's objects as the OpenAPI description shows them.

These models only describe: endpoints return the domain values' own `to_wire()` forms, which a
unit test holds to these fields. Request bodies are described from the socket's payload models
themselves (`request_body`), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from marketplace_chat import wire
from marketplace_chat.errors import ErrorCode
from marketplace_chat.payloads import Payload

# The objects are the ones the socket sends (`wire.py`, held to every `to_wire()` by its tests).
Message = wire.Message
Chat = wire.Chat
ChatsPage = wire.ChatsPage
HistoryPage = wire.HistoryPage
ReadPointer = wire.ReadPointer
ResponseStats = wire.ResponseStats
MessageDeleted = wire.MessageDeleted
BlockState = wire.BlockState
BlockedUsers = wire.BlockedUsers
ReportReceipt = wire.ReportReceipt


class Error(BaseModel):
    """Every error of the API, whatever the route or the status."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    error: str = Field(description="what went wrong, for people; names the field when it is one")
    code: ErrorCode
    retry_after_ms: int | None = Field(default=None, description="with RATE_LIMITED")


ERROR_STATUSES = {
    401: "TOKEN_REQUIRED, TOKEN_INVALID or TOKEN_EXPIRED",
    403: "FORBIDDEN: not a participant of the chat",
    404: "NOT_FOUND",
    409: "EDIT_WINDOW_CLOSED: the message is older than the edit window",
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
