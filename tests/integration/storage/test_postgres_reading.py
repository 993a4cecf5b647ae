"""History, catch-up (sync) and read pointers."""

from __future__ import annotations

import uuid

import pytest

from marketplace_chat.errors import NotFound
from marketplace_chat.models import Message
from marketplace_chat.storage.base import ChatSync
from marketplace_chat.storage.postgres import PostgresStorage

from ..helpers import T0, at, new_chat, new_user_id, send

pytestmark = pytest.mark.integration


async def chat_with(storage: PostgresStorage, count: int) -> tuple[str, int, int, list[Message]]:
    chat, buyer, seller = await new_chat(storage)
    messages = [
        await send(storage, chat.id, buyer if n % 2 == 0 else seller, f"m{n + 1}", when=at(n))
        for n in range(count)
    ]
    return chat.id, buyer, seller, messages


def seqs(messages: list[Message]) -> list[int]:
    return [m.seq for m in messages]


# -- history -----------------------------------------------------------------------------------


async def test_history_of_an_empty_chat_is_empty(storage: PostgresStorage) -> None:
    chat, _, _ = await new_chat(storage)
    page = await storage.history(chat.id, None, None, 50)
    assert (page.messages, page.has_more) == ([], False)


async def test_history_of_exactly_limit_messages_has_no_more(storage: PostgresStorage) -> None:
    chat_id, _, _, sent = await chat_with(storage, 5)
    page = await storage.history(chat_id, None, None, 5)
    assert page.messages == sent
    assert not page.has_more


async def test_history_gives_the_newest_limit_in_chronological_order(
    storage: PostgresStorage,
) -> None:
    chat_id, _, _, _ = await chat_with(storage, 6)
    page = await storage.history(chat_id, None, None, 4)
    assert seqs(page.messages) == [3, 4, 5, 6]
    assert page.has_more


async def test_history_before_a_message_pages_backwards(storage: PostgresStorage) -> None:
    chat_id, _, _, sent = await chat_with(storage, 7)
    page = await storage.history(chat_id, sent[5].id, None, 3)
    assert seqs(page.messages) == [3, 4, 5]
    assert page.has_more
    rest = await storage.history(chat_id, page.messages[0].id, None, 3)
    assert seqs(rest.messages) == [1, 2]
    assert not rest.has_more


async def test_history_before_the_first_message_is_empty(storage: PostgresStorage) -> None:
    chat_id, _, _, sent = await chat_with(storage, 3)
    page = await storage.history(chat_id, sent[0].id, None, 50)
    assert (page.messages, page.has_more) == ([], False)


async def test_history_after_a_message_gives_the_oldest_limit_after_it(
    storage: PostgresStorage,
) -> None:
    chat_id, _, _, sent = await chat_with(storage, 7)
    page = await storage.history(chat_id, None, sent[1].id, 3)
    assert seqs(page.messages) == [3, 4, 5]
    assert page.has_more
    rest = await storage.history(chat_id, None, page.messages[-1].id, 3)
    assert seqs(rest.messages) == [6, 7]
    assert not rest.has_more


async def test_history_after_the_last_message_is_empty(storage: PostgresStorage) -> None:
    chat_id, _, _, sent = await chat_with(storage, 3)
    page = await storage.history(chat_id, None, sent[-1].id, 50)
    assert (page.messages, page.has_more) == ([], False)


async def test_history_after_with_exactly_limit_left_has_no_more(
    storage: PostgresStorage,
) -> None:
    chat_id, _, _, sent = await chat_with(storage, 4)
    page = await storage.history(chat_id, None, sent[0].id, 3)
    assert seqs(page.messages) == [2, 3, 4]
    assert not page.has_more


@pytest.mark.parametrize("side", ["before", "after"])
async def test_history_around_an_unknown_message_is_not_found(
    storage: PostgresStorage, side: str
) -> None:
    chat_id, _, _, _ = await chat_with(storage, 2)
    anchor = str(uuid.uuid4())
    before, after = (anchor, None) if side == "before" else (None, anchor)
    with pytest.raises(NotFound, match=rf"^{side}: "):
        await storage.history(chat_id, before, after, 50)


@pytest.mark.parametrize("side", ["before", "after"])
async def test_history_around_another_chats_message_is_not_found(
    storage: PostgresStorage, side: str
) -> None:
    chat_id, _, _, _ = await chat_with(storage, 2)
    _, _, _, foreign = await chat_with(storage, 2)
    anchor = foreign[0].id
    before, after = (anchor, None) if side == "before" else (None, anchor)
    with pytest.raises(NotFound, match=rf"^{side}: "):
        await storage.history(chat_id, before, after, 50)


# -- read pointers -----------------------------------------------------------------------------


