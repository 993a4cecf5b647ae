"""A refused connect, whatever the verifier did, leaves python-socketio and Engine.IO as they were.

The real namespace on the real python-socketio server, over uvicorn and a WebSocket: each refused
client sees CONNECT, `auth:error` and DISCONNECT, and once it is gone every per-socket structure
of the server (the manager's rooms and pending lists, the environs, the Engine.IO sockets, the
namespace's own bookkeeping) is back to what it was before the first one came.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
import socketio
import websockets

from marketplace_chat.auth.base import Identity, Verifier
from marketplace_chat.auth.cache import CachingVerifier
from marketplace_chat.auth.local import LocalVerifier
from marketplace_chat.blocking import Blocking
from marketplace_chat.gateway.namespace import ChatNamespace
from marketplace_chat.gateway.server import NAMESPACE, ChatSocketServer, create_server
from marketplace_chat.metrics import Metrics
from marketplace_chat.reports import Reports
from marketplace_chat.service import ChatService

from ..fakes import FakeClock
from .test_transport import _next_message, _serve

SECRET = "refused-connects-" + "x" * 40
FORGED_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256"}').rstrip(b"=").decode()


def forged(exp: str) -> str:
    payload = ('{"sub":"1","exp":' + exp + "}").encode()
    return f"{FORGED_HEADER}.{base64.urlsafe_b64encode(payload).rstrip(b'=').decode()}.AAAA"


class NoService:
    """Refused sockets never reach the service; an accepted one only says hello and goodbye."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str]] = []

    async def socket_connected(self, user_id: int, sid: str) -> None:
        self.calls.append(("connected", user_id, sid))

    async def socket_disconnected(self, user_id: int, sid: str) -> None:
        self.calls.append(("disconnected", user_id, sid))


class Crashing:
    """A verifier with a bug: it raises what it was given instead of an AuthError."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def verify(self, token: str) -> Identity:
        raise self.exc


class Held:
    """A verifier that answers only when told to, to let a client leave while it thinks."""

    def __init__(self, answer: Callable[[], Awaitable[Identity]]) -> None:
        self.answer = answer
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.done = asyncio.Event()

    async def verify(self, token: str) -> Identity:
        self.entered.set()
        await self.release.wait()
        try:
            return await self.answer()
        finally:
            self.done.set()


@dataclass
class Gateway:
    sio: ChatSocketServer
    namespace: ChatNamespace
    service: NoService
    port: int
    verifier: list[Verifier] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/socket.io/?EIO=4&transport=websocket"

    def state(self) -> dict[str, int]:
        """How many entries each per-socket structure of the server holds."""
        manager = self.sio.manager
        ns = self.namespace
        return {
            "manager.rooms": sum(
                len(r) for rooms in manager.rooms.values() for r in rooms.values()
            ),
            "manager.pending_connect": sum(len(v) for v in manager.pending_connect.values()),
            "manager.pending_disconnect": sum(len(v) for v in manager.pending_disconnect.values()),
            "manager.callbacks": len(manager.callbacks),
            "server.environ": len(self.sio.environ),
            "server.binary_packets": len(self.sio._binary_packet),
            # A closed Engine.IO socket waits for Engine.IO's own periodic sweep.
            "engineio.open_sockets": sum(not s.closed for s in self.sio.eio.sockets.values()),
            "namespace.refused": len(ns._refused),
            "namespace.sessions": len(ns.sessions.users()),
            "namespace.background": len(ns._background),
        }

    async def settled(self, baseline: dict[str, int]) -> dict[str, int]:
        """The state once the server has finished with the clients that left (or after 5 s)."""
        for _ in range(500):
            if self.state() == baseline:
                break
            await asyncio.sleep(0.01)
        return self.state()


class SwitchableVerifier:
    """The gateway's verifier, which a test may replace after the server started."""

    def __init__(self, current: list[Verifier]) -> None:
        self._current = current

    async def verify(self, token: str) -> Identity:
        return await self._current[0].verify(token)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    clock = FakeClock()
    sio = create_server(None, "unused", "*")
    # As the app wires the local verifier: behind the cache, in record-only mode. Redis is never
    # reached, since nothing refused is recorded.
    unreachable = aioredis.Redis(host="127.0.0.1", port=1)
    local = LocalVerifier(SECRET, ["HS256"], clock)
    current: list[Verifier] = [CachingVerifier(local, unreachable, clock, lookup=False)]
    service = NoService()
    namespace = ChatNamespace(
        sio,
        cast(ChatService, service),
        SwitchableVerifier(current),
        Metrics(),
        clock,
        leeway_s=0.0,
        grace_s=60.0,
        blocking=cast(Blocking, None),
        reports=cast(Reports, None),
    )
    async with _serve(socketio.ASGIApp(sio, socketio_path="socket.io")) as (port, _):
        yield Gateway(sio, namespace, service, port, current)
    await unreachable.aclose()


