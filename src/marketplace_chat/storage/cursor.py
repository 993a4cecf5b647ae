"""The cursor of a keyset page, newest first on (a timestamp, an id): opaque to clients, and
exact to the microsecond, so that no row sharing the page's last timestamp is skipped."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta

from marketplace_chat.errors import ValidationFailed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def encode_cursor(updated_at: datetime, chat_id: str) -> str:
    # Integer arithmetic: a float timestamp can lose the last microsecond, and the cursor would
    # then skip the chats that share the page's last updated_at.
    micros = (updated_at - EPOCH) // MICROSECOND
    return base64.urlsafe_b64encode(f"{micros}:{chat_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, chat_id = raw.split(":", 1)
        return EPOCH + int(micros) * MICROSECOND, uuid.UUID(chat_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("before: not a cursor this service issued") from None
