"""The Socket.IO server the gateway runs on."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import engineio.packet
import orjson
import socketio
import socketio.packet

from marketplace_chat.batching import Coalescer
from marketplace_chat.errors import ValidationFailed
from marketplace_chat.gateway.codec import ChatPacket, Codec, RefusedPacketError
from marketplace_chat.gateway.transport import MAX_PAYLOAD_BYTES, LeanEngineIOServer
from marketplace_chat.realtime.connection import connect

NAMESPACE = "/chat"

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


BATCH_MARK = b"\x1ebatch:"  # starts a batch of pub/sub messages: mark, host id, newline, JSON list


class RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, on this service's Redis client (blocking pool, Sentinel),
    with its publishes batched.

    Every message published while a publish is in flight goes into the next one, as a JSON list
    behind a mark naming the sending host, so that a busy node makes one Redis round trip for
    many events and its listener skips its own batches without decoding them. Local sockets are
    served before anything is published, as in the stock manager. Plain messages (from another
    publisher on the channel, such as a stock python-socketio emitter) are still understood.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outbox: Coalescer[dict[str, Any], None] = Coalescer(self._publish_batch)
        self._rooms_of: dict[tuple[str, str], set[str | None]] = {}

    # The stock manager finds a leaving socket's rooms by scanning every room of the namespace,
    # so a mass disconnect costs the square of the sockets (minutes of CPU at 5,000). An index of
    # each socket's rooms makes it linear.

    def basic_enter_room(
        self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: str | None) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        for room in self._rooms_of.pop((namespace, sid), set()):
            super().basic_leave_room(sid, namespace, room)
        # What remains of the stock method: with no rooms left, its scan finds nothing.
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def set_server(self, server: Any) -> None:
        super().set_server(server)
        self.json = _PassThroughJson

    def _redis_connect(self) -> None:
        self.redis = connect(self.redis_url, timeout_s=None)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """The stock emit, minus two costs the profiles showed on every message: a scan of the
        payload for binary data (this service only sends JSON) and a task per recipient (a send
        only queues the packet on the socket, so the local recipients are served in turn)."""
        if callback is not None or kwargs.get("ignore_queue"):
            await super().emit(
                event,
                data,
                namespace=namespace,
                room=room,
                skip_sid=skip_sid,
                callback=callback,
                to=to,
                **kwargs,
            )
            return
        room = to or room
        namespace = namespace or "/"
        payload = list(data) if isinstance(data, tuple) else [data]
        await self._deliver_here(event, payload, namespace, room, skip_sid)
        await self._publish(
            {
                "method": "emit",
                "event": event,
                "data": payload,
                "binary": False,
                "namespace": namespace,
                "room": room,
                "skip_sid": skip_sid,
                "callback": None,
                "host_id": self.host_id,
            }
        )

    async def _deliver_here(
        self, event: str, payload: list[Any], namespace: str, room: Any, skip_sid: Any
    ) -> None:
        if namespace not in self.rooms:
            return
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        pkt = self.server.packet_class(
            socketio.packet.EVENT, namespace=namespace, data=[event, *payload]
        )
        encoded = pkt.encode()
        frames = [
            engineio.packet.Packet(engineio.packet.MESSAGE, p)
            for p in (encoded if isinstance(encoded, list) else [encoded])
        ]
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid not in skip:
                for frame in frames:
                    await self.server._send_eio_packet(eio_sid, frame)

    async def _publish(self, data: dict[str, Any]) -> None:
        self._outbox.post(data)

    async def _publish_batch(self, batch: list[dict[str, Any]]) -> list[None]:
        payload = BATCH_MARK + self.host_id.encode() + b"\n" + orjson.dumps(batch)
        await super()._publish(_Raw(payload))
        return [None] * len(batch)

    async def _listen(self) -> AsyncIterator[Any]:
        mine = BATCH_MARK + self.host_id.encode() + b"\n"
        async for raw in super()._listen():
            if not (isinstance(raw, bytes) and raw.startswith(BATCH_MARK)):
                yield raw
            elif not raw.startswith(mine):
                for message in json.loads(raw.split(b"\n", 1)[1]):
                    yield message


class _Raw(bytes):
    """An already encoded payload, which the manager's JSON step passes through."""


class _PassThroughJson:
    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> Any:
        return obj if isinstance(obj, _Raw) else Codec.dumps(obj)

    @staticmethod
    def loads(data: str | bytes, *args: Any, **kwargs: Any) -> Any:
        return json.loads(data)


def create_server(redis_url: str | None, channel: str, cors_origins: str) -> ChatSocketServer:
    manager = RedisManager(redis_url, channel=channel) if redis_url is not None else None
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
