"""Dispatchers on one database: each event in flight from one of them at a time, a chat's events
in commit order, retries after a back-off, failure for good, and the lease of a dispatcher that
died running out so that another delivers its claims."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from marketplace_chat.edits import may_edit
from marketplace_chat.metrics import Metrics
from marketplace_chat.storage.base import EventPolicy, Revision
from marketplace_chat.storage.outbox import OutboxEvent, OutboxStore, Outcome, Status
from marketplace_chat.storage.postgres import PostgresStorage
from marketplace_chat.webhooks import signing
from marketplace_chat.webhooks.dispatcher import (
    CLAIM_BATCH,
    RUN,
    Dispatcher,
    DispatchPolicy,
    lease_s,
)

from ..conftest import DB_TIMEOUT_S
from ..helpers import FakeClock, new_chat, send

pytestmark = pytest.mark.integration

SECRET = "integration-secret"


@dataclass
class Receiver:
    """Records what it is sent and notices an event in flight twice at once."""

    fail_first: int = 0  # the first attempts of every event that fail
    hold: asyncio.Event | None = None  # when set, attempts wait for it
    delivered: list[dict[str, object]] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    in_flight: set[str] = field(default_factory=set)
    twice: list[str] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        delivery = headers["X-Chat-Delivery"]
        if delivery in self.in_flight:
            self.twice.append(delivery)
        self.in_flight.add(delivery)
        self.started.set()
        try:
            await asyncio.sleep(0)  # let the other dispatcher run while this one is in flight
            if self.hold is not None:
                await self.hold.wait()
            assert signing.verify(SECRET, headers["X-Chat-Signature"], body, _now(headers))
            self.attempts[delivery] += 1
            if self.attempts[delivery] <= self.fail_first:
                return "HTTP 503"
            self.delivered.append(json.loads(body))
            return None
        finally:
            self.in_flight.discard(delivery)

    def of(self, chat_id: str) -> list[dict[str, object]]:
        """The chat's ordered events (reminders, which have no order, left out)."""
        return [
            e for e in self.delivered if _chat_of(e) == chat_id and e["type"] != "message.unread"
        ]


def _now(headers: dict[str, str]) -> int:
    return int(headers["X-Chat-Signature"].split(",")[0].removeprefix("t="))


def _chat_of(event: dict[str, object]) -> str | None:
    data = event["data"]
    assert isinstance(data, dict)
    chat = data.get("chat")
    if isinstance(chat, dict):
        return str(chat["id"])
    return str(data["chatId"]) if "chatId" in data else None


def dispatcher(
    pool: asyncpg.Pool, receiver: Receiver, clock: FakeClock, max_attempts: int = 15
) -> Dispatcher:
    async def offline(user_id: int) -> bool:
        return False

    return Dispatcher(
        OutboxStore(pool, DB_TIMEOUT_S),
        receiver,
        clock,
        DispatchPolicy(SECRET, timeout_s=5.0, max_attempts=max_attempts),
        Metrics(),
        offline,
    )


@pytest.fixture
def storage(pool: asyncpg.Pool) -> PostgresStorage:
    return PostgresStorage(pool, DB_TIMEOUT_S, events=EventPolicy(True, 3600.0))


async def drain(*dispatchers: Dispatcher, rounds: int = 50) -> None:
    for _ in range(rounds):
        claimed = await asyncio.gather(*(d.deliver_due() for d in dispatchers))
        if not any(claimed):
            return


