"""Events are written in the transaction of the change they report: with each new message (in
the group commit's one statement as on the single-message path), with each new chat, and never
for a repeated client id or without a webhook URL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg
import pytest

from marketplace_chat.storage.base import EventPolicy
from marketplace_chat.storage.outbox_sql import EVENT_DATA
from marketplace_chat.storage.postgres import PostgresStorage

from ..conftest import DB_TIMEOUT_S
from ..helpers import at, draft, new_chat, send

pytestmark = pytest.mark.integration

ON = EventPolicy(enabled=True, reminder_after_s=60.0)


@pytest.fixture(params=[True, False], ids=["group-commit", "single"])
def storage(pool: asyncpg.Pool, request: pytest.FixtureRequest) -> PostgresStorage:
    return PostgresStorage(pool, DB_TIMEOUT_S, group_commit=bool(request.param), events=ON)


async def events_of(pool: asyncpg.Pool, chat_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT o.type, o.lane, o.recipient_id, o.sender_id, o.message_seq, o.status, "
        f"({EVENT_DATA})::text AS data, o.created_at, o.next_attempt_at "
        "FROM chat.outbox o WHERE o.chat_id = $1 ORDER BY o.pos",
        chat_id,
    )
    return [
        {**dict(r), "data": json.loads(r["data"]) if r["data"] is not None else None} for r in rows
    ]


async def test_event_ids_are_time_ordered_uuids(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    """Version 7: the first 48 bits are the Unix time in milliseconds, so new events land at
    the right edge of the id index instead of on a random page of it."""
    before = int(time.time() * 1000)
    chat, buyer, _ = await new_chat(storage)
    await send(storage, chat.id, buyer, "hello")
    after = int(time.time() * 1000)
    rows = await pool.fetch("SELECT id FROM chat.outbox WHERE chat_id = $1 ORDER BY pos", chat.id)
    ids = [uuid.UUID(str(r["id"])) for r in rows]
    assert len(ids) == 3  # chat.created, message.created, message.unread
    assert {i.version for i in ids} == {7}
    assert {i.variant for i in ids} == {uuid.RFC_4122}
    assert all(before <= i.int >> 80 <= after for i in ids)
    assert len(set(ids)) == 3


async def test_new_chat_writes_chat_created(storage: PostgresStorage, pool: asyncpg.Pool) -> None:
    chat, buyer, seller = await new_chat(storage, product_id=77)
    events = await events_of(pool, chat.id)
    assert [e["type"] for e in events] == ["chat.created"]
    assert events[0]["data"] == {
        "chat": {
            "id": chat.id,
            "buyerId": buyer,
            "sellerId": seller,
            "productId": 77,
            "createdAt": "2026-11-26T01:10:32.123Z",
        }
    }
    _, created = await storage.create_chat(buyer, seller, None, buyer, at(5))
    assert not created
    assert len(await events_of(pool, chat.id)) == 1


async def test_each_new_message_has_its_event_and_a_burst_one_reminder(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    results = await asyncio.gather(
        *(
            storage.add_message(draft(chat.id, buyer, f"m{i}", product_id=5 if i == 1 else None))
            for i in range(5)
        )
    )
    events = [e for e in await events_of(pool, chat.id) if e["type"] != "chat.created"]
    created = [e for e in events if e["type"] == "message.created"]
    reminders = [e for e in events if e["type"] == "message.unread"]
    assert [e["data"]["message"]["seq"] for e in created] == [1, 2, 3, 4, 5]
    by_id = {r.message.id: r.message for r in results}
    for event in created:
        data = event["data"]
        assert data["message"] == by_id[data["message"]["id"]].to_wire()
        assert data["recipientId"] == seller
        assert data["chat"]["id"] == chat.id
        assert data["chat"]["buyerId"] == buyer
        assert data["chat"]["sellerId"] == seller
        assert event["lane"] == chat.id
    assert len(reminders) == 1
    reminder = reminders[0]
    assert reminder["recipient_id"] == seller
    assert reminder["sender_id"] == buyer
    assert reminder["data"] is None
    assert (reminder["next_attempt_at"] - reminder["created_at"]).total_seconds() == 60.0


async def test_product_context_of_each_event_is_the_chat_s_at_that_message(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage, product_id=3)
    await send(storage, chat.id, buyer, "a")
    await send(storage, chat.id, buyer, "b", product_id=9)
    await send(storage, chat.id, buyer, "c")
    created = [e for e in await events_of(pool, chat.id) if e["type"] == "message.created"]
    assert [e["data"]["chat"]["productId"] for e in created] == [3, 9, 9]


async def test_repeated_client_id_writes_no_second_event(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    first = await send(storage, chat.id, buyer, "hi", client_message_id="c-1")
    repeat = await send(storage, chat.id, buyer, "hi", client_message_id="c-1")
    assert repeat.id == first.id
    created = [e for e in await events_of(pool, chat.id) if e["type"] == "message.created"]
    assert len(created) == 1


async def test_a_read_drops_the_pending_reminder_and_the_next_message_schedules_one(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    first = await send(storage, chat.id, buyer, "one")
    await storage.mark_read(chat.id, seller, first.id, at(10))
    await send(storage, chat.id, buyer, "two")
    reminders = [e for e in await events_of(pool, chat.id) if e["type"] == "message.unread"]
    assert [(r["status"], r["message_seq"]) for r in reminders] == [
        ("cancelled", 1),
        ("pending", 2),
    ]


async def test_without_a_webhook_url_nothing_is_written(pool: asyncpg.Pool) -> None:
    for group in (True, False):
        off = PostgresStorage(pool, DB_TIMEOUT_S, group_commit=group)
        chat, buyer, _ = await new_chat(off)
        await send(off, chat.id, buyer, "quiet")
        assert await events_of(pool, chat.id) == []


async def test_a_row_the_database_refuses_leaves_no_event_and_the_others_keep_theirs(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    results = await asyncio.gather(
        storage.add_message(draft(chat.id, buyer, "first")),
        storage.add_message(draft(chat.id, buyer, "bad\x00row")),
        storage.add_message(draft(chat.id, buyer, "third")),
        return_exceptions=True,
    )
    assert isinstance(results[1], Exception)
    created = [e for e in await events_of(pool, chat.id) if e["type"] == "message.created"]
    assert sorted(e["data"]["message"]["text"] for e in created) == ["first", "third"]
    assert [e["data"]["message"]["seq"] for e in created] == [1, 2]
