"""Typing indicators: who is told that a user started or stopped typing, and when an indicator
ends by itself. The Redis keys (realtime/typing_state.py) are shared by every node; the timers
and the sockets behind them are this node's, and end with it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from marketplace_chat.models import Participants
from marketplace_chat.realtime.typing_state import TYPING_TTL_S, TypingState
from marketplace_chat.settings import LimitSettings
from marketplace_chat.storage.base import BlockStorage, Storage

if TYPE_CHECKING:  # the service builds this module's object: no import of it at run time
    from marketplace_chat.service import Notifier


@dataclass(slots=True)
class _Typing:
    token: str
    socket_id: str | None
    timer: asyncio.TimerHandle


class TypingIndicators:
    def __init__(
        self,
        storage: Storage,
        state: TypingState,
        notifier: Notifier,
        blocks: BlockStorage,
        limits: LimitSettings,
        node_id: str,
        spawn: Callable[[Callable[[], Awaitable[None]]], None],
    ) -> None:
        """`spawn`: the service's runner of background work, which its drain waits for."""
        self._storage = storage
        self._state = state
        self._notify = notifier
        self._blocks = blocks
        self._limits = limits
        self._node = node_id
        self._spawn = spawn
        self._typing: dict[tuple[str, int], _Typing] = {}
        self._tokens = itertools.count(1)

    def started_here(self, chat_id: str, user_id: int) -> bool:
        return (chat_id, user_id) in self._typing

    async def start(
        self, chat_id: str, parts: Participants, user_id: int, origin: str | None
    ) -> None:
        # Between users who blocked each other typing is silent (the ack stays `{}`). A primary
        # key read per event: typing is budgeted, and a cached answer could be stale on some node.
        if await self._blocks.chat_blocked(chat_id):
            return
        token = f"{self._node}:{next(self._tokens)}"
        tell = await self._state.start(chat_id, user_id, token, self._limits.typing_throttle_s)
        self._arm_timer(parts, user_id, token, origin)
        if tell:
            await self._notify.to_chat_watchers(
                chat_id,
                parts.other(user_id),
                "typing:start",
                {"chatId": chat_id, "userId": user_id},
            )

    def _arm_timer(self, parts: Participants, user_id: int, token: str, origin: str | None) -> None:
        key = (parts.chat_id, user_id)
        previous = self._typing.pop(key, None)
        if previous is not None:
            previous.timer.cancel()
        loop = asyncio.get_running_loop()
        # The event loop's own timer heap serves every indicator; no task per typist.
        timer = loop.call_later(
            TYPING_TTL_S, self._spawn, lambda: self._expired(parts, user_id, token)
        )
        self._typing[key] = _Typing(token, origin, timer)

    async def _expired(self, parts: Participants, user_id: int, token: str) -> None:
        current = self._typing.get((parts.chat_id, user_id))
        if current is not None and current.token == token:
            del self._typing[(parts.chat_id, user_id)]
        if await self._state.expire(parts.chat_id, user_id, token):
            await self._tell_stopped(parts, user_id)

    async def end(self, parts: Participants, user_id: int) -> None:
        local = self._typing.pop((parts.chat_id, user_id), None)
        if local is not None:
            local.timer.cancel()
        if await self._state.stop(parts.chat_id, user_id):
            await self._tell_stopped(parts, user_id)

    async def _tell_stopped(self, parts: Participants, user_id: int) -> None:
        await self._notify.to_chat_watchers(
            parts.chat_id,
            parts.other(user_id),
            "typing:stop",
            {"chatId": parts.chat_id, "userId": user_id},
        )

    async def socket_closed(self, user_id: int, socket_id: str) -> None:
        for (chat_id, typist), state in list(self._typing.items()):
            if typist == user_id and state.socket_id == socket_id:
                parts = await self._storage.participants(chat_id)
                if parts is not None:
                    await self.end(parts, user_id)

    async def stop_here(self) -> None:
        """End every indicator this node started (shutdown): partners are told, keys cleared."""
        for chat_id, user_id in list(self._typing):
            parts = await self._storage.participants(chat_id)
            if parts is not None:
                await self.end(parts, user_id)

    def cancel_timers(self) -> None:
        for state in self._typing.values():
            state.timer.cancel()
