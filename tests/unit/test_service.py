from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from marketplace_chat import typing_indicators
from marketplace_chat.errors import (
    ChatError,
    Forbidden,
    NotFound,
    RateLimited,
    Unavailable,
    ValidationFailed,
)
from marketplace_chat.models import Chat, iso
from marketplace_chat.payloads import (
    ChatCreate,
    ChatsQuery,
    HistoryQuery,
    MessageRead,
    MessageSend,
    SyncQuery,
)
from marketplace_chat.service import REPUBLISH_WITHIN, ChatService
from marketplace_chat.settings import LimitSettings

from .fakes import (
    CountingLimiter,
    FakeClock,
    MemoryBlocks,
    MemoryPresence,
    MemoryStorage,
    MemoryTypingState,
    RecordingNotifier,
    Sent,
    new_user_id,
)

MAX_LENGTH = 50
MESSAGES_PER_WINDOW = 3
CHATS_PER_WINDOW = 2
THROTTLE_S = 2.0


@dataclass
class World:
    service: ChatService
    storage: MemoryStorage
    presence: MemoryPresence
    typing: MemoryTypingState
    limiter: CountingLimiter
    notifier: RecordingNotifier
    clock: FakeClock


def limits(**overrides: float) -> LimitSettings:
    values: dict[str, float] = {
        "max_message_length": MAX_LENGTH,
        "rate_limit_messages": MESSAGES_PER_WINDOW,
        "rate_limit_window_s": 10.0,
        "rate_limit_chats": CHATS_PER_WINDOW,
        "rate_limit_chats_window_s": 60.0,
        "typing_throttle_s": THROTTLE_S,
        **overrides,
    }
    return LimitSettings(**values)  # type: ignore[arg-type]


def build(**overrides: float) -> World:
    clock = FakeClock()
    storage, presence = MemoryStorage(), MemoryPresence()
    typing, limiter, notifier = MemoryTypingState(clock), CountingLimiter(), RecordingNotifier()
    service = ChatService(
        storage,
        presence,
        typing,
        limiter,
        notifier,
        clock,
        limits(**overrides),
        "node-a",
        MemoryBlocks(storage),
    )
    return World(service, storage, presence, typing, limiter, notifier, clock)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = build()
    yield w
    await w.service.drain()


async def open_chat(w: World) -> tuple[Chat, int, int]:
    """A chat between two fresh users, made behind the service's back, with no events."""
    buyer, seller = new_user_id(), new_user_id()
    chat, _ = await w.storage.create_chat(buyer, seller, None, buyer, w.clock.now())
    return chat, buyer, seller


def send_payload(chat_id: str, text: str = "hello", **extra: object) -> MessageSend:
    return MessageSend.model_validate({"chatId": chat_id, "text": text, **extra})


# -- chat:create -------------------------------------------------------------------------------


async def test_new_chat_is_announced_to_the_caller_socket_and_both_users(world: World) -> None:
    buyer, seller = new_user_id(), new_user_id()
    chat, created = await world.service.create_chat(
        buyer, ChatCreate(buyer_id=buyer, seller_id=seller), origin="sid-1"
    )
    assert created
    assert (chat.buyer_id, chat.seller_id) == (buyer, seller)
    assert world.notifier.sent == [
        Sent("socket", "sid-1", "chat:created", chat.to_wire()),
        Sent("users", (buyer, seller), "chat:created", chat.to_wire(), skip="sid-1"),
    ]


