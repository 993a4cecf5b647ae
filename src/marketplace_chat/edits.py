"""Edits and deletes: who may change a message, until when, and who is told.

The rules are pure functions of the message as it is while its chat is locked (`Target`); the
storage runs them inside the transaction that makes the change, so a change that passed them
cannot race another one of the same chat. Only the sender may change a message. An edit must
come within `EDIT_WINDOW_S` of `createdAt`, to a message that is not deleted, in a chat that is
not blocked (an edit delivers new text, which a block stops); a delete may come at any time, in
a blocked chat too (taking one's words back reaches no one new), and a second one changes
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from marketplace_chat.clock import Clock
from marketplace_chat.errors import (
    Blocked,
    EditWindowClosed,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from marketplace_chat.models import Message, iso
from marketplace_chat.payloads import MessageEdit, MessageRef
from marketplace_chat.settings import LimitSettings
from marketplace_chat.storage.base import Changed, Revision, Storage, Target

if TYPE_CHECKING:  # the service builds this module's object: no import of it at run time
    from marketplace_chat.service import Notifier


def clean_text(text: str, max_length: int) -> str:
    """A message's text as stored: trimmed, 1 to `max_length` code points (as a send)."""
    cleaned = text.strip()
    if not cleaned:
        raise ValidationFailed("text: must not be empty")
    if len(cleaned) > max_length:
        raise ValidationFailed(f"text: must be at most {max_length} characters")
    return cleaned


def _own(target: Target, user_id: int, chat_id: str | None) -> None:
    if chat_id is not None and target.message.chat_id != chat_id:
        raise NotFound("messageId: no such message in this chat")
    if not target.participants.includes(user_id):
        raise Forbidden("You are not a participant of this chat")
    if target.message.sender_id != user_id:
        raise Forbidden("Only the sender can change a message")


def may_edit(
    target: Target,
    user_id: int,
    revision: Revision,
    now: datetime,
    window_s: float,
    chat_id: str | None = None,
) -> bool:
    """Whether the edit is to be written: refused with the reason, False for the same text."""
    _own(target, user_id, chat_id)
    message = target.message
    if message.deleted_at is not None:
        raise NotFound("messageId: the message was deleted")
    if now >= message.created_at + timedelta(seconds=window_s):
        raise EditWindowClosed(
            f"messageId: a message can be edited for {window_s:g} s after it was sent"
        )
    if target.blocked:
        raise Blocked("One of you has blocked the other")
    # Saving the text unchanged is no edit: nothing to mark edited, nothing to tell.
    as_sent = revision.original_text if revision.original_text is not None else revision.text
    return not (
        revision.text == message.text
        and as_sent == target.original
        and revision.moderation == message.moderation
    )


def may_delete(target: Target, user_id: int, chat_id: str | None = None) -> bool:
    """Whether the delete is to be written: refused with the reason, False when done already."""
    _own(target, user_id, chat_id)
    return target.message.deleted_at is None


@dataclass(frozen=True, slots=True)
class Deletion:
    message: Message  # the tombstone

    def to_wire(self) -> dict[str, Any]:
        """The ack of `message:delete`."""
        deleted_at = self.message.deleted_at
        assert deleted_at is not None
        return {
            "chatId": self.message.chat_id,
            "messageId": self.message.id,
            "deletedAt": iso(deleted_at),
        }

    def event(self) -> dict[str, Any]:
        """`message:deleted`: the ack plus the message's place in its chat."""
        return {**self.to_wire(), "seq": self.message.seq}


class Edits:
    def __init__(
        self, storage: Storage, notifier: Notifier, clock: Clock, limits: LimitSettings
    ) -> None:
        self._storage = storage
        self._notify = notifier
        self._clock = clock
        self._limits = limits

    async def edit(
        self,
        user_id: int,
        p: MessageEdit,
        *,
        chat_id: str | None = None,
        screened: Revision | None = None,
    ) -> Message:
        """Replace the text of the caller's message; `screened` is the text as the contact
        check left it (masked, with what it did), else the text is stored as given. With
        `chat_id` (REST) the message must be of that chat."""
        text = clean_text(p.text, self._limits.max_message_length)
        revision = screened if screened is not None else Revision(text)
        now = self._clock.now()
        window_s = self._limits.edit_window_s
        result = await self._storage.edit_message(
            p.message_id,
            revision,
            now,
            lambda target: may_edit(target, user_id, revision, now, window_s, chat_id),
        )
        result = _found(result)
        if result.changed:
            await self._tell(result, "message:updated", result.message.to_wire())
        return result.message

    async def delete(self, user_id: int, p: MessageRef, *, chat_id: str | None = None) -> Deletion:
        """Leave a tombstone in place of the caller's message; a second delete changes nothing
        and answers as the first."""
        result = _found(
            await self._storage.delete_message(
                p.message_id,
                self._clock.now(),
                lambda target: may_delete(target, user_id, chat_id),
            )
        )
        deletion = Deletion(result.message)
        if result.changed:
            await self._tell(result, "message:deleted", deletion.event())
        return deletion

    async def _tell(self, result: Changed, event: str, payload: dict[str, Any]) -> None:
        parts = result.target.participants
        await self._notify.to_users([parts.buyer_id, parts.seller_id], event, payload)


def _found(result: Changed | None) -> Changed:
    if result is None:
        raise NotFound("messageId: no such message")
    return result
