"""The Socket.IO server the gateway runs on."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Any

import orjson
import socketio

from marketplace_chat.gateway.streams import StreamsManager
from marketplace_chat.gateway.transport import LeanEngineIOServer

NAMESPACE = "/chat"

# Whether the client asked for an ack: a failed event without one is answered by `exception`.
ACK_REQUESTED: ContextVar[bool] = ContextVar("ack_requested", default=True)


class Codec:
    """orjson for what the server writes; the standard library for what clients send, since it
    takes integers of any size, which then get a validation error rather than a dropped packet."""

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return json.loads(data)


class ChatSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    def _engineio_server_class(self) -> type[LeanEngineIOServer]:
        return LeanEngineIOServer

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        # python-socketio runs each event in its own task, so the flag stays with this event.
        ACK_REQUESTED.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


def create_server(
    redis_url: str | None,
    channel: str,
    cors_origins: str,
    stream_maxlen: int = 200_000,
    buffer_max: int = 50_000,
) -> ChatSocketServer:
    """The server, with its fan-out between nodes on a Redis stream when Redis is given."""
    manager = (
        StreamsManager(redis_url, channel=channel, maxlen=stream_maxlen, buffer_max=buffer_max)
        if redis_url is not None
        else None
    )
    origins: str | list[str] = (
        "*" if cors_origins.strip() == "*" else [o.strip() for o in cors_origins.split(",")]
    )
    return ChatSocketServer(
        async_mode="asgi",
        client_manager=manager,
        json=Codec,
        cors_allowed_origins=origins,
        always_connect=False,
        # Loggers of our own, so the libraries add no plain-text handler: their lines go through
        # the service's JSON logging like every other.
        logger=logging.getLogger("socketio.server"),
        engineio_logger=logging.getLogger("engineio.server"),
        # A payload is at most a message of a few kB; refuse megabytes at the transport.
        max_http_buffer_size=1_000_000,
    )
