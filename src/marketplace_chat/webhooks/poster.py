"""The webhook client: POSTs to the one URL through httpx, over a pool of kept-alive connections.

Only the status of an answer counts. Its body is read only when it has an end within
`MAX_RESPONSE_BYTES` (so that the connection serves the next POST); a longer, endless or
unbounded one is left unread and its connection dropped. Redirects are not followed: a 3xx is a
failed attempt.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

# A receiver's answer is read up to this much, and the connection dropped past it.
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "marketplace-chat-webhooks"


class WebhookPoster:
    def __init__(self, url: str, timeout_s: float, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._url = url
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_idle, max_keepalive_connections=max_idle),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,  # the receiver is the configured URL, never a proxy's idea of it
        )

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """None when the receiver answered 2xx within the timeout; else a short reason
        (`HTTP 503`, `timeout`, `ConnectError`)."""
        try:
            async with self._client.stream("POST", self._url, content=body, headers=headers) as r:
                status = r.status_code
                if _bounded(r):
                    # Read to its end (a few kB at most), so the connection serves the next
                    # POST; past the bound the block is left unread, which drops it.
                    read = 0
                    async for chunk in r.aiter_raw():
                        read += len(chunk)
                        if read > MAX_RESPONSE_BYTES:
                            break
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def aclose(self) -> None:
        await self._client.aclose()


def _bounded(response: httpx.Response) -> bool:
    """Whether the answer's body has an end short of a close: a small length, or chunks."""
    length = response.headers.get("content-length")
    if length is not None:
        return length.isdigit() and int(length) <= MAX_RESPONSE_BYTES
    return "chunked" in response.headers.get("transfer-encoding", "").lower()
