"""The storage interface the service needs; PostgreSQL is its one implementation."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from marketplace_chat.models import (
    BlockChange,
    Chat,
    Message,
    Moderation,
    Participants,
    ReadReceipt,
    Report,
    ReportReceipt,
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
    # Only for a chat the client named with its revision: the messages up to its seq changed
    # since (oldest change first, at most the page size), whether more changed, and the chat's
    # revision as of this answer.
    changed: list[Message] | None = None
    changed_has_more: bool = False
    rev: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """One chat of a `messages:sync` answer: `changed`, `changedHasMore` and `rev` only for
        a chat the client named with its revision, so that the plain form's answer stays as
        it was."""
        body: dict[str, Any] = {
            "chatId": self.chat_id,
            "messages": [m.to_wire() for m in self.messages],
            "hasMore": self.has_more,
        }
        if self.changed is not None:
            body["changed"] = [m.to_wire() for m in self.changed]
            body["changedHasMore"] = self.changed_has_more
            body["rev"] = self.rev
        return body


@dataclass(frozen=True, slots=True)
class Revision:
    """An edit's text as it is to be stored: `text` as shown (the contact check's masked form
    where it masked), `original_text` the text as sent when that differs, and `moderation` what
    the check did."""

    text: str
    moderation: Moderation | None = None
    original_text: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """A message about to be edited or deleted, read while its chat is locked."""

    message: Message
    participants: Participants
    blocked: bool
    original: str  # the text as sent: what moderators see of it


# The rules of a change, given the target: raise a `ChatError` to refuse it (nothing is
# written), return False when there is nothing to write (a second delete, say).
Check = Callable[[Target], bool]


@dataclass(frozen=True, slots=True)
class Changed:
    target: Target
    message: Message  # as it is now
    changed: bool  # False when the check found nothing to write


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
        self,
        user_id: int,
        since: Mapping[str, int] | None,
        limit: int,
        revs: Mapping[str, int] | None = None,
    ) -> Sequence[ChatSync]:
        """Per chat, the messages after the seq given (or after the read pointer); for the
        chats in `revs`, also the messages up to that seq changed after that revision."""
        ...

    async def edit_message(
        self, message_id: str, revision: Revision, now: datetime, check: Check
    ) -> Changed | None:
        """In one transaction with the chat locked: the chat's rev bumped, the previous text
        kept as a revision, the new one written (and its outbox event). None: no such message."""
        ...

    async def delete_message(self, message_id: str, now: datetime, check: Check) -> Changed | None:
        """Like an edit, leaving a tombstone; None: no such message."""
        ...

    async def mark_read(
        self, chat_id: str, user_id: int, message_id: str, now: datetime
    ) -> tuple[ReadReceipt, bool]:
        """Move the read pointer forward to the message; False (and the current one) otherwise."""
        ...

    async def partners(self, user_id: int) -> list[int]:
        """The users who share a chat with `user_id`, less those in a block with them."""
        ...

    async def response_stats(self, seller_id: int, since: datetime) -> ResponseStats:
        """First replies of `seller_id` in the chats whose first message, from the buyer, was
        sent at or after `since` (`window_days` is left for the caller to fill in)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


# -- trust and safety: blocks and reports ------------------------------------------------------


class BlockStorage(Protocol):
    """Who blocked whom. A block or an unblock commits with the `blocked` flag of the pair's
    chats and its outbox event, or not at all."""

    async def block(self, blocker_id: int, blocked_id: int, now: datetime) -> BlockChange: ...

    async def unblock(self, blocker_id: int, blocked_id: int, now: datetime) -> BlockChange: ...

    async def blocked_by(self, blocker_id: int) -> list[int]:
        """The users `blocker_id` blocked, most recent first."""
        ...

    async def chat_blocked(self, chat_id: str) -> bool:
        """Whether either participant of the chat blocked the other (False for no chat)."""
        ...

    async def hidden_among(self, user_id: int, user_ids: Sequence[int]) -> set[int]:
        """Those of `user_ids` who blocked `user_id` or whom `user_id` blocked."""
        ...


@dataclass(frozen=True, slots=True)
class NewReport:
    id: str
    chat_id: str
    message_id: str | None
    reporter_id: int
    reported_user_id: int
    reason: str
    comment: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReportPage:
    reports: list[Report]
    next_cursor: str | None


class ReportStorage(Protocol):
    async def create_report(self, report: NewReport) -> tuple[ReportReceipt, bool]:
        """File the report with its snapshot and event; a repeat (same reporter, chat and
        message, or chat without one) returns the first, False. `NotFound` for a message
        that is not one of the chat's."""
        ...

    async def list_reports(self, status: str, limit: int, before: str | None) -> ReportPage:
        """Newest first; `before` is a previous page's `next_cursor`."""
        ...

    async def get_report(self, report_id: str) -> Report | None:
        """The report with its snapshot."""
        ...

    async def resolve_report(
        self, report_id: str, resolution: str, note: str | None, now: datetime
    ) -> tuple[Report, bool] | None:
        """Resolve an open report (True); a resolved one is returned as it is (False)."""
        ...
