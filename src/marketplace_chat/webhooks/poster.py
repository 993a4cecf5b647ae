"""The webhook client: POSTs to the one URL over a pool of kept-alive HTTP/1.1 connections.

Delivery is the dispatcher's whole cost, and every request is the same one: a POST of a small
JSON body to one configured URL, of which only the status counts. So the client is a protocol
per connection over `httptools` (the llhttp parser that uvicorn reads requests with) rather than
a general HTTP client. On the 2-core machine the service is measured on, aiohttp's session spent
220 to 300 µs of CPU per request on redirects, cookies, proxies, tracing and header merging that
a webhook never uses, and this client spends about 45; httpx spent 0.9 to 2.7 ms. The parser
frames the answers (lengths, chunks, interim answers, keep-alive); this module only keeps the
connections.

Only the status of an answer counts. Its body is read only while it has an end within
`MAX_RESPONSE_BYTES` (so that the connection serves the next POST); a longer or unbounded one
is left unread and its connection dropped. Redirects are not followed: a 3xx is a failed
attempt. Nothing of the environment applies (no proxy, no .netrc) and no cookie is kept: every
POST is the same one request to the configured URL. A connection that ends before its answer is
complete (a kept-alive one the receiver closed just as it was reused, say) is replaced by a
fresh one, once, within the same timeout, without failing the attempt; a receiver that saw the
request twice tells by `X-Chat-Delivery`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import cast
from urllib.parse import urlsplit

import httptools

# A receiver's answer is read up to this much, and the connection dropped past it.
MAX_RESPONSE_BYTES = 4096
# All that one request's answer may take on the wire, heads (interim answers' included) and
# body: an answer whose head never ends fails at once instead of filling memory until the timeout.
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "marketplace-chat-webhooks"
# What an attempt that got no answer is called (the names operators know from earlier releases).
CONNECT_ERROR = "ConnectError"
PROTOCOL_ERROR = "RemoteProtocolError"
TIMEOUT = "timeout"
INVALID_HEADER = "InvalidHeader"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Set by the client itself: a caller's copy would be a second, conflicting one.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class _ConnectFailed(Exception):
    pass


class _Ended(Exception):
    """The connection ended, or its answer could not be read, before the answer was complete."""


class _Connection(asyncio.Protocol):
    """One connection to the receiver, carrying one request at a time. The attempt's status is
    known once the answer is complete, or once its head shows a body not worth reading (then
    the connection is dropped instead of read to its end)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None
        self._status = 0
        self._length: int | None = None
        self._chunked = False
        self._body = 0
        self._received = 0  # bytes of the current request's answer so far
        self.closed = False

    def send(self, data: list[bytes]) -> asyncio.Future[int]:
        assert self._transport is not None
        assert self._waiter is None
        self._waiter = self._loop.create_future()
        self._received = 0
        self._transport.writelines(data)
        return self._waiter

    def drop(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            if not self.closed:
                self.drop()  # an answer to no request: nothing read from here on can be trusted
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._end(_Ended())
            return
        self._received += len(data)
        if self._waiter is not None and self._received > MAX_ANSWER_BYTES:
            self._end(_Ended())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end(_Ended())

    # httptools.HttpResponseParser's callbacks

    def on_message_begin(self) -> None:
        self._status, self._length, self._chunked, self._body = 0, None, False, 0

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self._length = int(value) if value.strip().isdigit() else None
        elif name == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        self._status = status = self._parser.get_status_code()
        if status < 200 or status in (204, 304) or self._chunked:
            return  # an interim answer, one without a body, or one read chunk by chunk
        if self._length is None or self._length > MAX_RESPONSE_BYTES:
            self._finish(keep=False)

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > MAX_RESPONSE_BYTES:
            self._finish(keep=False)

    def on_message_complete(self) -> None:
        if self._status >= 200:  # an interim answer (100 Continue) is followed by the real one
            self._finish(keep=self._parser.should_keep_alive())

    def _finish(self, *, keep: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if not keep or waiter is None:  # an answer to no request: nothing after it is trusted
            self.drop()
        if waiter is not None and not waiter.done():
            waiter.set_result(self._status)

    def _end(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if not self.closed:
            self.drop()


class WebhookPoster:
    def __init__(self, url: str, timeout_s: float, max_connections: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        secure = parts.scheme == "https"
        self._port = parts.port or (443 if secure else 80)
        self._ssl = ssl.create_default_context() if secure else None
        host = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None:
            host += f":{parts.port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._prefix = f"POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the receiver answered 2xx within the timeout; else a short reason
        (`HTTP 503`, `timeout`, `ConnectError`, `RemoteProtocolError`, `InvalidHeader`)."""
        head = self._head(headers, len(body))
        if head is None:
            return INVALID_HEADER  # refused before any connection: nothing is sent
        try:
            async with asyncio.timeout(self._timeout_s), self._slots:
                try:
                    status = await self._exchange(head, body)
                except _Ended:
                    status = await self._exchange(head, body, fresh=True)
        except TimeoutError:
            return TIMEOUT
        except _ConnectFailed:
            return CONNECT_ERROR
        except _Ended:
            return PROTOCOL_ERROR
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _head(self, headers: dict[str, str], length: int) -> bytes | None:
        lines = [self._prefix]
        for name, value in headers.items():
            if (
                _TOKEN.fullmatch(name) is None
                or _FORBIDDEN_VALUE.search(value) is not None
                or name.lower() in _OWN_HEADERS
            ):
                return None
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {length}\r\n\r\n")
        try:
            return "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            return None

    async def _exchange(self, head: bytes, body: bytes, *, fresh: bool = False) -> int:
        connection = None if fresh else self._take_idle()
        if connection is None:
            connection = await self._connect()
        try:
            status = await connection.send([head, body])
        except BaseException:  # a timeout or a stop mid-answer leaves the connection unusable
            connection.drop()
            raise
        if connection.closed or self._closed:
            connection.drop()
        else:
            self._idle.append(connection)
        return status

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop),
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl is not None else None,
            )
        except OSError:
            raise _ConnectFailed from None
        return connection

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().drop()
