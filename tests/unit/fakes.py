"""In-memory stand-ins for the service's collaborators, each keeping its interface's contract."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from marketplace_chat.errors import Blocked, NotFound
from marketplace_chat.models import (
    BlockChange,
    Chat,
    Message,
    Participants,
    ReadReceipt,
    ResponseStats,
    SendResult,
)
from marketplace_chat.realtime.limits import Budget
from marketplace_chat.realtime.presence import Arrival
from marketplace_chat.storage.base import (
    Changed,
    ChatPage,
    ChatSync,
    Check,
    MessagePage,
    NewMessage,
    Revision,
    Target,
)


def new_user_id() -> int:
    return random.randint(10**9, 10**12)


class FakeClock:
    """Starts at the real present (PyJWT checks `nbf`/`iat` on its own clock); moves on demand."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self._now.timestamp()


class FakePacer:
    """A loop's pacer on the fake clock: a pause ends when :meth:`advance` moves the clock past
    it, or at once when the loop's stop event is set."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._paused: list[tuple[datetime, asyncio.Future[None]]] = []

    @property
    def paused(self) -> int:
        return len(self._paused)

    async def pause(self, seconds: float, stop: asyncio.Event) -> None:
        entry = (self.clock.now() + timedelta(seconds=seconds), asyncio.Future[None]())
        self._paused.append(entry)
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({entry[1], stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            self._paused.remove(entry)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        for due, woken in self._paused:
            if due <= self.clock.now() and not woken.done():
                woken.set_result(None)


async def until(condition: Callable[[], bool], rounds: int = 1000) -> None:
    """Let the event loop run until ``condition`` holds (no timer involved); fails after
    ``rounds`` passes of the loop."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


@dataclass
class _StoredChat:
    id: str
    buyer_id: int
    seller_id: int
    product_id: int | None
    created_at: datetime
    updated_at: datetime
    messages: list[Message] = field(default_factory=list)
    read_seq: dict[int, ReadReceipt] = field(default_factory=dict)
    rev: int = 0
    # per message id: the text as sent, where it differs from `text`, and the replaced texts
    originals: dict[str, str] = field(default_factory=dict)
    revisions: dict[str, list[str]] = field(default_factory=dict)


