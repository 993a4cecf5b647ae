"""The node's stop, apart from its wiring: one deadline from the signal to the exit, shared out
among the steps so that each leaves time for the ones after it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog

from marketplace_chat.errors import ChatError
from marketplace_chat.gateway.namespace import ChatNamespace
from marketplace_chat.gateway.server import NAMESPACE, ChatSocketServer
from marketplace_chat.lifecycle import BackgroundLoop, Deadline
from marketplace_chat.service import ChatService
from marketplace_chat.webhooks.process import DispatcherProcess

log = structlog.get_logger(__name__)

# Shares of what is left of the shutdown deadline: the loops get a little, the events in flight
# the most; the presence cleanup and the closing of transports each leave time for what follows.
LOOP_STOP_SHARE = 0.1
# The webhook dispatcher's child process is asked to stop within this share when the drain
# starts, and waited for before the pools close.
PROCESS_SHARE = 0.8
EVENTS_SHARE = 0.4
PRESENCE_SHARE = 0.5
TRANSPORT_SHARE = 0.5
# Set aside by every step before the pools close, for closing them: a few milliseconds when the
# backends answer (and cut short when they do not).
CLOSE_RESERVE_S = 0.3
# Kept from the deadline for what follows the last step: the event loop's teardown and the exit.
EXIT_RESERVE_S = 0.5


@dataclass(slots=True)
class ChatApp:
    """The ASGI app (Socket.IO at /socket.io, namespace /chat; REST and operations beside it)
    and the shutdown it runs against one deadline: the drain before the server closes its
    connections, then the lifespan's closing of pools, each step with what is left of it."""

    asgi: Any
    shutdown_timeout_s: float = 8.0
    _namespace: ChatNamespace | None = None
    _service: ChatService | None = None
    _sio: ChatSocketServer | None = None
    _loops: list[BackgroundLoop] = field(default_factory=list)
    _processes: list[DispatcherProcess] = field(default_factory=list)
    _deadline: Deadline | None = None
    _drained: bool = False

    def deadline(self) -> Deadline:
        """The shutdown's deadline, started by the first step that asks for it. The steps end
        a little before `shutdown_timeout_s`, which leaves the process the time to exit."""
        if self._deadline is None:
            self._deadline = Deadline(max(0.0, self.shutdown_timeout_s - EXIT_RESERVE_S))
        return self._deadline

    async def stop_loops(self) -> None:
        deadline = self.deadline()
        for process in self._processes:
            process.ask_stop(deadline.share(PROCESS_SHARE, CLOSE_RESERVE_S))
        for loop in self._loops:
            await loop.stop(deadline.share(LOOP_STOP_SHARE, CLOSE_RESERVE_S))
        self._loops.clear()

    async def drain(self) -> None:
        """Stop taking sockets, finish events in flight, clear this node's presence and typing,
        and close the sockets at the transport, so that clients reconnect to another node."""
        if self._drained or self._namespace is None or self._service is None or self._sio is None:
            return
        self._drained = True
        deadline = self.deadline()
        await self.stop_loops()
        sockets = await self._namespace.drain(deadline.share(EVENTS_SHARE, CLOSE_RESERVE_S))
        await deadline.run(
            self._leave(self._service, sockets), "presence_cleanup", PRESENCE_SHARE, CLOSE_RESERVE_S
        )
        await deadline.run(
            self._close(self._sio, sockets), "close_transports", TRANSPORT_SHARE, CLOSE_RESERVE_S
        )
        log.info("drained", sockets=len(sockets))

    @staticmethod
    async def _leave(service: ChatService, sockets: dict[str, int]) -> None:
        try:
            await service.stop_typing_here()
            offline = await service.presence.leave(sockets)
            await service.went_offline(offline)
        except ChatError as exc:
            log.warning("presence_cleanup_failed", error=exc.message)

    @staticmethod
    async def _close(sio: ChatSocketServer, sockets: dict[str, int]) -> None:
        for sid in sockets:
            eio_sid = sio.manager.eio_sid_from_sid(sid, NAMESPACE)
            if eio_sid is not None:
                with contextlib.suppress(Exception):
                    await sio.eio.disconnect(eio_sid)
        # Sessions that never joined /chat, so that their pending polls are answered now.
        with contextlib.suppress(Exception):
            await sio.eio.disconnect()
