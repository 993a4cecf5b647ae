"""Peers that do not play by the transport's rules, spoken to in raw Engine.IO and HTTP: binary
packets, oversized long-polling POSTs, connections that never finish a request, and where a
development server listens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets

from .conftest import ServerFactory
from .faultkit import eventually
from .server import STOP_TIMEOUT_S, ChatServer
from .tokens import Tokens, new_user_id

MAX_PAYLOAD_BYTES = 1_000_000  # the service's packet limit
HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_TIMEOUT_S = 1


@pytest.fixture(scope="module")
async def chat_server(module_server_factory: ServerFactory) -> ChatServer:
    """The module's server, with short HTTP deadlines so that waiting them out is quick."""
    return await module_server_factory.start(
        HTTP_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S),
        HTTP_KEEP_ALIVE_TIMEOUT_S=str(KEEP_ALIVE_TIMEOUT_S),
    )


def rss_bytes(server: ChatServer) -> int:
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    (line,) = [row for row in status.splitlines() if row.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


def _ws_url(server: ChatServer) -> str:
    return f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"


def _poll_url(server: ChatServer, sid: str | None = None) -> str:
    url = f"{server.url}/socket.io/?EIO=4&transport=polling"
    return f"{url}&sid={sid}" if sid else url


async def _join_chat_namespace(ws: websockets.ClientConnection, token: str) -> None:
    """OPEN, then a Socket.IO CONNECT to /chat that the server accepts."""
    assert str(await asyncio.wait_for(ws.recv(), 5)).startswith("0{")
    await ws.send("40/chat," + json.dumps({"token": token}))
    while True:
        frame = str(await asyncio.wait_for(ws.recv(), 5))
        if frame == "2":
            await ws.send("3")
        elif frame.startswith("40/chat,"):
            return


async def _closed_by_server(ws: websockets.ClientConnection) -> None:
    """Reads until the server closes the connection (its CLOSE packet, then the close frame)."""
    with contextlib.suppress(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)


BINARY_HEADER = '459999999999-/chat,["message:send",{"_placeholder":true,"num":0}]'


async def test_a_binary_packet_is_refused_at_its_header_before_any_attachment(
    chat_server: ChatServer, tokens: Tokens
) -> None:
    async with websockets.connect(_ws_url(chat_server), max_size=None) as ws:
        await _join_chat_namespace(ws, tokens.mint(new_user_id()))
        await ws.send(BINARY_HEADER)
        await _closed_by_server(ws)  # no attachment was sent: the header alone closes it
    assert ws.close_code is not None


async def test_binary_frames_after_a_refused_header_are_not_buffered(
    chat_server: ChatServer, tokens: Tokens
) -> None:
    megabyte = b"\x00" * (MAX_PAYLOAD_BYTES - 1000)  # under the frame limit: refused as binary
    async with websockets.connect(_ws_url(chat_server), max_size=None) as ws:
        await _join_chat_namespace(ws, tokens.mint(new_user_id()))
        before = rss_bytes(chat_server)
        await ws.send(BINARY_HEADER)
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(200):
                await ws.send(megabyte)
        await _closed_by_server(ws)
    assert ws.close_code is not None
    grown = rss_bytes(chat_server) - before
    assert grown < 8 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{chat_server.url}/health")).status_code == 200


async def _status_of_oversized_post(server: ChatServer, sid: str) -> bytes:
    """A POST announcing more than the limit, of which no byte of the body is sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
            f"Host: test\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {2 * MAX_PAYLOAD_BYTES}\r\n\r\n".encode()
        )
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


async def test_oversized_polls_are_answered_at_once_and_sigterm_still_exits_in_time(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory.start()
    async with httpx.AsyncClient() as http:
        opened = [await http.get(_poll_url(server)) for _ in range(30)]
        sids = [json.loads(r.text[1:])["sid"] for r in opened]
        # Ten POSTs per session, none with a GET pending, no token anywhere.
        started = time.monotonic()
        statuses = await asyncio.gather(
            *(_status_of_oversized_post(server, sid) for sid in sids for _ in range(10))
        )
        took = time.monotonic() - started
        assert len(statuses) == 300
        assert all(s.split()[1] in (b"413", b"400") for s in statuses), set(statuses)
        assert took < 5, f"300 refusals took {took:.1f}s"
        # Still pending at SIGTERM: a long poll on a fresh session.
        fresh = json.loads((await http.get(_poll_url(server))).text[1:])["sid"]
        poll = asyncio.ensure_future(http.get(_poll_url(server, fresh), timeout=30))
        assert server.proc is not None
        server.terminated = True
        stopping = time.monotonic()
        server.proc.terminate()
        code = await asyncio.wait_for(server.proc.wait(), STOP_TIMEOUT_S + 5)
        stopped_in = time.monotonic() - stopping
        with contextlib.suppress(httpx.HTTPError):
            await poll
    assert code == 0, server.log_text()[-3000:]
    assert stopped_in < STOP_TIMEOUT_S, f"SIGTERM took {stopped_in:.1f}s"


async def _closed_within(server: ChatServer, sent: bytes, seconds: float) -> float:
    """Sends `sent` on a fresh connection; the seconds until the server closed it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    try:
        writer.write(sent)
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass  # the answer to a complete request, if any
        return time.monotonic() - started
    except TimeoutError:
        raise AssertionError(f"connection still open after {seconds}s") from None
    finally:
        writer.close()


async def test_a_connection_with_half_a_request_line_is_closed_at_the_header_timeout(
    chat_server: ChatServer,
) -> None:
    took = await _closed_within(chat_server, b"GET /socket.io/?EIO=4&tra", HEADER_TIMEOUT_S + 3)
    assert took >= HEADER_TIMEOUT_S * 0.9
    await _closed_within(chat_server, b"", HEADER_TIMEOUT_S + 3)  # sends nothing at all


async def test_an_idle_keep_alive_connection_is_closed(chat_server: ChatServer) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    await _closed_within(chat_server, request, KEEP_ALIVE_TIMEOUT_S + 2)


def _listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on `port`, from the kernel's tables."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for row in Path(table).read_text().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                address, port_hex = local.split(":")
                if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


async def test_serve_dev_without_host_listens_on_loopback_only(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory.start("--dev", HOST=None, CHAT_ENV=None)
    await eventually(lambda: bool(_listening_addresses(server.port)), 5, "a listening socket")
    assert _listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, little-endian hex
