"""The webhook client against a real HTTP server on loopback, scripted per test: the status
decides, bodies are read only while small, redirects are not followed, connections are kept
alive and replaced when the receiver closed them, and a receiver that does not answer in time is
a timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
import uvloop

from marketplace_chat.webhooks.poster import MAX_ANSWER_BYTES, MAX_RESPONSE_BYTES, WebhookPoster

Answer = Callable[[bytes], bytes | None]  # the request's head and body -> raw answer, or None


def answer(status: int, body: bytes = b"", **headers: str) -> bytes:
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def fixed(raw: bytes) -> Answer:
    return lambda _: raw


@dataclass
class Receiver:
    reply: Answer = lambda _: answer(200, b"ok")
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    close_after_each: bool = False
    server: asyncio.Server | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks?v=1"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                raw = self.reply(request)
                if raw is None:
                    await self.released.wait()  # no answer, until the test is over
                    return
                writer.write(raw)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.handlers.discard(task)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    r.server = await asyncio.start_server(r.serve, "127.0.0.1", 0)
    yield r
    r.released.set()
    r.server.close()
    await r.server.wait_closed()
    if r.handlers:
        await asyncio.wait(r.handlers, timeout=2.0)


async def test_a_2xx_acknowledges_and_the_request_carries_our_headers_and_body(
    receiver: Receiver,
) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    assert await poster.post(b'{"a":1}', {"X-Chat-Event": "chat.created"}) is None
    request = receiver.requests[0]
    assert request.startswith(b"POST /hooks?v=1 HTTP/1.1\r\n")
    assert b"\r\nX-Chat-Event: chat.created\r\n" in request
    assert b"\r\nContent-Length: 7\r\n" in request
    assert request.endswith(b'\r\n\r\n{"a":1}')
    await poster.aclose()


async def test_no_cookie_is_kept_no_compression_asked_and_no_proxy_of_the_environment_used(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9/")  # a proxy that would refuse
    monkeypatch.setenv("NO_PROXY", "")
    receiver.reply = fixed(answer(200, b"ok", **{"Set-Cookie": "session=abc; Path=/"}))
    poster = WebhookPoster(receiver.url, 2.0)
    assert await poster.post(b"{}", {}) is None
    assert await poster.post(b"{}", {}) is None
    second = receiver.requests[1].lower()
    assert b"\r\ncookie:" not in second
    assert b"\r\naccept-encoding:" not in second
    assert b"\r\nuser-agent: marketplace-chat-webhooks\r\n" in second
    await poster.aclose()


async def test_other_statuses_fail_and_a_redirect_is_not_followed(receiver: Receiver) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    for status in (500, 404, 302, 301):
        receiver.reply = fixed(answer(status, Location="http://elsewhere.test/"))
        assert await poster.post(b"{}", {}) == f"HTTP {status}"
    assert len(receiver.requests) == 4  # nothing went to the Location
    await poster.aclose()


async def test_connections_are_kept_alive_between_posts(receiver: Receiver) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    for _ in range(5):
        assert await poster.post(b"{}", {}) is None
    assert receiver.connections == 1
    await poster.aclose()


async def test_a_connection_the_receiver_closed_is_replaced_without_failing(
    receiver: Receiver,
) -> None:
    receiver.close_after_each = True
    poster = WebhookPoster(receiver.url, 2.0)
    assert await poster.post(b"{}", {}) is None
    assert await poster.post(b"{}", {}) is None
    assert receiver.connections == 2
    await poster.aclose()


async def test_a_receiver_that_closes_without_answering_fails_after_one_fresh_try(
    receiver: Receiver,
) -> None:
    receiver.close_after_each = True
    receiver.reply = fixed(b"")
    poster = WebhookPoster(receiver.url, 2.0)
    assert await poster.post(b"{}", {}) == "RemoteProtocolError"
    assert receiver.connections == 2
    await poster.aclose()


async def test_a_large_or_unbounded_body_is_not_read_and_the_connection_is_dropped(
    receiver: Receiver,
) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    receiver.reply = lambda _: answer(200, b"x" * (MAX_RESPONSE_BYTES * 100))
    assert await poster.post(b"{}", {}) is None
    receiver.reply = lambda _: b"HTTP/1.1 200 OK\r\n\r\nno length, read to the close"
    assert await poster.post(b"{}", {}) is None
    receiver.reply = lambda _: answer(200, b"ok")
    assert await poster.post(b"{}", {}) is None
    assert receiver.connections == 3
    await poster.aclose()


async def test_a_chunked_answer_is_read_when_small_and_dropped_when_large(
    receiver: Receiver,
) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    receiver.reply = lambda _: answer(
        202, b"2\r\nok\r\n0\r\n\r\n", **{"Transfer-Encoding": "chunked"}
    )
    assert await poster.post(b"{}", {}) is None
    assert await poster.post(b"{}", {}) is None
    assert receiver.connections == 1
    big = MAX_RESPONSE_BYTES * 100
    receiver.reply = lambda _: answer(
        200, b"%x\r\n" % big + b"x" * big + b"\r\n0\r\n\r\n", **{"Transfer-Encoding": "chunked"}
    )
    assert await poster.post(b"{}", {}) is None  # read up to the limit, then dropped
    receiver.reply = lambda _: answer(200, b"ok")
    assert await poster.post(b"{}", {}) is None
    assert receiver.connections == 2
    await poster.aclose()


async def test_no_answer_within_the_timeout_is_a_timeout(receiver: Receiver) -> None:
    receiver.reply = lambda _: None
    poster = WebhookPoster(receiver.url, 0.2)
    assert await poster.post(b"{}", {}) == "timeout"
    await poster.aclose()


async def test_garbage_and_a_closed_port_are_failures() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = WebhookPoster(f"http://127.0.0.1:{port}/", 2.0)
    assert await poster.post(b"", {}) == "RemoteProtocolError"
    server.close()
    await server.wait_closed()
    assert await poster.post(b"", {}) == "ConnectError"
    await poster.aclose()


async def test_an_interim_answer_is_skipped_for_the_real_one(receiver: Receiver) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    receiver.reply = fixed(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(503))
    assert await poster.post(b"{}", {}) == "HTTP 503"
    receiver.reply = fixed(answer(200, b"ok"))
    assert await poster.post(b"{}", {}) is None
    assert receiver.connections == 1  # both answers were read to their end
    await poster.aclose()


async def test_an_http_1_0_answer_is_not_kept_alive(receiver: Receiver) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    receiver.reply = fixed(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert await poster.post(b"{}", {}) is None
    assert await poster.post(b"{}", {}) is None
    assert receiver.connections == 2
    await poster.aclose()


async def test_a_header_with_a_line_break_is_never_sent(receiver: Receiver) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    assert await poster.post(b"{}", {"X-Chat-Event": "a\r\nX-Injected: 1"}) == "InvalidHeader"
    assert receiver.requests == []
    await poster.aclose()


async def test_concurrent_posts_each_get_their_own_answer(receiver: Receiver) -> None:
    def by_body(request: bytes) -> bytes:
        return answer(200 if request.endswith(b'"even"') else 500)

    receiver.reply = by_body
    poster = WebhookPoster(receiver.url, 2.0)
    bodies = [b'"even"' if i % 2 == 0 else b'"odd"' for i in range(40)]
    results = await asyncio.gather(*(poster.post(b, {}) for b in bodies))
    assert results == [None if i % 2 == 0 else "HTTP 500" for i in range(40)]
    assert receiver.connections <= 40
    await poster.aclose()


async def test_a_header_the_client_sets_itself_or_an_invalid_name_is_never_sent(
    receiver: Receiver,
) -> None:
    poster = WebhookPoster(receiver.url, 2.0)
    for headers in ({"Host": "elsewhere.test"}, {"Content-Length": "1"}, {"Bad Name": "x"}):
        assert await poster.post(b"{}", headers) == "InvalidHeader"
    assert await poster.post(b"{}", {"X-Chat-Event": "caf\u00e9\u20ac"}) == "InvalidHeader"
    assert receiver.requests == []
    await poster.aclose()


async def test_an_answer_to_no_request_drops_the_idle_connection(receiver: Receiver) -> None:
    receiver.reply = fixed(answer(200, b"ok") + answer(200, b"again"))  # one too many
    poster = WebhookPoster(receiver.url, 2.0)
    assert await poster.post(b"{}", {}) is None
    receiver.reply = fixed(answer(500))
    assert await poster.post(b"{}", {}) == "HTTP 500"  # not the stray 200 of the first answer
    assert receiver.connections == 2
    await poster.aclose()


def test_posts_over_uvloop_the_loop_the_dispatcher_runs_on() -> None:
    async def scenario() -> tuple[str | None, str | None, int]:
        r = Receiver()
        r.server = await asyncio.start_server(r.serve, "127.0.0.1", 0)
        poster = WebhookPoster(r.url, 2.0)
        first = await poster.post(b"{}", {})
        r.reply = fixed(answer(503))
        second = await poster.post(b"{}", {})
        await poster.aclose()
        r.released.set()
        r.server.close()
        await r.server.wait_closed()
        return first, second, r.connections

    assert uvloop.run(scenario()) == (None, "HTTP 503", 1)


async def test_an_answer_whose_head_never_ends_fails_without_waiting_for_the_timeout(
    receiver: Receiver,
) -> None:
    receiver.reply = fixed(b"HTTP/1.1 200 OK\r\nX-Endless: " + b"y" * (MAX_ANSWER_BYTES * 4))
    poster = WebhookPoster(receiver.url, 30.0)
    started = asyncio.get_running_loop().time()
    assert await poster.post(b"{}", {}) == "RemoteProtocolError"
    assert asyncio.get_running_loop().time() - started < 5.0
    await poster.aclose()