class MemoryStorage:
    """Storage in dicts: enough of the contract for the service's rules."""

    def __init__(self) -> None:
        self.chats: dict[str, _StoredChat] = {}
        self.add_message_calls = 0
        self.blocks: dict[tuple[int, int], datetime] = {}  # (blocker, blocked): since

    def pair_blocked(self, a: int, b: int) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def _view(self, chat: _StoredChat, viewer: int) -> Chat:
        read = chat.read_seq.get(viewer)
        after = read.seq if read else 0
        unread = sum(
            1
            for m in chat.messages
            if m.seq > after and m.sender_id != viewer and m.deleted_at is None
        )
        return Chat(
            id=chat.id,
            buyer_id=chat.buyer_id,
            seller_id=chat.seller_id,
            product_id=chat.product_id,
            created_at=chat.created_at,
            updated_at=chat.updated_at,
            last_message=chat.messages[-1] if chat.messages else None,
            unread_count=unread,
            last_seq=len(chat.messages),
            rev=chat.rev,
            blocked=self.pair_blocked(chat.buyer_id, chat.seller_id),
        )

    async def participants(self, chat_id: str) -> Participants | None:
        chat = self.chats.get(chat_id)
        return Participants(chat.id, chat.buyer_id, chat.seller_id) if chat else None

    async def create_chat(
        self, buyer_id: int, seller_id: int, product_id: int | None, viewer: int, now: datetime
    ) -> tuple[Chat, bool]:
        if self.pair_blocked(buyer_id, seller_id):
            raise Blocked("One of you has blocked the other")
        for chat in self.chats.values():
            if (chat.buyer_id, chat.seller_id) == (buyer_id, seller_id):
                if product_id is not None:
                    chat.product_id = product_id
                return self._view(chat, viewer), False
        chat = _StoredChat(str(uuid.uuid4()), buyer_id, seller_id, product_id, now, now)
        self.chats[chat.id] = chat
        return self._view(chat, viewer), True

    async def get_chat(self, chat_id: str, viewer: int) -> Chat | None:
        chat = self.chats.get(chat_id)
        return self._view(chat, viewer) if chat else None

    async def add_message(self, message: NewMessage) -> SendResult:
        self.add_message_calls += 1
        chat = self.chats.get(message.chat_id)
        if chat is None:
            raise NotFound("chatId: no such chat")
        for old in chat.messages:
            if (
                message.client_message_id is not None
                and old.sender_id == message.sender_id
                and old.client_message_id == message.client_message_id
            ):
                return SendResult(old, created=False)
        if self.pair_blocked(chat.buyer_id, chat.seller_id):
            raise Blocked("one of the participants has blocked the other")
        chat.rev += 1
        stored = Message(
            id=message.id,
            chat_id=chat.id,
            seq=len(chat.messages) + 1,
            sender_id=message.sender_id,
            text=message.text,
            product_id=message.product_id,
            client_message_id=message.client_message_id,
            created_at=message.created_at,
            moderation=message.moderation,
            rev=chat.rev,
        )
        chat.messages.append(stored)
        chat.updated_at = message.created_at
        if message.product_id is not None:
            chat.product_id = message.product_id
        return SendResult(stored, created=True)

    async def list_chats(self, user_id: int, limit: int, before: str | None) -> ChatPage:
        mine = [c for c in self.chats.values() if user_id in (c.buyer_id, c.seller_id)]
        mine.sort(key=lambda c: c.updated_at, reverse=True)
        return ChatPage([self._view(c, user_id) for c in mine[:limit]], None)

    async def history(
        self, chat_id: str, before: str | None, after: str | None, limit: int
    ) -> MessagePage:
        messages = self.chats[chat_id].messages
        return MessagePage(messages[-limit:], len(messages) > limit)

    async def sync(
        self,
        user_id: int,
        since: Mapping[str, int] | None,
        limit: int,
        revs: Mapping[str, int] | None = None,
    ) -> Sequence[ChatSync]:
        answers = []
        for chat_id, seq in (since or {}).items():
            chat = self.chats[chat_id]
            fresh = chat.messages[seq:]
            answer = ChatSync(chat_id, fresh[:limit], len(fresh) > limit)
            if revs is not None and chat_id in revs:
                changed = sorted(
                    (
                        m
                        for m in chat.messages[:seq]
                        if m.rev > revs[chat_id] and (m.edited_at or m.deleted_at)
                    ),
                    key=lambda m: m.rev,
                )
                answer = replace(
                    answer,
                    changed=changed[:limit],
                    changed_has_more=len(changed) > limit,
                    rev=chat.rev,
                )
            answers.append(answer)
        return answers

    def _target(self, message_id: str) -> tuple[_StoredChat, int, Target] | None:
        for chat in self.chats.values():
            for index, m in enumerate(chat.messages):
                if m.id == message_id:
                    parts = Participants(chat.id, chat.buyer_id, chat.seller_id)
                    original = chat.originals.get(m.id, m.text)
                    blocked = self.pair_blocked(chat.buyer_id, chat.seller_id)
                    return chat, index, Target(m, parts, blocked, original)
        return None

    async def edit_message(
        self, message_id: str, revision: Revision, now: datetime, check: Check
    ) -> Changed | None:
        found = self._target(message_id)
        if found is None:
            return None
        chat, index, target = found
        if not check(target):
            return Changed(target, target.message, changed=False)
        chat.rev += 1
        chat.revisions.setdefault(message_id, []).append(target.original)
        chat.originals.pop(message_id, None)
        if revision.original_text is not None:
            chat.originals[message_id] = revision.original_text
        edited = replace(
            target.message,
            text=revision.text,
            moderation=revision.moderation,
            edited_at=now,
            rev=chat.rev,
        )
        chat.messages[index] = edited
        return Changed(target, edited, changed=True)

    async def delete_message(self, message_id: str, now: datetime, check: Check) -> Changed | None:
        found = self._target(message_id)
        if found is None:
            return None
        chat, index, target = found
        if not check(target):
            return Changed(target, target.message, changed=False)
        chat.rev += 1
        chat.originals[message_id] = target.original
        tombstone = replace(target.message, text="", moderation=None, deleted_at=now, rev=chat.rev)
        chat.messages[index] = tombstone
        return Changed(target, tombstone, changed=True)

    async def mark_read(
        self, chat_id: str, user_id: int, message_id: str, now: datetime
    ) -> tuple[ReadReceipt, bool]:
        chat = self.chats[chat_id]
        found = next((m for m in chat.messages if m.id == message_id), None)
        if found is None:
            raise NotFound("messageId: no such message in this chat")
        current = chat.read_seq.get(user_id)
        if current is not None and current.seq >= found.seq:
            return current, False
        receipt = ReadReceipt(chat_id, user_id, found.id, found.seq, now)
        chat.read_seq[user_id] = receipt
        return receipt, True

    async def partners(self, user_id: int) -> list[int]:
        found: dict[int, None] = {}
        for chat in self.chats.values():
            if user_id in (chat.buyer_id, chat.seller_id) and not self.pair_blocked(
                chat.buyer_id, chat.seller_id
            ):
                found[chat.seller_id if chat.buyer_id == user_id else chat.buyer_id] = None
        return list(found)

    async def response_stats(self, seller_id: int, since: datetime) -> ResponseStats:
        waits: list[float | None] = []
        for chat in self.chats.values():
            if chat.seller_id != seller_id or not chat.messages:
                continue
            first = chat.messages[0]
            if first.sender_id != chat.buyer_id or first.created_at < since:
                continue
            reply = next((m for m in chat.messages if m.sender_id == seller_id), None)
            waits.append((reply.created_at - first.created_at).total_seconds() if reply else None)
        answered = sorted(w for w in waits if w is not None)
        return ResponseStats(
            user_id=seller_id,
            window_days=0,
            chats=len(waits),
            answered=len(answered),
            answered_within_24h=sum(1 for w in answered if w <= 86_400),
            median_first_reply_s=_percentile(answered, 0.5),
            p90_first_reply_s=_percentile(answered, 0.9),
        )

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def rows(self, chat_id: str) -> list[Message]:
        return list(self.chats[chat_id].messages)


