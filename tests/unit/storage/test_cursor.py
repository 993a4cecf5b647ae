from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from marketplace_chat.errors import ValidationFailed
from marketplace_chat.storage.cursor import decode_cursor, encode_cursor

CHAT_ID = "3f2b8c1e-9a4d-4c6b-8e2f-1a2b3c4d5e6f"


def raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 11, 26, 1, 10, 32, tzinfo=UTC),
        datetime(2039, 3, 1, 12, 0, 0, tzinfo=UTC),
        datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC),
    ],
)
def test_cursor_round_trips_every_microsecond(start: datetime) -> None:
    for micros in range(1000):
        at = start + timedelta(microseconds=micros)
        assert decode_cursor(encode_cursor(at, CHAT_ID)) == (at, uuid.UUID(CHAT_ID))


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), CHAT_ID)
    assert cursor.replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        raw_cursor("no-colon"),
        raw_cursor(f"abc:{CHAT_ID}"),
        raw_cursor("5:not-a-uuid"),
        raw_cursor(f"{'9' * 30}:{CHAT_ID}"),
        raw_cursor(f"-{'9' * 30}:{CHAT_ID}"),
        base64.urlsafe_b64encode(b"\xff\xfe:").decode(),
    ],
)
def test_foreign_cursor_is_a_validation_error_naming_before(cursor: str) -> None:
    with pytest.raises(ValidationFailed, match=r"^before: "):
        decode_cursor(cursor)
