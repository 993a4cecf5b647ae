"""Small builders shared by the integration tests."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from marketplace_chat.models import Chat, Message
from marketplace_chat.storage.base import NewMessage
from marketplace_chat.storage.postgres import PostgresStorage

# A fixed instant: tests that need several rows at one time use it, the rest step from it.
T0 = datetime(2026, 11, 26, 1, 10, 32, 123456, tzinfo=UTC)


def new_user_id() -> int:
    return random.randint(10**9, 10**12)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class FakeClock:
    """Starts at the real present (Redis TTLs run on real time) and moves on demand."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


async def new_chat(
    storage: PostgresStorage, *, product_id: int | None = None, when: datetime = T0
) -> tuple[Chat, int, int]:
    buyer, seller = new_user_id(), new_user_id()
    chat, created = await storage.create_chat(buyer, seller, product_id, buyer, when)
    assert created
    return chat, buyer, seller


def draft(
    chat_id: str,
    sender_id: int,
    text: str = "hello",
    *,
    client_message_id: str | None = None,
    product_id: int | None = None,
    when: datetime = T0,
) -> NewMessage:
    return NewMessage(
        id=str(uuid.uuid4()),
        chat_id=chat_id,
        sender_id=sender_id,
        text=text,
        product_id=product_id,
        client_message_id=client_message_id,
        created_at=when,
    )


async def send(
    storage: PostgresStorage,
    chat_id: str,
    sender_id: int,
    text: str = "hello",
    *,
    client_message_id: str | None = None,
    product_id: int | None = None,
    when: datetime = T0,
) -> Message:
    result = await storage.add_message(
        draft(
            chat_id,
            sender_id,
            text,
            client_message_id=client_message_id,
            product_id=product_id,
            when=when,
        )
    )
    return result.message