def _percentile(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont: linear between the two nearest of the sorted values."""
    if not values:
        return None
    rank = fraction * (len(values) - 1)
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


class MemoryPresence:
    """Sockets per user; first and last are decided exactly as the Redis scripts decide them."""

    def __init__(self, max_sockets_per_user: int = 0) -> None:
        self.sockets: dict[int, set[str]] = {}
        self._keep = max_sockets_per_user
        self._order: dict[int, list[str]] = {}

    async def connected(self, user_id: int, socket_id: str) -> Arrival:
        held = self.sockets.setdefault(user_id, set())
        held.add(socket_id)
        if not self._keep:
            return Arrival(len(held) == 1)
        order = self._order.setdefault(user_id, [])
        order.append(socket_id)
        over = max(0, len(order) - self._keep)
        evicted, order[:] = tuple(order[:over]), order[over:]
        return Arrival(len(held) == 1, evicted)

    async def disconnected(self, user_id: int, socket_id: str) -> bool:
        held = self.sockets.get(user_id, set())
        if socket_id not in held:
            return False
        held.discard(socket_id)
        if socket_id in self._order.get(user_id, []):
            self._order[user_id].remove(socket_id)
        if not held:
            del self.sockets[user_id]
            return True
        return False

    async def online(self, user_ids: Iterable[int]) -> list[int]:
        return [u for u in dict.fromkeys(user_ids) if u in self.sockets]

    async def heartbeat(self) -> bool:
        return True

    async def refresh(self, sockets: Mapping[str, int]) -> None:
        return None

    async def reap_dead_nodes(self) -> list[int]:
        return []

    async def leave(self, sockets: Mapping[str, int]) -> list[int]:
        return [u for s, u in sockets.items() if await self.disconnected(u, s)]


class MemoryTypingState:
    """Typing keys with the partner throttle measured on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.tokens: dict[tuple[str, int], str] = {}
        self._told_until: dict[tuple[str, int], datetime] = {}

    async def start(self, chat_id: str, user_id: int, token: str, throttle_s: float) -> bool:
        key = (chat_id, user_id)
        self.tokens[key] = token
        now = self._clock.now()
        if throttle_s > 0 and now < self._told_until.get(key, now):
            return False
        self._told_until[key] = now + timedelta(seconds=throttle_s)
        return True

    async def stop(self, chat_id: str, user_id: int) -> bool:
        self._told_until.pop((chat_id, user_id), None)
        return self.tokens.pop((chat_id, user_id), None) is not None

    async def expire(self, chat_id: str, user_id: int, token: str) -> bool:
        current = self.tokens.get((chat_id, user_id))
        if current is not None and current != token:
            return False
        self.tokens.pop((chat_id, user_id), None)
        self._told_until.pop((chat_id, user_id), None)
        return True


class CountingLimiter:
    """Admits `limit` actions per user and action, then answers a fixed wait."""

    WAIT_MS = 4321

    def __init__(self) -> None:
        self.admitted: dict[tuple[str, int], int] = {}

    async def admit(self, action: str, user_id: int, limit: int, window_s: float) -> int:
        if limit <= 0:
            return 0
        count = self.admitted.get((action, user_id), 0)
        if count >= limit:
            return self.WAIT_MS
        self.admitted[(action, user_id)] = count + 1
        return 0

    async def draw(self, budget: Budget, user_id: int) -> int:
        return await self.admit(budget.name, user_id, budget.size, budget.window_s)


@dataclass(frozen=True)
class Sent:
    """One delivery: `kind` is users / users_once / watchers / socket, `to` its target."""

    kind: str
    to: Any
    event: str
    payload: dict[str, Any]
    skip: str | None = None
    key: str | None = None  # of a `users_once` delivery


class RecordingNotifier:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def to_users(
        self, user_ids: list[int], event: str, payload: dict[str, Any], *, skip: str | None = None
    ) -> None:
        self.sent.append(Sent("users", tuple(user_ids), event, payload, skip))

    async def to_users_once(
        self, user_ids: list[int], event: str, payload: dict[str, Any], key: str
    ) -> None:
        self.sent.append(Sent("users_once", tuple(user_ids), event, payload, key=key))

    async def to_chat_watchers(
        self, chat_id: str, user_id: int, event: str, payload: dict[str, Any]
    ) -> None:
        self.sent.append(Sent("watchers", (chat_id, user_id), event, payload))

    async def to_socket(self, socket_id: str, event: str, payload: dict[str, Any]) -> None:
        self.sent.append(Sent("socket", socket_id, event, payload))

    def events(self, event: str) -> list[Sent]:
        return [s for s in self.sent if s.event == event]

    def clear(self) -> None:
        self.sent.clear()


class MemoryBlocks:
    """Blocks kept in the `MemoryStorage` they shape (its chats read them)."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage

    def _pair_chats(self, a: int, b: int) -> tuple[Participants, ...]:
        return tuple(
            Participants(c.id, c.buyer_id, c.seller_id)
            for c in self.storage.chats.values()
            if {c.buyer_id, c.seller_id} == {a, b}
        )

    async def block(self, blocker_id: int, blocked_id: int, now: datetime) -> BlockChange:
        changed = (blocker_id, blocked_id) not in self.storage.blocks
        self.storage.blocks.setdefault((blocker_id, blocked_id), now)
        return BlockChange(changed, self._pair_chats(blocker_id, blocked_id), True)

    async def unblock(self, blocker_id: int, blocked_id: int, now: datetime) -> BlockChange:
        changed = self.storage.blocks.pop((blocker_id, blocked_id), None) is not None
        return BlockChange(
            changed,
            self._pair_chats(blocker_id, blocked_id),
            self.storage.pair_blocked(blocker_id, blocked_id),
        )

    async def blocked_by(self, blocker_id: int) -> list[int]:
        mine = [(at, b) for (a, b), at in self.storage.blocks.items() if a == blocker_id]
        return [b for _, b in sorted(mine, key=lambda e: (-e[0].timestamp(), e[1]))]

    async def chat_blocked(self, chat_id: str) -> bool:
        chat = self.storage.chats.get(chat_id)
        return chat is not None and self.storage.pair_blocked(chat.buyer_id, chat.seller_id)

    async def hidden_among(self, user_id: int, user_ids: Sequence[int]) -> set[int]:
        return {u for u in user_ids if self.storage.pair_blocked(user_id, u)}
