"""The webhook client: POSTs to the one URL through aiohttp, over a pool of kept-alive connections.

Delivery is the dispatcher's whole cost, so the client is aiohttp, whose HTTP parser is in C: on
the 2-core machine the service is measured on, httpx spent 0.9 to 2.7 ms of CPU per request and
so capped one instance near 1,000 requests/s with a whole core, where aiohttp spent 0.1 to
0.2 ms. The pool holds as many connections as the dispatcher has requests in flight, so every
attempt of a claim starts at once.

Only the status of an answer counts. Its body is read only while it has an end within
`MAX_RESPONSE_BYTES` (so that the connection serves the next POST); a longer or unbounded one
is left unread and its connection dropped. Redirects are not followed: a 3xx is a failed
attempt. Nothing of the environment applies (no proxy, no .netrc) and no cookie is kept: every
POST is the same one request to the configured URL. A kept-alive connection the receiver closed
just as it was reused (the request could not be written, or the connection ended before an
answer) is replaced by a fresh one, once, within the same timeout, without failing the attempt;
a receiver that saw the request twice tells by `X-Chat-Delivery`.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import aiohttp

# A receiver's answer is read up to this much, and the connection dropped past it.
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "marketplace-chat-webhooks"
# What an attempt that got no answer is called (the names operators know from earlier releases).
CONNECT_ERROR = "ConnectError"
PROTOCOL_ERROR = "RemoteProtocolError"
TIMEOUT = "timeout"
INVALID_HEADER = "InvalidHeader"


class WebhookPoster:
    def __init__(self, url: str, timeout_s: float, max_connections: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._url = url
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # Made on the first POST: a session belongs to the event loop it was made in.
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
            # The body is never decoded, so no compressed one is asked for.
            skip_auto_headers=("Accept-Encoding",),
        )

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the receiver answered 2xx within the timeout; else a short reason
        (`HTTP 503`, `timeout`, `ConnectError`, `RemoteProtocolError`, `InvalidHeader`)."""
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
                return INVALID_HEADER  # refused before any connection: nothing is sent
        if self._session is None:
            self._session = self._open()
        deadline = time.monotonic() + self._timeout_s
        try:
            try:
                status = await self._send(self._session, body, headers, self._timeout)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if isinstance(exc, aiohttp.ClientConnectorError):
                    raise  # no connection at all: nothing to replace
                left = deadline - time.monotonic()
                if left <= 0:
                    return TIMEOUT
                status = await self._send(
                    self._session, body, headers, aiohttp.ClientTimeout(total=left)
                )
        except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
            return TIMEOUT
        except aiohttp.ClientConnectorError:
            return CONNECT_ERROR
        except (aiohttp.ClientError, OSError):
            return PROTOCOL_ERROR
        except ValueError:  # a header aiohttp will not write
            return INVALID_HEADER
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def _send(
        self,
        session: aiohttp.ClientSession,
        body: bytes,
        headers: dict[str, str],
        limit: aiohttp.ClientTimeout,
    ) -> int:
        async with session.post(
            self._url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=limit,
        ) as response:
            if _bounded(response):
                await _read_small(response)
            else:
                response.close()  # the status is in; the body is not worth the connection
            return response.status

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _bounded(response: aiohttp.ClientResponse) -> bool:
    """Whether the answer's body has an end within `MAX_RESPONSE_BYTES` to read up to."""
    if response.status in (204, 304):
        return True
    length = response.content_length
    if length is not None:
        return length <= MAX_RESPONSE_BYTES
    return "chunked" in response.headers.get("Transfer-Encoding", "").lower()


async def _read_small(response: aiohttp.ClientResponse) -> None:
    """Read the body to its end, or drop the connection once it passes `MAX_RESPONSE_BYTES`."""
    read = 0
    while read <= MAX_RESPONSE_BYTES:
        chunk = await response.content.read(MAX_RESPONSE_BYTES + 1 - read)
        if not chunk:
            return
        read += len(chunk)
    response.close()
