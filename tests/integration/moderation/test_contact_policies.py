"""Contact policies on real PostgreSQL and Redis: the flagged event in the send's own statement
(group commit and single path), attempts kept and paged, per-chat policies, a message's original
and revisions for moderators, the split-number memory in Redis, and the policy announcements."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from marketplace_chat.contact_guard import ContactGuard
from marketplace_chat.contact_policy import Policy
from marketplace_chat.contacts import ContactDetector
from marketplace_chat.errors import ContactNotAllowed
from marketplace_chat.models import Moderation
from marketplace_chat.moderation import (
    AttemptsQuery,
    ContactAttempt,
    ModerationAdmin,
    PolicyChange,
)
from marketplace_chat.realtime.contact_policies import ContactPolicies, PolicyAnnouncer
from marketplace_chat.realtime.recent_texts import RecentTexts, recent_key
from marketplace_chat.storage.base import EventPolicy
from marketplace_chat.storage.moderation import ModerationStore
from marketplace_chat.storage.outbox_sql import EVENT_DATA
from marketplace_chat.storage.postgres import PostgresStorage

from ..conftest import DB_TIMEOUT_S
from ..helpers import FakeClock, at, draft, new_chat

pytestmark = pytest.mark.integration

ON = EventPolicy(enabled=True, reminder_after_s=60.0)


@pytest.fixture(params=[True, False], ids=["group-commit", "single"])
def storage(pool: asyncpg.Pool, request: pytest.FixtureRequest) -> PostgresStorage:
    return PostgresStorage(pool, DB_TIMEOUT_S, group_commit=bool(request.param), events=ON)


@pytest.fixture
def store(pool: asyncpg.Pool) -> ModerationStore:
    return ModerationStore(pool, DB_TIMEOUT_S)


class NoAnnouncements:
    async def changed(self, chat_id: str) -> None:
        raise AssertionError("reading attempts announces nothing")


async def events_of(pool: asyncpg.Pool, chat_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT o.type, ({EVENT_DATA})::text AS data FROM chat.outbox o WHERE o.chat_id = $1 "
        "AND o.type <> 'message.unread' ORDER BY o.pos",
        chat_id,
    )
    return [{"type": r["type"], "data": json.loads(r["data"])} for r in rows]


async def test_a_flagged_message_writes_message_flagged_in_its_own_statement(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    flagged = dataclasses.replace(
        draft(chat.id, buyer, "call 8 916 123 45 67"),
        moderation=Moderation("flagged", ("phone",)),
    )
    plain, masked = (
        draft(chat.id, buyer, "hello"),
        dataclasses.replace(
            draft(chat.id, buyer, "mail [hidden]"),
            moderation=Moderation("masked", ("email",)),
            original_text="mail ivan@mail.ru",
        ),
    )
    results = await asyncio.gather(*(storage.add_message(m) for m in (flagged, plain, masked)))
    events = await events_of(pool, chat.id)
    types = [e["type"] for e in events]
    assert types.count("message.created") == 3
    # In its chat's lane the report comes after the message it is about.
    assert types.index("message.flagged") > next(
        i for i, e in enumerate(events)
        if e["type"] == "message.created" and e["data"]["message"]["id"] == results[0].message.id
    )  # fmt: skip
    [report] = [e["data"] for e in events if e["type"] == "message.flagged"]
    assert report == {"message": results[0].message.to_wire(), "categories": ["phone"]}
    assert report["message"]["text"] == "call 8 916 123 45 67"
    assert report["message"]["moderation"] == {"action": "flagged", "categories": ["phone"]}
    # message.created carries what participants see: the masked text, never the original.
    assert "ivan@mail.ru" not in json.dumps(events)
    row = await pool.fetchrow(
        "SELECT text, original_text FROM chat.messages WHERE id = $1", results[2].message.id
    )
    assert row is not None
    assert dict(row) == {"text": "mail [hidden]", "original_text": "mail ivan@mail.ru"}


async def test_a_send_that_fails_writes_no_flagged_event(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    await pool.execute("UPDATE chat.chats SET blocked = true WHERE id = $1", chat.id)
    flagged = dataclasses.replace(
        draft(chat.id, buyer, "8 916 123 45 67"), moderation=Moderation("flagged", ("phone",))
    )
    with pytest.raises(Exception, match="blocked"):
        await storage.add_message(flagged)
    assert [e["type"] for e in await events_of(pool, chat.id)] == ["chat.created"]


async def test_a_retried_refusal_is_kept_once(
    storage: PostgresStorage, store: ModerationStore, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)

    def attempt(sender: int, client_id: str | None, n: int) -> ContactAttempt:
        return ContactAttempt(
            str(uuid.uuid4()), chat.id, sender, f"t{n}", ("phone",), at(n), client_id
        )

    for n in range(3):  # the same send, retried: one attempt
        await store.add_contact_attempt(attempt(buyer, "cm-1", n))
    await store.add_contact_attempt(attempt(buyer, "cm-2", 3))  # another send of the buyer
    await store.add_contact_attempt(attempt(seller, "cm-1", 4))  # the seller's own cm-1
    for n in (5, 6):  # without a client id, nothing says two sends are one
        await store.add_contact_attempt(attempt(buyer, None, n))
    rows = await pool.fetch(
        "SELECT sender_id, client_message_id, text FROM chat.contact_attempts "
        "WHERE chat_id = $1 ORDER BY created_at",
        chat.id,
    )
    assert [tuple(r) for r in rows] == [
        (buyer, "cm-1", "t0"),
        (buyer, "cm-2", "t3"),
        (seller, "cm-1", "t4"),
        (buyer, None, "t5"),
        (buyer, None, "t6"),
    ]


async def test_attempts_are_kept_and_paged_newest_first(
    storage: PostgresStorage, store: ModerationStore
) -> None:
    chat, buyer, _seller = await new_chat(storage)
    for i in range(5):
        await store.add_contact_attempt(
            ContactAttempt(str(uuid.uuid4()), chat.id, buyer, f"t{i}", ("phone",), at(i))
        )
    admin = ModerationAdmin(store, NoAnnouncements(), "mask")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await admin.attempts(
            AttemptsQuery.model_validate({"chatId": chat.id, "limit": 2, "before": cursor})
        )
        seen += [a["text"] for a in page["attempts"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ["t4", "t3", "t2", "t1", "t0"]
    other, _, _ = await new_chat(storage)
    empty = await admin.attempts(AttemptsQuery.model_validate({"chatId": other.id}))
    assert empty == {"attempts": [], "nextCursor": None}


async def test_the_guard_keeps_a_blocked_attempt_and_stores_no_message(
    storage: PostgresStorage, store: ModerationStore, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    assert await store.set_contact_policy(chat.id, "block")
    guard = ContactGuard(
        ContactDetector(), Policy.MASK, ContactPolicies(store.contact_policy), store, None,
        FakeClock(),
    )  # fmt: skip
    with pytest.raises(ContactNotAllowed, match="phone"):
        await guard.check_send(chat.id, buyer, "звони 8 916 123 45 67")
    [attempt] = await store.contact_attempts(chat.id, 10, None)
    assert (attempt.sender_id, attempt.text, attempt.categories) == (
        buyer,
        "звони 8 916 123 45 67",
        ("phone",),
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM chat.messages WHERE chat_id = $1", chat.id) == 0
    )


async def test_a_chat_policy_is_set_reset_and_unknown_chats_are_refused(
    storage: PostgresStorage, store: ModerationStore
) -> None:
    chat, _, _ = await new_chat(storage)
    assert await store.contact_policy(chat.id) is None
    assert await store.set_contact_policy(chat.id, "off")
    assert await store.contact_policy(chat.id) == "off"
    assert await store.set_contact_policy(chat.id, None)
    assert await store.contact_policy(chat.id) is None
    assert not await store.set_contact_policy(str(uuid.uuid4()), "flag")


async def test_moderators_see_the_original_and_the_revisions_oldest_first(
    storage: PostgresStorage, store: ModerationStore, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    sent = await storage.add_message(
        dataclasses.replace(
            draft(chat.id, buyer, "mail [hidden]"),
            moderation=Moderation("masked", ("email",)),
            original_text="mail ivan@mail.ru",
        )
    )
    plain = await storage.add_message(draft(chat.id, buyer, "hello"))
    await pool.executemany(
        "INSERT INTO chat.message_revisions (message_id, text, at) VALUES ($1, $2, $3)",
        [(sent.message.id, "first", at(1)), (sent.message.id, "second", at(2))],
    )
    found = await store.moderated_message(sent.message.id)
    assert found is not None
    wire = found.to_wire()
    assert {k: wire[k] for k in ("text", "original", "moderation")} == {
        "text": "mail [hidden]",
        "original": "mail ivan@mail.ru",
        "moderation": {"action": "masked", "categories": ["email"]},
    }
    assert wire["revisions"] == [
        {"text": "first", "at": "2026-11-26T01:10:33.123Z"},
        {"text": "second", "at": "2026-11-26T01:10:34.123Z"},
    ]
    unchanged = await store.moderated_message(plain.message.id)
    assert unchanged is not None
    assert (unchanged.original, unchanged.revisions) == ("hello", ())
    assert await store.moderated_message(str(uuid.uuid4())) is None


async def test_recent_texts_keep_two_within_the_window_and_a_retry_once(
    redis: aioredis.Redis,
) -> None:
    recent, clock = RecentTexts(redis), FakeClock()
    chat_id, sender = str(uuid.uuid4()), 42
    assert await recent.push(chat_id, sender, "8 9", "a", clock.now()) == []
    assert await recent.push(chat_id, sender, "16 12", "b", clock.now()) == ["8 9"]
    # A retry of "b" sees what came before its first attempt, and is not remembered twice.
    assert await recent.push(chat_id, sender, "16 12", "b", clock.now()) == ["8 9"]
    assert await recent.push(chat_id, sender, "3 45", None, clock.now()) == ["8 9", "16 12"]
    assert await recent.push(chat_id, sender, "67", None, clock.now()) == ["16 12", "3 45"]
    assert await recent.push(chat_id, sender + 1, "x", None, clock.now()) == []
    clock.advance(61)
    assert await recent.push(chat_id, sender, "1", None, clock.now()) == []
    ttl = await redis.pttl(recent_key(chat_id, sender))
    assert 0 < ttl <= 60_000


async def test_recent_texts_pushed_together_share_one_round_trip_in_order(
    redis: aioredis.Redis,
) -> None:
    recent, clock = RecentTexts(redis), FakeClock()
    chat_id, other_chat = str(uuid.uuid4()), str(uuid.uuid4())
    sends = [
        (chat_id, 7, "8 9", "a"),
        (other_chat, 7, "5", None),
        (chat_id, 7, "16 12", "b"),
        (chat_id, 7, "16 12", "b"),  # a retry inside the same run
        (chat_id, 7, "3 45", None),
    ]
    answers = await asyncio.gather(
        *(recent.push(c, s, t, cid, clock.now()) for c, s, t, cid in sends)
    )
    assert answers == [[], [], ["8 9"], ["8 9"], ["8 9", "16 12"]]
    assert await redis.llen(recent_key(chat_id, 7)) == 2


async def test_an_announced_change_reaches_every_listener(
    redis: aioredis.Redis, storage: PostgresStorage, store: ModerationStore
) -> None:
    chat, _, _ = await new_chat(storage)
    channel = f"test-contact-policy-{uuid.uuid4()}"
    here = ContactPolicies(store.contact_policy)
    there = ContactPolicies(store.contact_policy)
    listening = True
    there_announcer = PolicyAnnouncer(redis, there, channel)
    listener = asyncio.ensure_future(there_announcer.listen(lambda: listening))
    try:
        assert await there.get(chat.id) is None
        assert await here.get(chat.id) is None
        admin = ModerationAdmin(store, PolicyAnnouncer(redis, here, channel), "mask")
        answer = await admin.set_policy(
            PolicyChange.model_validate({"chatId": chat.id, "policy": "block"})
        )
        assert answer == {"chatId": chat.id, "policy": "block", "effective": "block"}
        assert await here.get(chat.id) == "block"  # this node: at once
        for _ in range(250):  # another node: when the news arrives (5 s at most)
            if await there.get(chat.id) == "block":
                break
            await asyncio.sleep(0.02)
        assert await there.get(chat.id) == "block"
    finally:
        listening = False
        await listener