async def test_read_pointer_moves_forward_only(storage: PostgresStorage) -> None:
    chat_id, _, seller, sent = await chat_with(storage, 3)
    receipt, moved = await storage.mark_read(chat_id, seller, sent[1].id, at(100))
    assert moved
    assert (receipt.chat_id, receipt.user_id) == (chat_id, seller)
    assert (receipt.message_id, receipt.seq, receipt.read_at) == (sent[1].id, 2, at(100))

    older, moved = await storage.mark_read(chat_id, seller, sent[0].id, at(200))
    assert not moved
    assert older == receipt

    same, moved = await storage.mark_read(chat_id, seller, sent[1].id, at(300))
    assert not moved
    assert same == receipt

    newer, moved = await storage.mark_read(chat_id, seller, sent[2].id, at(400))
    assert moved
    assert (newer.seq, newer.message_id, newer.read_at) == (3, sent[2].id, at(400))


async def test_read_pointers_are_per_user(storage: PostgresStorage) -> None:
    chat_id, buyer, seller, sent = await chat_with(storage, 3)
    await storage.mark_read(chat_id, seller, sent[2].id, T0)
    receipt, moved = await storage.mark_read(chat_id, buyer, sent[0].id, T0)
    assert moved
    assert receipt.seq == 1


async def test_reading_an_unknown_or_foreign_message_is_not_found(
    storage: PostgresStorage,
) -> None:
    chat_id, buyer, _, _ = await chat_with(storage, 1)
    _, _, _, foreign = await chat_with(storage, 1)
    for message_id in (str(uuid.uuid4()), foreign[0].id):
        with pytest.raises(NotFound, match=r"^messageId: "):
            await storage.mark_read(chat_id, buyer, message_id, T0)


# -- sync --------------------------------------------------------------------------------------


def by_chat(result: list[ChatSync] | tuple[ChatSync, ...]) -> dict[str, ChatSync]:
    return {entry.chat_id: entry for entry in result}


async def test_sync_of_a_listed_chat_gives_the_messages_after_its_seq(
    storage: PostgresStorage,
) -> None:
    chat_id, buyer, _, _ = await chat_with(storage, 5)
    result = by_chat(list(await storage.sync(buyer, {chat_id: 2}, 50)))
    assert seqs(result[chat_id].messages) == [3, 4, 5]
    assert not result[chat_id].has_more


async def test_sync_of_a_listed_chat_without_news_is_present_and_empty(
    storage: PostgresStorage,
) -> None:
    chat_id, buyer, _, _ = await chat_with(storage, 2)
    empty, _, _ = await new_chat(storage)
    assert empty.buyer_id != buyer
    result = list(await storage.sync(buyer, {chat_id: 2}, 50))
    assert result == [ChatSync(chat_id, [], False)]


async def test_sync_of_an_unlisted_chat_counts_from_the_read_pointer(
    storage: PostgresStorage,
) -> None:
    chat_id, _, seller, sent = await chat_with(storage, 5)
    await storage.mark_read(chat_id, seller, sent[2].id, T0)
    result = by_chat(list(await storage.sync(seller, None, 50)))
    assert seqs(result[chat_id].messages) == [4, 5]


async def test_sync_of_an_unlisted_chat_without_a_pointer_gives_everything(
    storage: PostgresStorage,
) -> None:
    chat_id, buyer, _, _ = await chat_with(storage, 3)
    result = by_chat(list(await storage.sync(buyer, {}, 50)))
    assert seqs(result[chat_id].messages) == [1, 2, 3]


async def test_sync_leaves_out_unlisted_chats_with_nothing_new(
    storage: PostgresStorage,
) -> None:
    me = new_user_id()
    read_up, _ = await storage.create_chat(me, new_user_id(), None, me, T0)
    last = await send(storage, read_up.id, read_up.seller_id)
    await storage.mark_read(read_up.id, me, last.id, T0)
    await storage.create_chat(me, new_user_id(), None, me, T0)
    assert list(await storage.sync(me, None, 50)) == []


async def test_sync_mixes_listed_and_unlisted_chats_with_has_more_per_chat(
    storage: PostgresStorage,
) -> None:
    me = new_user_id()
    listed, _ = await storage.create_chat(me, new_user_id(), None, me, T0)
    unlisted, _ = await storage.create_chat(new_user_id(), me, None, me, T0)
    for n in range(6):
        await send(storage, listed.id, listed.seller_id, f"l{n}")
        await send(storage, unlisted.id, unlisted.buyer_id, f"u{n}")
    pointer = (await storage.history(unlisted.id, None, None, 50)).messages[3]
    await storage.mark_read(unlisted.id, me, pointer.id, T0)

    result = by_chat(list(await storage.sync(me, {listed.id: 1}, 3)))
    assert set(result) == {listed.id, unlisted.id}
    assert seqs(result[listed.id].messages) == [2, 3, 4]
    assert result[listed.id].has_more
    assert seqs(result[unlisted.id].messages) == [5, 6]
    assert not result[unlisted.id].has_more


async def test_sync_ignores_listed_chats_of_others(storage: PostgresStorage) -> None:
    me = new_user_id()
    foreign_id, _, _, _ = await chat_with(storage, 2)
    assert list(await storage.sync(me, {foreign_id: 0}, 50)) == []
