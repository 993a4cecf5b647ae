from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from marketplace_chat.errors import ValidationFailed
from marketplace_chat.models import Participants
from marketplace_chat.storage.postgres import PostgresStorage

from ..helpers import T0, at, new_chat, new_user_id, send

pytestmark = pytest.mark.integration


async def pair_rows(pool: asyncpg.Pool, buyer: int, seller: int) -> int:
    count = await pool.fetchval(
        "SELECT count(*) FROM chat.chats WHERE buyer_id = $1 AND seller_id = $2", buyer, seller
    )
    assert isinstance(count, int)
    return count


async def test_new_chat_is_created_empty_for_its_pair(storage: PostgresStorage) -> None:
    buyer, seller = new_user_id(), new_user_id()
    chat, created = await storage.create_chat(buyer, seller, None, buyer, T0)
    assert created
    uuid.UUID(chat.id)
    assert (chat.buyer_id, chat.seller_id, chat.product_id) == (buyer, seller, None)
    assert (chat.created_at, chat.updated_at) == (T0, T0)
    assert chat.last_message is None
    assert chat.unread_count == 0


async def test_create_chat_is_idempotent_per_pair(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    again, created = await storage.create_chat(buyer, seller, None, seller, at(60))
    assert not created
    assert again.id == chat.id
    assert again.created_at == T0
    assert await pair_rows(pool, buyer, seller) == 1


async def test_roles_count_the_reversed_pair_is_another_chat(storage: PostgresStorage) -> None:
    chat, buyer, seller = await new_chat(storage)
    reversed_chat, created = await storage.create_chat(seller, buyer, None, seller, T0)
    assert created
    assert reversed_chat.id != chat.id
    assert (reversed_chat.buyer_id, reversed_chat.seller_id) == (seller, buyer)


async def test_concurrent_creates_of_one_pair_make_one_chat(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    results = await asyncio.gather(
        *(storage.create_chat(buyer, seller, None, buyer, T0) for _ in range(20))
    )
    assert len({chat.id for chat, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    assert await pair_rows(pool, buyer, seller) == 1


async def test_product_context_is_set_on_create_and_upserted_on_an_existing_chat(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage, product_id=7)
    assert chat.product_id == 7
    again, _ = await storage.create_chat(buyer, seller, 8, buyer, at(5))
    assert again.product_id == 8
    assert again.updated_at == at(5)
    kept, _ = await storage.create_chat(buyer, seller, None, buyer, at(9))
    assert kept.product_id == 8
    rows = await pool.fetchval(
        "SELECT count(*) FROM chat.chat_context WHERE chat_id = $1", uuid.UUID(chat.id)
    )
    assert rows == 1


async def test_participants_of_a_chat_and_of_no_chat(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    expected = Participants(chat.id, buyer, seller)
    assert await storage.participants(chat.id) == expected
    assert await PostgresStorage(pool, 5).participants(chat.id) == expected, "uncached"
    assert await storage.participants(str(uuid.uuid4())) is None


async def test_get_chat_of_no_chat_is_none(storage: PostgresStorage) -> None:
    assert await storage.get_chat(str(uuid.uuid4()), new_user_id()) is None


async def test_chat_shows_its_last_message(storage: PostgresStorage) -> None:
    chat, buyer, seller = await new_chat(storage)
    await send(storage, chat.id, buyer, "first", when=at(1))
    last = await send(storage, chat.id, seller, "second", when=at(2))
    seen = await storage.get_chat(chat.id, buyer)
    assert seen is not None
    assert seen.last_message == last
    assert seen.updated_at == at(2)
    assert seen.last_seq == 2


async def test_unread_counts_the_other_participants_messages_after_the_read_pointer(
    storage: PostgresStorage,
) -> None:
    chat, buyer, seller = await new_chat(storage)
    b1 = await send(storage, chat.id, buyer, "b1")
    await send(storage, chat.id, buyer, "b2")
    s1 = await send(storage, chat.id, seller, "s1")
    b3 = await send(storage, chat.id, buyer, "b3")
    await send(storage, chat.id, seller, "s2")

    async def unread(viewer: int) -> int:
        seen = await storage.get_chat(chat.id, viewer)
        assert seen is not None
        return seen.unread_count

    assert (await unread(buyer), await unread(seller)) == (2, 3)
    await storage.mark_read(chat.id, seller, b1.id, T0)
    assert await unread(seller) == 2
    await storage.mark_read(chat.id, seller, s1.id, T0)
    assert await unread(seller) == 1
    await storage.mark_read(chat.id, buyer, b3.id, T0)
    assert (await unread(buyer), await unread(seller)) == (1, 1)
    page = await storage.list_chats(seller, 10, None)
    assert [c.unread_count for c in page.chats] == [1]


async def test_list_chats_orders_by_latest_activity_as_buyer_and_as_seller(
    storage: PostgresStorage,
) -> None:
    me = new_user_id()
    ids = []
    for n in range(4):
        other = new_user_id()
        buyer, seller = (me, other) if n % 2 == 0 else (other, me)
        chat, _ = await storage.create_chat(buyer, seller, None, me, at(n))
        ids.append(chat.id)
    await send(storage, ids[0], me, "bump", when=at(10))
    page = await storage.list_chats(me, 10, None)
    assert [c.id for c in page.chats] == [ids[0], ids[3], ids[2], ids[1]]
    assert page.next_cursor is None
    assert page.chats[0].last_message is not None


async def test_list_chats_pages_through_every_chat_exactly_once(storage: PostgresStorage) -> None:
    me = new_user_id()
    expected: list[str] = []
    for n in range(9):
        other = new_user_id()
        buyer, seller = (me, other) if n % 3 == 0 else (other, me)
        chat, _ = await storage.create_chat(buyer, seller, None, me, at(n))
        expected.insert(0, chat.id)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await storage.list_chats(me, 3, cursor)
        pages += 1
        seen += [c.id for c in page.chats]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3


async def test_list_chats_of_exactly_one_page_has_no_cursor(storage: PostgresStorage) -> None:
    me = new_user_id()
    for n in range(3):
        await storage.create_chat(new_user_id(), me, None, me, at(n))
    page = await storage.list_chats(me, 3, None)
    assert len(page.chats) == 3
    assert page.next_cursor is None


@pytest.mark.parametrize(
    "when",
    [T0, datetime(2039, 3, 1, 12, 0, 0, 3, tzinfo=UTC)],
    ids=["2026", "2039"],
)
async def test_list_chats_pages_chats_with_equal_activity_times(
    storage: PostgresStorage, when: datetime
) -> None:
    me = new_user_id()
    made = {(await storage.create_chat(me, new_user_id(), None, me, when))[0].id for _ in range(5)}
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await storage.list_chats(me, 1, cursor)
        seen += [c.id for c in page.chats]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)


async def test_list_chats_of_a_user_without_chats_is_empty(storage: PostgresStorage) -> None:
    page = await storage.list_chats(new_user_id(), 30, None)
    assert (page.chats, page.next_cursor) == ([], None)


async def test_list_chats_refuses_a_cursor_it_did_not_issue(storage: PostgresStorage) -> None:
    with pytest.raises(ValidationFailed, match=r"^before: "):
        await storage.list_chats(new_user_id(), 30, "garbage")


async def test_partners_are_every_other_participant_once(storage: PostgresStorage) -> None:
    me, a, b = new_user_id(), new_user_id(), new_user_id()
    for buyer, seller in ((me, a), (a, me), (b, me)):
        await storage.create_chat(buyer, seller, None, me, T0)
    await storage.create_chat(a, b, None, a, T0)
    assert sorted(await storage.partners(me)) == sorted([a, b])
    assert await storage.partners(new_user_id()) == []


async def test_ping_answers(storage: PostgresStorage) -> None:
    await storage.ping()


async def test_created_at_keeps_microseconds_in_utc(storage: PostgresStorage) -> None:
    when = datetime(2026, 5, 4, 3, 2, 1, 987654, tzinfo=UTC)
    chat, _, _ = await new_chat(storage, when=when)
    assert chat.created_at == when
    assert chat.created_at.utcoffset() == timedelta(0)
