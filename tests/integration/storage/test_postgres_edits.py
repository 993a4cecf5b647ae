"""Edits and deletes on PostgreSQL: the chat's revision counter through new messages, edits and
deletes (also when they race in one chat), the revisions and originals kept for moderators,
tombstones, unread counts without deleted messages, sync's `changed`, and their outbox events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import timedelta

import asyncpg
import pytest

from marketplace_chat.edits import may_delete, may_edit
from marketplace_chat.errors import EditWindowClosed, Forbidden, NotFound
from marketplace_chat.models import Message, Moderation
from marketplace_chat.storage.base import Changed, EventPolicy, Revision, Target
from marketplace_chat.storage.outbox import OutboxStore
from marketplace_chat.storage.outbox_sql import EVENT_DATA
from marketplace_chat.storage.postgres import PostgresStorage

from ..conftest import DB_TIMEOUT_S
from ..helpers import at, new_chat, send

pytestmark = pytest.mark.integration

WINDOW_S = 900.0


def anyone(_: Target) -> bool:
    return True


@pytest.fixture(params=[True, False], ids=["group-commit", "single"])
def storage(pool: asyncpg.Pool, request: pytest.FixtureRequest) -> PostgresStorage:
    return PostgresStorage(pool, DB_TIMEOUT_S, group_commit=bool(request.param))


async def edit(
    storage: PostgresStorage, message: Message, text: str, seconds: float = 10
) -> Changed:
    revision = Revision(text)
    now = message.created_at + timedelta(seconds=seconds)
    result = await storage.edit_message(
        message.id,
        revision,
        now,
        lambda t: may_edit(t, message.sender_id, revision, now, WINDOW_S),
    )
    assert result is not None
    return result


async def delete(storage: PostgresStorage, message: Message, seconds: float = 20) -> Changed:
    result = await storage.delete_message(
        message.id,
        message.created_at + timedelta(seconds=seconds),
        lambda t: may_delete(t, message.sender_id),
    )
    assert result is not None
    return result


async def chat_rev(pool: asyncpg.Pool, chat_id: str) -> int:
    value = await pool.fetchval("SELECT rev FROM chat.chats WHERE id = $1", uuid.UUID(chat_id))
    assert isinstance(value, int)
    return value


async def revisions(pool: asyncpg.Pool, message_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT text FROM chat.message_revisions WHERE message_id = $1 ORDER BY id",
        uuid.UUID(message_id),
    )
    return [r["text"] for r in rows]


async def test_every_new_message_edit_and_delete_bumps_the_chat_rev(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    first = await send(storage, chat.id, buyer, "one")
    second = await send(storage, chat.id, seller, "two")
    assert (first.rev, second.rev) == (1, 2)

    edited = await edit(storage, first, "one, better")
    assert edited.changed
    assert edited.message.rev == 3
    assert edited.message.edited_at == first.created_at + timedelta(seconds=10)
    deleted = await delete(storage, second)
    assert deleted.message.rev == 4
    assert await chat_rev(pool, chat.id) == 4

    view = await storage.get_chat(chat.id, buyer)
    assert view is not None
    assert view.rev == 4
    assert view.last_message == deleted.message
    assert (await storage.history(chat.id, None, None, 10)).messages == [
        edited.message,
        deleted.message,
    ]


async def test_an_edit_keeps_the_previous_original_and_masks_only_when_told(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    message = await send(storage, chat.id, buyer, "first words")
    masked = Revision("call [hidden]", Moderation("masked", ("phone",)), "call 89161234567")
    now = at(30)
    result = await storage.edit_message(message.id, masked, now, anyone)
    assert result is not None
    assert result.message.text == "call [hidden]"
    assert result.message.moderation == Moderation("masked", ("phone",))
    await edit(storage, result.message, "plain again", seconds=40)

    assert await revisions(pool, message.id) == ["first words", "call 89161234567"]
    row = await pool.fetchrow(
        "SELECT text, original_text, moderation_action FROM chat.messages WHERE id = $1",
        uuid.UUID(message.id),
    )
    assert row is not None
    assert dict(row) == {"text": "plain again", "original_text": None, "moderation_action": None}


async def test_delete_leaves_a_tombstone_with_the_original_kept(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    message = await send(storage, chat.id, buyer, "my number")
    masked = Revision("[hidden]", Moderation("masked", ("phone",)), "89161234567")
    await storage.edit_message(message.id, masked, at(5), anyone)

    result = await delete(storage, message)

    tombstone = result.message
    assert (tombstone.text, tombstone.moderation, tombstone.seq) == ("", None, 1)
    assert tombstone.deleted_at == message.created_at + timedelta(seconds=20)
    row = await pool.fetchrow(
        "SELECT original_text, moderation_categories FROM chat.messages WHERE id = $1",
        uuid.UUID(message.id),
    )
    assert row is not None
    assert dict(row) == {"original_text": "89161234567", "moderation_categories": None}
    assert await revisions(pool, message.id) == ["my number"]


async def test_deleting_twice_changes_nothing(storage: PostgresStorage, pool: asyncpg.Pool) -> None:
    chat, buyer, _ = await new_chat(storage)
    message = await send(storage, chat.id, buyer)
    first = await delete(storage, message)
    again = await delete(storage, message, seconds=99)
    assert not again.changed
    assert again.message == first.message
    assert await chat_rev(pool, chat.id) == 2


async def test_a_deleted_message_is_not_edited_and_the_rules_refuse_before_any_write(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    message = await send(storage, chat.id, buyer)
    with pytest.raises(Forbidden):
        await storage.edit_message(
            message.id,
            Revision("x"),
            at(1),
            lambda t: may_edit(t, seller, Revision("x"), at(1), WINDOW_S),
        )
    with pytest.raises(EditWindowClosed):
        await edit(storage, message, "late", seconds=WINDOW_S)
    assert await chat_rev(pool, chat.id) == 1
    assert await revisions(pool, message.id) == []

    await delete(storage, message)
    with pytest.raises(NotFound):
        await edit(storage, message, "back")
    assert await chat_rev(pool, chat.id) == 2
    assert await storage.edit_message(str(uuid.uuid4()), Revision("x"), at(1), anyone) is None
    assert await storage.delete_message(str(uuid.uuid4()), at(1), anyone) is None


async def test_concurrent_sends_edits_and_deletes_in_one_chat_keep_rev_consistent(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    base = [await send(storage, chat.id, buyer, f"base {i}") for i in range(10)]

    async def change(i: int) -> None:
        if i % 3 == 0:
            await send(storage, chat.id, seller, f"new {i}")
        elif i % 3 == 1:
            # the delete of the same message may commit first: then there is nothing to edit
            with contextlib.suppress(NotFound):
                await edit(storage, base[i % 10], f"edit {i}")
        else:
            await delete(storage, base[i % 10])

    await asyncio.gather(*(change(i) for i in range(30)))

    rows = await pool.fetch(
        "SELECT seq, rev, edited_at IS NOT NULL AS edited, deleted_at IS NOT NULL AS deleted "
        "FROM chat.messages WHERE chat_id = $1 ORDER BY seq",
        uuid.UUID(chat.id),
    )
    revs = [r["rev"] for r in rows]
    total = await chat_rev(pool, chat.id)
    assert [r["seq"] for r in rows] == list(range(1, 21))
    assert len(set(revs)) == len(revs), "two messages share a revision"
    assert max(revs) == total
    edits = 0
    for m in base:
        edits += len(await revisions(pool, m.id))
    deleted = sum(r["deleted"] for r in rows)
    # every change took exactly one revision: 20 messages, each edit and each first delete
    assert total == 20 + edits + deleted


async def test_racing_deletes_of_one_message_make_one_change(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    message = await send(storage, chat.id, buyer)
    results = await asyncio.gather(*(delete(storage, message) for _ in range(8)))
    assert sum(r.changed for r in results) == 1
    assert await chat_rev(pool, chat.id) == 2


async def test_deleted_messages_are_not_unread(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    sent = [await send(storage, chat.id, buyer, f"m{i}") for i in range(4)]
    await storage.mark_read(chat.id, seller, sent[0].id, at(1))
    await delete(storage, sent[0])  # already read: changes nothing
    await delete(storage, sent[2])
    await send(storage, chat.id, seller, "mine")

    view = await storage.get_chat(chat.id, seller)
    assert view is not None
    assert view.unread_count == 2
    [listed] = [c for c in (await storage.list_chats(seller, 10, None)).chats if c.id == chat.id]
    assert listed.unread_count == 2
    state = await OutboxStore(pool, DB_TIMEOUT_S).reminder_state(chat.id, seller)
    assert state is not None
    assert state.unread_count == 2


async def test_sync_with_a_rev_answers_the_changed_messages_up_to_the_seq(
    storage: PostgresStorage,
) -> None:
    chat, buyer, _ = await new_chat(storage)
    sent = [await send(storage, chat.id, buyer, f"m{i}") for i in range(6)]
    seen_rev = 6
    await edit(storage, sent[1], "m1 edited")
    await delete(storage, sent[3])
    await edit(storage, sent[5], "m5 edited")  # after the given seq: comes in `messages`
    await edit(storage, sent[0], "m0 edited")

    [answer] = await storage.sync(buyer, {chat.id: 4}, 50, {chat.id: seen_rev})
    assert [m.seq for m in answer.messages] == [5, 6]
    assert answer.messages[1].text == "m5 edited"
    assert answer.changed is not None
    assert [(m.seq, m.text) for m in answer.changed] == [
        (2, "m1 edited"),
        (4, ""),
        (1, "m0 edited"),
    ]
    assert [m.rev for m in answer.changed] == [7, 8, 10]
    assert (answer.changed_has_more, answer.rev) == (False, 10)

    [page] = await storage.sync(buyer, {chat.id: 4}, 2, {chat.id: seen_rev})
    assert page.changed is not None
    assert [m.seq for m in page.changed] == [2, 4]
    assert page.changed_has_more
    [rest] = await storage.sync(buyer, {chat.id: 4}, 2, {chat.id: page.changed[-1].rev})
    assert rest.changed is not None
    assert [m.seq for m in rest.changed] == [1]
    assert not rest.changed_has_more

    [caught_up] = await storage.sync(buyer, {chat.id: 6}, 50, {chat.id: 10})
    assert (caught_up.messages, caught_up.changed, caught_up.rev) == ([], [], 10)


async def test_sync_mixes_the_plain_and_the_revision_form(storage: PostgresStorage) -> None:
    chat, buyer, _ = await new_chat(storage)
    other, _, _ = await new_chat(storage)
    mine = await storage.create_chat(buyer, other.seller_id, None, buyer, at(0))
    m = await send(storage, chat.id, buyer, "a")
    await edit(storage, m, "a2")
    n = await send(storage, mine[0].id, buyer, "b")
    await edit(storage, n, "b2")

    answers = {
        s.chat_id: s
        for s in await storage.sync(buyer, {chat.id: 1, mine[0].id: 1}, 50, {mine[0].id: 0})
    }
    assert answers[chat.id].changed is None
    assert answers[chat.id].rev is None
    assert [x.text for x in answers[mine[0].id].changed or []] == ["b2"]
    assert answers[mine[0].id].rev == 2


async def test_changes_write_their_events_when_the_outbox_is_on(pool: asyncpg.Pool) -> None:
    storage = PostgresStorage(pool, DB_TIMEOUT_S, group_commit=False, events=EventPolicy(True))
    chat, buyer, _ = await new_chat(storage)
    message = await send(storage, chat.id, buyer, "hello")
    edited = await edit(storage, message, "hello there")
    deleted = await delete(storage, message)
    await delete(storage, message)  # a second delete writes no event

    rows = await pool.fetch(
        f"SELECT o.type, o.lane, ({EVENT_DATA})::text AS data, o.created_at FROM chat.outbox o "
        "WHERE o.chat_id = $1 AND o.type LIKE 'message.%' AND o.type <> 'message.unread' "
        "ORDER BY o.pos",
        uuid.UUID(chat.id),
    )
    assert [r["type"] for r in rows] == ["message.created", "message.updated", "message.deleted"]
    assert {str(r["lane"]) for r in rows} == {chat.id}
    # message.created still says what was created: its JSON was kept before the edit
    assert json.loads(rows[0]["data"])["message"] == message.to_wire()
    assert json.loads(rows[1]["data"]) == {"message": edited.message.to_wire()}
    assert json.loads(rows[2]["data"]) == {"message": deleted.message.to_wire()}
    assert rows[1]["created_at"] == edited.message.edited_at


async def test_without_the_outbox_changes_write_no_event(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    message = await send(storage, chat.id, buyer)
    await edit(storage, message, "changed")
    await delete(storage, message)
    count = await pool.fetchval(
        "SELECT count(*) FROM chat.outbox WHERE chat_id = $1", uuid.UUID(chat.id)
    )
    assert count == 0
