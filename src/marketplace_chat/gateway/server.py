"""The Socket.IO server the gateway runs on.

python-socketio's server with two changes at the packet level, both through methods its 5.x
releases have (listed and checked at start in `seams.py`): a packet the codec refuses is answered
like bad input instead of being dropped, and each socket's events run in a bounded lane
(`lanes.py`) instead of a task per packet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import socketio

from marketplace_chat.errors import ChatError, RateLimited, ValidationFailed
from marketplace_chat.gateway.codec import ChatPacket, Codec, RefusedPacketError
from marketplace_chat.gateway.lanes import Lanes
from marketplace_chat.gateway.streams import StreamsManager
from marketplace_chat.gateway.transport import MAX_PAYLOAD_BYTES, LeanEngineIOServer

NAMESPACE = "/chat"
# Events whose ids the fan-out remembers, so that a retried send repeats a message only when no
# node is known to have delivered it.
KEYED_EVENTS = frozenset({"message:new"})

# Whether the client asked for an ack: a failed event without one is answered by `exception`.
ACK_REQUESTED: ContextVar[bool] = ContextVar("ack_requested", default=True)

IN_FLIGHT_RETRY_MS = 100  # what a refused event is told: about one round of earlier acks


class ChatSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server that answers refused packets and bounds each socket's events.

    The stock server starts a task for every event packet, so one socket firing thousands of
    events without waiting made thousands of tasks. Here a socket runs at most `max_in_flight`
    events at once; further ones wait as packets, in arrival order; past `max_queued` waiting
    ones an event is answered `RATE_LIMITED` at once without starting anything. 0 turns a bound
    off.
    """

    def __init__(
        self, *args: Any, max_in_flight: int = 0, max_queued: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_refused: Callable[[str], None] = lambda event: None
        self._lanes = Lanes(max_in_flight, max_queued)

    @property
    def events_running(self) -> int:
        return self._lanes.running

    @property
    def events_waiting(self) -> int:
        return self._lanes.waiting

    def stop_events(self) -> None:
        """For a drain: events not started yet are dropped unanswered (see `Lanes.close`)."""
        self._lanes.close()

    def _engineio_server_class(self) -> type[LeanEngineIOServer]:
        return LeanEngineIOServer

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # The stock method lets a decoding error escape, and Engine.IO only logs it: the client
        # would wait for an ack that never comes. A refused event is answered like bad input.
        try:
            await super()._handle_eio_message(eio_sid, data)
        except RefusedPacketError as refused:
            await self._answer(
                eio_sid,
                refused.namespace,
                refused.ack_id,
                refused.event,
                ValidationFailed(refused.reason),
            )

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if self._lanes.closed or not self.manager.is_connected(sid, namespace):
            return

        def is_connected() -> bool:
            return bool(self.manager.is_connected(sid, namespace))

        admitted = self._lanes.admit(
            sid,
            lambda: self._handle_event_internal(self, sid, eio_sid, data, namespace, id),
            is_connected,
        )
        if not admitted:
            event = str(data[0]) if isinstance(data, list) and data else ""
            self.on_refused(event)
            refusal = RateLimited(
                "Too many events in flight on this socket; wait for their acks",
                IN_FLIGHT_RETRY_MS,
                "events_in_flight",
            )
            await self._answer(eio_sid, namespace, id, event, refusal)

    async def _answer(
        self, eio_sid: str, namespace: str | None, ack_id: Any, event: str, error: ChatError
    ) -> None:
        """An error answered straight to the socket, off the fan-out: its ack, else `exception`."""
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return
        if ack_id is not None:
            reply = self.packet_class(
                socketio.packet.ACK, namespace=namespace, id=ack_id, data=[error.to_ack()]
            )
        else:
            reply = self.packet_class(
                socketio.packet.EVENT,
                namespace=namespace,
                data=["exception", error.to_exception_event(event)],
            )
        await self._send_packet(eio_sid, reply)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        # Each event runs in its own task, so the flag stays with this event.
        ACK_REQUESTED.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


def create_server(
    redis_url: str | None,
    channel: str,
    cors_origins: str,
    *,
    stream_maxlen: int = 200_000,
    buffer_max: int = 50_000,
    max_in_flight: int = 0,
    max_queued: int = 0,
) -> ChatSocketServer:
    """The server, with its fan-out between nodes on a Redis stream when Redis is given."""
    manager = (
        StreamsManager(
            redis_url,
            channel=channel,
            maxlen=stream_maxlen,
            buffer_max=buffer_max,
            keyed_events=KEYED_EVENTS,
        )
        if redis_url is not None
        else None
    )
    origins: str | list[str] = (
        "*" if cors_origins.strip() == "*" else [o.strip() for o in cors_origins.split(",")]
    )
    return ChatSocketServer(
        async_mode="asgi",
        client_manager=manager,
        serializer=ChatPacket,
        json=Codec,
        cors_allowed_origins=origins,
        always_connect=False,
        # Loggers of our own, so the libraries add no plain-text handler: their lines go through
        # the service's JSON logging like every other.
        logger=logging.getLogger("socketio.server"),
        engineio_logger=logging.getLogger("engineio.server"),
        max_http_buffer_size=MAX_PAYLOAD_BYTES,
        max_in_flight=max_in_flight,
        max_queued=max_queued,
    )
