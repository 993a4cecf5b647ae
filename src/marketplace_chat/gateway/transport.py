"""The WebSocket transport under Socket.IO, trimmed to what an idle connection must hold.

A connected socket spends most of its life idle, so what it keeps in memory sets how many users a
node carries. The stock stack keeps, per connection, two `asyncio.Queue`s and three
`asyncio.Event`s (each with empty deques of about 600 bytes), the parsed handshake (request and
response headers) long after the handshake, and a class object created for every request by
Engine.IO's ASGI driver, and Engine.IO sleeps in a task per socket until its next ping. The
classes here keep the same behaviour with lazily allocated waiters, a loop timer for each ping,
one sweep per server for every connection's read and write deadlines (instead of two deadlines
per connection, rescheduled on every packet), and the handshake dropped once it is done (the
headers too, which the WebSocket parser and the Engine.IO environ would otherwise hold for the
connection's life); measured at 5,000 idle sockets by `make bench`.

The server here also keeps a peer from making it hold what it never asked for: no event takes
binary data, so a binary frame or a Socket.IO binary packet (which announces attachments that
python-socketio would buffer until they all came) closes the session at once; and a long-polling
POST larger than the packet limit is answered 413 before its body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs

import engineio
from engineio import exceptions as engineio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import asgi as engineio_asgi
from engineio.async_socket import AsyncSocket
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

T = TypeVar("T")

# The largest Engine.IO packet (a WebSocket frame) or long-polling POST body a peer may send: a
# chat payload is a message of a few kB, so a megabyte leaves room and refuses what is not chat.
MAX_PAYLOAD_BYTES = 1_000_000
# A long-polling POST body of at most MAX_PAYLOAD_BYTES that takes longer than this to arrive is
# a peer holding the request open, not a slow phone: it is answered 408.
POLL_BODY_TIMEOUT_S = 10.0
# Socket.IO packet types BINARY_EVENT and BINARY_ACK: a header announcing binary attachments.
_SOCKETIO_BINARY_TYPES = ("5", "6")


def refused_message(data: str | bytes) -> bool:
    """Whether an Engine.IO message carries binary data, which no chat event takes: a binary
    frame (or a base64 packet of long-polling) or a Socket.IO binary packet header."""
    return isinstance(data, bytes) or data[:1] in _SOCKETIO_BINARY_TYPES


class LeanQueue(Generic[T]):
    """An unbounded FIFO with the `asyncio.Queue` calls that uvicorn and Engine.IO make; the
    item deque and the waiter lists exist only while they hold something."""

    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self) -> None:
        self._items: deque[T] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self._unfinished = 0

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._unfinished += 1
        self._wake_one()

    async def put(self, item: T) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> T:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if self._getters is not None and getter in self._getters:
                    self._getters.remove(getter)
                # Another getter may be owed the wake-up this one took.
                if self._items and self._getters:
                    self._wake_one()
                raise
            finally:
                if not self._getters:
                    self._getters = None
        return self.get_nowait()

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished > 0:
            joiner = asyncio.get_running_loop().create_future()
            if self._joiners is None:
                self._joiners = []
            self._joiners.append(joiner)
            await joiner


class LeanEvent:
    """`asyncio.Event` with its waiter list allocated only while someone waits."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if not self._value:
            self._value = True
            waiters, self._waiters = self._waiters, None
            for waiter in waiters or ():
                if not waiter.done():
                    waiter.set_result(True)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class ChatWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with lean queue and flow-control event, and without
    the parsed handshake once the connection is accepted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Same calls as the asyncio classes the parent declares (get/put_nowait/empty,
        # wait/set/clear).
        self.queue = LeanQueue()  # type: ignore[assignment]
        self.writable = LeanEvent()  # type: ignore[assignment]
        self.writable.set()

    async def send_texts(self, texts: list[str]) -> None:
        """Text frames that were queued together, in one write to the socket.

        A message's ack and its echo reach the sender's queue in the same step, and each frame
        written alone costs a system call (8 % of the server's CPU in a profile of the closed
        loop was spent in them). Outside the data phase (before the accept, once a close was sent,
        or answering with an HTTP response) each goes through `send`, with uvicorn's rules."""
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            for text in texts:
                await self.send({"type": "websocket.send", "text": text})
            return
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected from None
        self.transport.write(b"".join(self.conn.data_to_send()))

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # Only the handshake reads these, and it is over. The request is emptied in place:
            # the websockets parser's generator keeps it as a local for the connection's life.
            self.request.headers.clear()
            del self.request, self.response


class _WebSocketInput:
    """`wsgi.input` of a WebSocket request, which has no body."""

    __slots__ = ()

    async def read(self, length: int | None = None) -> bytes:
        return b""


_NO_BODY = _WebSocketInput()


async def translate_request(scope: dict[str, Any], receive: Any, send: Any) -> dict[str, Any]:
    """Engine.IO's ASGI request translation, without a class per WebSocket request; plain HTTP
    requests (long-polling, which reads the body) go to the stock one."""
    if scope["type"] != "websocket":
        return await engineio_asgi.translate_request(scope, receive, send)  # type: ignore[no-any-return]
    event = await receive()
    if event["type"] != "websocket.connect":
        return {}
    query_string = ""
    if scope.get("query_string"):
        with contextlib.suppress(UnicodeDecodeError):
            query_string = scope["query_string"].decode("utf-8")
    path = scope["path"]
    environ: dict[str, Any] = {
        "wsgi.input": _NO_BODY,
        "wsgi.errors": sys.stderr,
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query_string,
        "RAW_URI": f"{path}?{query_string}" if query_string else path,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "asgi.receive": receive,
        "asgi.send": send,
        "asgi.scope": scope,
    }
    for raw_name, raw_value in scope["headers"]:
        try:
            name = raw_name.upper().decode("utf-8")
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if name in ("CONTENT-TYPE", "CONTENT-LENGTH"):
            environ[name.replace("-", "_")] = value
            continue
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ


def release_handshake(environ: dict[str, Any]) -> None:
    """Let go of what a connection's handshake carried (its headers, twice: in the environ and in
    the ASGI scope) once nothing will read it again. Engine.IO's request frames and
    python-socketio (until the disconnect) hold the environ for as long as the connection
    lasts, so it is emptied in place; python-socketio's `get_environ` then answers `{}`."""
    scope = environ.get("asgi.scope")
    if isinstance(scope, dict) and scope.get("type") == "websocket":
        scope["headers"] = []
    environ.clear()


class LeanWebSocket:
    """Engine.IO's WebSocket transport on ASGI: the stock protocol (upgrade probe, packets both
    ways, closing) with one task per connection fewer and none per packet. The stock handler
    reads each packet in a new task under `wait_for`, and its writer polls the queue the same
    way; here the reader awaits the connection directly and the writer the socket's queue, each
    under a reusable deadline."""

    __slots__ = ("_receive", "_send", "_socket")

    def __init__(self, handler: Any, server: Any) -> None:
        # Engine.IO hands over the socket's own handler; the socket is what this class drives.
        self._socket = handler.__self__
        self._receive: Any = None
        self._send: Any = None

    async def __call__(self, environ: dict[str, Any]) -> str:
        self._receive = environ["asgi.receive"]
        self._send = environ["asgi.send"]
        if self._socket.connected:
            # An upgrade from long-polling: the session's handshake was the polling request's.
            release_handshake(environ)
        await self._send({"type": "websocket.accept"})
        await _serve_websocket(self._socket, self)
        return ""  # no HTTP response: the connection was the answer

    async def send_many(self, messages: list[str | bytes]) -> None:
        """Several packets in order; text ones in one write when the protocol can."""
        protocol = getattr(self._send, "__self__", None)
        texts = [m for m in messages if isinstance(m, str)]
        if isinstance(protocol, ChatWebSocketProtocol) and len(texts) == len(messages):
            await protocol.send_texts(texts)
            return
        for message in messages:
            await self.send(message)

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self._send({"type": "websocket.send", "bytes": message})
        else:
            await self._send({"type": "websocket.send", "text": message})

    async def wait(self) -> str | bytes:
        event = await self._receive()
        if event["type"] == "websocket.receive":
            data: str | bytes | None = event.get("bytes")
            if data is None:
                data = event.get("text")
            if data is not None:
                return data
        raise OSError("websocket closed")

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # already closed: nothing to do
            await self._send({"type": "websocket.close"})


class _Watched:
    """One WebSocket connection as the silence sweep sees it: when the peer was last heard,
    since when a write has been waiting (None between writes), and the tasks to stop."""

    __slots__ = ("expired", "heard", "reader", "writer", "writing_since")

    def __init__(self, reader: asyncio.Task[Any] | None, now: float) -> None:
        self.reader = reader
        self.writer: asyncio.Task[None] | None = None
        self.heard = now
        self.writing_since: float | None = None
        self.expired = False


class SilenceSweep:
    """The read and write deadlines of every WebSocket connection of a server, kept by one
    periodic loop timer instead of two deadlines per connection rescheduled on every packet.

    A connection whose peer has sent nothing for `limit_s` (the ping interval plus the ping
    timeout: it stopped answering pings), or whose pending write has not gone out for as long
    (the peer stopped reading), has its reading and writing tasks cancelled, which ends the
    transport as a lost connection. A deadline is noticed at most `limit_s / SWEEPS_PER_LIMIT`
    (and `MAX_SWEEP_S`) late.
    """

    SWEEPS_PER_LIMIT = 10
    MAX_SWEEP_S = 1.0

    def __init__(self) -> None:
        self._watched: dict[_Watched, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._limit_s = 0.0

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, limit_s: float) -> _Watched:
        loop = asyncio.get_running_loop()
        watched = _Watched(asyncio.current_task(), loop.time())
        self._watched[watched] = None
        self._limit_s = limit_s
        if self._timer is None:
            self._timer = loop.call_later(self._period(), self._sweep)
        return watched

    def forget(self, watched: _Watched) -> None:
        self._watched.pop(watched, None)
        if not self._watched and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _period(self) -> float:
        return min(self.MAX_SWEEP_S, self._limit_s / self.SWEEPS_PER_LIMIT)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        limit = self._limit_s
        for watched in self._watched:
            if watched.expired:
                continue
            since = watched.writing_since
            if now - watched.heard >= limit or (since is not None and now - since >= limit):
                watched.expired = True
                for task in (watched.reader, watched.writer):
                    if task is not None:
                        task.cancel()
        self._timer = loop.call_later(self._period(), self._sweep) if self._watched else None


async def _serve_websocket(socket: Any, ws: LeanWebSocket) -> None:
    server = socket.server
    if socket.connected:
        # An upgrade from long-polling: probe, end the pending poll, wait for UPGRADE.
        socket.upgrading = True
        try:
            probe = eio_packet.Packet(encoded_packet=await ws.wait())
            if probe.packet_type != eio_packet.PING or probe.data != "probe":
                socket.upgrading = False
                return
            await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
            await socket.queue.put(eio_packet.Packet(eio_packet.NOOP))
            upgrade = eio_packet.Packet(encoded_packet=await ws.wait())
        except OSError:
            socket.upgrading = False
            return
        if upgrade.packet_type != eio_packet.UPGRADE:
            socket.upgraded = False
            socket.upgrading = False
            return
        socket.upgraded = True
        socket.upgrading = False
    else:
        socket.connected = True
        socket.upgraded = True

    sweep: SilenceSweep = server.silences
    watched = sweep.watch(server.ping_interval + server.ping_timeout)
    watched.writer = writer = asyncio.ensure_future(_write_queue(socket, ws, watched))
    now = asyncio.get_running_loop().time
    try:
        while True:
            data = await ws.wait()
            watched.heard = now()
            if len(data) > server.max_http_buffer_size:
                break
            try:
                pkt = eio_packet.Packet(encoded_packet=data)
            except Exception:  # not an Engine.IO packet: the peer is not speaking the protocol
                break
            try:
                await socket.receive(pkt)
            except engineio_exceptions.UnknownPacketError:
                pass
            except engineio_exceptions.SocketIsClosedError:
                break
            except Exception:
                server.logger.exception("Unknown receive error")
            if socket.closing or socket.closed:
                # Refused, or closed by the server: read nothing more. `closing` is set as
                # soon as the close starts, before its disconnect handler has run.
                break
    except (OSError, asyncio.CancelledError):
        # Silence past the ping deadline (the sweep cancelled this task), a closed connection,
        # the server stopping.
        if watched.expired and watched.reader is not None:
            watched.reader.uncancel()
    # From here the sweep only watches the writer: the close below must not be cut short.
    watched.reader = None
    try:
        await socket.queue.put(None)  # lets the writer finish
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
    finally:
        sweep.forget(watched)


async def _write_queue(socket: Any, ws: LeanWebSocket, watched: _Watched) -> None:
    queue = socket.queue
    now = asyncio.get_running_loop().time
    try:
        while True:
            first = await queue.get()
            queue.task_done()
            if first is None:
                break
            packets = [first]
            closing = False
            while not queue.empty():
                pkt = queue.get_nowait()
                queue.task_done()
                if pkt is None:
                    closing = True
                    break
                packets.append(pkt)
            for end, pkt in enumerate(packets, start=1):
                if pkt.packet_type == eio_packet.CLOSE:
                    closing = True  # nothing follows a CLOSE: end the connection too
                    del packets[end:]
                    break
            watched.writing_since = now()
            await ws.send_many([pkt.encode() for pkt in packets])
            watched.writing_since = None
            if closing:
                break
    except (Exception, asyncio.CancelledError):  # noqa: S110
        pass  # a failed send, one the peer left unread past the deadline, the server stopping
    await ws.close()


class LeanEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO's server with lean per-socket queues and WebSocket transport, that refuses
    binary messages and oversized long-polling POSTs.

    A refused message closes its session (the client sees the transport close and may
    reconnect) and reaches no handler; anything after it on that session is dropped. An
    oversized POST is answered 413 without its body being read, and its session is closed.
    Neither waits for a poll to take the CLOSE packet: a session whose client stopped polling
    would otherwise hold the request, and the shutdown, for good.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.silences = SilenceSweep()
        stock: dict[str, Any] = getattr(self, "_async")  # noqa: B009 (untyped in engineio)
        self._async = {**stock, "translate_request": translate_request, "websocket": LeanWebSocket}

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        return LeanQueue() if not args and not kwargs else super().create_queue(*args, **kwargs)

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        """Engine.IO's background task, except for a socket's next ping: that is a timer on the
        event loop's heap instead of a task sleeping for the ping interval, one fewer task (and
        coroutine, and future) per connected socket."""
        if not args and not kwargs and getattr(target, "__func__", None) is _STOCK_SEND_PING:
            loop = asyncio.get_running_loop()
            loop.call_later(self.ping_interval, _send_ping, target.__self__)
            return None
        return super().start_background_task(target, *args, **kwargs)

    def on(self, event: str, handler: Any = None) -> Any:
        """Engine.IO's handler registration; the `message` handler is put behind the refusal
        of binary messages."""
        if handler is None:

            def decorate(function: Any) -> Any:
                self.on(event, function)
                return function

            return decorate
        if event == "message":
            handler = self._refusing_binary(handler)
        return super().on(event, handler)

    def _refusing_binary(self, handler: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        async def on_message(sid: str, data: str | bytes) -> Any:
            socket = self.sockets.get(sid)
            if socket is None or socket.closing or socket.closed:
                return None  # after a refusal: dropped, not buffered
            if refused_message(data):
                self.logger.info("%s: binary message refused, closing the session", sid)
                await self._close_session(socket)
                return None
            result = handler(sid, data)
            return await result if inspect.isawaitable(result) else result

        return on_message

    async def disconnect(self, sid: str | None = None) -> None:
        """Engine.IO's disconnect (one session, or every one), without waiting for a poll to
        take the CLOSE packet: a poll already waiting gets it at once, a later one a 400."""
        for one in [sid] if sid is not None else list(self.sockets):
            socket = self.sockets.pop(one, None)
            if socket is not None:
                await socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)

    async def _close_session(self, socket: Any) -> None:
        # The CLOSE packet goes to the WebSocket writer or the next poll; nothing waits for it.
        await socket.close(wait=False, abort=False, reason=self.reason.TRANSPORT_ERROR)

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        scope, receive, send = args
        if scope["type"] == "http" and scope.get("method") == "POST":
            receive = await self._read_post(scope, receive, send)
            if receive is None:
                return None  # answered (or the peer left) before Engine.IO saw it
        return await super().handle_request(scope, receive, send, **kwargs)

    async def _read_post(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """The POST's body, read whole within the limits, as an ASGI `receive` that replays
        it; None once the request has been refused or abandoned."""
        limit = self.max_http_buffer_size
        declared = _declared_length(scope["headers"])
        if declared is None or declared > limit:
            await self._refuse_post(scope, send, 400 if declared is None else 413)
            return None
        body = bytearray()
        try:
            async with asyncio.timeout(POLL_BODY_TIMEOUT_S):
                while True:
                    event = await receive()
                    if event["type"] != "http.request":
                        return None  # the peer went away
                    body += event.get("body", b"")
                    if len(body) > limit:
                        await self._refuse_post(scope, send, 413)
                        return None
                    if not event.get("more_body"):
                        break
        except TimeoutError:
            await self._refuse_post(scope, send, 408)
            return None
        request = {"type": "http.request", "body": bytes(body), "more_body": False}
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()  # type: ignore[no-any-return]
            replayed = True
            return request

        return replay

    async def _refuse_post(self, scope: dict[str, Any], send: Any, status: int) -> None:
        # `connection: close`, so that the unread rest of the body is never read.
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": _REFUSALS[status]})
        sid = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("sid", [None])[0]
        socket = self.sockets.get(sid) if sid else None
        if socket is not None and not socket.upgraded and not socket.closed:
            await self._close_session(socket)


_STOCK_SEND_PING = AsyncSocket._send_ping


def _send_ping(socket: Any) -> None:
    """What Engine.IO's ping task does when its sleep ends: a PING for a socket still open. The
    ping deadline cannot have passed (it runs from `last_ping`, set here), so the packet goes
    straight to the socket's queue."""
    if socket.closing or socket.closed:
        return
    socket.last_ping = time.time()
    socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))


_REFUSALS = {
    400: b"Bad Request: unreadable Content-Length",
    408: b"Request Timeout: the body did not arrive in time",
    413: b"Payload Too Large",
}


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request's Content-Length (0 without one), or None when it is not a number."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return 0