async def test_existing_chat_is_returned_and_only_the_calling_socket_hears_of_it(
    world: World,
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    p = ChatCreate(buyer_id=buyer, seller_id=seller)
    first, _ = await world.service.create_chat(buyer, p, origin="sid-1")
    world.notifier.clear()
    again, created = await world.service.create_chat(seller, p, origin="sid-2")
    assert not created
    assert again.id == first.id
    assert len(world.storage.chats) == 1
    assert world.notifier.sent == [Sent("socket", "sid-2", "chat:created", again.to_wire())]


async def test_chat_created_without_a_socket_tells_the_users_only_when_new(world: World) -> None:
    buyer, seller = new_user_id(), new_user_id()
    p = ChatCreate(buyer_id=buyer, seller_id=seller)
    chat, _ = await world.service.create_chat(seller, p)
    await world.service.create_chat(seller, p)
    assert world.notifier.sent == [Sent("users", (buyer, seller), "chat:created", chat.to_wire())]


async def test_outsider_cannot_create_a_chat_for_two_others(world: World) -> None:
    p = ChatCreate(buyer_id=new_user_id(), seller_id=new_user_id())
    with pytest.raises(Forbidden):
        await world.service.create_chat(new_user_id(), p, origin="sid-1")
    assert world.storage.chats == {}
    assert world.notifier.sent == []


async def test_buyer_and_seller_must_differ(world: World) -> None:
    user = new_user_id()
    with pytest.raises(ValidationFailed, match=r"^sellerId: "):
        await world.service.create_chat(user, ChatCreate(buyer_id=user, seller_id=user))
    assert world.storage.chats == {}


async def test_roles_count_reversed_pair_is_another_chat(world: World) -> None:
    a, b = new_user_id(), new_user_id()
    first, _ = await world.service.create_chat(a, ChatCreate(buyer_id=a, seller_id=b))
    second, created = await world.service.create_chat(a, ChatCreate(buyer_id=b, seller_id=a))
    assert created
    assert second.id != first.id


async def test_product_id_sets_the_context_of_a_new_and_an_existing_chat(world: World) -> None:
    buyer, seller = new_user_id(), new_user_id()
    chat, _ = await world.service.create_chat(
        buyer, ChatCreate(buyer_id=buyer, seller_id=seller, product_id=7)
    )
    assert chat.product_id == 7
    again, _ = await world.service.create_chat(
        buyer, ChatCreate(buyer_id=buyer, seller_id=seller, product_id=8)
    )
    assert again.product_id == 8


async def test_chat_creation_beyond_the_limit_is_rate_limited_and_creates_nothing(
    world: World,
) -> None:
    user = new_user_id()
    for _ in range(CHATS_PER_WINDOW):
        await world.service.create_chat(user, ChatCreate(buyer_id=user, seller_id=new_user_id()))
    with pytest.raises(RateLimited) as caught:
        await world.service.create_chat(user, ChatCreate(buyer_id=user, seller_id=new_user_id()))
    assert caught.value.retry_after_ms == CountingLimiter.WAIT_MS
    assert len(world.storage.chats) == CHATS_PER_WINDOW


# -- participants only -------------------------------------------------------------------------

Action = Callable[[ChatService, int, str], Awaitable[object]]

ACTIONS: dict[str, Action] = {
    "join": lambda s, u, c: s.get_chat(u, c),
    "send": lambda s, u, c: s.send(u, send_payload(c)),
    "history": lambda s, u, c: s.history(u, HistoryQuery(chat_id=c)),
    "sync": lambda s, u, c: s.sync(u, SyncQuery(chats={c: 0})),
    "read": lambda s, u, c: s.read(u, MessageRead(chat_id=c, message_id=str(uuid.uuid4()))),
    "typing:start": lambda s, u, c: s.typing_start(u, c),
    "typing:stop": lambda s, u, c: s.typing_stop(u, c),
}


@pytest.mark.parametrize("action", ACTIONS.values(), ids=ACTIONS.keys())
async def test_non_participant_is_forbidden(world: World, action: Action) -> None:
    chat, _, _ = await open_chat(world)
    with pytest.raises(Forbidden):
        await action(world.service, new_user_id(), chat.id)
    assert world.storage.rows(chat.id) == []
    assert world.limiter.admitted == {}
    assert world.notifier.sent == []


@pytest.mark.parametrize("action", ACTIONS.values(), ids=ACTIONS.keys())
async def test_unknown_chat_is_not_found(world: World, action: Action) -> None:
    with pytest.raises(NotFound):
        await action(world.service, new_user_id(), str(uuid.uuid4()))
    assert world.notifier.sent == []


@pytest.mark.parametrize("action", ["join", "history", "typing:start", "typing:stop"])
async def test_both_participants_may_act(world: World, action: str) -> None:
    chat, buyer, seller = await open_chat(world)
    await ACTIONS[action](world.service, buyer, chat.id)
    await ACTIONS[action](world.service, seller, chat.id)


async def test_joined_chat_is_seen_with_the_callers_unread_count(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    await world.service.send(buyer, send_payload(chat.id))
    assert (await world.service.get_chat(seller, chat.id)).unread_count == 1
    assert (await world.service.get_chat(buyer, chat.id)).unread_count == 0


# -- message:send ------------------------------------------------------------------------------


async def test_message_reaches_both_participants_once(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    message = await world.service.send(seller, send_payload(chat.id, "hi there"))
    assert (message.chat_id, message.sender_id, message.seq) == (chat.id, seller, 1)
    assert world.notifier.events("message:new") == [
        Sent("users", (buyer, seller), "message:new", message.to_wire())
    ]


async def test_text_is_trimmed_before_it_is_stored(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    message = await world.service.send(buyer, send_payload(chat.id, " \n\t hi there \n"))
    assert message.text == "hi there"
    assert world.storage.rows(chat.id)[0].text == "hi there"


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
async def test_blank_text_is_refused_and_nothing_is_sent(world: World, text: str) -> None:
    chat, buyer, _ = await open_chat(world)
    with pytest.raises(ValidationFailed, match=r"^text: "):
        await world.service.send(buyer, send_payload(chat.id, text))
    assert world.storage.add_message_calls == 0
    assert world.limiter.admitted == {}
    assert world.notifier.sent == []


async def test_text_of_max_length_in_code_points_is_accepted(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    text = "😀" * MAX_LENGTH
    message = await world.service.send(buyer, send_payload(chat.id, f"  {text}  "))
    assert message.text == text


async def test_text_over_max_length_is_refused(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    with pytest.raises(ValidationFailed, match=rf"^text: must be at most {MAX_LENGTH} "):
        await world.service.send(buyer, send_payload(chat.id, "é" * (MAX_LENGTH + 1)))
    assert world.storage.rows(chat.id) == []


async def test_a_sent_message_has_a_time_ordered_id_of_its_creation(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    first = await world.service.send(buyer, send_payload(chat.id, "first"))
    world.clock.advance(0.005)
    second = await world.service.send(buyer, send_payload(chat.id, "second"))
    for message in (first, second):
        parsed = uuid.UUID(message.id)
        assert parsed.version == 7
        assert parsed.int >> 80 == int(message.created_at.timestamp() * 1000)
    assert first.id < second.id


async def test_rate_limited_send_persists_and_announces_nothing(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    for n in range(MESSAGES_PER_WINDOW):
        await world.service.send(buyer, send_payload(chat.id, f"m{n}"))
    with pytest.raises(RateLimited) as caught:
        await world.service.send(buyer, send_payload(chat.id, "one too many"))
    assert caught.value.retry_after_ms == CountingLimiter.WAIT_MS
    assert caught.value.to_ack()["retryAfterMs"] == CountingLimiter.WAIT_MS
    assert world.storage.add_message_calls == MESSAGES_PER_WINDOW
    assert [m.text for m in world.storage.rows(chat.id)] == ["m0", "m1", "m2"]
    assert len(world.notifier.events("message:new")) == MESSAGES_PER_WINDOW


async def test_rate_limit_is_per_user(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    for _ in range(MESSAGES_PER_WINDOW):
        await world.service.send(buyer, send_payload(chat.id))
    message = await world.service.send(seller, send_payload(chat.id))
    assert message.sender_id == seller


async def test_zero_message_limit_turns_limiting_off() -> None:
    w = build(rate_limit_messages=0)
    chat, buyer, _ = await open_chat(w)
    for _ in range(MESSAGES_PER_WINDOW * 3):
        await w.service.send(buyer, send_payload(chat.id))
    assert len(w.storage.rows(chat.id)) == MESSAGES_PER_WINDOW * 3


async def test_a_retry_of_a_recent_message_asks_for_it_again_unless_already_delivered(
    world: World,
) -> None:
    chat, buyer, seller = await open_chat(world)
    first = await world.service.send(buyer, send_payload(chat.id, "one", clientMessageId="c-1"))
    world.clock.advance(REPUBLISH_WITHIN.total_seconds() - 1)
    again = await world.service.send(buyer, send_payload(chat.id, "two", clientMessageId="c-1"))
    assert again == first
    assert len(world.storage.rows(chat.id)) == 1
    first_news, repeat = world.notifier.events("message:new")
    assert (first_news.kind, first_news.payload) == ("users", first.to_wire())
    # The repeat goes out only where no node is known to have delivered that id.
    assert (repeat.kind, repeat.payload, repeat.key) == ("users_once", first.to_wire(), first.id)
    assert sorted(repeat.to) == sorted([buyer, seller])


async def test_a_retry_of_an_older_message_returns_it_without_a_new_event(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    first = await world.service.send(buyer, send_payload(chat.id, "one", clientMessageId="c-1"))
    world.clock.advance(REPUBLISH_WITHIN.total_seconds() + 1)
    again = await world.service.send(buyer, send_payload(chat.id, "two", clientMessageId="c-1"))
    assert again == first
    assert len(world.storage.rows(chat.id)) == 1
    assert len(world.notifier.events("message:new")) == 1


async def test_same_client_message_id_from_the_other_participant_is_a_new_message(
    world: World,
) -> None:
    chat, buyer, seller = await open_chat(world)
    first = await world.service.send(buyer, send_payload(chat.id, clientMessageId="c-1"))
    second = await world.service.send(seller, send_payload(chat.id, clientMessageId="c-1"))
    assert second.id != first.id
    assert second.seq == 2


async def test_product_id_of_a_message_moves_the_chat_context(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    message = await world.service.send(buyer, send_payload(chat.id, productId=42))
    assert message.product_id == 42
    assert (await world.service.get_chat(buyer, chat.id)).product_id == 42


async def test_sending_stops_the_senders_typing(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    await world.service.typing_start(buyer, chat.id, origin="sid-b")
    world.notifier.clear()
    await world.service.send(buyer, send_payload(chat.id))
    assert world.notifier.events("typing:stop") == [
        Sent("watchers", (chat.id, seller), "typing:stop", {"chatId": chat.id, "userId": buyer})
    ]
    assert world.typing.tokens == {}


async def test_sending_leaves_an_indicator_another_node_started_to_that_node(
    world: World,
) -> None:
    chat, buyer, _ = await open_chat(world)
    await world.typing.start(chat.id, buyer, "node-b:1", THROTTLE_S)
    await world.service.send(buyer, send_payload(chat.id))
    assert world.notifier.events("typing:stop") == []
    assert world.typing.tokens == {(chat.id, buyer): "node-b:1"}


async def test_failing_typing_stop_does_not_fail_a_committed_send(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat, buyer, _ = await open_chat(world)
    await world.service.typing_start(buyer, chat.id)

    async def broken(chat_id: str, user_id: int) -> bool:
        raise Unavailable("Realtime state (Redis) is unavailable")

    monkeypatch.setattr(world.typing, "stop", broken)
    message = await world.service.send(buyer, send_payload(chat.id))
    assert world.storage.rows(chat.id) == [message]
    assert len(world.notifier.events("message:new")) == 1


async def test_stop_typing_here_ends_every_indicator_this_node_started(world: World) -> None:
    first, buyer, seller = await open_chat(world)
    second, other, _ = await open_chat(world)
    await world.service.typing_start(buyer, first.id)
    await world.service.typing_start(other, second.id)
    world.notifier.clear()
    await world.service.stop_typing_here()
    assert sorted(s.to for s in world.notifier.events("typing:stop")) == sorted(
        [(first.id, seller), (second.id, second.seller_id)]
    )
    assert world.typing.tokens == {}


async def test_sending_without_typing_emits_no_typing_stop(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    await world.service.send(buyer, send_payload(chat.id))
    assert world.notifier.events("typing:stop") == []


# -- event budgets -----------------------------------------------------------------------------


async def test_reads_past_their_shared_budget_are_refused_with_the_wait() -> None:
    w = build(rate_limit_reads=3)
    user = new_user_id()
    for event in ("chats:list", "messages:history", "users:online"):
        await w.service.admit_event(user, event)
    with pytest.raises(RateLimited) as caught:
        await w.service.admit_event(user, "messages:sync")
    assert caught.value.retry_after_ms == CountingLimiter.WAIT_MS
    assert caught.value.action == "reads"
    assert caught.value.to_ack()["code"] == "RATE_LIMITED"
    await w.service.admit_event(new_user_id(), "messages:sync")
    await w.service.drain()


async def test_each_event_kind_has_its_own_budget() -> None:
    w = build(rate_limit_reads=1, rate_limit_typing=1, rate_limit_receipts=1, rate_limit_refresh=1)
    user = new_user_id()
    for event in ("chats:list", "typing:start", "message:read", "auth:refresh-token"):
        await w.service.admit_event(user, event)
    for event in ("chat:join", "typing:stop", "message:read", "auth:refresh-token"):
        with pytest.raises(RateLimited):
            await w.service.admit_event(user, event)
    await w.service.drain()


async def test_sends_and_creates_are_left_to_their_own_limits(world: World) -> None:
    user = new_user_id()
    for _ in range(50):
        await world.service.admit_event(user, "message:send")
        await world.service.admit_event(user, "chat:create")
    assert world.limiter.admitted == {}


async def test_a_budget_of_zero_is_no_limit() -> None:
    w = build(rate_limit_reads=0)
    user = new_user_id()
    for _ in range(500):
        await w.service.admit_event(user, "messages:history")
    assert w.limiter.admitted == {}
    await w.service.drain()


# -- history, sync, read -----------------------------------------------------------------------


async def test_history_with_before_and_after_is_refused(world: World) -> None:
    chat, buyer, _ = await open_chat(world)
    q = HistoryQuery(chat_id=chat.id, before=str(uuid.uuid4()), after=str(uuid.uuid4()))
    with pytest.raises(ValidationFailed, match=r"^before: "):
        await world.service.history(buyer, q)


async def test_sync_refuses_a_listed_chat_of_others(world: World) -> None:
    mine, buyer, _ = await open_chat(world)
    theirs, _, _ = await open_chat(world)
    with pytest.raises(Forbidden):
        await world.service.sync(buyer, SyncQuery(chats={mine.id: 0, theirs.id: 0}))


async def test_list_chats_is_the_callers_own(world: World) -> None:
    mine, buyer, _ = await open_chat(world)
    await open_chat(world)
    page = await world.service.list_chats(buyer, ChatsQuery())
    assert [c.id for c in page.chats] == [mine.id]


async def test_read_moves_the_pointer_and_tells_both_participants(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    message = await world.service.send(buyer, send_payload(chat.id))
    world.notifier.clear()
    receipt = await world.service.read(seller, MessageRead(chat_id=chat.id, message_id=message.id))
    assert (receipt.user_id, receipt.message_id, receipt.seq) == (seller, message.id, 1)
    assert receipt.read_at == world.clock.now()
    assert world.notifier.sent == [
        Sent("users", (buyer, seller), "message:read", receipt.to_wire())
    ]
    assert receipt.to_wire()["userId"] == seller


async def test_reading_an_older_message_changes_nothing_and_tells_no_one(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    older = await world.service.send(buyer, send_payload(chat.id))
    newer = await world.service.send(buyer, send_payload(chat.id))
    current = await world.service.read(seller, MessageRead(chat_id=chat.id, message_id=newer.id))
    world.notifier.clear()
    receipt = await world.service.read(seller, MessageRead(chat_id=chat.id, message_id=older.id))
    assert receipt == current
    assert world.notifier.sent == []


# -- typing ------------------------------------------------------------------------------------


async def test_typing_start_reaches_only_the_other_participants_watchers(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    await world.service.typing_start(seller, chat.id, origin="sid-s")
    assert world.notifier.sent == [
        Sent("watchers", (chat.id, buyer), "typing:start", {"chatId": chat.id, "userId": seller})
    ]
    assert world.typing.tokens[(chat.id, seller)].startswith("node-a:")


async def test_typing_start_reaches_the_partner_only_when_the_throttle_allows(
    world: World,
) -> None:
    chat, buyer, _ = await open_chat(world)
    await world.service.typing_start(buyer, chat.id)
    world.clock.advance(THROTTLE_S / 2)
    await world.service.typing_start(buyer, chat.id)
    assert len(world.notifier.events("typing:start")) == 1
    world.clock.advance(THROTTLE_S / 2)
    await world.service.typing_start(buyer, chat.id)
    assert len(world.notifier.events("typing:start")) == 2


async def test_typing_stop_is_emitted_only_when_the_user_was_typing(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    await world.service.typing_stop(buyer, chat.id)
    assert world.notifier.sent == []
    await world.service.typing_start(buyer, chat.id)
    await world.service.typing_stop(buyer, chat.id)
    await world.service.typing_stop(buyer, chat.id)
    assert world.notifier.events("typing:stop") == [
        Sent("watchers", (chat.id, seller), "typing:stop", {"chatId": chat.id, "userId": buyer})
    ]


async def test_typing_that_is_not_renewed_stops_by_itself(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(typing_indicators, "TYPING_TTL_S", 0.0)
    chat, buyer, seller = await open_chat(world)
    await world.service.typing_start(buyer, chat.id)
    for _ in range(50):
        if world.notifier.events("typing:stop"):
            break
        await asyncio.sleep(0)
    assert world.notifier.events("typing:stop") == [
        Sent("watchers", (chat.id, seller), "typing:stop", {"chatId": chat.id, "userId": buyer})
    ]
    assert world.typing.tokens == {}


async def test_closing_the_typing_socket_stops_typing(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    await world.service.socket_connected(buyer, "sid-1")
    await world.service.socket_connected(buyer, "sid-2")
    await world.service.typing_start(buyer, chat.id, origin="sid-1")
    await world.service.socket_disconnected(buyer, "sid-2")
    assert world.notifier.events("typing:stop") == []
    await world.service.socket_disconnected(buyer, "sid-1")
    assert world.notifier.events("typing:stop") == [
        Sent("watchers", (chat.id, seller), "typing:stop", {"chatId": chat.id, "userId": buyer})
    ]


# -- presence ----------------------------------------------------------------------------------


async def test_first_socket_announces_online_to_partners(world: World) -> None:
    _, buyer, seller = await open_chat(world)
    assert (await world.service.socket_connected(buyer, "sid-1")).first
    await world.service.drain()
    assert world.notifier.sent == [Sent("users", (seller,), "user:online", {"userId": buyer})]


async def test_second_socket_of_the_same_user_does_not_announce_online(world: World) -> None:
    _, buyer, _ = await open_chat(world)
    await world.service.socket_connected(buyer, "sid-1")
    await world.service.drain()
    world.notifier.clear()
    assert not (await world.service.socket_connected(buyer, "sid-2")).first
    await world.service.drain()
    assert world.notifier.sent == []


async def test_past_the_socket_limit_the_arrival_names_the_oldest_sockets() -> None:
    w = build()
    w.service.presence = MemoryPresence(max_sockets_per_user=2)
    user = new_user_id()
    assert (await w.service.socket_connected(user, "sid-1")).evicted == ()
    assert (await w.service.socket_connected(user, "sid-2")).evicted == ()
    assert (await w.service.socket_connected(user, "sid-3")).evicted == ("sid-1",)
    assert (await w.service.socket_connected(new_user_id(), "sid-4")).evicted == ()
    await w.service.drain()


async def test_only_the_last_socket_going_announces_offline(world: World) -> None:
    _, buyer, seller = await open_chat(world)
    await world.service.socket_connected(buyer, "sid-1")
    await world.service.socket_connected(buyer, "sid-2")
    await world.service.drain()
    world.notifier.clear()
    await world.service.socket_disconnected(buyer, "sid-1")
    assert world.notifier.sent == []
    world.clock.advance(1.5)
    await world.service.socket_disconnected(buyer, "sid-2")
    assert world.notifier.sent == [
        Sent(
            "users",
            (seller,),
            "user:offline",
            {"userId": buyer, "lastSeenAt": iso(world.clock.now())},
        )
    ]


async def test_user_without_partners_announces_nothing(world: World) -> None:
    loner = new_user_id()
    await world.service.socket_connected(loner, "sid-1")
    await world.service.socket_disconnected(loner, "sid-1")
    await world.service.drain()
    assert world.notifier.sent == []


async def test_every_partner_hears_of_presence_once(world: World) -> None:
    user, a, b = new_user_id(), new_user_id(), new_user_id()
    for buyer, seller in ((user, a), (user, b), (a, user)):
        await world.storage.create_chat(buyer, seller, None, user, world.clock.now())
    await world.service.socket_connected(user, "sid-1")
    await world.service.drain()
    (sent,) = world.notifier.sent
    assert sorted(sent.to) == sorted([a, b])


async def test_users_online_defaults_to_the_callers_partners(world: World) -> None:
    _, buyer, seller = await open_chat(world)
    stranger = new_user_id()
    await world.service.socket_connected(seller, "sid-s")
    await world.service.socket_connected(stranger, "sid-x")
    assert await world.service.users_online(buyer, None) == [seller]
    assert await world.service.users_online(buyer, [stranger, buyer, seller]) == [
        stranger,
        seller,
    ]


async def test_failed_background_announcement_is_contained(world: World) -> None:
    async def broken(user_id: int) -> list[int]:
        raise ChatError("database gone")

    world.storage.partners = broken  # type: ignore[method-assign]
    await world.service.socket_connected(new_user_id(), "sid-1")
    await world.service.drain()
    assert world.notifier.sent == []
