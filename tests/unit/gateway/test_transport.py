from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import engineio
import httpx
import pytest
import uvicorn
import websockets

from marketplace_chat.gateway import transport
from marketplace_chat.gateway.http_protocol import ChatHttpProtocol, http_protocol
from marketplace_chat.gateway.transport import (
    MAX_PAYLOAD_BYTES,
    ChatWebSocketProtocol,
    LeanEngineIOServer,
    LeanEvent,
    LeanQueue,
    refused_message,
    translate_request,
)


async def test_queue_is_fifo_and_empty_after_draining() -> None:
    q: LeanQueue[int] = LeanQueue()
    for i in range(3):
        await q.put(i)
    assert q.qsize() == 3
    assert not q.empty()
    assert [await q.get(), q.get_nowait(), await q.get()] == [0, 1, 2]
    assert q.empty()
    assert q.qsize() == 0
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


async def test_get_waits_for_a_put() -> None:
    q: LeanQueue[str] = LeanQueue()
    getter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.put_nowait("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_each_waiting_getter_gets_one_item() -> None:
    q: LeanQueue[int] = LeanQueue()
    getters = [asyncio.ensure_future(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for i in range(3):
        q.put_nowait(i)
    assert sorted(await asyncio.wait_for(asyncio.gather(*getters), 1)) == [0, 1, 2]
    assert q.empty()


async def test_a_cancelled_getter_loses_no_item() -> None:
    q: LeanQueue[int] = LeanQueue()
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait(7)  # wakes `first`, which is cancelled before it runs
    first.cancel()
    assert await asyncio.wait_for(second, 1) == 7
    assert first.cancelled()


async def test_join_waits_until_every_item_is_done() -> None:
    q: LeanQueue[int] = LeanQueue()
    await q.join()  # nothing pending: returns at once
    q.put_nowait(1)
    q.put_nowait(2)
    joiner = asyncio.ensure_future(q.join())
    q.get_nowait()
    q.task_done()
    await asyncio.sleep(0)
    assert not joiner.done()
    q.get_nowait()
    q.task_done()
    await asyncio.wait_for(joiner, 1)
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()


async def test_event_wakes_waiters_and_clears() -> None:
    event = LeanEvent()
    assert not event.is_set()
    waiters = [asyncio.ensure_future(event.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    event.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True]
    assert await event.wait()
    event.clear()
    late = asyncio.ensure_future(event.wait())
    await asyncio.sleep(0)
    assert not late.done()
    late.cancel()


def _receiver(*events: dict[str, Any]) -> Any:
    pending = list(events)

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    return receive


async def _no_send(message: dict[str, Any]) -> None:
    raise AssertionError("translation sends nothing")


async def test_websocket_request_becomes_an_environ_with_its_headers() -> None:
    scope = {
        "type": "websocket",
        "path": "/socket.io/",
        "query_string": b"EIO=4&transport=websocket&token=t",
        "headers": [
            (b"authorization", b"Bearer abc"),
            (b"x-forwarded-proto", b"https"),
            (b"accept", b"a"),
            (b"accept", b"b"),
            (b"x-bad", b"\xff"),
        ],
    }
    environ = await translate_request(scope, _receiver({"type": "websocket.connect"}), _no_send)
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == "/socket.io/"
    assert environ["QUERY_STRING"] == "EIO=4&transport=websocket&token=t"
    assert environ["HTTP_AUTHORIZATION"] == "Bearer abc"
    assert environ["HTTP_ACCEPT"] == "a,b"
    assert "HTTP_X_BAD" not in environ
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["asgi.scope"] is scope
    assert await environ["wsgi.input"].read() == b""


async def test_a_websocket_that_does_not_connect_gets_no_environ() -> None:
    scope = {"type": "websocket", "path": "/", "headers": []}
    receive = _receiver({"type": "websocket.disconnect", "code": 1000})
    assert await translate_request(scope, receive, _no_send) == {}


async def test_http_requests_keep_their_body() -> None:
    scope = {"type": "http", "method": "POST", "path": "/socket.io/", "headers": []}
    receive = _receiver({"type": "http.request", "body": b"4hello", "more_body": False})
    environ = await translate_request(scope, receive, _no_send)
    assert environ["REQUEST_METHOD"] == "POST"
    assert await environ["wsgi.input"].read() == b"4hello"


# -- the uvicorn protocol, over a real socket ---------------------------------------------------


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": event["text"].upper()})


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[int, set[Any]]]:
    async with _serve(_echo) as served:
        yield served


async def test_protocol_carries_frames_both_ways_and_forgets_the_handshake(
    echo_server: tuple[int, set[Any]],
) -> None:
    port, connections = echo_server
    async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
        for text in ("hello", "again"):
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), 2) == text.upper()
        (protocol,) = [c for c in connections if isinstance(c, ChatWebSocketProtocol)]
        assert not hasattr(protocol, "request")
        assert not hasattr(protocol, "response")
        # The parser's generator still holds the request, emptied of its headers.
        assert not inspect.getgeneratorlocals(protocol.conn.parser)["request"].headers
        assert isinstance(protocol.queue, LeanQueue)


def test_releasing_a_handshake_empties_the_environ_and_the_scopes_headers() -> None:
    scope = {"type": "websocket", "headers": [(b"authorization", b"Bearer x")], "path": "/"}
    environ: dict[str, Any] = {"HTTP_AUTHORIZATION": "Bearer x", "asgi.scope": scope}
    transport.release_handshake(environ)
    assert environ == {}
    assert scope == {"type": "websocket", "headers": [], "path": "/"}


# -- Engine.IO over the lean WebSocket transport ------------------------------------------------


class EngineIO:
    def __init__(self, port: int, events: list[tuple[str, ...]], server: Any) -> None:
        self.url = f"127.0.0.1:{port}/engine.io/?EIO=4"
        self.events = events
        self.server = server

    async def disconnected(self) -> tuple[str, ...]:
        for _ in range(300):
            gone = [e for e in self.events if e[0] == "disconnect"]
            if gone:
                return gone[0]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no disconnect; events: {self.events}")


@pytest.fixture
async def engineio_server() -> AsyncIterator[EngineIO]:
    # As python-socketio runs it: handlers in the reading task, so a refusal takes effect before
    # the next frame is read.
    eio = LeanEngineIOServer(
        async_mode="asgi",
        ping_interval=0.5,
        ping_timeout=0.5,
        async_handlers=False,
        max_http_buffer_size=MAX_PAYLOAD_BYTES,
    )
    events: list[tuple[str, ...]] = []

    async def on_connect(sid: str, environ: dict[str, Any]) -> None:
        events.append(("connect", sid))

    async def on_message(sid: str, data: str) -> None:
        events.append(("message", sid, data))
        await eio.send(sid, data.upper())

    async def on_disconnect(sid: str, reason: str) -> None:
        events.append(("disconnect", sid, reason))

    eio.on("connect", on_connect)
    eio.on("message", on_message)
    eio.on("disconnect", on_disconnect)
    async with _serve(engineio.ASGIApp(eio)) as (port, _):
        yield EngineIO(port, events, eio)


@contextlib.asynccontextmanager
async def _serve(
    app: Any, http: type[ChatHttpProtocol] = ChatHttpProtocol
) -> AsyncIterator[tuple[int, set[Any]]]:
    """`app` on uvicorn with the chat HTTP and WebSocket protocols; its port and live
    connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=http,
        ws=ChatWebSocketProtocol,
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield port, server.server_state.connections
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


async def _next_message(ws: Any) -> str:
    """The next Engine.IO MESSAGE packet, answering pings on the way."""
    while True:
        frame = await asyncio.wait_for(ws.recv(), 2)
        if frame == "2":
            await ws.send("3")
        elif frame.startswith("4"):
            return str(frame)


async def _drain_until_closed(ws: Any) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), 5)


async def test_messages_go_both_ways_over_websocket(engineio_server: EngineIO) -> None:
    async with websockets.connect(f"ws://{engineio_server.url}&transport=websocket") as ws:
        opened = str(await asyncio.wait_for(ws.recv(), 2))
        assert opened.startswith("0{")
        for text in ("hello", "again"):
            await ws.send("4" + text)
            assert await _next_message(ws) == "4" + text.upper()
        # Answering pings for longer than the read deadline (1 s) keeps the socket open.
        until = asyncio.get_running_loop().time() + 1.6
        while asyncio.get_running_loop().time() < until:
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(ws.recv(), 0.1) == "2":
                    await ws.send("3")
        await ws.send("4still")
        assert await _next_message(ws) == "4STILL"
    assert (await engineio_server.disconnected())[2] in ("transport close", "client disconnect")


async def test_packets_queued_together_leave_in_one_write_and_in_order() -> None:
    """An ack and an echo reach a socket's queue in one step: one system call, not two."""
    eio = LeanEngineIOServer(async_mode="asgi", async_handlers=False)

    async def on_message(sid: str, data: str) -> None:
        for n in range(3):
            await eio.send(sid, f"{data}-{n}")

    eio.on("message", on_message)
    async with _serve(engineio.ASGIApp(eio)) as (port, connections):
        url = f"ws://127.0.0.1:{port}/engine.io/?EIO=4&transport=websocket"
        async with websockets.connect(url, compression=None) as ws:  # frames in clear
            await asyncio.wait_for(ws.recv(), 2)  # OPEN
            (protocol,) = [c for c in connections if isinstance(c, ChatWebSocketProtocol)]
            writes: list[bytes] = []
            write = protocol.transport.write

            def counted(data: Any) -> None:
                writes.append(bytes(data))
                write(data)

            protocol.transport.write = counted  # type: ignore[method-assign]
            await ws.send("4go")
            got = [await _next_message(ws) for _ in range(3)]
    assert got == ["4go-0", "4go-1", "4go-2"]
    framed = [w for w in writes if b"go-" in w]
    assert len(framed) == 1
    assert framed[0].index(b"go-0") < framed[0].index(b"go-1") < framed[0].index(b"go-2")


async def test_pings_come_from_timers_not_a_task_per_socket(engineio_server: EngineIO) -> None:
    async with websockets.connect(f"ws://{engineio_server.url}&transport=websocket") as ws:
        await asyncio.wait_for(ws.recv(), 2)  # OPEN
        for _ in range(2):  # the first ping, and the one after its PONG
            assert await asyncio.wait_for(ws.recv(), 2) == "2"
            pinging = [t for t in asyncio.all_tasks() if "_send_ping" in repr(t.get_coro())]
            assert pinging == []
            await ws.send("3")


async def test_a_peer_that_stops_answering_pings_is_closed(engineio_server: EngineIO) -> None:
    async with websockets.connect(f"ws://{engineio_server.url}&transport=websocket") as ws:
        await asyncio.wait_for(ws.recv(), 2)  # OPEN
        with pytest.raises(websockets.ConnectionClosed):
            await _drain_until_closed(ws)  # pings, never answered
    # Whichever notices first: the read deadline or Engine.IO's ping check.
    assert (await engineio_server.disconnected())[2] in ("transport close", "ping timeout")


async def test_a_frame_that_is_not_engineio_ends_the_connection(
    engineio_server: EngineIO,
) -> None:
    async with websockets.connect(f"ws://{engineio_server.url}&transport=websocket") as ws:
        await asyncio.wait_for(ws.recv(), 2)
        await ws.send("")
        with pytest.raises(websockets.ConnectionClosed):
            await _drain_until_closed(ws)
    await engineio_server.disconnected()
    assert not [e for e in engineio_server.events if e[0] == "message"]


async def test_long_polling_upgrades_to_websocket(engineio_server: EngineIO) -> None:
    async with httpx.AsyncClient() as http:
        opened = await http.get(f"http://{engineio_server.url}&transport=polling")
    assert opened.text.startswith("0{")
    sid = json.loads(opened.text[1:])["sid"]
    url = f"ws://{engineio_server.url}&transport=websocket&sid={sid}"
    async with websockets.connect(url) as ws:
        await ws.send("2probe")
        assert await asyncio.wait_for(ws.recv(), 2) == "3probe"
        await ws.send("5")
        await ws.send("4upgraded")
        assert await _next_message(ws) == "4UPGRADED"
    assert ("message", sid, "upgraded") in engineio_server.events


# -- refusals: binary messages, oversized polls, late headers -----------------------------------


def test_binary_data_and_socketio_binary_headers_are_refused_and_text_is_not() -> None:
    assert refused_message(b"\x01\x02")
    # Engine.IO message data: the Socket.IO packet, without the Engine.IO type "4".
    assert refused_message('51-["message:send",{"_placeholder":true,"num":0}]')
    assert refused_message("61-/chat,0[]")
    assert not refused_message('2/chat,["message:send",{"text":"hi"}]')
    assert not refused_message("")


async def _received_until_closed(ws: Any) -> list[str | bytes]:
    received: list[str | bytes] = []
    try:
        while True:
            received.append(await asyncio.wait_for(ws.recv(), 2))
    except websockets.ConnectionClosed:
        return received


async def _refused(engineio_server: EngineIO, *frames: str | bytes) -> None:
    async with websockets.connect(f"ws://{engineio_server.url}&transport=websocket") as ws:
        await asyncio.wait_for(ws.recv(), 2)  # OPEN
        for frame in frames:
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(frame)
        received = await _received_until_closed(ws)
    assert "1" in received  # the server closed the session, it did not just drop the socket
    assert (await engineio_server.disconnected())[2] == "transport error"
    assert not [e for e in engineio_server.events if e[0] == "message"]


async def test_a_binary_frame_closes_the_session_before_any_handler(
    engineio_server: EngineIO,
) -> None:
    await _refused(engineio_server, b"\x00" * 1000, "4after")


async def test_a_socketio_binary_packet_is_refused_at_its_header(
    engineio_server: EngineIO,
) -> None:
    header = '459999999999-/chat,["message:send",{"_placeholder":true,"num":0}]'
    await _refused(engineio_server, header, b"\x00" * 100_000, "4after")


async def _open_poll(engineio_server: EngineIO) -> str:
    async with httpx.AsyncClient() as http:
        opened = await http.get(f"http://{engineio_server.url}&transport=polling")
    return str(json.loads(opened.text[1:])["sid"])


async def test_a_binary_packet_in_a_poll_closes_the_session(engineio_server: EngineIO) -> None:
    sid = await _open_poll(engineio_server)
    url = f"http://{engineio_server.url}&transport=polling&sid={sid}"
    async with httpx.AsyncClient() as http:
        posted = await http.post(url, content="bAQID\x1e4after")  # base64 binary, then text
        assert posted.status_code == 200
        polled = await asyncio.wait_for(http.get(url), 2)
    # The session is gone: CLOSE for a poll that was waiting, 400 for one that comes after.
    assert polled.text == "1" or polled.status_code == 400
    assert (await engineio_server.disconnected())[2] == "transport error"
    assert not [e for e in engineio_server.events if e[0] == "message"]


async def _raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Sends `head` and `body` (which the server may stop reading) and returns the response's
    status line, which must come within 2 s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            writer.write(body)
            await writer.drain()
        return await asyncio.wait_for(reader.readline(), 2)
    finally:
        writer.close()


def _post_head(engineio_server: EngineIO, sid: str, *headers: str) -> bytes:
    path = engineio_server.url.split("/", 1)[1]
    lines = [f"POST /{path}&transport=polling&sid={sid} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _port(engineio_server: EngineIO) -> int:
    return int(engineio_server.url.split(":")[1].split("/")[0])


async def test_a_poll_announcing_too_much_is_answered_413_at_once(
    engineio_server: EngineIO,
) -> None:
    sid = await _open_poll(engineio_server)
    # No GET is pending on the session, and no byte of the body is sent.
    head = _post_head(engineio_server, sid, f"Content-Length: {MAX_PAYLOAD_BYTES + 1}")
    for _ in range(3):
        status = await _raw_request(_port(engineio_server), head)
        assert status.startswith(b"HTTP/1.1 413"), status
    assert (await engineio_server.disconnected())[2] == "transport error"


async def test_a_chunked_poll_that_grows_past_the_limit_is_answered_413(
    engineio_server: EngineIO,
) -> None:
    sid = await _open_poll(engineio_server)
    head = _post_head(engineio_server, sid, "Transfer-Encoding: chunked")
    chunk = b"4" * 400_000
    body = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * 3 + b"0\r\n\r\n"
    status = await _raw_request(_port(engineio_server), head, body)
    assert status.startswith(b"HTTP/1.1 413"), status
    assert not [e for e in engineio_server.events if e[0] == "message"]


async def test_a_poll_body_that_stalls_is_answered_408(
    engineio_server: EngineIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "POLL_BODY_TIMEOUT_S", 0.3)
    sid = await _open_poll(engineio_server)
    head = _post_head(engineio_server, sid, "Content-Length: 100")
    status = await _raw_request(_port(engineio_server), head, b"4hello")  # 6 of 100 bytes
    assert status.startswith(b"HTTP/1.1 408"), status
    assert not [e for e in engineio_server.events if e[0] == "message"]


async def _closed_by_server(port: int, sent: bytes, within_s: float) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(sent)
        async with asyncio.timeout(within_s):
            while await reader.read(65536):
                pass  # a response to a complete request, before the next one stalls
        return True
    except TimeoutError:
        return False
    finally:
        writer.close()


async def test_a_connection_with_half_a_request_line_is_closed_at_the_header_deadline() -> None:
    app = engineio.ASGIApp(LeanEngineIOServer(async_mode="asgi"))
    async with _serve(app, http_protocol(0.3)) as (port, _):
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await _closed_by_server(port, b"GET /engine.io/?EIO=4&tra", within_s=2)
        assert loop.time() - started >= 0.3
        assert await _closed_by_server(port, b"", within_s=2)  # says nothing at all


async def test_the_header_deadline_covers_the_next_request_on_a_keep_alive_connection() -> None:
    app = engineio.ASGIApp(LeanEngineIOServer(async_mode="asgi"))
    async with _serve(app, http_protocol(0.3)) as (port, _):
        complete = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
        assert await _closed_by_server(port, complete + b"GET /hea", within_s=2)


async def test_disconnecting_a_session_with_no_poll_pending_does_not_wait_for_one(
    engineio_server: EngineIO,
) -> None:
    first, second = await _open_poll(engineio_server), await _open_poll(engineio_server)
    await asyncio.wait_for(engineio_server.server.disconnect(first), 1)
    await asyncio.wait_for(engineio_server.server.disconnect(), 1)  # every session left
    reasons = [e[2] for e in engineio_server.events if e[0] == "disconnect"]
    assert reasons == ["server disconnect", "server disconnect"]
    assert second not in engineio_server.server.sockets


# -- the silence sweep ----------------------------------------------------------------------------


async def test_a_connection_silent_past_the_limit_is_cancelled_by_the_sweep() -> None:
    sweep = transport.SilenceSweep()
    started = asyncio.get_running_loop().time()

    async def connection() -> transport._Watched:
        watched = sweep.watch(0.2)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(5)
        sweep.forget(watched)
        return watched

    watched = await asyncio.wait_for(connection(), 2)
    waited = asyncio.get_running_loop().time() - started
    assert watched.expired
    assert 0.2 <= waited < 0.2 + 2 * 0.02 + 0.1  # within about a sweep of the limit
    assert len(sweep) == 0


async def test_a_connection_heard_from_stays_and_one_timer_serves_them_all() -> None:
    sweep = transport.SilenceSweep()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    async def talker() -> transport._Watched:
        watched = sweep.watch(0.2)
        while not done.is_set():
            watched.heard = loop.time()
            await asyncio.sleep(0.05)
        sweep.forget(watched)
        return watched

    talkers = [asyncio.ensure_future(talker()) for _ in range(50)]
    await asyncio.sleep(0.6)  # three limits
    assert len(sweep) == 50
    assert not any(t.done() for t in talkers)
    # One timer on the loop for all fifty connections, none per connection.
    assert sweep._timer is not None
    done.set()
    watched = await asyncio.gather(*talkers)
    assert not any(w.expired for w in watched)
    assert sweep._timer is None  # nothing left to watch: no timer either


async def test_a_write_the_peer_leaves_unread_past_the_limit_cancels_the_writer() -> None:
    sweep = transport.SilenceSweep()
    loop = asyncio.get_running_loop()
    watched = sweep.watch(0.2)
    watched.reader = None  # only the writer is watched, as while a connection closes
    blocked = asyncio.ensure_future(asyncio.sleep(5))  # a send waiting for the peer to read
    watched.writer = blocked
    for _ in range(4):  # the peer keeps talking, so only the write can expire
        watched.heard = loop.time()
        watched.writing_since = watched.writing_since or loop.time()
        await asyncio.sleep(0.08)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(blocked, 1)
    assert blocked.cancelled()
    assert watched.expired
    sweep.forget(watched)
