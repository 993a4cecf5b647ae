"""``chats:list``: the inbox, most recent activity first, with cursor paging.

README: ordered by ``updatedAt`` (last message or product change), newest first; ``nextCursor`` is
opaque and ``null`` on the last page.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import Connect
from .convo import chats_page, pair
from .helpers import assert_chat_shape, create_chat, failed, parse_iso, send
from .tokens import new_user_id

pytestmark = pytest.mark.e2e


def _ids(chats: list[Any]) -> list[str]:
    return [c["id"] for c in chats]


def _assert_newest_first(chats: list[Any]) -> None:
    times = [parse_iso(c["updatedAt"]) for c in chats]
    assert times == sorted(times, reverse=True), [c["updatedAt"] for c in chats]


async def test_empty_inbox(connect: Connect) -> None:
    client = await connect()

    assert await chats_page(client) == ([], None)


async def test_most_recent_activity_comes_first(connect: Connect) -> None:
    me = new_user_id()
    client = await connect(me)
    a = await pair(connect, me)
    b = await pair(connect, me)
    c = await pair(connect, me)

    chats, _ = await chats_page(client)
    assert _ids(chats) == [c.chat_id, b.chat_id, a.chat_id]

    await send(a.buyer, a.chat_id, "bump a")
    chats, _ = await chats_page(client)
    assert _ids(chats) == [a.chat_id, c.chat_id, b.chat_id]

    await send(b.seller, b.chat_id, "the partner bumps b")
    chats, cursor = await chats_page(client)
    assert _ids(chats) == [b.chat_id, a.chat_id, c.chat_id]
    assert cursor is None
    _assert_newest_first(chats)


async def test_each_chat_carries_last_message_unread_count_and_product(connect: Connect) -> None:
    me = new_user_id()
    client = await connect(me)
    talk = await pair(connect, me)
    quiet = await pair(connect, me)
    again = await create_chat(client, me, talk.seller_id, product_id=11)
    assert again["id"] == talk.chat_id
    assert again["productId"] == 11
    await send(talk.seller, talk.chat_id, "hi")
    await send(talk.buyer, talk.chat_id, "hello")
    last = await send(talk.seller, talk.chat_id, "this one instead?", productId=12)

    chats, _ = await chats_page(client)

    by_id = {c["id"]: c for c in chats}
    for chat in chats:
        assert_chat_shape(chat)
    assert by_id[talk.chat_id]["lastMessage"] == last
    assert by_id[talk.chat_id]["unreadCount"] == 2
    assert by_id[talk.chat_id]["productId"] == 12
    assert (by_id[talk.chat_id]["buyerId"], by_id[talk.chat_id]["sellerId"]) == (
        me,
        talk.seller_id,
    )
    assert by_id[quiet.chat_id]["lastMessage"] is None
    assert by_id[quiet.chat_id]["unreadCount"] == 0
    assert by_id[quiet.chat_id]["productId"] is None

    seller_view, _ = await chats_page(talk.seller)
    assert [c["unreadCount"] for c in seller_view] == [1]
    assert seller_view[0]["lastMessage"] == last


async def test_cursor_paging_has_no_duplicates_and_no_gaps(connect: Connect) -> None:
    me = new_user_id()
    client = await connect(me)
    created = [await create_chat(client, me, new_user_id()) for _ in range(7)]
    everything, cursor = await chats_page(client, limit=100)
    assert cursor is None
    assert _ids(everything) == [c["id"] for c in reversed(created)]

    pages: list[list[str]] = []
    cursors: list[Any] = []
    chats, cursor = await chats_page(client, limit=3)
    pages.append(_ids(chats))
    cursors.append(cursor)
    while cursor is not None:
        chats, cursor = await chats_page(client, limit=3, before=cursor)
        pages.append(_ids(chats))
        cursors.append(cursor)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [page_id for page in pages for page_id in page] == _ids(everything)
    assert all(isinstance(c, str) and c for c in cursors[:2]), cursors
    assert cursors[2] is None


async def test_exactly_limit_chats_end_with_a_null_cursor(connect: Connect) -> None:
    me = new_user_id()
    client = await connect(me)
    for _ in range(3):
        await create_chat(client, me, new_user_id())

    chats, cursor = await chats_page(client, limit=3)

    assert len(chats) == 3
    assert cursor is None


async def test_default_page_is_30(connect: Connect) -> None:
    me = new_user_id()
    client = await connect(me)

    async def partner_opens() -> None:
        partner = new_user_id()
        await create_chat(await connect(partner), partner, me)

    await asyncio.gather(*(partner_opens() for _ in range(31)))

    chats, cursor = await chats_page(client)
    assert len(chats) == 30
    assert cursor is not None
    rest_of_them, end = await chats_page(client, before=cursor)
    assert len(rest_of_them) == 1
    assert end is None
    assert len(set(_ids(chats + rest_of_them))) == 31


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"limit": 0}, id="limit-0"),
        pytest.param({"limit": 101}, id="limit-101"),
        pytest.param({"limit": "3"}, id="limit-string"),
        pytest.param({"limit": 2.5}, id="limit-fraction"),
        pytest.param({"before": "not-a-cursor"}, id="garbage-cursor"),
        pytest.param({"before": "bm9wZTpub3BlOm5vcGU"}, id="base64-garbage-cursor"),
        pytest.param({"before": 12345}, id="numeric-cursor"),
    ],
)
async def test_bad_limit_or_cursor_is_refused(connect: Connect, query: dict[str, Any]) -> None:
    me = new_user_id()
    client = await connect(me)
    await create_chat(client, me, new_user_id())

    error = failed(await client.emit_ack("chats:list", query), "VALIDATION_ERROR")

    assert next(iter(query)) in error.lower()


async def test_limit_bounds_are_accepted(connect: Connect) -> None:
    me = new_user_id()
    client = await connect(me)
    first = await create_chat(client, me, new_user_id())
    second = await create_chat(client, me, new_user_id())

    one, cursor = await chats_page(client, limit=1)
    assert _ids(one) == [second["id"]]
    assert cursor is not None
    assert await chats_page(client, limit=1, before=cursor) == ([first], None)
    hundred, end = await chats_page(client, limit=100)
    assert _ids(hundred) == [second["id"], first["id"]]
    assert end is None


async def test_list_shows_only_the_callers_chats(connect: Connect) -> None:
    p = await pair(connect)
    stranger = await connect()
    own = await create_chat(stranger, stranger.user_id or 0, new_user_id())

    chats, _ = await chats_page(stranger)

    assert _ids(chats) == [own["id"]]
    assert p.chat_id not in _ids(chats)