async def handshake(ws: Any, auth: dict[str, Any]) -> None:
    opened = str(await asyncio.wait_for(ws.recv(), 2))
    assert opened.startswith("0{")
    await ws.send(f"40{NAMESPACE}," + json.dumps(auth))


async def refused_in_order(ws: Any) -> dict[str, Any]:
    """CONNECT, then `auth:error`, then DISCONNECT: the payload of the `auth:error`."""
    connected = await _next_message(ws)
    assert connected.startswith(f"40{NAMESPACE},"), connected
    event = await _next_message(ws)
    assert event.startswith(f"42{NAMESPACE},"), event
    name, payload = json.loads(event.split(",", 1)[1])
    assert name == "auth:error"
    assert await _next_message(ws) == f"41{NAMESPACE},"
    return cast(dict[str, Any], payload)


FORGED = {
    "exp-1e308": forged("1e308"),
    "exp-nan": forged("NaN"),
    "exp-infinity": forged("Infinity"),
    "exp-year-10000": forged("253402300800"),
    "lone-surrogate": forged("1") + "\ud800",
}


@pytest.mark.parametrize("token", FORGED.values(), ids=FORGED.keys())
async def test_forged_tokens_are_refused_in_order_and_leave_nothing_behind(
    gateway: Gateway, token: str
) -> None:
    baseline = gateway.state()
    for _ in range(20):
        async with websockets.connect(gateway.url) as ws:
            await handshake(ws, {"token": token})
            assert await refused_in_order(ws) == {"error": "Invalid token", "code": "TOKEN_INVALID"}
    assert await gateway.settled(baseline) == baseline
    assert gateway.service.calls == []


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UnicodeEncodeError("utf-8", "x\ud800", 1, 2, "surrogates not allowed"), "TOKEN_INVALID"),
        (OverflowError("timestamp out of range"), "TOKEN_INVALID"),
        (TypeError("'NoneType' object is not subscriptable"), "TOKEN_INVALID"),
        (RuntimeError("a bug"), "AUTH_SERVICE_ERROR"),
    ],
)
async def test_a_verifier_that_crashes_refuses_in_order_and_leaves_nothing_behind(
    gateway: Gateway, exc: Exception, code: str
) -> None:
    gateway.verifier[0] = Crashing(exc)
    baseline = gateway.state()
    for _ in range(10):
        async with websockets.connect(gateway.url) as ws:
            await handshake(ws, {"token": "a.b.c"})
            assert (await refused_in_order(ws))["code"] == code
    assert await gateway.settled(baseline) == baseline


async def _refuse() -> Identity:
    raise OverflowError("a crash after the client left")


async def _accept() -> Identity:
    return Identity(7, None)


@pytest.mark.parametrize("answer", [_refuse, _accept], ids=["refused", "accepted"])
async def test_a_client_that_is_gone_before_its_verification_ends_leaves_nothing_behind(
    gateway: Gateway, answer: Callable[[], Awaitable[Identity]]
) -> None:
    """A CONNECT is handled inline, so over WebSocket the client's own close waits for the
    handler; a silent polling client is closed under it by Engine.IO's ping check, as here."""
    held = Held(answer)
    gateway.verifier[0] = held
    baseline = gateway.state()
    async with websockets.connect(gateway.url) as ws:
        await handshake(ws, {"token": "a.b.c"})
        await asyncio.wait_for(held.entered.wait(), 2)
        (socket,) = gateway.sio.eio.sockets.values()
        await socket.close(wait=False, abort=True, reason="ping timeout")
        held.release.set()
        await asyncio.wait_for(held.done.wait(), 2)
    assert await gateway.settled(baseline) == baseline
    assert gateway.service.calls == []
