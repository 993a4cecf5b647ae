"""What the service sends: acks, objects and server events, as pydantic models.

The handlers build their answers with the domain values' `to_wire()` methods, which stay the fast
path. These models describe the same shapes for the machine-readable event reference
(`asyncapi.py`); a unit test validates every `to_wire()` output against them, strictly and with
unknown keys refused, so that the description cannot drift from what is sent. Every key that
`to_wire()` always writes is required here, even when its value may be null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from marketplace_chat.errors import ErrorCode

# The largest integer a JavaScript client represents exactly; ids stay at or below it.
MAX_SAFE_INTEGER = 2**53 - 1

UserId = Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER, description="a user id")]
ProductId = Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER, description="a product id")]
ChatId = Annotated[str, Field(description="a chat id (UUID)")]
MessageId = Annotated[str, Field(description="a message id (UUID)")]
Seq = Annotated[int, Field(ge=1, description="the message's place in its chat: 1, 2, 3…")]
Timestamp = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
        description="ISO-8601 UTC with milliseconds",
        examples=["2026-11-26T01:10:32.123Z"],
    ),
]


def _absent_when_unset(schema: dict[str, Any]) -> None:
    """A key that is left out rather than sent as null has no default to document."""
    schema.pop("default", None)


class Out(BaseModel):
    """Base of every answer: camelCase on the wire, exactly the keys listed."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True, frozen=True
    )


class Moderation(Out):
    """What the contact check did: `masked` (each detected span is `[hidden]`) or `flagged`."""

    action: Literal["masked", "flagged"]
    categories: list[Literal["phone", "email", "link", "messenger"]]


Rev = Annotated[int, Field(ge=0, description="the chat's revision at the message's last change")]


class Message(Out):
    """A message, as acked to its sender and delivered as `message:new`."""

    id: MessageId
    chat_id: ChatId
    seq: Seq
    sender_id: UserId
    text: str
    product_id: ProductId | None
    client_message_id: str | None
    created_at: Timestamp
    rev: Rev
    edited_at: Timestamp | None
    deleted_at: Timestamp | None
    moderation: Moderation | None


class Chat(Out):
    """A chat as its caller sees it; `unreadCount` counts the partner's unread messages."""

    id: ChatId
    buyer_id: UserId
    seller_id: UserId
    product_id: ProductId | None
    created_at: Timestamp
    updated_at: Timestamp
    last_message: Message | None
    unread_count: Annotated[int, Field(ge=0)]
    rev: Rev
    blocked: bool


class Empty(Out):
    """An ack with nothing to say: `{}`."""


class ChatsPage(Out):
    """A page of the caller's inbox; `nextCursor` is opaque and null on the last page."""

    chats: list[Chat]
    next_cursor: str | None


class HistoryPage(Out):
    """Messages in chronological order; `hasMore` says whether more lie beyond the page."""

    messages: list[Message]
    has_more: bool


class ChatCatchUp(Out):
    """One chat's messages after the given `seq`; for a chat given as `{ seq, rev }`, also the
    messages up to that seq edited or deleted after that rev (`changed`, oldest change first),
    whether more changed ones wait (`changedHasMore`), and the chat's `rev` now."""

    chat_id: ChatId
    messages: list[Message]
    has_more: bool
    changed: list[Message] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_absent_when_unset
    )
    changed_has_more: bool | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_absent_when_unset
    )
    rev: Rev | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_absent_when_unset)


class SyncResult(Out):
    chats: list[ChatCatchUp]


class ReadPointer(Out):
    """The caller's read pointer after `message:read`."""

    chat_id: ChatId
    message_id: MessageId
    seq: Seq
    read_at: Timestamp


class MessageDeleted(Out):
    """The ack of `message:delete`."""

    chat_id: ChatId
    message_id: MessageId
    deleted_at: Timestamp


class MessageTombstone(Out):
    """`message:deleted`: a message became a tombstone (`text` `""`), keeping its `seq`."""

    chat_id: ChatId
    message_id: MessageId
    seq: Seq
    deleted_at: Timestamp


class ResponseStats(Out):
    """How quickly a user answers as a seller (`GET /api/users/{userId}/response-stats`)."""

    user_id: UserId
    window_days: int
    chats: Annotated[int, Field(ge=0)]
    answered: Annotated[int, Field(ge=0)]
    answered_within_24h: Annotated[int, Field(ge=0, alias="answeredWithin24h")]
    median_first_reply_s: float | None
    p90_first_reply_s: float | None


class ReadReceipt(Out):
    """A participant's read pointer moved forward."""

    chat_id: ChatId
    user_id: UserId
    message_id: MessageId
    seq: Seq
    read_at: Timestamp


class OnlineUsers(Out):
    user_ids: list[UserId]


class TokenRefreshed(Out):
    """The new token's expiry, or null for a token without `exp`."""

    expires_at: Timestamp | None


class Typing(Out):
    chat_id: ChatId
    user_id: UserId


class UserOnline(Out):
    user_id: UserId


class UserOffline(Out):
    user_id: UserId
    last_seen_at: Timestamp


class AuthFailure(Out):
    """`auth:error` and `auth:token-expired`."""

    error: str
    code: ErrorCode


class AckFailure(Out):
    """The ack of a failed event; `retryAfterMs` comes with `RATE_LIMITED` only."""

    success: Literal[False]
    error: str
    code: ErrorCode
    retry_after_ms: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_absent_when_unset
    )


class ExceptionEvent(Out):
    """Sent instead of a failure ack when the failed event had no ack callback."""

    status: Literal["error"]
    message: str
    code: ErrorCode
    event: str
    retry_after_ms: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, json_schema_extra=_absent_when_unset
    )


# -- trust and safety: blocks and reports ------------------------------------------------------


class BlockState(Out):
    """Whether the caller now blocks `userId` (`user:block` / `user:unblock`)."""

    user_id: UserId
    blocked: bool


class BlockedUsers(Out):
    """The users the caller blocked, most recent first (`blocks:list`)."""

    user_ids: list[UserId]


class ReportReceipt(Out):
    """A filed report (or the caller's first report of the same subject)."""

    id: Annotated[str, Field(description="the report id (UUID)")]
    created_at: Timestamp


ReportReason = Literal["spam", "fraud", "abuse", "contact", "other"]


class Report(Out):
    """A report as moderators see it (`GET /api/admin/reports`)."""

    id: Annotated[str, Field(description="the report id (UUID)")]
    chat_id: ChatId
    message_id: MessageId | None
    reporter_id: UserId
    reported_user_id: UserId
    reason: ReportReason
    comment: str | None
    status: Literal["open", "resolved"]
    resolution: Literal["dismissed", "actioned"] | None
    note: str | None
    resolved_at: Timestamp | None
    created_at: Timestamp


class SnapshotMessage(Out):
    """A message as it was when the report was filed, with its original text (before any
    masking, edit or delete that came before the report)."""

    id: MessageId
    seq: Seq
    sender_id: UserId
    text: str
    created_at: Timestamp
    edited_at: Timestamp | None
    deleted_at: Timestamp | None


class ReportSnapshot(Out):
    """The evidence: the reported message and up to 50 before it, else the chat's last 50."""

    message_id: MessageId | None
    taken_at: Timestamp
    messages: list[SnapshotMessage]


class ReportWithSnapshot(Report):
    """One report with its evidence (`GET /api/admin/reports/{id}`, and the resolve answer)."""

    snapshot: ReportSnapshot


class ReportsPage(Out):
    """A page of reports, newest first; `nextCursor` is opaque and null on the last page."""

    reports: list[Report]
    next_cursor: str | None
