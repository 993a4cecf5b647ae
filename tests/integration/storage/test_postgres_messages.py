"""Sending: seq numbering, client message ids and product context, on both write paths (group
commit, the default, and one transaction per message) and across several nodes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace

import asyncpg
import pytest

from marketplace_chat.errors import ChatError, ErrorCode, NotFound
from marketplace_chat.models import Message, Moderation, SendResult
from marketplace_chat.storage.postgres import PostgresStorage

from ..conftest import DB_TIMEOUT_S
from ..helpers import T0, at, draft, new_chat, send

pytestmark = pytest.mark.integration

NodeFactory = Callable[[], PostgresStorage]


@pytest.fixture(params=[True, False], ids=["group-commit", "single"])
def group_commit(request: pytest.FixtureRequest) -> bool:
    flag = request.param
    assert isinstance(flag, bool)
    return flag


@pytest.fixture
def storage(pool: asyncpg.Pool, group_commit: bool) -> PostgresStorage:
    return PostgresStorage(pool, DB_TIMEOUT_S, group_commit=group_commit)


@pytest.fixture
def nodes(pool: asyncpg.Pool, group_commit: bool) -> NodeFactory:
    """Another node's storage: its own committer and caches, the same database."""
    return lambda: PostgresStorage(pool, DB_TIMEOUT_S, group_commit=group_commit)


async def stored_seqs(pool: asyncpg.Pool, chat_id: str) -> list[int]:
    rows = await pool.fetch(
        "SELECT seq FROM chat.messages WHERE chat_id = $1 ORDER BY seq", uuid.UUID(chat_id)
    )
    return [row["seq"] for row in rows]


async def last_seq(pool: asyncpg.Pool, chat_id: str) -> int:
    value = await pool.fetchval("SELECT last_seq FROM chat.chats WHERE id = $1", uuid.UUID(chat_id))
    assert isinstance(value, int)
    return value


async def test_messages_are_numbered_1_2_3(storage: PostgresStorage, pool: asyncpg.Pool) -> None:
    chat, buyer, seller = await new_chat(storage)
    sent = [
        await send(storage, chat.id, buyer, "one"),
        await send(storage, chat.id, seller, "two"),
        await send(storage, chat.id, buyer, "three"),
    ]
    assert [m.seq for m in sent] == [1, 2, 3]
    assert await stored_seqs(pool, chat.id) == [1, 2, 3]
    assert await last_seq(pool, chat.id) == 3


async def test_message_is_stored_as_given(storage: PostgresStorage) -> None:
    chat, buyer, _ = await new_chat(storage)
    message = draft(chat.id, buyer, "héllo 😀", client_message_id="c-1", product_id=9, when=at(3))
    result = await storage.add_message(message)
    assert result.created
    stored = result.message
    assert (stored.id, stored.chat_id, stored.sender_id) == (message.id, chat.id, buyer)
    assert (stored.text, stored.client_message_id, stored.product_id) == ("héllo 😀", "c-1", 9)
    assert stored.created_at == at(3)


async def test_each_chat_counts_its_own_seq(storage: PostgresStorage) -> None:
    first, buyer, _ = await new_chat(storage)
    second, other, _ = await new_chat(storage)
    await send(storage, first.id, buyer)
    await send(storage, first.id, buyer)
    assert (await send(storage, second.id, other)).seq == 1


