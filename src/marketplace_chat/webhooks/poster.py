"""The webhook client: HTTP/1.1 POSTs to the one URL, over a pool of kept-alive connections.

Delivery is the dispatcher's whole cost, so the client is the smallest one that speaks the
protocol correctly: asyncio transports, and httptools (the C parser uvicorn uses for requests)
for the answers. On the 2-core machine the service is measured on, httpx spent 0.9 to 2.7 ms of
CPU per request (more the more connections its pool holds) and so capped one instance below
1,100 requests/s with a whole core; this client spends tens of microseconds per request. The
request's fixed part (method, target, host, user agent, content type) is encoded once.

Only the status of an answer counts. Its body is read only while it has an end within
`MAX_RESPONSE_BYTES` (so that the connection serves the next POST); a longer, endless or
unbounded one is left unread and its connection dropped. Redirects are not followed: a 3xx is a
failed attempt. A kept-alive connection the receiver closed meanwhile is replaced by a fresh one,
once, without failing the attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import cast
from urllib.parse import urlsplit

import httptools

# A receiver's answer is read up to this much, and the connection dropped past it.
MAX_RESPONSE_BYTES = 4096
# The status line and headers of an answer may take this much; more is a broken receiver.
MAX_HEAD_BYTES = 16_384
USER_AGENT = "marketplace-chat-webhooks"
# What an attempt that got no answer is called (the names operators know from httpx).
CONNECT_ERROR = "ConnectError"
PROTOCOL_ERROR = "RemoteProtocolError"
TIMEOUT = "timeout"


class _Failed(Exception):
    """An exchange that ended without a status; `args[0]` is the short reason."""


class _Closed(_Failed):
    """The connection closed before any byte of an answer came back on it."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection: one exchange at a time, the answer parsed by httptools."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[int] | None = None
        self._status = 0
        self._head_bytes = 0
        self._body_bytes = 0
        self._received = False  # any byte of the current answer
        self._header: bytes = b""
        self._bounded = False
        self.reusable = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._end(exc=_Failed(PROTOCOL_ERROR))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._transport = None
        if self._answer is not None and not self._answer.done():
            if self._received:
                self._answer.set_exception(_Failed(PROTOCOL_ERROR))
            else:
                self._answer.set_exception(_Closed(PROTOCOL_ERROR))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise httptools.HttpParserError("head too long")
        if name.lower() == b"content-length":
            self._header = value
        elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            self._bounded = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer; the real one follows
        self._status = status
        length = self._header.strip()
        if length:
            self._bounded = length.isdigit() and int(length) <= MAX_RESPONSE_BYTES
        if not self._bounded and status not in (204, 304):
            self._end(status)  # the status is in; the body is not worth the connection

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_RESPONSE_BYTES:
            self._end(self._status)

    def on_message_complete(self) -> None:
        if self._status == 0:  # the end of an interim answer
            self._header, self._bounded = b"", False
            return
        self._end(self._status, keep=self._parser.should_keep_alive())

    # the client's side

    def exchange(self, request: bytes) -> asyncio.Future[int]:
        """Send `request`; the future is the answer's status."""
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._status = self._head_bytes = self._body_bytes = 0
        self._received = self._bounded = self.reusable = False
        self._header = b""
        self._transport.write(request)
        return self._answer

    def _end(self, status: int = 0, keep: bool = False, exc: Exception | None = None) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        self.reusable = keep
        if not keep:
            self.close()
        if exc is not None:
            answer.set_exception(exc)
        else:
            answer.set_result(status)

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()


class WebhookPoster:
    def __init__(self, url: str, timeout_s: float, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        default = 443 if parts.scheme == "https" else 80
        self._port = parts.port or default
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host = f"[{self._host}]" if ":" in self._host else self._host
        authority = host if self._port == default else f"{host}:{self._port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._prefix = (
            f"POST {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {USER_AGENT}\r\n"
        ).encode("latin-1")
        self._timeout_s = timeout_s
        self._max_idle = max_idle
        self._idle: list[_Connection] = []

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the receiver answered 2xx within the timeout; else a short reason
        (`HTTP 503`, `timeout`, `ConnectError`, `RemoteProtocolError`)."""
        try:
            request = self._request(body, headers)
        except ValueError:
            return "InvalidHeader"
        try:
            async with asyncio.timeout(self._timeout_s):
                status = await self._send(request)
        except TimeoutError:
            return TIMEOUT
        except _Failed as exc:
            return str(exc.args[0])
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _request(self, body: bytes, headers: dict[str, str]) -> bytes:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if head.count("\n") != len(headers) or head.count("\r") != len(headers):
            raise ValueError("a header holds a line break")
        return b"".join(
            (
                self._prefix,
                head.encode("latin-1"),
                b"Content-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )

    async def _send(self, request: bytes) -> int:
        while self._idle:
            conn = self._idle.pop()
            if not conn.open:
                continue
            try:
                return await self._exchange(conn, request)
            except _Closed:
                continue  # closed by the receiver while idle: not an answer, try another
        return await self._exchange(await self._open(), request)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise _Failed(CONNECT_ERROR) from exc
        return conn

    async def _exchange(self, conn: _Connection, request: bytes) -> int:
        try:
            status = await conn.exchange(request)
        except BaseException:
            conn.close()  # a timeout or a cancel leaves the exchange half-way
            raise
        if conn.reusable and conn.open and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return status

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
