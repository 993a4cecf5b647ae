"""What every fan-out manager of this service does the same way, whatever carries its messages
between nodes: a per-socket room index, local delivery without a task per recipient, and
publishes batched while a round trip is in flight.

A backend is a sibling under python-socketio's `AsyncPubSubManager` that mixes this in before
the base and implements `_publish_batch` (hand one encoded batch to the backend) and `_listen`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import engineio.packet
import orjson
import socketio.packet

from marketplace_chat.batching import Coalescer

# How many ids of keyed events (see `keyed_events`) a node remembers having delivered or seen go
# by: at 2,000 messages a second, the last 25 s or so; about 7 MB. An id forgotten earlier only
# means a retry of that message is delivered once more, with the same id.
RECENT_KEYS = 50_000


class PendingSids:
    """The sockets of one namespace whose connect or disconnect handler is still running, with
    the calls python-socketio makes on the list it would keep (`append`, `remove`, `in`, `len`),
    each in constant time. With a list, every check of a socket scanned all the others in
    flight: a reconnect storm of 5,000 sockets spent seconds of CPU on those scans alone."""

    __slots__ = ("_sids",)

    def __init__(self, sids: Iterable[str] = ()) -> None:
        self._sids: dict[str, None] = dict.fromkeys(sids)

    def append(self, sid: str) -> None:
        self._sids[sid] = None

    def remove(self, sid: str) -> None:
        del self._sids[sid]  # KeyError for an absent sid, as a list's ValueError: never caught

    def __contains__(self, sid: object) -> bool:
        return sid in self._sids

    def __len__(self) -> int:
        return len(self._sids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._sids)


class PendingByNamespace(dict[str, PendingSids]):
    """`pending_connect` / `pending_disconnect` of python-socketio's manager: the list it stores
    for a namespace is kept as a `PendingSids`."""

    def __setitem__(self, namespace: str, sids: Iterable[str]) -> None:
        super().__setitem__(namespace, sids if isinstance(sids, PendingSids) else PendingSids(sids))


class LeanFanout:
    """Mixed into an `AsyncPubSubManager` subclass (listed before it).

    For the events named in `keyed_events`, whose payload is an object with an `id`, the node
    remembers the ids it delivered itself or saw another node deliver, so that a repeat can be
    sent only when no node is known to have sent the original (`delivered`), and an entry read
    twice (a batch appended again after its first append's reply was lost) is delivered once.
    """

    # Provided by python-socketio's managers; declared here for the type checker.
    rooms: dict[str, dict[Any, Any]]
    server: Any
    host_id: str
    callbacks: dict[str, Any]
    pending_connect: PendingByNamespace
    pending_disconnect: PendingByNamespace

    def __init__(
        self, *args: Any, keyed_events: frozenset[str] = frozenset(), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pending_connect = PendingByNamespace()
        self.pending_disconnect = PendingByNamespace()
        self.keyed_events = keyed_events
        self._outbox: Coalescer[dict[str, Any], None] = Coalescer(self._publish_each)
        self._rooms_of: dict[tuple[str, str], set[str | None]] = {}
        self._recent: dict[str, None] = {}

    def delivered(self, key: str) -> bool:
        """Whether an event keyed `key` went out from this node or reached it from another."""
        return key in self._recent

    def _remember(self, event: str, payload: list[Any]) -> bool:
        """Note a keyed event's id; False when this node had already delivered or seen it."""
        if event in self.keyed_events and payload and isinstance(payload[0], dict):
            key = payload[0].get("id")
            if isinstance(key, str):
                recent = self._recent
                if key in recent:
                    return False
                recent[key] = None
                if len(recent) > RECENT_KEYS:
                    del recent[next(iter(recent))]
        return True

    # The stock manager finds a leaving socket's rooms by scanning every room of the namespace,
    # so a mass disconnect costs the square of the sockets (minutes of CPU at 5,000). An index of
    # each socket's rooms makes it linear.

    def basic_enter_room(
        self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: str | None) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        for room in self._rooms_of.pop((namespace, sid), set()):
            super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        # What remains of the stock method: with no rooms left, its scan finds nothing.
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

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
            await super().emit(  # type: ignore[misc]
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
        self._remember(event, payload)
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

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        """Another node's emit: served like a local one, unless it carries a callback or binary
        data, which only the stock path handles."""
        data = message.get("data")
        if message.get("callback") or message.get("binary") or not isinstance(data, list):
            await super()._handle_emit(message)  # type: ignore[misc]
            return
        event = str(message.get("event"))
        if not self._remember(event, data):
            # Already delivered here: a batch appended twice (its first append's reply was lost
            # with the connection), or a repeat of a message another node had delivered.
            return
        await self._deliver_here(
            event,
            data,
            str(message.get("namespace") or "/"),
            message.get("room"),
            message.get("skip_sid"),
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
        for sid, eio_sid in self.get_participants(namespace, room):  # type: ignore[attr-defined]
            if sid not in skip:
                for frame in frames:
                    await self.server._send_eio_packet(eio_sid, frame)

    async def _publish(self, data: dict[str, Any]) -> None:
        self._outbox.post(data)

    async def _publish_each(self, batch: list[dict[str, Any]]) -> list[None]:
        await self._publish_batch(orjson.dumps(batch), len(batch))
        return [None] * len(batch)

    async def _publish_batch(self, encoded: bytes, count: int) -> None:
        """Hand `count` messages, encoded as one JSON list, to the backend."""
        raise NotImplementedError

    async def disconnect_local_sockets(self) -> int:
        """Close every socket of this node at the transport, as a lost connection, so that
        socket.io-client reconnects by itself (after a server-side disconnect it would not) and
        catches up with `messages:sync`. Returns how many were closed."""
        eio_sids = {
            eio_sid
            for participants in self.rooms.values()
            for eio_sid in dict(participants.get(None, {})).values()
        }
        engine = self.server.eio
        for eio_sid in eio_sids:
            socket = engine.sockets.get(eio_sid)
            with contextlib.suppress(Exception):  # a socket already gone is what we want
                await engine.disconnect(eio_sid)
            if socket is not None:
                # Engine.IO's close only queues a CLOSE packet, which socket.io-client ignores on
                # a WebSocket; the end-of-queue mark makes the transport close the connection.
                await socket.queue.put(None)
        return len(eio_sids)
