"""The use cases: who may do what, and who is told. No Socket.IO, no SQL, no HTTP here.

Both edges (the Socket.IO gateway and the REST API) call these methods with the authenticated
user id; `origin` names the calling socket where there is one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

import structlog

from marketplace_chat.clock import Clock
from marketplace_chat.contact_guard import ContactGuard
from marketplace_chat.contact_policy import Verdict
from marketplace_chat.edits import Edits, clean_text
from marketplace_chat.errors import ChatError, Forbidden, NotFound, RateLimited, ValidationFailed
from marketplace_chat.ids import TimeOrderedIds
from marketplace_chat.models import Chat, Message, Participants, ReadReceipt, ResponseStats, iso
from marketplace_chat.payloads import (
    ChatCreate,
    ChatsQuery,
    HistoryQuery,
    MessageEdit,
    MessageRead,
    MessageSend,
    SyncQuery,
)
from marketplace_chat.realtime.limits import RateLimiter, event_budgets
from marketplace_chat.realtime.presence import Arrival, Presence
from marketplace_chat.realtime.typing_state import TypingState
from marketplace_chat.settings import LimitSettings
from marketplace_chat.storage.base import (
    BlockStorage,
    ChatPage,
    ChatSync,
    MessagePage,
    NewMessage,
    Revision,
    Storage,
)
from marketplace_chat.typing_indicators import TypingIndicators

# A retry (same clientMessageId) of a message this recent may follow a node that died between
# the commit and the fan-out: unless the fan-out saw the message go out, it goes out again, with
# the same id (a client keeps one message per id). Older retries are answered without an event.
REPUBLISH_WITHIN = timedelta(minutes=5)
# Response statistics look at the chats started in the last 30 days: long enough to smooth a
# slow week, short enough that a seller who got faster is shown as such.
RESPONSE_WINDOW_DAYS = 30

log = structlog.get_logger(__name__)


class Notifier(Protocol):
    """Delivers server events; implementations reach sockets on every node."""

    async def to_users(
        self, user_ids: list[int], event: str, payload: dict[str, Any], *, skip: str | None = None
    ) -> None:
        """Every socket of these users, once each, except `skip`."""
        ...

    async def to_users_once(
        self, user_ids: list[int], event: str, payload: dict[str, Any], key: str
    ) -> None:
        """Like `to_users`, unless an event with this `key` is known to have gone out already
        from any node (so a repeat goes out only where the original may have been lost)."""
        ...

    async def to_chat_watchers(
        self, chat_id: str, user_id: int, event: str, payload: dict[str, Any]
    ) -> None:
        """The sockets of `user_id` that joined the chat."""
        ...

    async def to_socket(self, socket_id: str, event: str, payload: dict[str, Any]) -> None: ...


class ChatService:
    def __init__(
        self,
        storage: Storage,
        presence: Presence,
        typing: TypingState,
        limiter: RateLimiter,
        notifier: Notifier,
        clock: Clock,
        limits: LimitSettings,
        node_id: str,
        blocks: BlockStorage,
        *,
        contacts: ContactGuard | None = None,
    ) -> None:
        self.storage = storage
        # Read where a block silences an event: typing and users:online (see blocking.py).
        self._blocks = blocks
        self.presence = presence
        self._limiter = limiter
        self._notify = notifier
        self._clock = clock
        self._message_ids = TimeOrderedIds()
        self._limits = limits
        self._budgets = event_budgets(limits)
        self._contacts = contacts  # None: texts are stored as sent (no contact check)
        self._tasks: set[asyncio.Task[None]] = set()
        self._typing = TypingIndicators(
            storage, typing, notifier, blocks, limits, node_id, self._spawn
        )
        self.edits = Edits(storage, notifier, clock, limits)

    # -- chats ---------------------------------------------------------------------------------

    async def create_chat(
        self, user_id: int, p: ChatCreate, origin: str | None = None
    ) -> tuple[Chat, bool]:
        """The pair's chat (True when new); the caller must be its buyer or its seller."""
        if p.buyer_id == p.seller_id:
            raise ValidationFailed("sellerId: must differ from buyerId")
        if user_id not in (p.buyer_id, p.seller_id):
            raise Forbidden("You can only create a chat you take part in")
        await self._admit(
            "chat:create",
            user_id,
            self._limits.rate_limit_chats,
            self._limits.rate_limit_chats_window_s,
        )
        chat, created = await self.storage.create_chat(
            p.buyer_id, p.seller_id, p.product_id, user_id, self._clock.now()
        )
        payload = chat.to_wire()
        if origin is not None:
            await self._notify.to_socket(origin, "chat:created", payload)
        if created:
            await self._notify.to_users(
                [chat.buyer_id, chat.seller_id], "chat:created", payload, skip=origin
            )
        return chat, created

    async def participants(self, user_id: int, chat_id: str) -> Participants:
        found = await self.storage.participants(chat_id)
        if found is None:
            raise NotFound("chatId: no such chat")
        if not found.includes(user_id):
            raise Forbidden("You are not a participant of this chat")
        return found

    async def get_chat(self, user_id: int, chat_id: str) -> Chat:
        await self.participants(user_id, chat_id)
        chat = await self.storage.get_chat(chat_id, user_id)
        if chat is None:
            raise NotFound("chatId: no such chat")
        return chat

    async def list_chats(self, user_id: int, q: ChatsQuery) -> ChatPage:
        return await self.storage.list_chats(user_id, q.limit, q.before)

    # -- messages ------------------------------------------------------------------------------

    async def send(self, user_id: int, p: MessageSend) -> Message:
        text = clean_text(p.text, self._limits.max_message_length)
        parts = await self.participants(user_id, p.chat_id)
        await self._admit(
            "message:send",
            user_id,
            self._limits.rate_limit_messages,
            self._limits.rate_limit_window_s,
        )
        checked = (
            await self._contacts.check_send(p.chat_id, user_id, text, p.client_message_id)
            if self._contacts is not None
            else Verdict(text)
        )
        created_at = self._clock.now()
        result = await self.storage.add_message(
            NewMessage(
                id=self._message_ids.new(created_at),
                chat_id=p.chat_id,
                sender_id=user_id,
                text=checked.text,
                product_id=p.product_id,
                client_message_id=p.client_message_id,
                created_at=created_at,
                moderation=checked.moderation,
                original_text=checked.original_text,
            )
        )
        recipients = [parts.buyer_id, parts.seller_id]
        if result.created:
            await self._notify.to_users(recipients, "message:new", result.message.to_wire())
        elif self._clock.now() - result.message.created_at <= REPUBLISH_WITHIN:
            await self._notify.to_users_once(
                recipients, "message:new", result.message.to_wire(), key=result.message.id
            )
        # Only an indicator this node started is ended here, which spares the hot path a
        # Redis call; one started through another node ends by that node's 10 s timer.
        # The message is committed: from here on nothing may turn the ack into a failure.
        if result.created and self._typing.started_here(parts.chat_id, user_id):
            try:
                await self._typing.end(parts, user_id)
            except ChatError as exc:
                log.warning("typing_stop_failed", error=exc.message)
        return result.message

    async def edit(self, user_id: int, p: MessageEdit, *, chat_id: str | None = None) -> Message:
        """`message:edit` and the REST edit: the new text goes through the contact check of the
        message's chat, as a send's does, then the edit's own rules (edits.py)."""
        screened: Revision | None = None
        if self._contacts is not None:
            text = clean_text(p.text, self._limits.max_message_length)
            verdict = await self._contacts.screen_edit(user_id, p.message_id, text)
            if verdict is not None:
                screened = Revision(verdict.text, verdict.moderation, verdict.original_text)
        return await self.edits.edit(user_id, p, chat_id=chat_id, screened=screened)

    async def history(self, user_id: int, q: HistoryQuery) -> MessagePage:
        if q.before is not None and q.after is not None:
            raise ValidationFailed("before: cannot be combined with after")
        await self.participants(user_id, q.chat_id)
        return await self.storage.history(q.chat_id, q.before, q.after, q.limit)

    async def sync(self, user_id: int, q: SyncQuery) -> list[ChatSync]:
        for chat_id in q.chats or {}:
            await self.participants(user_id, chat_id)
        return list(await self.storage.sync(user_id, q.seqs(), q.limit, q.revs()))

    async def read(self, user_id: int, p: MessageRead) -> ReadReceipt:
        parts = await self.participants(user_id, p.chat_id)
        receipt, moved = await self.storage.mark_read(
            p.chat_id, user_id, p.message_id, self._clock.now()
        )
        if moved:
            await self._notify.to_users(
                [parts.buyer_id, parts.seller_id], "message:read", receipt.to_wire()
            )
        return receipt

    async def response_stats(self, user_id: int) -> ResponseStats:
        """How `user_id` answers as a seller; any authenticated user may ask (marketplace-api
        shows it on listings as "usually answers within an hour")."""
        since = self._clock.now() - timedelta(days=RESPONSE_WINDOW_DAYS)
        stats = await self.storage.response_stats(user_id, since)
        return dataclasses.replace(stats, user_id=user_id, window_days=RESPONSE_WINDOW_DAYS)

    # -- typing --------------------------------------------------------------------------------

    async def typing_start(self, user_id: int, chat_id: str, origin: str | None = None) -> None:
        parts = await self.participants(user_id, chat_id)
        await self._typing.start(chat_id, parts, user_id, origin)

    async def typing_stop(self, user_id: int, chat_id: str) -> None:
        parts = await self.participants(user_id, chat_id)
        await self._typing.end(parts, user_id)

    # -- presence ------------------------------------------------------------------------------

    async def socket_connected(self, user_id: int, socket_id: str) -> Arrival:
        """Register the socket; when it is the user's first anywhere, tell their partners later.

        Past `MAX_SOCKETS_PER_USER` the arrival names the user's oldest sockets, on any node,
        which the caller disconnects: the newest socket is the device the user is at now."""
        arrival = await self.presence.connected(user_id, socket_id)
        if arrival.first:
            self._spawn(lambda: self._announce(user_id, "user:online", {"userId": user_id}))
        return arrival

    async def socket_disconnected(self, user_id: int, socket_id: str) -> None:
        await self._typing.socket_closed(user_id, socket_id)
        if await self.presence.disconnected(user_id, socket_id):
            await self.went_offline([user_id])

    async def went_offline(self, user_ids: list[int]) -> None:
        seen = iso(self._clock.now())
        for user_id in user_ids:
            await self._announce(user_id, "user:offline", {"userId": user_id, "lastSeenAt": seen})

    async def _announce(self, user_id: int, event: str, payload: dict[str, Any]) -> None:
        partners = await self.storage.partners(user_id)
        if partners:
            await self._notify.to_users(partners, event, payload)

    async def users_online(self, user_id: int, user_ids: list[int] | None) -> list[int]:
        if user_ids is None:
            # The partners query already leaves out the users in a block with the caller.
            return await self.presence.online(await self.storage.partners(user_id))
        online = await self.presence.online(user_ids)
        hidden = await self._blocks.hidden_among(user_id, online) if online else set()
        return [u for u in online if u not in hidden]

    # -- plumbing ------------------------------------------------------------------------------

    async def admit_event(self, user_id: int, event: str) -> None:
        """Draw one event from the user's budget for it, before any other work, so that a flood
        costs one Redis call an event at most (none once refused); `RateLimited` past it."""
        budget = self._budgets.get(event)
        if budget is None:
            return
        wait_ms = await self._limiter.draw(budget, user_id)
        if wait_ms:
            raise RateLimited(f"Too many {event} requests; retry later", wait_ms, budget.name)

    async def _admit(self, action: str, user_id: int, limit: int, window_s: float) -> None:
        wait_ms = await self._limiter.admit(action, user_id, limit, window_s)
        if wait_ms:
            raise RateLimited(f"Too many {action} requests; retry later", wait_ms, action)

    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run follow-up work in the background; its failures are logged, never lost silently."""

        async def run() -> None:
            try:
                await work()
            except ChatError as exc:
                log.warning("background_work_failed", error=exc.message, code=exc.code.value)
            except Exception:
                log.exception("background_work_crashed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop_typing_here(self) -> None:
        """End every indicator this node started (shutdown): partners are told, keys cleared."""
        await self._typing.stop_here()

    async def drain(self) -> None:
        """Wait for background work (presence announcements, typing expiries) to finish."""
        self._typing.cancel_timers()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
