"""The rules of blocking, on in-memory collaborators: what a block changes, and what it silences
(sends, new chats, typing, presence, users:online) while history stays readable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from marketplace_chat.blocking import Blocking
from marketplace_chat.errors import Blocked, ValidationFailed
from marketplace_chat.payloads import ChatCreate, HistoryQuery, MessageSend
from marketplace_chat.realtime.limits import Budget, event_budgets
from marketplace_chat.service import ChatService
from marketplace_chat.settings import LimitSettings

from .fakes import MemoryBlocks, Sent, new_user_id, until
from .test_service import World, build


@dataclass
class Safety:
    world: World
    blocks: MemoryBlocks
    blocking: Blocking

    @property
    def service(self) -> ChatService:
        return self.world.service


@pytest.fixture
async def s() -> AsyncIterator[Safety]:
    world = build(rate_limit_messages=0)
    # blocks live in the storage, so this view and the service's read the same ones
    blocks = MemoryBlocks(world.storage)
    yield Safety(world, blocks, Blocking(blocks, world.typing, world.notifier, world.clock))
    await world.service.drain()


async def pair_chat(s: Safety) -> tuple[str, int, int]:
    buyer, seller = new_user_id(), new_user_id()
    chat, _ = await s.world.storage.create_chat(buyer, seller, None, buyer, s.world.clock.now())
    return chat.id, buyer, seller


def send(chat_id: str, text: str = "hello") -> MessageSend:
    return MessageSend.model_validate({"chatId": chat_id, "text": text})


async def test_blocking_yourself_is_a_validation_error_and_changes_nothing(s: Safety) -> None:
    user = new_user_id()
    for attempt in (s.blocking.block, s.blocking.unblock):
        with pytest.raises(ValidationFailed, match=r"^userId: "):
            await attempt(user, user)
    assert s.world.storage.blocks == {}


async def test_blocking_twice_answers_the_same_and_lists_the_user_once(s: Safety) -> None:
    me, other, third = new_user_id(), new_user_id(), new_user_id()
    first = await s.blocking.block(me, other)
    s.world.clock.advance(1)
    again = await s.blocking.block(me, other)
    assert first.to_wire() == again.to_wire() == {"userId": other, "blocked": True}
    await s.blocking.block(me, third)
    assert await s.blocking.blocked_users(me) == [third, other]
    assert await s.blocking.blocked_users(other) == []
    lifted = await s.blocking.unblock(me, other)
    assert lifted.to_wire() == {"userId": other, "blocked": False}
    assert (await s.blocking.unblock(me, other)).to_wire() == lifted.to_wire()
    assert await s.blocking.blocked_users(me) == [third]


async def test_a_send_either_way_is_blocked_and_nothing_is_stored_or_delivered(s: Safety) -> None:
    chat_id, buyer, seller = await pair_chat(s)
    await s.service.send(buyer, send(chat_id, "before"))
    await s.blocking.block(seller, buyer)
    s.world.notifier.clear()
    for sender in (buyer, seller):
        with pytest.raises(Blocked):
            await s.service.send(sender, send(chat_id))
    assert s.world.notifier.sent == []
    page = await s.service.history(buyer, HistoryQuery(chat_id=chat_id))
    assert [m.text for m in page.messages] == ["before"]
    viewed = await s.service.get_chat(buyer, chat_id)
    assert viewed.blocked
    assert viewed.to_wire()["blocked"] is True


async def test_an_unblock_by_one_leaves_the_pair_blocked_while_the_other_blocks(s: Safety) -> None:
    chat_id, buyer, seller = await pair_chat(s)
    await s.blocking.block(buyer, seller)
    await s.blocking.block(seller, buyer)
    await s.blocking.unblock(buyer, seller)
    with pytest.raises(Blocked):
        await s.service.send(buyer, send(chat_id))
    await s.blocking.unblock(seller, buyer)
    message = await s.service.send(buyer, send(chat_id, "again"))
    assert message.text == "again"
    assert not (await s.service.get_chat(buyer, chat_id)).blocked


async def test_no_chat_is_created_or_returned_between_blocked_users(s: Safety) -> None:
    chat_id, buyer, seller = await pair_chat(s)
    await s.blocking.block(buyer, seller)
    s.world.notifier.clear()
    for caller, p in (
        (buyer, ChatCreate(buyer_id=buyer, seller_id=seller)),
        (seller, ChatCreate(buyer_id=seller, seller_id=buyer)),
    ):
        with pytest.raises(Blocked):
            await s.service.create_chat(caller, p, origin="sid-1")
    assert list(s.world.storage.chats) == [chat_id]
    assert s.world.notifier.sent == []


async def test_a_block_ends_a_pending_indicator_and_typing_stays_silent_after(s: Safety) -> None:
    chat_id, buyer, seller = await pair_chat(s)
    await s.service.typing_start(buyer, chat_id, origin="sid-b")
    s.world.notifier.clear()
    await s.blocking.block(seller, buyer)
    # one last stop, so that the seller's screen does not keep showing it
    assert s.world.notifier.sent == [
        Sent("watchers", (chat_id, seller), "typing:stop", {"chatId": chat_id, "userId": buyer})
    ]
    assert s.world.typing.tokens == {}
    s.world.notifier.clear()
    s.world.clock.advance(5)
    for typist in (buyer, seller):
        await s.service.typing_start(typist, chat_id)
        await s.service.typing_stop(typist, chat_id)
    assert s.world.notifier.sent == []
    assert s.world.typing.tokens == {}


async def test_a_repeated_block_ends_no_indicator(s: Safety) -> None:
    chat_id, buyer, seller = await pair_chat(s)
    await s.blocking.block(seller, buyer)
    await s.blocking.unblock(seller, buyer)
    await s.blocking.block(buyer, seller)
    await s.service.typing_start(seller, chat_id)
    assert s.world.notifier.sent == []


async def test_users_online_never_lists_the_one_to_the_other(s: Safety) -> None:
    _, me, foe = await pair_chat(s)
    _, friend, _ = await pair_chat(s)
    await s.world.storage.create_chat(friend, me, None, friend, s.world.clock.now())
    for user, sid in ((me, "s-me"), (foe, "s-foe"), (friend, "s-friend")):
        await s.world.presence.connected(user, sid)
    assert set(await s.service.users_online(me, None)) == {foe, friend}
    await s.blocking.block(foe, me)
    assert await s.service.users_online(me, None) == [friend]
    assert await s.service.users_online(me, [foe, friend]) == [friend]
    assert await s.service.users_online(foe, [me, friend]) == [friend]
    assert await s.service.users_online(foe, None) == []


async def test_presence_announcements_skip_a_blocked_partner(s: Safety) -> None:
    _, me, foe = await pair_chat(s)
    await s.world.storage.create_chat(foe, me, None, foe, s.world.clock.now())
    _, friend, _ = await pair_chat(s)
    await s.world.storage.create_chat(friend, me, None, friend, s.world.clock.now())
    await s.blocking.block(me, foe)
    s.world.notifier.clear()
    await s.service.socket_connected(me, "sid-me")
    await until(lambda: bool(s.world.notifier.events("user:online")))
    await s.service.socket_disconnected(me, "sid-me")
    assert [x.to for x in s.world.notifier.sent] == [(friend,), (friend,)]
    assert [x.event for x in s.world.notifier.sent] == ["user:online", "user:offline"]


def test_block_and_unblock_share_a_budget_reports_have_their_own_and_the_list_is_a_read() -> None:
    budgets = event_budgets(LimitSettings())
    assert budgets["user:block"] is budgets["user:unblock"]
    assert budgets["user:block"] == Budget("blocks", 20, 600.0)
    assert budgets["report:create"] == Budget("reports", 10, 3600.0)
    assert budgets["blocks:list"] is budgets["chats:list"]
    off = event_budgets(LimitSettings(rate_limit_blocks=0, rate_limit_reports=3))
    assert (off["user:block"].size, off["report:create"].size) == (0, 3)
