"""The dispatcher: every instance runs one, and together they deliver each event at least once.

A round claims the due events (a lease each; of a chat, a run of its next events in commit
order), posts the chats' runs concurrently and each run's events one after another, and settles
them all in one statement: delivered, retried after a back-off, or failed for good after
`WEBHOOK_MAX_ATTEMPTS`. An event whose run stopped at an earlier failure is released
unattempted, so nothing of a chat overtakes the event it waits for. A reminder
(`message.unread`) is built when it falls due: dropped if the recipient has read the message
meanwhile, else sent with what the chat looks like now.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import orjson
import structlog

from marketplace_chat.clock import Clock
from marketplace_chat.errors import ChatError
from marketplace_chat.metrics import Metrics
from marketplace_chat.storage.outbox import OutboxEvent, OutboxStats, Outcome, ReminderState
from marketplace_chat.webhooks import signing
from marketplace_chat.webhooks.events import EventType

log = structlog.get_logger(__name__)

# Requests in flight from one instance (and kept-alive connections). A round waits on two
# statements and the slowest answer, so what a round carries decides the rate: on this project's
# 2-core machine 8 in flight delivered about 1,000 events/s, 32 about 2,000, 64 about 2,800, at
# under 0.1 ms of CPU per event each time.
CLAIM_BATCH = 64  # lanes (chats) and lane-less events (reminders) per claim
# Events of one lane per claim, posted one after another. A lane with a backlog (a busy chat)
# then costs one claim and one settle per run rather than per event: with one event per claim,
# the closed loop's 50 chats kept their lanes held by one round while the other's claims read the
# backlog behind them for nothing, and the claims took more of PostgreSQL than the messages did.
RUN = 4
# Rounds of claim, posts and settle that overlap, so that one round's statements wait while
# another's requests are out.
PIPELINES = 2
# Events leased per claim times the claims in flight: no more than go out at once, so that every
# attempt of a claim starts at once and ends within the timeout, well inside the lease; a claim
# of more would queue some behind others, and a lease could run out while its event still waits.
CONCURRENCY = CLAIM_BATCH * PIPELINES
# A round claims again as long as there was something to claim (a chat's next event becomes
# claimable once its previous one is settled), then ends, so that a stop is seen between rounds.
MAX_CLAIMS_PER_ROUND = 200
# A lease outlives its longest run of attempts by a margin, so a live holder never loses it; an
# instance that died loses its claims this long after it claimed them (with the default 5 s
# timeout, 30 s). A run's next attempt starts only while a whole attempt still fits in the lease.
LEASE_MARGIN_S = 10.0


def lease_s(timeout_s: float) -> float:
    return timeout_s * RUN + LEASE_MARGIN_S


STATS_EVERY_S = 5.0  # how often the pending count and age reach the metrics
PRUNE_EVERY_S = 60.0
RETENTION = timedelta(days=7)  # delivered (and dropped) events are kept this long, then pruned
POLL_S = 0.25  # the pause between rounds that found nothing to do


class Queue(Protocol):
    """The outbox as a dispatcher uses it (`storage.outbox.OutboxStore` in production)."""

    async def claim(
        self, now: datetime, limit: int, lease_until: datetime, run: int = 1
    ) -> list[OutboxEvent]: ...

    async def settle(self, outcomes: Sequence[Outcome], now: datetime) -> None: ...

    async def reminder_state(self, chat_id: str, recipient_id: int) -> ReminderState | None: ...

    async def stats(self) -> OutboxStats: ...

    async def prune(self, finished_before: datetime) -> int: ...


class Sender(Protocol):
    """Posts one webhook; returns None when the receiver acknowledged it (a 2xx in time), else
    a short reason (`HTTP 503`, `timeout`, `ConnectError`)."""

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    secret: str
    timeout_s: float
    max_attempts: int


class Dispatcher:
    def __init__(
        self,
        store: Queue,
        sender: Sender,
        clock: Clock,
        policy: DispatchPolicy,
        metrics: Metrics,
        is_online: Callable[[int], Awaitable[bool]],
        running: Callable[[], bool] = lambda: True,
    ) -> None:
        self._store = store
        self._sender = sender
        self._clock = clock
        self._policy = policy
        self._metrics = metrics
        self._is_online = is_online
        self._running = running  # False once a stop is asked for: no further claim this round
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._next_stats: datetime | None = None
        self._next_prune: datetime | None = None

    async def tick(self) -> None:
        """One round: deliver what is due, then the periodic chores."""
        try:
            await asyncio.gather(*(self._deliver_while_due() for _ in range(PIPELINES)))
            await self._chores()
        except ChatError as exc:
            self._metrics.backend_errors.labels("postgres").inc()
            log.warning("webhooks_round_failed", error=exc.message)

    async def _deliver_while_due(self) -> None:
        for _ in range(MAX_CLAIMS_PER_ROUND):
            if not self._running() or not await self.deliver_due():
                break

    async def deliver_due(self) -> int:
        """Claim one batch of due events, attempt each, settle them all; how many were claimed."""
        now = self._clock.now()
        lease_until = now + timedelta(seconds=lease_s(self._policy.timeout_s))
        events = await self._store.claim(now, CLAIM_BATCH, lease_until, RUN)
        if not events:
            return 0
        runs = await asyncio.gather(*(self._run(r, lease_until) for r in _runs(events)))
        outcomes = [o for run in runs for o in run]
        await self._store.settle(outcomes, self._clock.now())
        for result, count in Counter(_result(o) for o in outcomes if not o.released).items():
            self._metrics.webhook_deliveries.labels(result).inc(count)
        return len(events)

    async def _run(self, events: list[OutboxEvent], lease_until: datetime) -> list[Outcome]:
        """A lane's events in order, each once the one before it was delivered; the rest of the
        run is released at the first that was not, or once an attempt no longer fits the lease."""
        outcomes: list[Outcome] = []
        latest_start = lease_until - timedelta(seconds=self._policy.timeout_s + LEASE_MARGIN_S / 2)
        for event in events:
            if outcomes and (not outcomes[-1].delivered or self._clock.now() > latest_start):
                outcomes.append(Outcome(event, delivered=False, released=True))
                continue
            outcomes.append(await self._attempt(event))
        return outcomes

    async def _attempt(self, event: OutboxEvent) -> Outcome:
        async with self._slots:
            data = event.data
            if data is None:
                data = await self._reminder(event)
                if data is None:
                    return Outcome(event, delivered=False, cancelled=True)
            body = signing.envelope(event.id, event.type, event.created_at, data)
            timestamp = int(self._clock.now().timestamp())
            signed = signing.signature(self._policy.secret, timestamp, body)
            error = await self._sender.post(body, signing.headers(event.id, event.type, signed))
        # A reminder's data is kept from its first attempt on; a `message.created` built for this
        # claim only once it failed, so that its retries say what was created even after an edit.
        built = data if event.data is None or (not event.kept and error is not None) else None
        if error is None:
            return Outcome(event, delivered=True, data=built)
        tried = event.attempts + 1
        retry_at = None
        if tried < self._policy.max_attempts:
            retry_at = self._clock.now() + timedelta(seconds=signing.backoff_s(tried))
        log.info("webhook_attempt_failed", id=event.id, type=event.type, attempt=tried, error=error)
        return Outcome(event, delivered=False, error=error, retry_at=retry_at, data=built)

    async def _reminder(self, event: OutboxEvent) -> str | None:
        """A due reminder's data, or None when it is to be dropped (read meanwhile)."""
        if event.type != EventType.MESSAGE_UNREAD or event.chat_id is None:
            return None
        assert event.recipient_id is not None
        assert event.message_seq is not None
        state = await self._store.reminder_state(event.chat_id, event.recipient_id)
        if state is None or state.read_seq >= event.message_seq or state.unread_count == 0:
            return None
        try:
            online = await self._is_online(event.recipient_id)
        except ChatError:
            online = False  # presence unknown: the reminder still goes, as "not connected"
        return orjson.dumps(
            {
                "chatId": event.chat_id,
                "recipientId": event.recipient_id,
                "senderId": event.sender_id,
                "unreadCount": state.unread_count,
                "lastMessage": state.last_message.to_wire() if state.last_message else None,
                "recipientOnline": online,
            }
        ).decode()

    async def _chores(self) -> None:
        now = self._clock.now()
        if self._next_stats is None or now >= self._next_stats:
            self._next_stats = now + timedelta(seconds=STATS_EVERY_S)
            stats = await self._store.stats()
            self._metrics.webhooks_pending.set(stats.pending)
            self._metrics.webhooks_failed.set(stats.failed)
            age = (now - stats.oldest_pending).total_seconds() if stats.oldest_pending else 0.0
            self._metrics.webhooks_oldest_pending.set(max(0.0, age))
        if self._next_prune is None or now >= self._next_prune:
            self._next_prune = now + timedelta(seconds=PRUNE_EVERY_S)
            pruned = await self._store.prune(now - RETENTION)
            if pruned:
                log.info("webhooks_pruned", events=pruned)


def _runs(events: list[OutboxEvent]) -> list[list[OutboxEvent]]:
    """The claim's events by lane, each lane's in pos order (a claim returns them in none); an
    event in no lane runs alone."""
    lanes: dict[str, list[OutboxEvent]] = {}
    alone: list[list[OutboxEvent]] = []
    for event in sorted(events, key=lambda e: e.pos):
        if event.lane is None:
            alone.append([event])
        else:
            lanes.setdefault(event.lane, []).append(event)
    return [*lanes.values(), *alone]


def _result(outcome: Outcome) -> str:
    if outcome.cancelled:
        return "dropped"
    if outcome.delivered:
        return "delivered"
    return "retried" if outcome.retry_at is not None else "failed"
