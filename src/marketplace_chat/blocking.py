"""Blocking: one user stops all contact with another.

While either of two users has blocked the other, nothing new passes between them: sends and
`chat:create` are refused with `BLOCKED` (by the storage, from the pair's chat rows and the
pair's lock), typing and presence events are not delivered, and `users:online` keeps each out
of the other's answer. History stays readable to both. The rules that read the block live with
the use cases they shape (`ChatService`); this module changes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from marketplace_chat.clock import Clock
from marketplace_chat.errors import ChatError, ValidationFailed
from marketplace_chat.models import BlockState, Participants
from marketplace_chat.realtime.typing_state import TypingState
from marketplace_chat.service import Notifier
from marketplace_chat.storage.base import BlockStorage

log = structlog.get_logger(__name__)


class Blocking:
    def __init__(
        self, blocks: BlockStorage, typing: TypingState, notifier: Notifier, clock: Clock
    ) -> None:
        self._blocks = blocks
        self._typing = typing
        self._notify = notifier
        self._clock = clock

    async def block(self, user_id: int, target_id: int) -> BlockState:
        """Block `target_id`; blocking again changes nothing (no second event)."""
        _not_self(user_id, target_id)
        change = await self._blocks.block(user_id, target_id, self._clock.now())
        if change.changed:
            # Committed: from here on nothing may turn the ack into a failure.
            try:
                await self._end_typing(change.chats)
            except ChatError as exc:
                log.warning("typing_stop_failed", error=exc.message)
        return BlockState(target_id, blocked=True)

    async def unblock(self, user_id: int, target_id: int) -> BlockState:
        """Lift the caller's block; the pair stays blocked while the other's block stands."""
        _not_self(user_id, target_id)
        await self._blocks.unblock(user_id, target_id, self._clock.now())
        return BlockState(target_id, blocked=False)

    async def blocked_users(self, user_id: int) -> list[int]:
        return await self._blocks.blocked_by(user_id)

    async def _end_typing(self, chats: Sequence[Participants]) -> None:
        """An indicator shown when the block starts is ended with one last `typing:stop`, so
        that the partner's screen does not keep it; after that, typing between them is silent.
        Clearing the keys also silences the typists' own timers, on whichever node they run."""
        for chat in chats:
            for typist in (chat.buyer_id, chat.seller_id):
                if await self._typing.stop(chat.chat_id, typist):
                    await self._notify.to_chat_watchers(
                        chat.chat_id,
                        chat.other(typist),
                        "typing:stop",
                        {"chatId": chat.chat_id, "userId": typist},
                    )


def _not_self(user_id: int, target_id: int) -> None:
    if user_id == target_id:
        raise ValidationFailed("userId: you cannot block yourself")
