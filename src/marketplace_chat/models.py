"""Wire payloads (validated with pydantic at the edge) and the frozen domain values behind them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
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


def iso(ts: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, the form the clients parse."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Moderation:
    """What the contact check did to a message: `masked` (spans replaced) or `flagged`."""

    action: str
    categories: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"action": self.action, "categories": list(self.categories)}


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    chat_id: str
    seq: int
    sender_id: int
    text: str
    product_id: int | None
    client_message_id: str | None
    created_at: datetime
    rev: int = 0
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    moderation: Moderation | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chatId": self.chat_id,
            "seq": self.seq,
            "senderId": self.sender_id,
            "text": self.text,
            "productId": self.product_id,
            "clientMessageId": self.client_message_id,
            "createdAt": iso(self.created_at),
            "rev": self.rev,
            "editedAt": iso(self.edited_at) if self.edited_at else None,
            "deletedAt": iso(self.deleted_at) if self.deleted_at else None,
            "moderation": self.moderation.to_wire() if self.moderation else None,
        }


@dataclass(frozen=True, slots=True)
class Participants:
    """A chat's two users; they never change once the chat exists."""

    chat_id: str
    buyer_id: int
    seller_id: int

    def includes(self, user_id: int) -> bool:
        return user_id in (self.buyer_id, self.seller_id)

    def other(self, user_id: int) -> int:
        return self.seller_id if user_id == self.buyer_id else self.buyer_id


@dataclass(frozen=True, slots=True)
class Chat:
    id: str
    buyer_id: int
    seller_id: int
    product_id: int | None
    created_at: datetime
    updated_at: datetime
    last_message: Message | None
    unread_count: int
    last_seq: int = 0
    rev: int = 0
    blocked: bool = False

    @property
    def participants(self) -> Participants:
        return Participants(self.id, self.buyer_id, self.seller_id)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "buyerId": self.buyer_id,
            "sellerId": self.seller_id,
            "productId": self.product_id,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "lastMessage": self.last_message.to_wire() if self.last_message else None,
            "unreadCount": self.unread_count,
            "rev": self.rev,
            "blocked": self.blocked,
        }


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    chat_id: str
    user_id: int
    message_id: str
    seq: int
    read_at: datetime

    def to_wire(self, *, with_user: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "chatId": self.chat_id,
            "messageId": self.message_id,
            "seq": self.seq,
            "readAt": iso(self.read_at),
        }
        if with_user:
            body = {"chatId": self.chat_id, "userId": self.user_id, **body}
        return body


@dataclass(frozen=True, slots=True)
class SendResult:
    message: Message
    created: bool  # False when a repeated clientMessageId returned the first message


@dataclass(frozen=True, slots=True)
class ResponseStats:
    """How a seller answers: over the chats whose first message came from the buyer inside the
    window, how many the seller answered, and how long the first answer took (seconds)."""

    user_id: int
    window_days: int
    chats: int
    answered: int
    answered_within_24h: int
    median_first_reply_s: float | None
    p90_first_reply_s: float | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "windowDays": self.window_days,
            "chats": self.chats,
            "answered": self.answered,
            "answeredWithin24h": self.answered_within_24h,
            "medianFirstReplyS": self.median_first_reply_s,
            "p90FirstReplyS": self.p90_first_reply_s,
        }


# -- trust and safety: blocks and reports ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockChange:
    """What a block or an unblock did: `changed` is False when it was already so; `chats` are
    the pair's chats (either direction of roles) and `pair_blocked` whether a block remains in
    either direction."""

    changed: bool
    chats: tuple[Participants, ...]
    pair_blocked: bool


@dataclass(frozen=True, slots=True)
class BlockState:
    user_id: int
    blocked: bool

    def to_wire(self) -> dict[str, Any]:
        return {"userId": self.user_id, "blocked": self.blocked}


@dataclass(frozen=True, slots=True)
class ReportReceipt:
    id: str
    created_at: datetime

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "createdAt": iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class Report:
    """A report as moderators see it; `snapshot` (the evidence, as JSON data) only where it
    was asked for, since a page of reports has no use for fifty messages each."""

    id: str
    chat_id: str
    message_id: str | None
    reporter_id: int
    reported_user_id: int
    reason: str
    comment: str | None
    status: str
    resolution: str | None
    note: str | None
    resolved_at: datetime | None
    created_at: datetime
    snapshot: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "chatId": self.chat_id,
            "messageId": self.message_id,
            "reporterId": self.reporter_id,
            "reportedUserId": self.reported_user_id,
            "reason": self.reason,
            "comment": self.comment,
            "status": self.status,
            "resolution": self.resolution,
            "note": self.note,
            "resolvedAt": iso(self.resolved_at) if self.resolved_at else None,
            "createdAt": iso(self.created_at),
        }
        if self.snapshot is not None:
            body["snapshot"] = self.snapshot
        return body