async def test_concurrent_sends_get_gapless_seqs(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    results = await asyncio.gather(
        *(
            storage.add_message(draft(chat.id, buyer if n % 2 else seller, f"m{n}"))
            for n in range(50)
        )
    )
    assert all(r.created for r in results)
    assert sorted(r.message.seq for r in results) == list(range(1, 51))
    assert await stored_seqs(pool, chat.id) == list(range(1, 51))
    assert await last_seq(pool, chat.id) == 50


async def test_repeated_client_message_id_returns_first_message_without_new_row(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    first = await storage.add_message(draft(chat.id, buyer, "one", client_message_id="c-1"))
    again = await storage.add_message(
        draft(chat.id, buyer, "two", client_message_id="c-1", when=at(60))
    )
    assert first.created
    assert not again.created
    assert again.message == first.message
    assert await stored_seqs(pool, chat.id) == [1]
    assert (await send(storage, chat.id, buyer)).seq == 2


async def test_client_message_id_is_scoped_to_sender_and_chat(storage: PostgresStorage) -> None:
    chat, buyer, seller = await new_chat(storage)
    other_chat, _, _ = await new_chat(storage)
    mine = await storage.add_message(draft(chat.id, buyer, client_message_id="c-1"))
    theirs = await storage.add_message(draft(chat.id, seller, client_message_id="c-1"))
    assert theirs.created
    assert theirs.message.id != mine.message.id
    # Not a participant there: storage does not judge that, it only keys the id per chat.
    elsewhere = await storage.add_message(draft(other_chat.id, buyer, client_message_id="c-1"))
    assert elsewhere.created


async def test_messages_without_client_id_are_never_merged(storage: PostgresStorage) -> None:
    chat, buyer, _ = await new_chat(storage)
    first = await storage.add_message(draft(chat.id, buyer, "same"))
    second = await storage.add_message(draft(chat.id, buyer, "same"))
    assert second.created
    assert second.message.id != first.message.id


async def test_racing_identical_sends_store_one_message(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    results = await asyncio.gather(
        *(
            storage.add_message(draft(chat.id, buyer, "x", client_message_id="dup"))
            for _ in range(20)
        )
    )
    assert [r.created for r in results].count(True) == 1
    assert len({r.message.id for r in results}) == 1
    assert {r.message.seq for r in results} == {1}
    assert await stored_seqs(pool, chat.id) == [1]
    assert await last_seq(pool, chat.id) == 1
    assert (await send(storage, chat.id, buyer)).seq == 2


async def test_seq_stays_gapless_when_duplicates_race_with_new_messages(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    sends = [draft(chat.id, buyer, "dup", client_message_id="dup") for _ in range(10)]
    sends += [draft(chat.id, seller, f"m{n}", client_message_id=f"s-{n}") for n in range(10)]
    sends += [draft(chat.id, buyer, "dup2", client_message_id="dup2") for _ in range(10)]
    results = await asyncio.gather(*(storage.add_message(s) for s in sends))
    assert [r.created for r in results].count(True) == 12
    assert await stored_seqs(pool, chat.id) == list(range(1, 13))
    assert await last_seq(pool, chat.id) == 12


async def test_message_to_an_unknown_chat_is_not_found(storage: PostgresStorage) -> None:
    chat_id = str(uuid.uuid4())
    with pytest.raises(NotFound, match=r"^chatId: "):
        await storage.add_message(draft(chat_id, 1))
    with pytest.raises(NotFound, match=r"^chatId: "):
        await storage.add_message(draft(chat_id, 1, client_message_id="c-1"))


async def test_message_product_id_upserts_the_chat_context(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)

    async def context() -> int | None:
        seen = await storage.get_chat(chat.id, buyer)
        assert seen is not None
        return seen.product_id

    await send(storage, chat.id, buyer, product_id=7)
    assert await context() == 7
    await send(storage, chat.id, seller)
    assert await context() == 7
    await send(storage, chat.id, seller, product_id=8)
    assert await context() == 8
    rows = await pool.fetchval(
        "SELECT count(*) FROM chat.chat_context WHERE chat_id = $1", uuid.UUID(chat.id)
    )
    assert rows == 1


async def test_repeated_client_message_id_does_not_move_the_context(
    storage: PostgresStorage,
) -> None:
    chat, buyer, _ = await new_chat(storage, product_id=1)
    await send(storage, chat.id, buyer, client_message_id="c-1")
    await send(storage, chat.id, buyer, client_message_id="c-1", product_id=2, when=at(30))
    seen = await storage.get_chat(chat.id, buyer)
    assert seen is not None
    assert (seen.product_id, seen.updated_at) == (1, T0)


async def test_sending_moves_the_chat_to_the_top_of_both_lists(storage: PostgresStorage) -> None:
    older, buyer, seller = await new_chat(storage, when=at(0))
    newer, _ = await storage.create_chat(buyer, seller + 1, None, buyer, at(5))
    assert [c.id for c in (await storage.list_chats(buyer, 10, None)).chats] == [
        newer.id,
        older.id,
    ]
    await send(storage, older.id, seller, when=at(10))
    assert [c.id for c in (await storage.list_chats(buyer, 10, None)).chats] == [
        older.id,
        newer.id,
    ]


async def wait_until_waiting_on_locks(pool: asyncpg.Pool, application: str, count: int) -> None:
    """Until `count` backends of `application` wait on a lock (polling, not a fixed sleep)."""
    for _ in range(500):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = $1 AND wait_event_type = 'Lock'",
            application,
        )
        if waiting == count:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"{count} sends never queued behind the chat row lock")


async def test_duplicate_that_loses_the_race_after_its_snapshot_returns_the_winner(
    storage: PostgresStorage, pool: asyncpg.Pool, database_url: str, group_commit: bool
) -> None:
    """Five nodes each read "no such client id yet", then queue for the chat row: four lose."""
    chat, buyer, _ = await new_chat(storage)
    application = f"race-{uuid.uuid4().hex[:12]}"
    racers = await asyncpg.create_pool(
        database_url, min_size=5, max_size=5, server_settings={"application_name": application}
    )
    try:
        async with pool.acquire() as blocker, blocker.transaction():
            await blocker.execute(
                "SELECT 1 FROM chat.chats WHERE id = $1 FOR UPDATE", uuid.UUID(chat.id)
            )
            sends = [
                asyncio.ensure_future(
                    PostgresStorage(racers, DB_TIMEOUT_S, group_commit=group_commit).add_message(
                        draft(chat.id, buyer, "x", client_message_id="dup")
                    )
                )
                for _ in range(5)
            ]
            await wait_until_waiting_on_locks(pool, application, 5)
        results = await asyncio.gather(*sends)
    finally:
        await racers.close()
    assert [r.created for r in results].count(True) == 1
    assert len({r.message.id for r in results}) == 1
    assert await stored_seqs(pool, chat.id) == [1]
    assert await last_seq(pool, chat.id) == 1
    assert (await send(storage, chat.id, buyer)).seq == 2


async def test_sends_from_several_nodes_get_gapless_seqs(
    storage: PostgresStorage, pool: asyncpg.Pool, nodes: NodeFactory
) -> None:
    chat, buyer, seller = await new_chat(storage)
    writers = [nodes() for _ in range(3)]
    results = await asyncio.gather(
        *(
            writers[n % 3].add_message(draft(chat.id, buyer if n % 2 else seller, f"m{n}"))
            for n in range(51)
        )
    )
    assert sorted(r.message.seq for r in results) == list(range(1, 52))
    assert await stored_seqs(pool, chat.id) == list(range(1, 52))
    assert await last_seq(pool, chat.id) == 51


async def test_identical_sends_racing_on_several_nodes_store_one_message(
    storage: PostgresStorage, pool: asyncpg.Pool, nodes: NodeFactory
) -> None:
    chat, buyer, seller = await new_chat(storage)
    writers = [nodes() for _ in range(4)]
    sends = [draft(chat.id, buyer, "dup", client_message_id="dup") for _ in range(20)]
    sends += [draft(chat.id, seller, f"m{n}") for n in range(8)]
    results = await asyncio.gather(
        *(writers[n % 4].add_message(message) for n, message in enumerate(sends))
    )
    duplicates = results[:20]
    assert [r.created for r in duplicates].count(True) == 1
    assert len({r.message.id for r in duplicates}) == 1
    assert await stored_seqs(pool, chat.id) == list(range(1, 10))
    assert await last_seq(pool, chat.id) == 9


async def test_one_group_commit_batch_settles_each_send_in_arrival_order(
    pool: asyncpg.Pool,
) -> None:
    storage = PostgresStorage(pool, DB_TIMEOUT_S, group_commit=True)
    first, buyer, seller = await new_chat(storage)
    second, other, _ = await new_chat(storage)
    earlier = await send(storage, first.id, buyer, "earlier", client_message_id="old")
    drafts = [
        draft(first.id, seller, "a1", product_id=7),
        draft(second.id, other, "b1"),
        draft(str(uuid.uuid4()), buyer, "nowhere"),
        draft(first.id, buyer, "again", client_message_id="old"),
        draft(first.id, buyer, "a2", client_message_id="new"),
        draft(first.id, buyer, "a2 again", client_message_id="new"),
        draft(second.id, other, "b2", product_id=3),
        draft(first.id, seller, "a3", product_id=8),
    ]
    results = await asyncio.gather(
        *(storage.add_message(d) for d in drafts), return_exceptions=True
    )
    a1, b1, nowhere, again, a2, a2_again, b2, a3 = results
    assert isinstance(nowhere, NotFound)
    assert isinstance(again, SendResult)
    assert (again.created, again.message) == (False, earlier)
    assert isinstance(a2, SendResult)
    assert isinstance(a2_again, SendResult)
    assert a2.created
    assert not a2_again.created
    assert a2_again.message == a2.message
    assert await stored_seqs(pool, first.id) == [1, 2, 3, 4]
    assert await stored_seqs(pool, second.id) == [1, 2]
    fresh = [r for r in (a1, b1, a2, b2, a3) if isinstance(r, SendResult)]
    assert all(r.created for r in fresh)
    assert len(fresh) == 5
    by_text = {r.message.text: r.message for r in fresh}
    assert (by_text["a1"].seq, by_text["a2"].seq, by_text["a3"].seq) == (2, 3, 4)
    assert (by_text["b1"].seq, by_text["b2"].seq) == (1, 2)
    seen_first = await storage.get_chat(first.id, buyer)
    seen_second = await storage.get_chat(second.id, other)
    assert seen_first is not None
    assert seen_second is not None
    assert (seen_first.product_id, seen_second.product_id) == (8, 3)


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param("poison\u0000", id="nul-refused-by-postgresql"),
        pytest.param("\ud800", id="lone-surrogate-refused-by-the-driver"),
    ],
)
async def test_a_row_the_database_refuses_fails_alone_and_the_rest_of_its_batch_commits(
    pool: asyncpg.Pool, poison: str
) -> None:
    """Storage takes what it is given (the wire refuses such text first): one row the database
    refuses, in a batch beside valid rows of other chats, must not fail them."""
    storage = PostgresStorage(pool, DB_TIMEOUT_S, group_commit=True)
    chats = [await new_chat(storage) for _ in range(4)]
    drafts = [
        draft(chat.id, buyer if n % 2 else seller, f"m{n}", client_message_id=f"c-{n}")
        for n in range(5)
        for chat, buyer, seller in chats
    ]
    bad_chat, bad_sender, _ = chats[1]
    drafts.insert(7, draft(bad_chat.id, bad_sender, poison, client_message_id="bad"))
    drafts.insert(15, draft(bad_chat.id, bad_sender, poison))

    results = await asyncio.gather(
        *(storage.add_message(d) for d in drafts), return_exceptions=True
    )

    failures = {n for n, r in enumerate(results) if not isinstance(r, SendResult)}
    assert failures == {7, 15}, results
    for n in failures:
        error = results[n]
        assert isinstance(error, ChatError)
        assert (error.code, error.message) == (
            ErrorCode.INTERNAL_ERROR,
            "The database refused the request",
        )
    committed = [r for r in results if isinstance(r, SendResult)]
    assert all(r.created for r in committed)
    for chat, _, _ in chats:
        # Every valid row committed, gapless, in arrival order: the bad rows took no seq.
        assert await stored_seqs(pool, chat.id) == [1, 2, 3, 4, 5]
        assert await last_seq(pool, chat.id) == 5
        mine = sorted((r.message for r in committed if r.message.chat_id == chat.id), key=seq_of)
        assert [(m.seq, m.text) for m in mine] == [(n + 1, f"m{n}") for n in range(5)]


