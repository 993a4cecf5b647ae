"""The service's `Notifier` on Socket.IO rooms, which the Redis manager carries to every node.

Rooms:
- `u:{userId}`: every socket of the user (messages, read receipts, presence, chats);
- `c:{chatId}:{userId}`: the user's sockets that joined the chat (typing).
A socket whose token expired is taken out of its rooms until it refreshes.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from marketplace_chat.gateway.server import NAMESPACE, ChatSocketServer
from marketplace_chat.metrics import Metrics

log = structlog.get_logger(__name__)


def user_room(user_id: int) -> str:
    return f"u:{user_id}"


def chat_room(chat_id: str, user_id: int) -> str:
    return f"c:{chat_id}:{user_id}"


def _delivered(manager: Any, key: str) -> bool:
    """Whether the fan-out saw an event keyed `key` go out (a manager without that memory, the
    single-node default, never did)."""
    seen = getattr(manager, "delivered", None)
    return bool(seen(key)) if seen is not None else False


class SocketNotifier:
    def __init__(self, sio: ChatSocketServer, metrics: Metrics) -> None:
        self._sio = sio
        self._metrics = metrics

    async def to_users(
        self, user_ids: list[int], event: str, payload: dict[str, Any], *, skip: str | None = None
    ) -> None:
        rooms = [user_room(u) for u in dict.fromkeys(user_ids)]
        await self._emit(event, payload, rooms, skip)

    async def to_users_once(
        self, user_ids: list[int], event: str, payload: dict[str, Any], key: str
    ) -> None:
        if not _delivered(self._sio.manager, key):
            await self.to_users(user_ids, event, payload)

    async def to_chat_watchers(
        self, chat_id: str, user_id: int, event: str, payload: dict[str, Any]
    ) -> None:
        await self._emit(event, payload, chat_room(chat_id, user_id), None)

    async def to_socket(self, socket_id: str, event: str, payload: dict[str, Any]) -> None:
        await self._emit(event, payload, socket_id, None)

    async def _emit(
        self, event: str, payload: dict[str, Any], to: str | list[str], skip: str | None
    ) -> None:
        started = time.perf_counter()
        try:
            await self._sio.emit(event, payload, to=to, skip_sid=skip, namespace=NAMESPACE)
        except Exception:
            # What was committed stays committed; the local sockets were already served and the
            # other nodes' clients catch up with messages:sync.
            self._metrics.backend_errors.labels("redis").inc()
            log.warning("fanout_failed", event_name=event)
            return
        self._metrics.fanout_latency.observe(time.perf_counter() - started)
