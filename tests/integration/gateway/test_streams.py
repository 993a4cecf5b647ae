"""The fan-out stream on a real Redis: two managers as two nodes, each with a stand-in for the
Socket.IO server that records what its sockets were sent and which it closed."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import socketio.packet

from marketplace_chat.gateway.streams import FanoutUnhealthy, StreamsManager

NS = "/chat"
UNREACHABLE = "redis://127.0.0.1:1/0"
WAIT_S = 10.0


class _Engine:
    def __init__(self) -> None:
        self.closed: list[str] = []
        self.sockets: dict[str, Any] = {}

    async def disconnect(self, eio_sid: str) -> None:
        self.closed.append(eio_sid)


class FakeServer:
    """What a manager uses of python-socketio's server."""

    packet_class = socketio.packet.Packet
    logger = logging.getLogger("test.fanout")

    def __init__(self) -> None:
        self.eio = _Engine()
        self.sent: list[tuple[str, Any]] = []  # (eio sid, [event, payload])

    async def _send_eio_packet(self, eio_sid: str, pkt: Any) -> None:
        text = pkt.data
        self.sent.append((eio_sid, json.loads(text[text.index("[") :])))

    def start_background_task(self, target: Callable[..., Awaitable[None]], *args: Any) -> Any:
        return asyncio.ensure_future(target(*args))

    def payloads(self, eio_sid: str) -> list[Any]:
        return [data[1] for sid, data in self.sent if sid == eio_sid]


Node = tuple[StreamsManager, FakeServer]
MakeNode = Callable[..., Awaitable[Node]]


@pytest_asyncio.fixture
async def make_node(redis_url: str, redis: aioredis.Redis) -> AsyncIterator[MakeNode]:
    channel = f"test-{uuid.uuid4().hex}"
    made: list[StreamsManager] = []

    async def make(user_id: int, **kwargs: Any) -> Node:
        manager = StreamsManager(redis_url, channel=channel, **kwargs)
        server = FakeServer()
        manager.set_server(server)
        sid = f"s{user_id}"
        manager.basic_enter_room(sid, NS, None, eio_sid=f"e{user_id}")
        manager.basic_enter_room(sid, NS, f"u:{user_id}")
        manager.initialize()
        made.append(manager)
        await eventually(lambda: manager.health().healthy, "the reader connected")
        return manager, server

    yield make
    for manager in made:
        await manager.aclose()
    await redis.delete(f"{channel}:fanout")


async def eventually(check: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while True:
            if check():
                return
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), WAIT_S)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT_S}s: {what}") from None


async def kill_connections(redis: aioredis.Redis, client: aioredis.Redis | None) -> int:
    """CLIENT KILL every connection a manager's client holds, as a Redis-side drop."""
    assert client is not None
    pool: Any = client.connection_pool
    killed = 0
    for conn in list(pool._in_use_connections) + list(getattr(pool, "_connections", [])):
        writer = getattr(conn, "_writer", None)
        if writer is not None:
            host, port = writer.get_extra_info("sockname")[:2]
            killed += int(await redis.client_kill_filter(_id=None, addr=f"{host}:{port}"))
    return killed


async def test_an_emit_reaches_the_other_node_once_and_the_sender_serves_its_own_once(
    make_node: MakeNode,
) -> None:
    a, a_server = await make_node(1)
    b, b_server = await make_node(2)

    await a.emit("message:new", {"n": 1}, to=["u:1", "u:2"], namespace=NS)
    await eventually(lambda: b_server.payloads("e2") == [{"n": 1}], "node B delivered")
    # Node B's reply comes after node A's own entry in the stream: once A has it, A has read past
    # its own entry.
    await b.emit("message:new", {"n": 2}, to=["u:1", "u:2"], namespace=NS)
    await eventually(lambda: len(a_server.payloads("e1")) == 2, "node A delivered B's emit")

    assert a_server.payloads("e1") == [{"n": 1}, {"n": 2}]
    assert b_server.payloads("e2") == [{"n": 1}, {"n": 2}]


async def test_a_reader_whose_connection_is_killed_resumes_where_it_stopped(
    make_node: MakeNode, redis: aioredis.Redis
) -> None:
    a, _ = await make_node(1)
    b, b_server = await make_node(2)
    await a.emit("message:new", {"n": 0}, to="u:2", namespace=NS)
    await eventually(lambda: len(b_server.payloads("e2")) == 1, "the first emit delivered")

    assert await kill_connections(redis, b._reader) >= 1
    for n in range(1, 51):
        await a.emit("message:new", {"n": n}, to="u:2", namespace=NS)

    await eventually(lambda: len(b_server.payloads("e2")) >= 51, "every emit delivered")
    await asyncio.sleep(0)
    assert b_server.payloads("e2") == [{"n": n} for n in range(51)]
    assert b_server.eio.closed == []


