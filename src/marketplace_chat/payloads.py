"""What clients may send, validated with pydantic at the edge: a bad field is refused here, named
in a VALIDATION_ERROR, before anything reaches the service or the database."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from marketplace_chat.errors import ValidationFailed

# The largest integer a JavaScript client represents exactly: a larger id would be read back as
# another user's (2**53 + 1 arrives as 2**53). Well inside a PostgreSQL bigint.
MAX_ID = 2**53 - 1
MAX_CLIENT_MESSAGE_ID = 128
MAX_TOKEN_LENGTH = 16_384


def positive_id(value: object) -> int | None:
    """A positive integer or a string of digits as an id; None for bools, floats and the rest."""
    if isinstance(value, bool):
        return None
    # The length bound keeps int() cheap; leading zeros still fit ("007" is 7).
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_ID:
        return value
    return None


def _positive_id(value: object) -> int:
    parsed = positive_id(value)
    if parsed is None:
        raise ValueError(f"must be a positive integer up to {MAX_ID}")
    return parsed


def _uuid_str(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ValueError("must be a UUID string")


def storable(value: str) -> bool:
    """Whether PostgreSQL can store the string as text: UTF-8-encodable (no lone surrogates, which
    JSON's \\ud800 escapes can carry) and without NUL, which a text column refuses."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_str(value: str) -> str:
    if not storable(value):
        raise ValueError("must be valid Unicode text without NUL characters or lone surrogates")
    return value


# The JSON schemas say what the validators accept, for the event reference (asyncapi.py).
ID_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        {"type": "string", "pattern": "^[0-9]+$"},
    ],
    "description": "a positive integer, or a string of its digits",
}
Id = Annotated[int, BeforeValidator(_positive_id), WithJsonSchema(ID_SCHEMA)]
Uuid = Annotated[
    str, BeforeValidator(_uuid_str), WithJsonSchema({"type": "string", "format": "uuid"})
]
# Every client string that can reach the database (or a hash of it): refused here, per field,
# so that a bad row never joins a batch that other users' messages share.
Text = Annotated[str, AfterValidator(_storable_str)]


class Payload(BaseModel):
    """Base of every client payload: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ChatCreate(Payload):
    buyer_id: Id
    seller_id: Id
    product_id: Id | None = None


class ChatRef(Payload):
    chat_id: Uuid


class MessageSend(Payload):
    chat_id: Uuid
    text: Text
    product_id: Id | None = None
    client_message_id: Text | None = Field(
        default=None, min_length=1, max_length=MAX_CLIENT_MESSAGE_ID
    )


class MessageRead(Payload):
    chat_id: Uuid
    message_id: Uuid


class HistoryQuery(Payload):
    chat_id: Uuid
    before: Uuid | None = None
    after: Uuid | None = None
    limit: int = Field(default=50, ge=1, le=100, strict=True)


# The plain form of a sync point is a seq, as it always was; the object form adds the chat's
# revision the client has, and may carry any seq a JavaScript client holds exactly.
MAX_PLAIN_SEQ = 2**31 - 1
Counter = Annotated[int, Field(ge=0, le=MAX_ID, strict=True)]


class SyncPoint(Payload):
    """Where a client stands in one chat: the last `seq` it has, and the chat's `rev` it saw."""

    seq: Counter
    rev: Counter


def _sync_point(value: object) -> int | SyncPoint:
    if isinstance(value, dict):
        try:
            return SyncPoint.model_validate(value)
        except ValidationError as exc:
            raise ValueError(describe(exc)) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a seq (an integer) or an object { seq, rev }")
    if not 0 <= value <= MAX_PLAIN_SEQ:
        raise ValueError(f"must be an integer from 0 to {MAX_PLAIN_SEQ}")
    return value


_COUNTER_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
SINCE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_PLAIN_SEQ, "description": "a seq"},
        {
            "type": "object",
            "properties": {"seq": _COUNTER_SCHEMA, "rev": _COUNTER_SCHEMA},
            "required": ["seq", "rev"],
            "additionalProperties": False,
            "description": "a seq and the chat's revision: the answer adds `changed`",
        },
    ]
}
Since = Annotated[
    int | SyncPoint,
    PlainValidator(_sync_point, json_schema_input_type=Any),
    WithJsonSchema(SINCE_SCHEMA),
]


class SyncQuery(Payload):
    chats: dict[Uuid, Since] | None = Field(default=None, max_length=1000)
    limit: int = Field(default=50, ge=1, le=100, strict=True)

    def seqs(self) -> dict[str, int]:
        """The last seq the client has, per listed chat, whichever form gave it."""
        return {
            chat_id: point.seq if isinstance(point, SyncPoint) else point
            for chat_id, point in (self.chats or {}).items()
        }

    def revs(self) -> dict[str, int]:
        """The revision the client saw, for the chats given in the object form."""
        return {
            chat_id: point.rev
            for chat_id, point in (self.chats or {}).items()
            if isinstance(point, SyncPoint)
        }


class MessageEdit(Payload):
    message_id: Uuid
    text: Text


class MessageRef(Payload):
    message_id: Uuid


class ChatsQuery(Payload):
    limit: int = Field(default=30, ge=1, le=100, strict=True)
    before: Text | None = Field(default=None, max_length=200)


class UserRef(Payload):
    user_id: Id


class UsersOnlineQuery(Payload):
    user_ids: list[Id] | None = Field(default=None, max_length=500)


# -- trust and safety: blocks and reports ------------------------------------------------------

MAX_REPORT_COMMENT = 1000
REPORT_REASONS = ("spam", "fraud", "abuse", "contact", "other")
ReportReason = Literal["spam", "fraud", "abuse", "contact", "other"]


class NoArgs(Payload):
    """An event that takes nothing (`{}`); unknown fields are still refused."""


class ReportCreate(Payload):
    chat_id: Uuid
    message_id: Uuid | None = None
    reason: ReportReason
    comment: Text | None = Field(default=None, max_length=MAX_REPORT_COMMENT)


def _token(value: object) -> str:
    """Any non-empty string, lone surrogates included: what is in a token is the verifier's to
    judge (TOKEN_INVALID), as in a handshake, not the payload's (pydantic's own str refuses a
    lone surrogate)."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    token = value.strip()
    if not token:
        raise ValueError("must not be empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"must be at most {MAX_TOKEN_LENGTH} characters")
    return token


class TokenRefresh(Payload):
    token: Annotated[
        str,
        PlainValidator(_token, json_schema_input_type=str),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_LENGTH}),
    ]


P = TypeVar("P", bound=Payload)


def parse(model: type[P], data: object) -> P:
    """Validate a payload; the first problem becomes a VALIDATION_ERROR naming the field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("payload: must be an object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or "payload"
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return f"{field}: {message}"
