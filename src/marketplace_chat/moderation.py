"""The moderators' side of the contact policies: a message as it was sent, the sends the `block`
policy refused, and a chat's own policy. Shared by the admin routes; no HTTP, no SQL here."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import Field

from marketplace_chat.errors import NotFound, ValidationFailed
from marketplace_chat.models import Message, iso
from marketplace_chat.payloads import Payload, Text, Uuid


@dataclass(frozen=True, slots=True)
class ContactAttempt:
    """A send refused for its contact details: never a message, kept for moderators."""

    id: str
    chat_id: str
    sender_id: int
    text: str
    categories: tuple[str, ...]
    created_at: datetime
    # The refused send's clientMessageId: a retry of it is the same attempt, kept once.
    client_message_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chatId": self.chat_id,
            "senderId": self.sender_id,
            "text": self.text,
            "categories": list(self.categories),
            "createdAt": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Revision:
    text: str
    at: datetime  # when this text was replaced


@dataclass(frozen=True, slots=True)
class ModeratedMessage:
    """A message as participants see it, with what only moderators see: the original (the text
    as sent, before masking) and the earlier texts of an edited message, oldest first."""

    message: Message
    original: str
    revisions: tuple[Revision, ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            **self.message.to_wire(),
            "original": self.original,
            "revisions": [{"text": r.text, "at": iso(r.at)} for r in self.revisions],
        }


class AttemptsQuery(Payload):
    chat_id: Uuid
    limit: int = Field(default=50, ge=1, le=100, strict=True)
    before: Text | None = Field(default=None, max_length=200)


class MessageRef(Payload):
    id: Uuid


class PolicyChange(Payload):
    chat_id: Uuid
    # Required, and null means "back to the service's default".
    policy: Literal["mask", "block", "flag", "off"] | None


class ModerationStorage(Protocol):
    async def set_contact_policy(self, chat_id: str, policy: str | None) -> bool: ...

    async def contact_attempts(
        self, chat_id: str, limit: int, before: tuple[datetime, str] | None
    ) -> list[ContactAttempt]: ...

    async def moderated_message(self, message_id: str) -> ModeratedMessage | None: ...


class PolicyChanges(Protocol):
    """Tells every node that a chat's policy changed, this one at once."""

    async def changed(self, chat_id: str) -> None: ...


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def encode_cursor(at: datetime, row_id: str) -> str:
    micros = (at - EPOCH) // MICROSECOND
    return base64.urlsafe_b64encode(f"{micros}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, row_id = raw.split(":", 1)
        at = EPOCH + int(micros) * MICROSECOND
        return at, str(uuid.UUID(row_id))
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("before: not a cursor this service issued") from None


class ModerationAdmin:
    def __init__(self, store: ModerationStorage, changes: PolicyChanges, default: str) -> None:
        self._store = store
        self._changes = changes
        self._default = default

    async def message(self, ref: MessageRef) -> ModeratedMessage:
        found = await self._store.moderated_message(ref.id)
        if found is None:
            raise NotFound("id: no such message")
        return found

    async def attempts(self, q: AttemptsQuery) -> dict[str, Any]:
        before = decode_cursor(q.before) if q.before is not None else None
        rows = await self._store.contact_attempts(q.chat_id, q.limit + 1, before)
        page = rows[: q.limit]
        cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > q.limit else None
        return {"attempts": [a.to_wire() for a in page], "nextCursor": cursor}

    async def set_policy(self, change: PolicyChange) -> dict[str, Any]:
        """The chat's own policy (null: the default applies) and the one now in effect."""
        if not await self._store.set_contact_policy(change.chat_id, change.policy):
            raise NotFound("chatId: no such chat")
        await self._changes.changed(change.chat_id)
        return {
            "chatId": change.chat_id,
            "policy": change.policy,
            "effective": change.policy or self._default,
        }
