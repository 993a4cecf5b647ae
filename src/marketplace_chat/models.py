"""The domain values the storage returns and the service passes on, each with the form
(`to_wire`) in which clients read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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
