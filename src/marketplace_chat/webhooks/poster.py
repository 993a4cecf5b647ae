"""The webhook client: HTTP/1.1 POSTs to the one URL, over a small pool of kept-alive connections.

Written on asyncio streams rather than httpx because delivery is the dispatcher's whole cost: on
the 2-core machine this service is measured on, httpx spent about 1 ms of CPU per request (its
request and response models, its pool), which caps one instance below 1,000 events/s, while
the messages it reports arrive at 3,000/s. The protocol needed here is small: one method, one
host, our own headers, and of the answer only the status.

What it does with the answer: the status decides; a body is read only to keep the connection
for the next request, and no further than `MAX_RESPONSE_BYTES` (past that, or without a length,
the connection is closed instead). Redirects are not followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

# A receiver's answer is read up to this much, and the connection dropped past it: only the
# status counts, and an endless body must not hold a slot.
MAX_RESPONSE_BYTES = 4096
# The status line and headers of an answer may take this much; more is a broken receiver.
MAX_HEAD_BYTES = 16_384
USER_AGENT = "marketplace-chat-webhooks"

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ProtocolError(Exception):
    """The receiver's answer is not HTTP/1.x as this client reads it."""


class WebhookPoster:
    def __init__(self, url: str, timeout_s: float, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        host = f"[{self._host}]" if ":" in self._host else self._host
        default = 443 if parts.scheme == "https" else 80
        self._authority = host if self._port == default else f"{host}:{self._port}"
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout_s = timeout_s
        self._max_idle = max_idle
        self._idle: list[Connection] = []

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the receiver answered 2xx within the timeout; else a short reason
        (`HTTP 503`, `timeout`, `ConnectionRefusedError`)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                status = await self._send(self._request(body, headers))
        except TimeoutError:
            return "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            return type(exc).__name__
        except ProtocolError:
            return "ProtocolError"
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _request(self, body: bytes, headers: dict[str, str]) -> bytes:
        lines = [
            f"POST {self._target} HTTP/1.1",
            f"Host: {self._authority}",
            f"User-Agent: {USER_AGENT}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def _send(self, request: bytes) -> int:
        """One exchange; a kept-alive connection the receiver closed meanwhile (nothing comes
        back on it) is replaced by a fresh one once."""
        while self._idle:
            conn = self._idle.pop()
            try:
                return await self._exchange(conn, request)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
        return await self._exchange(await self._open(), request)

    async def _open(self) -> Connection:
        return await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl else None,
            limit=MAX_HEAD_BYTES,
        )

    async def _exchange(self, conn: Connection, request: bytes) -> int:
        reader, writer = conn
        keep = False
        try:
            writer.write(request)
            await writer.drain()
            status, length, chunked, close = await _head(reader)
            while 100 <= status < 200:  # an interim answer; the real one follows
                status, length, chunked, close = await _head(reader)
            keep = not close and await _skip_body(reader, status, length, chunked)
            return status
        finally:
            if keep and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            else:
                writer.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _head(reader: asyncio.StreamReader) -> tuple[int, int | None, bool, bool]:
    """(status, Content-Length, chunked, whether the receiver closes the connection)."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(lines[0][:80])
    length: int | None = None
    close = parts[0] == "HTTP/1.0"  # no keep-alive unless asked for; we do not ask
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            if not value.isdigit():
                raise ProtocolError("Content-Length")
            length = int(value)
        elif name == "transfer-encoding":
            chunked = value.endswith("chunked")
        elif name == "connection":
            close = "close" in value
    return int(parts[1]), length, chunked, close


async def _skip_body(
    reader: asyncio.StreamReader, status: int, length: int | None, chunked: bool
) -> bool:
    """Read the answer's body if it is small; True when the connection can carry the next
    request (the body was read to its end)."""
    if status in (204, 304):
        return True
    if chunked:
        return await _skip_chunks(reader)
    if length is None or length > MAX_RESPONSE_BYTES:
        return False  # read to the close, or too long: the connection is dropped instead
    await reader.readexactly(length)
    return True


async def _skip_chunks(reader: asyncio.StreamReader) -> bool:
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("chunk size") from None
        total += size
        if total > MAX_RESPONSE_BYTES:
            return False
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
            return True
        await reader.readexactly(size + 2)