def seq_of(message: Message) -> int:
    return message.seq


async def test_each_new_message_is_one_revision_of_its_chat(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    sent = await asyncio.gather(*(send(storage, chat.id, buyer, f"m{i}") for i in range(5)))
    sent.append(await send(storage, chat.id, seller, "last"))
    assert sorted(m.rev for m in sent) == [1, 2, 3, 4, 5, 6]
    assert all(m.rev == m.seq for m in sent)
    seen = await storage.get_chat(chat.id, buyer)
    assert seen is not None
    assert seen.rev == 6
    assert seen.last_message is not None
    assert (seen.last_message.rev, seen.last_message.edited_at) == (6, None)


async def test_a_send_in_a_blocked_chat_is_refused_and_stores_nothing(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    kept = await send(storage, chat.id, buyer, "before", client_message_id="kept")
    other, other_buyer, _ = await new_chat(storage)
    await pool.execute("UPDATE chat.chats SET blocked = true WHERE id = $1", uuid.UUID(chat.id))
    results = await asyncio.gather(
        storage.add_message(draft(chat.id, seller, "after")),
        storage.add_message(draft(other.id, other_buyer, "elsewhere")),
        storage.add_message(draft(chat.id, buyer, "again", client_message_id="kept")),
        return_exceptions=True,
    )
    refused, elsewhere, repeat = results
    assert isinstance(refused, ChatError)
    assert refused.code is ErrorCode.BLOCKED
    assert isinstance(elsewhere, SendResult)
    assert elsewhere.created
    # a retry of a message stored before the block is still answered with that message
    assert isinstance(repeat, SendResult)
    assert (repeat.created, repeat.message) == (False, kept)
    assert await stored_seqs(pool, chat.id) == [1]
    seen = await storage.get_chat(chat.id, seller)
    assert seen is not None
    assert (seen.blocked, seen.rev) == (True, 1)


async def test_moderation_and_the_original_text_are_stored_with_the_message(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    masked = replace(
        draft(chat.id, buyer, "call [hidden]"),
        moderation=Moderation("masked", ("phone", "messenger")),
        original_text="call 8 999 123-45-67",
    )
    result = await storage.add_message(masked)
    assert result.message.moderation == Moderation("masked", ("phone", "messenger"))
    assert result.message.text == "call [hidden]"
    original = await pool.fetchval(
        "SELECT original_text FROM chat.messages WHERE id = $1", uuid.UUID(result.message.id)
    )
    assert original == "call 8 999 123-45-67"
    page = await storage.history(chat.id, None, None, 10)
    assert page.messages == [result.message]


async def test_a_connected_storage_commits_batches_on_its_own_generic_plan_sessions(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The group commit's writers have their own sessions, which keep the batch statement's
    one plan; a burst still commits gapless and in order through them."""
    storage = await PostgresStorage.connect(
        database_url, min_size=1, max_size=2, timeout_s=DB_TIMEOUT_S
    )
    try:
        chat, buyer, seller = await new_chat(storage)
        results = await asyncio.gather(
            *(send(storage, chat.id, (buyer, seller)[k % 2], f"m{k}") for k in range(30))
        )
        assert sorted(m.seq for m in results) == list(range(1, 31))
        assert await stored_seqs(pool, chat.id) == list(range(1, 31))
        writers = storage._writers
        assert writers is not None
        held = [await writers.acquire() for _ in range(writers.get_max_size())]
        try:
            modes = {await conn.fetchval("SHOW plan_cache_mode") for conn in held}
        finally:
            for conn in held:
                await writers.release(conn)
        assert modes == {"force_generic_plan"}
        assert await pool.fetchval("SHOW plan_cache_mode") == "auto"
    finally:
        await storage.close()
