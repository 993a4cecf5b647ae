"""The Socket.IO server the gateway runs on."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import engineio.packet
import orjson
import socketio
import socketio.packet

from marketplace_chat.batching import Coalescer
from marketplace_chat.errors import RateLimited
from marketplace_chat.gateway.transport import LeanEngineIOServer
from marketplace_chat.realtime.connection import connect

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


# Written for python-socketio 5.x: `_handle_event` is where each event gets its task, and the
# override below replaces it whole; the names it calls are checked when the class is defined.
_SEAMS = ("_handle_event", "_handle_event_internal", "_send_packet")
_missing = [name for name in _SEAMS if not hasattr(socketio.AsyncServer, name)]
if _missing:  # pragma: no cover - only on a python-socketio that moved them
    raise ImportError(f"python-socketio no longer has {_missing}; see ChatSocketServer")

IN_FLIGHT_RETRY_MS = 100  # what a refused event is told: about one round of earlier acks


@dataclass(slots=True)
class _Lane:
    """One socket's events: how many run, and the packets waiting for a free slot."""

    running: int = 0
    waiting: deque[tuple[str, Any, Any]] = field(default_factory=deque)


class ChatSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server with a bound on each socket's events in flight.

    The stock server starts a task for every event packet, so one socket firing thousands of
    events without waiting made thousands of tasks. Here a socket runs at most
    `max_in_flight` events at once; further ones wait as packets, in arrival order, and start as
    earlier ones finish; past `max_queued` waiting ones an event is answered `RATE_LIMITED` at
    once (its ack, else an `exception` event) without starting anything. 0 turns a bound off.
    """

    def __init__(
        self, *args: Any, max_in_flight: int = 0, max_queued: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.on_refused: Callable[[str], None] = lambda event: None
        self._lanes: dict[str, _Lane] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()

    @property
    def events_running(self) -> int:
        return len(self._event_tasks)

    @property
    def events_waiting(self) -> int:
        return sum(len(lane.waiting) for lane in self._lanes.values())

    def _engineio_server_class(self) -> type[LeanEngineIOServer]:
        return LeanEngineIOServer

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            return
        lane = self._lanes.get(sid)
        if lane is None:
            lane = self._lanes[sid] = _Lane()
        if self.max_in_flight <= 0 or lane.running < self.max_in_flight:
            self._start(lane, sid, eio_sid, namespace, id, data)
        elif self.max_queued <= 0 or len(lane.waiting) < self.max_queued:
            lane.waiting.append((eio_sid, id, data))
        else:
            await self._refuse(sid, eio_sid, namespace, id, data)

    def _start(
        self, lane: _Lane, sid: str, eio_sid: str, namespace: str, id: Any, data: Any
    ) -> None:
        lane.running += 1
        task = asyncio.ensure_future(
            self._handle_event_internal(self, sid, eio_sid, data, namespace, id)
        )
        self._event_tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, lane, sid, namespace))

    def _finished(self, task: asyncio.Task[None], lane: _Lane, sid: str, namespace: str) -> None:
        self._event_tasks.discard(task)
        lane.running -= 1
        if lane.waiting and self.manager.is_connected(sid, namespace):
            eio_sid, id, data = lane.waiting.popleft()
            self._start(lane, sid, eio_sid, namespace, id, data)
        elif not lane.running:
            # Idle, or gone: a socket that left drops what was waiting.
            self._lanes.pop(sid, None)

    async def _refuse(self, sid: str, eio_sid: str, namespace: str, id: Any, data: Any) -> None:
        event = str(data[0]) if isinstance(data, list) and data else ""
        self.on_refused(event)
        exc = RateLimited(
            "Too many events in flight on this socket; wait for their acks",
            IN_FLIGHT_RETRY_MS,
            "events_in_flight",
        )
        # Sent straight to the socket: a flood's refusals stay off the fan-out.
        if id is not None:
            reply = self.packet_class(
                socketio.packet.ACK, namespace=namespace, id=id, data=[exc.to_ack()]
            )
        else:
            reply = self.packet_class(
                socketio.packet.EVENT,
                namespace=namespace,
                data=["exception", exc.to_exception_event(event)],
            )
        await self._send_packet(eio_sid, reply)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        # Each event runs in its own task, so the flag stays with this event.
        ACK_REQUESTED.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


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


def create_server(
    redis_url: str | None,
    channel: str,
    cors_origins: str,
    *,
    max_in_flight: int = 0,
    max_queued: int = 0,
) -> ChatSocketServer:
    manager = RedisManager(redis_url, channel=channel) if redis_url is not None else None
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
        max_in_flight=max_in_flight,
        max_queued=max_queued,
    )
