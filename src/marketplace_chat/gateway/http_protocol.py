"""uvicorn's HTTP protocol with a deadline on request headers.

uvicorn closes an idle keep-alive connection only once a response has gone out. A connection
that never completes its headers (it sends nothing, or half a request line, or one header a
minute) has no timer at all, and holds a socket, a protocol and a parser for as long as the peer
likes; a few hundred of them are cheap to open. Here the headers of every request must be
complete within a deadline counted from the connection (for the first request) or from the
request's first byte (for the next ones on a keep-alive connection), else the connection is
closed. The body is not covered: long-polling POSTs bound theirs in the Engine.IO server.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Time a client has to send complete request headers: a phone on a poor network sends a few
# hundred bytes in well under a second, so five seconds is generous and still frees the socket.
HTTP_HEADER_TIMEOUT_S = 5.0


class ChatHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes a connection whose request headers are late."""

    header_timeout_s: ClassVar[float] = HTTP_HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def http_protocol(header_timeout_s: float) -> type[ChatHttpProtocol]:
    """The protocol class for uvicorn's `http=` with the given header deadline (uvicorn builds
    protocols from a class and its own config, so the deadline travels on the class)."""
    return type("ChatHttpProtocol", (ChatHttpProtocol,), {"header_timeout_s": header_timeout_s})
