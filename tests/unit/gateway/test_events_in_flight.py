"""ChatSocketServer's bound on a socket's events: at most N running, M waiting, the rest refused
at once, without a network: the manager knows the sockets and sent packets are recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import socketio.packet

from marketplace_chat.gateway.server import NAMESPACE, ChatSocketServer, create_server


class Harness:
    """A server whose `/chat` handler holds every event until released."""

    def __init__(self, max_in_flight: int, max_queued: int) -> None:
        self.sio: ChatSocketServer = create_server(
            None, "test", "*", max_in_flight=max_in_flight, max_queued=max_queued
        )
        self.release = asyncio.Event()
        self.started: list[Any] = []
        self.sent: list[tuple[str, Any]] = []
        self.refused: list[str] = []
        self.sio.on_refused = self.refused.append
        self.connected = {"sid-a", "sid-b"}

        async def handler(sid: str, payload: Any) -> dict[str, Any]:
            self.started.append((sid, payload))
            await self.release.wait()
            return {"success": True}

        async def send_packet(eio_sid: str, pkt: Any) -> None:
            self.sent.append((eio_sid, pkt))

        self.sio.on("work", handler, namespace=NAMESPACE)
        self.sio.manager.sid_from_eio_sid = lambda eio_sid, ns: eio_sid.removeprefix("e-")
        self.sio.manager.is_connected = lambda sid, ns: sid in self.connected
        self.sio._send_packet = send_packet

    async def fire(self, eio_sid: str, n: int, ack: bool = True) -> None:
        for i in range(n):
            await self.sio._handle_event(eio_sid, NAMESPACE, i if ack else None, ["work", i])

    def acks(self, kind: int) -> list[Any]:
        return [pkt for _, pkt in self.sent if pkt.packet_type == kind]


async def settle() -> None:
    """Until the loop has nothing ready: each finished event starts the next in its own task."""
    for _ in range(100):
        await asyncio.sleep(0)


async def test_a_burst_runs_n_at_once_queues_m_and_refuses_the_rest() -> None:
    h = Harness(max_in_flight=2, max_queued=3)
    await h.fire("e-sid-a", 10)
    await settle()
    assert [p for _, p in h.started] == [0, 1]
    assert (h.sio.events_running, h.sio.events_waiting) == (2, 3)
    refusals = h.acks(socketio.packet.ACK)
    assert [pkt.id for pkt in refusals] == [5, 6, 7, 8, 9]
    assert refusals[0].data[0]["code"] == "RATE_LIMITED"
    assert refusals[0].data[0]["retryAfterMs"] > 0
    assert h.refused == ["work"] * 5
    h.release.set()
    await settle()
    # The waiting ones ran in arrival order, and nothing is left behind.
    assert [p for _, p in h.started] == [0, 1, 2, 3, 4]
    assert (h.sio.events_running, h.sio.events_waiting) == (0, 0)
    assert h.sio._lanes.sockets == 0


async def test_each_socket_has_its_own_bound() -> None:
    h = Harness(max_in_flight=1, max_queued=0)
    await h.fire("e-sid-a", 1)
    await h.fire("e-sid-b", 1)
    await settle()
    assert sorted(sid for sid, _ in h.started) == ["sid-a", "sid-b"]
    assert h.refused == []
    h.release.set()
    await settle()


async def test_a_refused_event_without_an_ack_gets_an_exception_event() -> None:
    h = Harness(max_in_flight=1, max_queued=1)
    await h.fire("e-sid-a", 3, ack=False)
    (event,) = h.acks(socketio.packet.EVENT)
    name, payload = event.data
    assert name == "exception"
    assert (payload["code"], payload["event"]) == ("RATE_LIMITED", "work")
    h.release.set()
    await settle()


async def test_a_socket_that_left_drops_its_waiting_events() -> None:
    h = Harness(max_in_flight=1, max_queued=5)
    await h.fire("e-sid-a", 4)
    await settle()
    h.connected.discard("sid-a")
    h.release.set()
    await settle()
    assert [p for _, p in h.started] == [0]
    assert h.sio._lanes.sockets == 0
    assert h.sio.events_running == 0


async def test_zero_turns_the_bound_off() -> None:
    h = Harness(max_in_flight=0, max_queued=0)
    await h.fire("e-sid-a", 50)
    await settle()
    assert len(h.started) == 50
    assert h.refused == []
    h.release.set()
    await settle()


async def test_a_closed_lane_drops_what_waits_and_starts_nothing_more() -> None:
    from marketplace_chat.gateway.lanes import Lanes

    lanes = Lanes(max_running=1, max_waiting=10)
    release, finished = asyncio.Event(), asyncio.Event()
    started: list[str] = []

    def work(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            started.append(name)
            await release.wait()
            finished.set()

        return run

    assert lanes.admit("s1", work("first"), lambda: True)
    assert lanes.admit("s1", work("waiting"), lambda: True)
    await asyncio.sleep(0)
    lanes.close()
    release.set()
    await finished.wait()
    await asyncio.sleep(0)  # the done callback, which would start the next one
    assert started == ["first"]
    assert lanes.waiting == 0
    assert lanes.sockets == 0