async def test_a_reader_that_comes_back_after_its_entries_were_trimmed_closes_its_sockets(
    make_node: MakeNode, redis: aioredis.Redis
) -> None:
    a, _ = await make_node(1)
    b, b_server = await make_node(2)
    await a.emit("message:new", {"n": 0}, to="u:2", namespace=NS)
    await eventually(lambda: len(b_server.payloads("e2")) == 1, "the first emit delivered")

    b.redis_url = UNREACHABLE
    await kill_connections(redis, b._reader)
    await eventually(lambda: not b.health().reader_connected, "node B's reader lost")
    with pytest.raises(FanoutUnhealthy):
        await b.check()
    for n in range(1, 6):
        await a.emit("message:new", {"n": n}, to="u:2", namespace=NS)
    await a._outbox.settled()
    await redis.xtrim(b.stream, maxlen=0, approximate=False)
    b.redis_url = a.redis_url

    await eventually(lambda: b_server.eio.closed == ["e2"], "node B closed its socket")
    await eventually(lambda: b.health().healthy, "node B reading again")
    await a.emit("message:new", {"n": 6}, to="u:2", namespace=NS)
    await eventually(lambda: len(b_server.payloads("e2")) == 2, "a later emit delivered")
    assert b_server.payloads("e2") == [{"n": 0}, {"n": 6}]


async def test_publishes_made_while_redis_is_unreachable_arrive_in_order_once_it_answers(
    make_node: MakeNode,
) -> None:
    a, a_server = await make_node(1)
    _, b_server = await make_node(2)
    url, a.redis_url = a.redis_url, UNREACHABLE

    for n in range(20):
        await a.emit("message:new", {"n": n}, to=["u:1", "u:2"], namespace=NS)
    await eventually(lambda: not a.health().publishing, "node A's publishes failing")
    assert a.health().buffered > 0
    assert len(a_server.payloads("e1")) == 20  # the local socket was served at once
    a.redis_url = url

    await eventually(lambda: len(b_server.payloads("e2")) == 20, "the buffer appended")
    assert b_server.payloads("e2") == [{"n": n} for n in range(20)]
    await eventually(lambda: a.health().healthy, "node A healthy again")
    assert a.health().buffered == 0
    assert b_server.eio.closed == []


async def test_a_node_whose_buffer_overflows_makes_the_other_nodes_close_their_sockets(
    make_node: MakeNode,
) -> None:
    a, _ = await make_node(1, buffer_max=5)
    b, b_server = await make_node(2)
    url, a.redis_url = a.redis_url, UNREACHABLE

    for n in range(12):
        await a.emit("message:new", {"n": n}, to="u:2", namespace=NS)
    await eventually(lambda: not a.health().publishing, "node A's publishes failing")
    assert a.health().buffered <= 5
    a.redis_url = url

    await eventually(lambda: b_server.eio.closed == ["e2"], "node B closed its socket")
    await eventually(lambda: a.health().healthy, "node A healthy again")
    # What was kept after the overflow still arrives, after the reset.
    delivered = [p["n"] for p in b_server.payloads("e2")]
    assert delivered == sorted(delivered)
    assert all(n >= 12 - 5 for n in delivered), delivered
    assert b.health().healthy


async def test_a_keyed_event_is_known_as_delivered_on_the_node_that_sent_it_and_on_the_others(
    make_node: MakeNode,
) -> None:
    a, _ = await make_node(1, keyed_events=frozenset({"message:new"}))
    b, b_server = await make_node(2, keyed_events=frozenset({"message:new"}))
    await a.emit("message:new", {"id": "m-1"}, to="u:2", namespace=NS)
    await a.emit("typing:start", {"id": "t-1"}, to="u:2", namespace=NS)
    await eventually(lambda: len(b_server.payloads("e2")) == 2, "node B delivered both")
    assert a.delivered("m-1")
    assert b.delivered("m-1")
    assert not a.delivered("t-1")  # not a keyed event
    assert not b.delivered("t-1")
    assert not b.delivered("m-2")


async def test_a_keyed_event_read_twice_is_delivered_once_on_the_other_node(
    make_node: MakeNode,
) -> None:
    a, _ = await make_node(1, keyed_events=frozenset({"message:new"}))
    _, b_server = await make_node(2, keyed_events=frozenset({"message:new"}))
    # As when a batch is appended again because the reply to its first append was lost.
    await a.emit("message:new", {"id": "m-9"}, to="u:2", namespace=NS)
    await a.emit("message:new", {"id": "m-9"}, to="u:2", namespace=NS)
    await a.emit("typing:start", {"id": "marker"}, to="u:2", namespace=NS)
    await eventually(lambda: {"id": "marker"} in b_server.payloads("e2"), "node B read past both")
    assert b_server.payloads("e2") == [{"id": "m-9"}, {"id": "marker"}]
