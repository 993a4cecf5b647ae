"""The operators' view of the outbox: list pending or failed events, send one again.

Shared by the admin routes and the CLI, so that both answer with the same objects and rules.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from marketplace_chat.clock import Clock
from marketplace_chat.errors import Forbidden, NotFound, ValidationFailed
from marketplace_chat.models import iso
from marketplace_chat.payloads import Payload, Text, Uuid
from marketplace_chat.storage.outbox import EventRow, OutboxStore, Status


class WebhooksQuery(Payload):
    status: Literal["pending", "failed"] = "failed"
    limit: int = Field(default=50, ge=1, le=100, strict=True)
    before: Text | None = Field(default=None, max_length=64)


class WebhookRef(Payload):
    id: Uuid


@dataclass(frozen=True, slots=True)
class WebhookPage:
    webhooks: list[EventRow]
    next_cursor: str | None

    def to_wire(self) -> dict[str, Any]:
        return {"webhooks": [to_wire(e) for e in self.webhooks], "nextCursor": self.next_cursor}


def to_wire(event: EventRow) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "status": event.status.value,
        "chatId": event.chat_id,
        "attempts": event.attempts,
        "createdAt": iso(event.created_at),
        "nextAttemptAt": iso(event.next_attempt_at) if event.status is Status.PENDING else None,
        "finishedAt": iso(event.finished_at) if event.finished_at else None,
        "lastError": event.last_error,
        "data": json.loads(event.data) if event.data is not None else None,
    }


def admitted(configured_key: str | None, presented: str | None) -> None:
    """The admin key check: constant time, and refused alike without a configured key, without
    a presented one or with another; a user's JWT is just another wrong key here."""
    if not configured_key or not presented:
        raise Forbidden("An admin API key is required")
    if not hmac.compare_digest(configured_key.encode(), presented.encode()):
        raise Forbidden("An admin API key is required")


def _cursor(pos: int) -> str:
    return base64.urlsafe_b64encode(str(pos).encode()).decode().rstrip("=")


def _position(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        pos = int(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("before: not a cursor this service issued") from None
    if pos <= 0:
        raise ValidationFailed("before: not a cursor this service issued")
    return pos


class WebhookAdmin:
    def __init__(self, store: OutboxStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def list(self, q: WebhooksQuery) -> WebhookPage:
        before = _position(q.before) if q.before is not None else None
        rows = await self._store.list(Status(q.status), q.limit + 1, before)
        page = rows[: q.limit]
        cursor = _cursor(page[-1].pos) if len(rows) > q.limit else None
        return WebhookPage(page, cursor)

    async def retry(self, ref: WebhookRef) -> EventRow:
        """A failed or delivered event goes out again (same id) with a fresh count of attempts;
        a pending one stays as it is."""
        row = await self._store.retry(ref.id, self._clock.now())
        if row is None:
            raise NotFound("id: no such webhook event")
        return row
