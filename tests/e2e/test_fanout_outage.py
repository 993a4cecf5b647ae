"""Fan-out through a Redis restart: partners on two nodes send while the nodes' private Redis is
killed and started again about 5 s later. Afterwards every message PostgreSQL holds has reached
every socket of both partners that stayed connected, within 5 s of Redis answering; a socket that
could not be caught up was closed (its client reconnects and runs ``messages:sync``), never left
silently behind."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from .conftest import ServerFactory
from .faultkit import PrivateRedis, SendOutcome, eventually, ready_is, tracked_send
from .helpers import create_chat, send
from .jsclient import Bridge, JsClient
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e

PAIRS = 2
OUTAGE_S = 5.0
PACE_S = 0.05  # between one sender's messages: a few hundred messages over the whole run
CAUGHT_UP_S = 5.0  # every delivery arrives this soon after Redis answers again
READY_BACK_S = 10.0


class Sender:
    """One socket sending into its chat, one message after the other, until stopped (through a
    reconnect too: socket.io-client holds the emits of a closed socket until it is back)."""

    def __init__(self, client: JsClient, chat_id: str) -> None:
        self.client = client
        self.chat_id = chat_id
        self.outcomes: list[SendOutcome] = []
        self._running = True
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        n = 0
        while self._running:
            n += 1
            self.outcomes.append(await tracked_send(self.client, self.chat_id, f"#{n}", timeout=10))
            await asyncio.sleep(PACE_S)

    async def stop(self) -> None:
        self._running = False
        await self._task


@pytest.mark.parametrize("persistent", [True, False], ids=["redis-keeps-data", "redis-loses-data"])
async def test_every_stored_message_reaches_every_partner_socket_through_a_redis_restart(
    bridge: Bridge,
    server_factory: ServerFactory,
    tokens: Tokens,
    db: asyncpg.Pool,
    tmp_path: Path,
    persistent: bool,
) -> None:
    async with PrivateRedis(tmp_path / "redis", persistent=persistent) as private:
        a = await server_factory.start(REDIS_URL=private.url)
        b = await server_factory.start(REDIS_URL=private.url)
        try:
            chats: dict[str, list[JsClient]] = {}
            for _ in range(PAIRS):
                buyer_id, seller_id = new_user_id(), new_user_id()
                # Reconnecting as an application's client does (the bridge's default is not to).
                buyer = await bridge.connect(
                    a.url, token=tokens.mint(buyer_id), user_id=buyer_id, reconnection=True
                )
                seller = await bridge.connect(
                    b.url, token=tokens.mint(seller_id), user_id=seller_id, reconnection=True
                )
                chat_id = (await create_chat(buyer, buyer_id, seller_id))["id"]
                chats[chat_id] = [buyer, seller]
            for chat_id, (buyer, seller) in chats.items():
                first = await send(buyer, chat_id, "before")
                news = await seller.wait_for("message:new")
                assert news["id"] == first["id"], news
            senders = [Sender(c, chat_id) for chat_id, cs in chats.items() for c in cs]

            def acked() -> int:
                return sum(o.acked for s in senders for o in s.outcomes)

            try:
                before = acked()
                await eventually(lambda: acked() >= before + 20, 10, "sends acked before")
                await private.kill()
                down_at = time.monotonic()
                await eventually(lambda: acked() >= before + 40, 10, "sends acked during")
                await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
                await private.start()
                answering_at = time.monotonic()
                for server in (a, b):
                    await eventually(ready_is(server, 200), READY_BACK_S, "/ready 200 again")
                during = acked()
                await eventually(lambda: acked() >= during + 20, 10, "sends acked after")
            finally:
                await asyncio.gather(*(s.stop() for s in senders))
            stopped_at = time.monotonic()

            rows = await db.fetch(
                "SELECT id::text, chat_id::text FROM chat.messages WHERE chat_id = ANY($1::uuid[])",
                list(chats),
            )
            stored = {(row["chat_id"], row["id"]) for row in rows}
            acked_ids = {o.message_id for s in senders for o in s.outcomes if o.acked}
            assert acked_ids <= {message_id for _, message_id in stored}

            def missing() -> dict[str, int]:
                gaps = {}
                for chat_id, clients in chats.items():
                    for client in clients:
                        if client.events("disconnect"):
                            continue  # closed: it reconnects and syncs
                        got = {m["id"] for m in client.events("message:new")}
                        lost = {i for c, i in stored if c == chat_id} - got
                        if lost:
                            gaps[client.name] = len(lost)
                return gaps

            with contextlib.suppress(AssertionError):
                await eventually(lambda: not missing(), CAUGHT_UP_S, "every delivery")
            assert not missing(), f"silently lost deliveries: {missing()}"
            assert stopped_at - answering_at < READY_BACK_S + 10 + CAUGHT_UP_S
            early = {o.message_id for s in senders for o in s.outcomes if o.acked}
            early &= {
                o.message_id
                for s in senders
                for o in s.outcomes
                if o.acked and o.finished < answering_at
            }
            for clients in chats.values():
                for client in clients:
                    if client.events("disconnect"):
                        continue
                    news = [m["id"] for m in client.events("message:new")]
                    assert len(news) == len(set(news)), f"{client.name}: a delivery repeated"
                    late = [
                        item.at - answering_at
                        for item in client.received("message:new")
                        if item.payload["id"] in early and item.at > answering_at + CAUGHT_UP_S
                    ]
                    assert not late, f"{client.name}: delivered {max(late):.1f}s after Redis"
            closed = [c.name for cs in chats.values() for c in cs if c.events("disconnect")]
            if persistent:
                # The stream came back whole: every node resumed, no socket had to go.
                assert closed == [], closed
            else:
                for name in closed:
                    client = next(c for cs in chats.values() for c in cs if c.name == name)
                    assert client.events("disconnect")[0] == "transport close", client.log[-3:]
                    assert client.connected, f"{name} did not reconnect: {client.log[-3:]}"
        finally:
            await asyncio.gather(a.stop(), b.stop())


async def test_a_retry_of_a_message_whose_node_died_before_telling_anyone_reaches_the_partner(
    bridge: Bridge, server_factory: ServerFactory, tokens: Tokens, db: asyncpg.Pool
) -> None:
    """The node that committed the message was killed before its fan-out: the row exists and no
    one was told. The sender's client retries with the same clientMessageId on another node."""
    a = await server_factory.start()
    b = await server_factory.start()
    try:
        buyer_id, seller_id = new_user_id(), new_user_id()
        buyer = await bridge.connect(a.url, token=tokens.mint(buyer_id), user_id=buyer_id)
        seller = await bridge.connect(b.url, token=tokens.mint(seller_id), user_id=seller_id)
        chat_id = (await create_chat(buyer, buyer_id, seller_id))["id"]
        async with db.acquire() as conn, conn.transaction():
            seq = await conn.fetchval(
                "UPDATE chat.chats SET last_seq = last_seq + 1, updated_at = now() "
                "WHERE id = $1 RETURNING last_seq",
                uuid.UUID(chat_id),
            )
            message_id = await conn.fetchval(
                "INSERT INTO chat.messages (id, chat_id, seq, sender_id, text, client_message_id,"
                " created_at) VALUES ($1, $2, $3, $4, 'committed, never told', 'cm-died', now())"
                " RETURNING id::text",
                uuid.uuid4(),
                uuid.UUID(chat_id),
                seq,
                buyer_id,
            )

        retried = await send(buyer, chat_id, "committed, never told", clientMessageId="cm-died")

        assert retried["id"] == message_id
        for client in (seller, buyer):
            news = await client.wait_for("message:new", lambda m: m["id"] == message_id)
            assert news == retried
        rows = await db.fetch(
            "SELECT id::text FROM chat.messages WHERE chat_id = $1", uuid.UUID(chat_id)
        )
        assert [row["id"] for row in rows] == [message_id]
    finally:
        await asyncio.gather(a.stop(), b.stop())
