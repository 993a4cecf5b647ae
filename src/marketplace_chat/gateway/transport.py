"""The WebSocket transport under Socket.IO, trimmed to what an idle connection must hold.

A connected socket spends most of its life idle, so what it keeps in memory sets how many users a
node carries. The stock stack keeps, per connection, two `asyncio.Queue`s and three
`asyncio.Event`s (each with empty deques of about 600 bytes), the parsed handshake (request and
response headers) long after the handshake, and a class object created for every request by
Engine.IO's ASGI driver. The classes here keep the same behaviour with lazily allocated waiters
and drop the handshake once it is done; measured at 5,000 idle sockets by `make bench`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from typing import Any, Generic, TypeVar

import engineio
from engineio.async_drivers import asgi as engineio_asgi
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

T = TypeVar("T")


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
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break

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

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and "response" in self.__dict__:
            # Only the handshake reads these, and it is over.
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
        "wsgi.url_scheme": "http",
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


class LeanEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO's server with lean per-socket queues and WebSocket request translation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stock: dict[str, Any] = getattr(self, "_async")  # noqa: B009 (untyped in engineio)
        self._async = {**stock, "translate_request": translate_request}

    def create_queue(self, *args: Any, **kwargs: Any) -> Any:
        return LeanQueue() if not args and not kwargs else super().create_queue(*args, **kwargs)
