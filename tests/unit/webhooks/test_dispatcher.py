"""The dispatcher's rules on a fake clock: what a due reminder says or whether it is dropped,
when a failed attempt is retried, when an event fails for good, and what the metrics count."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from marketplace_chat.metrics import Metrics
from marketplace_chat.models import Message
from marketplace_chat.storage.outbox import OutboxEvent, OutboxStats, Outcome, ReminderState
from marketplace_chat.webhooks import signing
from marketplace_chat.webhooks.dispatcher import (
    CLAIM_BATCH,
    RUN,
    Dispatcher,
    DispatchPolicy,
    lease_s,
)

from ..fakes import FakeClock

SECRET = "unit-secret"


@dataclass
class FakeQueue:
    due: list[OutboxEvent] = field(default_factory=list)
    state: ReminderState | None = None
    settled: list[Outcome] = field(default_factory=list)

    async def claim(
        self, now: datetime, limit: int, lease_until: datetime, run: int = 1
    ) -> list[OutboxEvent]:
        due, self.due = self.due[:limit], self.due[limit:]
        return due

    async def settle(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        self.settled.extend(outcomes)

    async def reminder_state(self, chat_id: str, recipient_id: int) -> ReminderState | None:
        return self.state

    async def stats(self) -> OutboxStats:
        return OutboxStats(len(self.due), None, 0)

    async def prune(self, finished_before: datetime) -> int:
        return 0


@dataclass
class FakeSender:
    answer: str | None = None
    posts: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        self.posts.append((body, headers))
        return self.answer


def event(clock: FakeClock, **kw: object) -> OutboxEvent:
    values: dict[str, object] = {
        "pos": 1,
        "id": "7c1c7f1e-6a4a-4c55-9a4b-7f6f1d1c0a01",
        "type": "message.created",
        "lane": None,
        "chat_id": "c1",
        "recipient_id": None,
        "sender_id": None,
        "message_seq": None,
        "data": '{"k": 1}',
        "created_at": clock.now(),
        "attempts": 0,
        "lease_token": "lease",
        **kw,
    }
    return OutboxEvent(**values)  # type: ignore[arg-type]


def reminder(clock: FakeClock, seq: int = 3) -> OutboxEvent:
    return event(
        clock, type="message.unread", data=None, recipient_id=20, sender_id=10, message_seq=seq
    )


def last_message(clock: FakeClock, seq: int = 5) -> Message:
    return Message("m5", "c1", seq, 10, "still there?", None, None, clock.now())


def make(
    queue: FakeQueue, sender: FakeSender, clock: FakeClock, *, online: bool = False
) -> tuple[Dispatcher, Metrics]:
    async def is_online(user_id: int) -> bool:
        return online

    metrics = Metrics()
    policy = DispatchPolicy(SECRET, timeout_s=5.0, max_attempts=3)
    return Dispatcher(queue, sender, clock, policy, metrics, is_online), metrics


def count(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("chat_webhook_deliveries_total", {"result": result})
    return value or 0.0


async def test_a_delivered_event_is_signed_with_the_clock_s_time() -> None:
    clock = FakeClock()
    queue, sender = FakeQueue([event(clock)]), FakeSender()
    dispatcher, metrics = make(queue, sender, clock)
    await dispatcher.tick()
    ((body, headers),) = sender.posts
    assert headers["X-Chat-Signature"].startswith(f"t={int(clock.now().timestamp())},v1=")
    assert signing.verify(SECRET, headers["X-Chat-Signature"], body, int(clock.now().timestamp()))
    assert [o.delivered for o in queue.settled] == [True]
    assert count(metrics, "delivered") == 1


async def test_a_failed_attempt_is_retried_after_the_back_off_then_fails_for_good() -> None:
    clock = FakeClock()
    queue, sender = FakeQueue([event(clock, attempts=1)]), FakeSender(answer="HTTP 502")
    dispatcher, metrics = make(queue, sender, clock)
    await dispatcher.tick()
    retried = queue.settled[-1]
    assert (retried.delivered, retried.error) == (False, "HTTP 502")
    assert retried.retry_at == clock.now() + timedelta(seconds=2)  # after the 2nd failure
    queue.due.append(event(clock, attempts=2))  # the third, and last, attempt
    await dispatcher.tick()
    assert queue.settled[-1].retry_at is None
    assert (count(metrics, "retried"), count(metrics, "failed")) == (1, 1)


async def test_a_due_reminder_says_what_the_chat_looks_like_now() -> None:
    clock = FakeClock()
    queue = FakeQueue([reminder(clock)], ReminderState(2, 3, last_message(clock)))
    sender = FakeSender()
    dispatcher, _ = make(queue, sender, clock, online=True)
    await dispatcher.tick()
    ((body, headers),) = sender.posts
    assert headers["X-Chat-Event"] == "message.unread"
    assert json.loads(body)["data"] == {
        "chatId": "c1",
        "recipientId": 20,
        "senderId": 10,
        "unreadCount": 3,
        "lastMessage": last_message(clock).to_wire(),
        "recipientOnline": True,
    }
    # Kept from this first attempt on, so that a retry sends the same body.
    assert queue.settled[0].data == json.dumps(json.loads(body)["data"], separators=(",", ":"))


@pytest.mark.parametrize(
    "state",
    [ReminderState(3, 2, None), ReminderState(7, 0, None), None],
    ids=["read-that-message", "read-everything", "chat-gone"],
)
async def test_a_reminder_of_a_message_read_meanwhile_is_dropped(
    state: ReminderState | None,
) -> None:
    clock = FakeClock()
    queue, sender = FakeQueue([reminder(clock, seq=3)], state), FakeSender()
    dispatcher, metrics = make(queue, sender, clock)
    await dispatcher.tick()
    assert sender.posts == []
    assert [o.cancelled for o in queue.settled] == [True]
    assert count(metrics, "dropped") == 1


async def test_a_reminder_retried_after_a_failure_sends_what_its_first_attempt_sent() -> None:
    clock = FakeClock()
    queue = FakeQueue([reminder(clock)], ReminderState(0, 1, last_message(clock)))
    sender = FakeSender(answer="timeout")
    dispatcher, _ = make(queue, sender, clock)
    await dispatcher.tick()
    kept = queue.settled[-1].data
    assert kept is not None
    queue.state = ReminderState(0, 9, None)  # the chat moved on; the retry keeps its body
    queue.due.append(event(clock, type="message.unread", data=kept, attempts=1))
    sender.answer = None
    await dispatcher.tick()
    assert sender.posts[0][0] == sender.posts[1][0]


async def test_a_round_claims_until_nothing_is_due_unless_a_stop_is_asked_for() -> None:
    clock = FakeClock()
    many = [event(clock, id=f"e{i}", pos=i) for i in range(CLAIM_BATCH + 50)]
    queue, sender = FakeQueue(list(many)), FakeSender()
    dispatcher, _ = make(queue, sender, clock)
    await dispatcher.tick()
    assert len(sender.posts) == CLAIM_BATCH + 50  # a second claim, though the first was full

    posts_before = len(sender.posts)

    async def offline(user_id: int) -> bool:
        return False

    claims = 0

    def running() -> bool:
        return claims == 0

    class CountingQueue(FakeQueue):
        async def claim(
            self, now: datetime, limit: int, lease_until: datetime, run: int = 1
        ) -> list[OutboxEvent]:
            nonlocal claims
            claims += 1
            return await super().claim(now, limit, lease_until, run)

    counting = CountingQueue(list(many))
    stopped = Dispatcher(
        counting,
        sender,
        clock,
        DispatchPolicy(SECRET, timeout_s=5.0, max_attempts=3),
        Metrics(),
        offline,
        running=running,
    )
    await stopped.tick()
    assert claims == 1
    assert len(sender.posts) - posts_before == CLAIM_BATCH
    assert len(counting.due) == 50  # left for the next instance, or this one after its restart


@dataclass
class ScriptedSender(FakeSender):
    """Answers each event by its delivery id; may move the clock on while it answers."""

    answers: dict[str, str | None] = field(default_factory=dict)
    clock: FakeClock | None = None
    takes_s: float = 0.0

    async def post(self, body: bytes, headers: dict[str, str]) -> str | None:
        self.posts.append((body, headers))
        if self.clock is not None:
            self.clock.advance(self.takes_s)
        return self.answers.get(headers["X-Chat-Delivery"])


def delivery_ids(sender: FakeSender) -> list[str]:
    return [headers["X-Chat-Delivery"] for _, headers in sender.posts]


async def test_a_lane_s_run_goes_out_in_order_and_stops_at_its_first_failure() -> None:
    clock = FakeClock()
    run = [event(clock, id=f"a{i}", pos=10 + i, lane="chat-a") for i in range(4)]
    other = [event(clock, id=f"b{i}", pos=20 + i, lane="chat-b") for i in range(2)]
    queue = FakeQueue([*reversed(run), *other])  # as a claim may return them: in any order
    sender = ScriptedSender(answers={"a1": "HTTP 503"})
    dispatcher, metrics = make(queue, sender, clock)
    await dispatcher.deliver_due()
    sent = delivery_ids(sender)
    assert [i for i in sent if i.startswith("a")] == ["a0", "a1"]  # a2 and a3 wait for a1
    assert [i for i in sent if i.startswith("b")] == ["b0", "b1"]
    by_id = {o.event.id: o for o in queue.settled}
    assert by_id["a0"].delivered
    assert by_id["a1"].retry_at is not None
    assert by_id["a2"].released
    assert by_id["a3"].released
    assert not by_id["a2"].delivered
    assert (count(metrics, "delivered"), count(metrics, "retried")) == (3, 1)  # none released


async def test_a_run_stops_once_another_attempt_would_outlast_the_lease() -> None:
    clock = FakeClock()
    run = [event(clock, id=f"a{i}", pos=i, lane="chat-a") for i in range(RUN)]
    sender = ScriptedSender(clock=clock, takes_s=lease_s(5.0) / 2)  # slow, but in time
    queue = FakeQueue(run)
    dispatcher, _ = make(queue, sender, clock)
    await dispatcher.deliver_due()
    assert delivery_ids(sender) == ["a0", "a1"]
    assert [o.released for o in queue.settled] == [False, False] + [True] * (RUN - 2)
