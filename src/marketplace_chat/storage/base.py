"""The storage interface the service needs; PostgreSQL is its one implementation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from marketplace_chat.models import (
    Chat,
    Message,
    Moderation,
    Participants,
    ReadReceipt,
    ResponseStats,
    SendResult,
)


@dataclass(frozen=True, slots=True)
class NewMessage:
    id: str
    chat_id: str
    sender_id: int
    text: str
    product_id: int | None
    client_message_id: str | None
    created_at: datetime
    # what the contact check did, and the text as sent when `text` is its masked form
    moderation: Moderation | None = None
    original_text: str | None = None


@dataclass(frozen=True, slots=True)
class EventPolicy:
    """Whether changes write their events to the outbox (only with a webhook URL, so that
    nothing accumulates without one), and how long after a message its reminder falls due."""

    enabled: bool = False
    reminder_after_s: float = 60.0


@dataclass(frozen=True, slots=True)
class ChatPage:
    chats: list[Chat]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ChatSync:
    chat_id: str
    messages: list[Message]
    has_more: bool


class Storage(Protocol):
    """Durable chat state.

    Every method either commits all of its effect or none of it, and raises only `ChatError`s
    (`Unavailable` when the database fails or times out).
    """

    async def participants(self, chat_id: str) -> Participants | None:
        """The chat's two users, or None for an unknown chat."""
        ...

    async def create_chat(
        self, buyer_id: int, seller_id: int, product_id: int | None, viewer: int, now: datetime
    ) -> tuple[Chat, bool]:
        """The pair's chat, created unless it exists (the unique pair decides); True when new."""
        ...

    async def get_chat(self, chat_id: str, viewer: int) -> Chat | None:
        """The chat as `viewer` sees it: last message and their unread count."""
        ...

    async def add_message(self, message: NewMessage) -> SendResult:
        """Commit a message with the chat's next seq; a repeated client id returns the first."""
        ...

    async def list_chats(self, user_id: int, limit: int, before: str | None) -> ChatPage: ...

    async def history(
        self, chat_id: str, before: str | None, after: str | None, limit: int
    ) -> MessagePage: ...

    async def sync(
        self, user_id: int, since: Mapping[str, int] | None, limit: int
    ) -> Sequence[ChatSync]: ...

    async def mark_read(
        self, chat_id: str, user_id: int, message_id: str, now: datetime
    ) -> tuple[ReadReceipt, bool]:
        """Move the read pointer forward to the message; False (and the current one) otherwise."""
        ...

    async def partners(self, user_id: int) -> list[int]:
        """The users who share a chat with `user_id`."""
        ...

    async def response_stats(self, seller_id: int, since: datetime) -> ResponseStats:
        """First replies of `seller_id` in the chats whose first message, from the buyer, was
        sent at or after `since` (`window_days` is left for the caller to fill in)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
