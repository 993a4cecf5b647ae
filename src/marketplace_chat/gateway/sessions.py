"""Per-socket authentication state: the bound token, its expiry, and the grace before disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from marketplace_chat.auth.base import Identity
from marketplace_chat.clock import Clock

# Fire just after the deadline rather than just before: the loop's timers round to milliseconds.
TIMER_SLACK_S = 0.005


@dataclass(slots=True)
class SocketSession:
    sid: str
    user_id: int
    token: str  # never logged
    expires_at: datetime | None
    rooms: set[str] = field(default_factory=set)  # rooms besides the socket's own
    suspended: bool = False  # out of its rooms because the token expired
    timer: asyncio.TimerHandle | None = None

    def expired(self, now: datetime, leeway_s: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at + timedelta(seconds=leeway_s)


def token_from_handshake(auth: object, environ: dict[str, Any]) -> str | None:
    """`auth.token`, else `query.token`, else an `Authorization: Bearer` header."""
    if isinstance(auth, dict):
        value = auth.get("token")
        if isinstance(value, str) and value.strip():
            return str(value)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    for candidate in query.get("token", []):
        if candidate.strip():
            return str(candidate)
    header = environ.get("HTTP_AUTHORIZATION", "")
    if isinstance(header, str) and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


class Sessions:
    """The sockets of this node, and one timer per socket on the event loop's shared heap.

    At the token's expiry the socket is suspended (`on_expire`); when the token stays expired
    for the grace period, `on_grace_over` disconnects it.
    """

    def __init__(
        self,
        clock: Clock,
        leeway_s: float,
        grace_s: float,
        on_expire: Callable[[SocketSession], Coroutine[Any, Any, None]],
        on_grace_over: Callable[[SocketSession], Coroutine[Any, Any, None]],
    ) -> None:
        self._clock = clock
        self._leeway = leeway_s
        self._grace = grace_s
        self._on_expire = on_expire
        self._on_grace_over = on_grace_over
        self._by_sid: dict[str, SocketSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._by_sid)

    def get(self, sid: str) -> SocketSession | None:
        return self._by_sid.get(sid)

    def users(self) -> dict[str, int]:
        return {sid: s.user_id for sid, s in self._by_sid.items()}

    def add(self, sid: str, identity: Identity, token: str) -> SocketSession:
        session = SocketSession(sid, identity.user_id, token, identity.expires_at)
        self._by_sid[sid] = session
        self._arm(session)
        return session

    def rebind(self, session: SocketSession, identity: Identity, token: str) -> None:
        session.token = token
        session.expires_at = identity.expires_at
        self._arm(session)

    def remove(self, sid: str) -> SocketSession | None:
        session = self._by_sid.pop(sid, None)
        if session is not None and session.timer is not None:
            session.timer.cancel()
        return session

    def expired(self, session: SocketSession) -> bool:
        return session.expired(self._clock.now(), self._leeway)

    def _arm(self, session: SocketSession) -> None:
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        if session.expires_at is None:
            return
        deadline = session.expires_at + timedelta(seconds=self._leeway)
        delay = max(0.0, (deadline - self._clock.now()).total_seconds()) + TIMER_SLACK_S
        loop = asyncio.get_running_loop()
        session.timer = loop.call_later(delay, self._fire, session, self._on_expire, True)

    def _fire(
        self,
        session: SocketSession,
        action: Callable[[SocketSession], Coroutine[Any, Any, None]],
        then_grace: bool,
    ) -> None:
        if self._by_sid.get(session.sid) is not session:
            return
        if not self.expired(session):
            if then_grace:
                # The loop's clock can run a few ms ahead of the wall clock `exp` is read on.
                self._arm(session)
            return  # a refresh came in time
        if then_grace:
            loop = asyncio.get_running_loop()
            session.timer = loop.call_later(
                self._grace, self._fire, session, self._on_grace_over, False
            )
        task = asyncio.get_running_loop().create_task(action(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