async def test_two_dispatchers_deliver_each_event_once_and_each_chat_in_order(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    clock, receiver = FakeClock(), Receiver()
    chats = [await new_chat(storage) for _ in range(4)]
    for i in range(5):
        for chat, buyer, _ in chats:
            await send(storage, chat.id, buyer, f"m{i}")
    await drain(dispatcher(pool, receiver, clock), dispatcher(pool, receiver, clock))
    assert receiver.twice == []
    for chat, _, _ in chats:
        events = receiver.of(chat.id)
        assert [e["type"] for e in events] == ["chat.created"] + ["message.created"] * 5
        seqs = [e["data"]["message"]["seq"] for e in events[1:]]  # type: ignore[index]
        assert seqs == [1, 2, 3, 4, 5]
        assert len({e["id"] for e in events}) == 6


async def test_a_failed_attempt_holds_back_the_chat_until_its_retry_succeeds(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    clock, receiver = FakeClock(), Receiver(fail_first=1)
    chat, buyer, _ = await new_chat(storage)
    await send(storage, chat.id, buyer, "one")
    worker = dispatcher(pool, receiver, clock)
    await drain(worker)
    assert receiver.of(chat.id) == []  # chat.created failed once: nothing after it went out
    row = await pool.fetchrow(
        "SELECT status, attempts, next_attempt_at, last_error FROM chat.outbox "
        "WHERE chat_id = $1 AND type = 'chat.created'",
        chat.id,
    )
    assert row is not None
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "HTTP 503")
    assert (row["next_attempt_at"] - clock.now()).total_seconds() == pytest.approx(1.0, abs=0.01)
    clock.advance(1.0)
    await drain(worker)
    clock.advance(1.0)  # message.created failed its first attempt too
    await drain(worker)
    events = receiver.of(chat.id)
    assert [e["type"] for e in events] == ["chat.created", "message.created"]
    ids = [e["id"] for e in events]
    assert all(receiver.attempts[i] == 2 for i in ids)  # type: ignore[index]


async def test_after_the_last_attempt_an_event_fails_for_good_and_releases_its_chat(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    clock, receiver = FakeClock(), Receiver(fail_first=100)
    chat, buyer, _ = await new_chat(storage)
    await send(storage, chat.id, buyer, "one")
    worker = dispatcher(pool, receiver, clock, max_attempts=2)
    for _ in range(4):
        await drain(worker)
        clock.advance(2.0)
    rows = await pool.fetch(
        "SELECT type, status, attempts FROM chat.outbox WHERE chat_id = $1 AND lane IS NOT NULL "
        "ORDER BY pos",
        chat.id,
    )
    assert [tuple(r) for r in rows] == [
        ("chat.created", "failed", 2),
        ("message.created", "failed", 2),
    ]


async def test_a_failed_message_created_is_sent_again_as_created_after_an_edit(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    clock, receiver = FakeClock(), Receiver(fail_first=1)
    chat, buyer, _ = await new_chat(storage)
    message = await send(storage, chat.id, buyer, "as sent")
    worker = dispatcher(pool, receiver, clock, max_attempts=1)
    await drain(worker)  # chat.created fails for good, then message.created
    edit_at = message.created_at + timedelta(seconds=5)
    changed = await storage.edit_message(
        message.id,
        Revision("edited"),
        edit_at,
        lambda t: may_edit(t, buyer, Revision("edited"), edit_at, 900),
    )
    assert changed is not None
    assert changed.changed
    store = OutboxStore(pool, DB_TIMEOUT_S)
    [failed] = [
        e
        for e in await store.list(Status.FAILED, 100, None)
        if e.type == "message.created" and e.chat_id == chat.id
    ]
    assert await store.retry(failed.id, clock.now()) is not None
    await drain(worker)
    [created] = [e for e in receiver.of(chat.id) if e["type"] == "message.created"]
    assert created["id"] == failed.id
    assert created["data"]["message"] == message.to_wire()  # type: ignore[index]


async def test_a_dispatcher_that_died_loses_its_claims_when_the_lease_runs_out(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    clock = FakeClock()
    stuck = Receiver(hold=asyncio.Event())
    chat, _, _ = await new_chat(storage)
    dying = asyncio.ensure_future(dispatcher(pool, stuck, clock).deliver_due())
    await asyncio.wait_for(stuck.started.wait(), 5.0)
    healthy = Receiver()
    other = dispatcher(pool, healthy, clock)
    await drain(other)
    assert healthy.of(chat.id) == []  # leased by the stuck one
    dying.cancel()  # the instance dies mid-delivery: nothing settles its claims
    clock.advance(lease_s(5.0) + 0.001)
    await drain(other)
    assert [e["type"] for e in healthy.of(chat.id)] == ["chat.created"]


@dataclass
class LaneWatch(Receiver):
    """Also notices two events of one chat in flight at once."""

    lanes_in_flight: Counter[str] = field(default_factory=Counter)
    overlaps: list[str] = field(default_factory=list)

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        event = json.loads(body)
        lane = _chat_of(event) if event["type"] != "message.unread" else None
        if lane is not None:
            if self.lanes_in_flight[lane]:
                self.overlaps.append(lane)
            self.lanes_in_flight[lane] += 1
        try:
            await asyncio.sleep(0.001)  # the other pipeline claims and posts meanwhile
            return await super().post(body, headers)
        finally:
            if lane is not None:
                self.lanes_in_flight[lane] -= 1


async def test_overlapping_claims_of_one_dispatcher_keep_each_chat_one_at_a_time_in_order(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    clock, receiver = FakeClock(), LaneWatch()
    chats = [await new_chat(storage) for _ in range(3)]
    for i in range(CLAIM_BATCH // 2):
        for chat, buyer, _ in chats:
            await send(storage, chat.id, buyer, f"m{i}")
    await dispatcher(pool, receiver, clock).tick()  # its pipelines claim side by side
    assert receiver.overlaps == []
    assert receiver.twice == []
    for chat, _, _ in chats:
        events = receiver.of(chat.id)
        seqs = [e["data"]["message"]["seq"] for e in events[1:]]  # type: ignore[index]
        assert seqs == list(range(1, CLAIM_BATCH // 2 + 1))


class CountingStore(OutboxStore):
    claims = 0

    async def claim(
        self, now: datetime, limit: int, lease_until: datetime, run: int = 1
    ) -> list[OutboxEvent]:
        events = await super().claim(now, limit, lease_until, run)
        self.claims += bool(events)
        return events


async def test_a_chat_s_backlog_goes_out_in_runs_of_several_events_per_claim(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    clock, receiver = FakeClock(), Receiver()
    chat, buyer, _ = await new_chat(storage)
    for i in range(3 * RUN):
        await send(storage, chat.id, buyer, f"m{i}")
    store = CountingStore(pool, DB_TIMEOUT_S)

    async def offline(user_id: int) -> bool:
        return False

    one = Dispatcher(store, receiver, clock, DispatchPolicy(SECRET, 5.0, 15), Metrics(), offline)
    await drain(one)
    events = receiver.of(chat.id)
    assert [e["type"] for e in events] == ["chat.created"] + ["message.created"] * (3 * RUN)
    seqs = [e["data"]["message"]["seq"] for e in events[1:]]  # type: ignore[index]
    assert seqs == list(range(1, 3 * RUN + 1))
    assert store.claims == -(-(3 * RUN + 1) // RUN)  # a run per claim, not an event per claim


LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # due before any other test's events


async def cancel_pending(pool: asyncpg.Pool, *, created_before: datetime) -> None:
    await pool.execute(
        "UPDATE chat.outbox SET status = 'cancelled', finished_at = now() "
        "WHERE status = 'pending' AND created_at < $1",
        created_before,
    )


async def test_a_chat_held_back_by_a_retry_leaves_the_claim_to_chats_that_can_go(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    # This test's events are the earliest due in the database: none of an earlier run's may be
    # left for it, or for the other tests, to meet.
    await cancel_pending(pool, created_before=LONG_AGO + timedelta(days=1))
    try:
        held, buyer, _ = await new_chat(storage, when=LONG_AGO)
        for i in range(2):
            await send(storage, held.id, buyer, f"m{i}", when=LONG_AGO)
        ready, _, _ = await new_chat(storage, when=LONG_AGO + timedelta(seconds=1))
        store, now = OutboxStore(pool, DB_TIMEOUT_S), datetime.now(UTC)
        lease = now + timedelta(seconds=lease_s(5.0))
        first = sorted(await store.claim(now, 1, lease, RUN), key=lambda e: e.pos)
        assert [e.chat_id for e in first] == [held.id] * 3  # the held chat's whole run
        failed = Outcome(
            first[0], delivered=False, error="HTTP 503", retry_at=now + timedelta(hours=1)
        )
        await store.settle(
            [failed, *(Outcome(e, delivered=False, released=True) for e in first[1:])], now
        )
        second = await store.claim(now, 1, lease, RUN)
        assert [(e.chat_id, e.type) for e in second] == [(ready.id, "chat.created")]
        rest = await store.claim(now, CLAIM_BATCH, lease, RUN)
        # The held chat waits for its retry; only its reminder, which is in no order, may go.
        assert [e.type for e in rest if e.chat_id == held.id] in ([], ["message.unread"])
    finally:
        await cancel_pending(pool, created_before=LONG_AGO + timedelta(days=1))
