"""The Socket.IO server the gateway runs on."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

import socketio

from marketplace_chat.errors import ValidationFailed
from marketplace_chat.gateway.codec import ChatPacket, Codec, RefusedPacketError
from marketplace_chat.gateway.streams import StreamsManager
from marketplace_chat.gateway.transport import MAX_PAYLOAD_BYTES, LeanEngineIOServer

NAMESPACE = "/chat"
# Events whose ids the fan-out remembers, so that a retried send repeats a message only when no
# node is known to have delivered it.
KEYED_EVENTS = frozenset({"message:new"})

# Whether the client asked for an ack: a failed event without one is answered by `exception`.
ACK_REQUESTED: ContextVar[bool] = ContextVar("ack_requested", default=True)


class ChatSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    def _engineio_server_class(self) -> type[LeanEngineIOServer]:
        return LeanEngineIOServer

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        # The stock method lets a decoding error escape, and Engine.IO only logs it: the client
        # would wait for an ack that never comes. A refused event is answered like bad input.
        try:
            await super()._handle_eio_message(eio_sid, data)
        except RefusedPacketError as refused:
            await self._answer_refused(eio_sid, refused)

    async def _answer_refused(self, eio_sid: str, refused: RefusedPacketError) -> None:
        namespace = refused.namespace
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return
        error = ValidationFailed(refused.reason)
        self.logger.info("refused event packet from %s: %s", sid, refused.reason)
        if refused.ack_id is None:
            await self.emit(
                "exception", error.to_exception_event(refused.event), to=sid, namespace=namespace
            )
            return
        ack = self.packet_class(
            socketio.packet.ACK, namespace=namespace, data=[error.to_ack()], id=refused.ack_id
        )
        await self._send_packet(eio_sid, ack)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        # python-socketio runs each event in its own task, so the flag stays with this event.
        ACK_REQUESTED.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


# The private names of python-socketio 5.x that ChatSocketServer overrides or calls: a release
# without them fails here, at start, rather than leaving bad packets unanswered again.
_PRIVATE_NAMES = ("_handle_eio_message", "_handle_event_internal", "_send_packet")
if _missing := [n for n in _PRIVATE_NAMES if not hasattr(socketio.AsyncServer, n)]:
    raise RuntimeError(f"python-socketio lacks {_missing}; gateway/server.py was written for 5.x")


def create_server(
    redis_url: str | None,
    channel: str,
    cors_origins: str,
    stream_maxlen: int = 200_000,
    buffer_max: int = 50_000,
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
    )
