"""The contact policies' rules (table-driven), the cheap pre-checks held to the detector's own
corpus, the per-chat policy cache, and the guard that ties them to a send."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from marketplace_chat.contact_guard import ContactGuard
from marketplace_chat.contact_policy import (
    PLACEHOLDER,
    Policy,
    Refusal,
    Verdict,
    could_be_number_part,
    decide,
    refusal_message,
    worth_scanning,
)
from marketplace_chat.contacts import ContactDetector, Finding
from marketplace_chat.errors import ContactNotAllowed, Unavailable
from marketplace_chat.models import Moderation
from marketplace_chat.moderation import ContactAttempt, decode_cursor, encode_cursor
from marketplace_chat.payloads import MessageSend
from marketplace_chat.realtime.contact_policies import ContactPolicies
from marketplace_chat.service import ChatService
from marketplace_chat.settings import ContactSettings, Settings, SettingsError

from .fakes import (
    CountingLimiter,
    FakeClock,
    MemoryBlocks,
    MemoryPresence,
    MemoryStorage,
    MemoryTypingState,
    RecordingNotifier,
    new_user_id,
)
from .test_service import limits

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
CORPORA = (BENCHMARKS / "contacts_corpus.jsonl", BENCHMARKS / "contacts_holdout.jsonl")
DETECTOR = ContactDetector(["market.example"])

TEXT = "call 8 916 123 45 67 or ivan@mail.ru"
PHONE = Finding("phone", 5, 20)
EMAIL = Finding("email", 24, 36)


@pytest.mark.parametrize(
    ("policy", "findings", "expected"),
    [
        (Policy.MASK, [], Verdict(TEXT)),
        (Policy.BLOCK, [], Verdict(TEXT)),
        (Policy.FLAG, [], Verdict(TEXT)),
        (Policy.OFF, [], Verdict(TEXT)),
        (Policy.OFF, [PHONE, EMAIL], Verdict(TEXT)),
        (
            Policy.MASK,
            [PHONE],
            Verdict(
                "call [hidden] or ivan@mail.ru",
                Moderation("masked", ("phone",)),
                original_text=TEXT,
            ),
        ),
        (
            Policy.MASK,
            [PHONE, EMAIL],
            Verdict(
                "call [hidden] or [hidden]",
                Moderation("masked", ("email", "phone")),
                original_text=TEXT,
            ),
        ),
        (Policy.FLAG, [EMAIL, PHONE], Verdict(TEXT, Moderation("flagged", ("email", "phone")))),
        (Policy.BLOCK, [PHONE], Refusal(TEXT, ("phone",))),
        (Policy.BLOCK, [PHONE, EMAIL], Refusal(TEXT, ("email", "phone"))),
    ],
)
def test_decide(policy: Policy, findings: list[Finding], expected: Verdict | Refusal) -> None:
    assert decide(policy, TEXT, findings) == expected


def test_the_text_as_sent_is_kept_only_when_it_was_changed() -> None:
    flagged = decide(Policy.FLAG, TEXT, [PHONE])
    assert isinstance(flagged, Verdict)
    assert flagged.original_text is None
    assert flagged.flagged
    masked = decide(Policy.MASK, TEXT, [PHONE])
    assert isinstance(masked, Verdict)
    assert masked.original_text == TEXT
    assert not masked.flagged
    assert PLACEHOLDER in masked.text
    assert "916" not in masked.text


@pytest.mark.parametrize(
    ("categories", "names"),
    [
        (("phone",), ["phone number (phone)"]),
        (("email", "link"), ["e-mail address (email)", "link (link)"]),
        (("email", "messenger", "phone"), ["(email)", "(messenger)", "(phone)"]),
    ],
)
def test_a_refusal_names_every_category(categories: tuple[str, ...], names: list[str]) -> None:
    error = Refusal("x", categories).error()
    assert isinstance(error, ContactNotAllowed)
    assert error.code.value == "CONTACT_NOT_ALLOWED"
    assert error.message == refusal_message(categories)
    for name in names:
        assert name in error.message


def corpus() -> list[str]:
    """The detector's corpora: the one it is tuned on and the hand-written hold-out."""
    return [
        json.loads(line)["text"]
        for path in CORPORA
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def test_the_pre_check_never_skips_a_text_the_detector_finds_something_in() -> None:
    texts = corpus()
    assert len(texts) > 1000
    extra = [
        "name at host dot com",
        "ivan собака mail точка ru",
        "shop . ru",
        "Hello.Is it still there",
        "пиши в телегу ivan_petrov",
        "ivan (a) mail",
        "восемь девять один шесть один два три четыре пять шесть семь",
        "eight nine one six one two three four five six seven",
        "ｔ．ｍｅ／ivan",
        "wa.me/79161234567",
        "8 916 1оо 45 67",
        "8 9 1 6 1 2 3 4 5 6 7",
        "call 8 (916) 123-45-67 after lunch",
        "ftp://files",
        "заходи на youla. ru",
        "заходи на Youla. RU",
    ]
    missed = [t for t in texts + extra if not worth_scanning(t) and DETECTOR.scan(t)]
    assert missed == []


@pytest.mark.parametrize(
    "text",
    [
        "Hi! Is this still available? I could pick it up tomorrow after work.",
        "Привет! Ещё продаёте? Могу забрать завтра после работы.",
        "Great, thanks. See you then...",
        "Can you do 1500 for it? I could pick it up tomorrow after 18:30.",
        "Size 42, 2 pieces, 15 000 rub: ok?",
        "ok",
    ],
)
def test_the_pre_check_skips_ordinary_sentences(text: str) -> None:
    assert not worth_scanning(text)
    assert not DETECTOR.scan(text)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("8 916", True),
        ("٨٩١٦", True),
        ("восемь девять", True),
        ("Eight", True),
        ("3 45 67 call me", True),
        ("call me at 5", True),
        ("I have 2 of them", False),
        ("ok, thanks", False),
        ("see you tomorrow", False),
    ],
)
def test_number_parts(text: str, part: bool) -> None:
    assert could_be_number_part(text) is part


# -- the per-chat policy cache ------------------------------------------------------------------


class Loads:
    def __init__(self, values: dict[str, str | None]) -> None:
        self.values = values
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, chat_id: str) -> str | None:
        self.calls.append(chat_id)
        value = self.values.get(chat_id)
        if self.gate is not None:
            await self.gate.wait()
        return value


async def test_a_policy_is_read_once_then_served_from_memory_until_its_ttl() -> None:
    clock = FakeClock()
    loads = Loads({"c1": "block"})
    policies = ContactPolicies(loads, ttl_s=30, monotonic=clock.monotonic)
    assert [await policies.get("c1") for _ in range(5)] == ["block"] * 5
    assert loads.calls == ["c1"]
    loads.values["c1"] = "off"
    clock.advance(29)
    assert await policies.get("c1") == "block"
    clock.advance(2)
    assert await policies.get("c1") == "off"
    assert loads.calls == ["c1", "c1"]


async def test_forget_and_clear_take_effect_at_once() -> None:
    loads = Loads({"c1": None, "c2": "flag"})
    policies = ContactPolicies(loads)
    assert await policies.get("c1") is None
    assert await policies.get("c2") == "flag"
    loads.values.update(c1="off", c2="mask")
    policies.forget("c1")
    assert await policies.get("c1") == "off"
    assert await policies.get("c2") == "flag"
    policies.clear()
    assert await policies.get("c2") == "mask"


async def test_concurrent_misses_share_one_load_and_a_load_overtaken_by_a_change_is_not_kept() -> (
    None
):
    loads = Loads({"c1": "mask"})
    loads.gate = asyncio.Event()
    policies = ContactPolicies(loads)
    waiting = [asyncio.ensure_future(policies.get("c1")) for _ in range(10)]
    await asyncio.sleep(0)
    policies.forget("c1")  # the change lands while the read is in flight
    loads.values["c1"] = "block"
    loads.gate.set()
    assert await asyncio.gather(*waiting) == ["mask"] * 10
    assert loads.calls == ["c1"]
    loads.gate = None
    assert await policies.get("c1") == "block"


async def test_a_failed_load_is_raised_to_every_waiter_and_not_kept() -> None:
    calls = 0

    async def failing(chat_id: str) -> str | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0)
            raise Unavailable("The database is unavailable")
        return "flag"

    policies = ContactPolicies(failing)
    results = await asyncio.gather(policies.get("c1"), policies.get("c1"), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    assert await policies.get("c1") == "flag"


# -- the guard ------------------------------------------------------------------------------------


class Attempts:
    def __init__(self) -> None:
        self.stored: list[ContactAttempt] = []

    async def add_contact_attempt(self, attempt: ContactAttempt) -> None:
        self.stored.append(attempt)


class Recent:
    """The Redis list's semantics, in memory."""

    def __init__(self, down: bool = False) -> None:
        self.texts: dict[tuple[str, int], list[str]] = {}
        self.calls = 0
        self.remembered = 0
        self.down = down

    async def push(
        self, chat_id: str, sender_id: int, text: str, client_id: str | None, now: datetime
    ) -> list[str]:
        self.calls += 1
        if self.down:
            raise Unavailable("Realtime state (Redis) is unavailable")
        earlier = self.texts.setdefault((chat_id, sender_id), [])
        before = list(earlier)
        earlier.append(text)
        del earlier[:-2]
        return before

    def remember(
        self, chat_id: str, sender_id: int, text: str, client_id: str | None, now: datetime
    ) -> None:
        self.remembered += 1
        if not self.down:
            earlier = self.texts.setdefault((chat_id, sender_id), [])
            earlier.append(text)
            del earlier[:-2]


class Own:
    def __init__(self, values: dict[str, str | None]) -> None:
        self.values = values

    async def get(self, chat_id: str) -> str | None:
        return self.values.get(chat_id)


def guard(
    default: Policy = Policy.MASK,
    own: dict[str, str | None] | None = None,
    recent: Recent | None = None,
) -> tuple[ContactGuard, Attempts, Recent]:
    attempts, parts = Attempts(), recent or Recent()
    g = ContactGuard(DETECTOR, default, Own(own or {}), attempts, parts, FakeClock())
    return g, attempts, parts


async def test_block_keeps_the_attempt_and_names_the_category() -> None:
    g, attempts, _ = guard(Policy.BLOCK)
    with pytest.raises(ContactNotAllowed) as refused:
        await g.check_send("c1", 7, "write to ivan@mail.ru")
    assert "email" in refused.value.message
    [attempt] = attempts.stored
    assert (attempt.chat_id, attempt.sender_id, attempt.text) == ("c1", 7, "write to ivan@mail.ru")
    assert attempt.categories == ("email",)


async def test_a_kept_attempt_carries_the_sends_client_id() -> None:
    g, attempts, _ = guard(Policy.BLOCK)
    with pytest.raises(ContactNotAllowed):
        await g.check_send("c1", 7, "write to ivan@mail.ru", "cm-1")
    with pytest.raises(ContactNotAllowed):
        await g.check_edit("c1", 7, "write to ivan@mail.ru")
    assert [a.client_message_id for a in attempts.stored] == ["cm-1", None]


async def test_a_chat_s_own_policy_overrides_the_default() -> None:
    g, _, recent = guard(Policy.MASK, own={"open": "off", "strict": "block"})
    assert await g.check_send("open", 7, "8 916 123 45 67") == Verdict("8 916 123 45 67")
    assert recent.calls == 0  # off: nothing is looked at, nothing remembered
    with pytest.raises(ContactNotAllowed):
        await g.check_send("strict", 7, "8 916 123 45 67")
    masked = await g.check_send("other", 7, "8 916 123 45 67")
    assert masked.text == PLACEHOLDER


async def test_a_number_split_over_three_messages_is_masked_in_the_last() -> None:
    g, _, recent = guard()
    assert await g.check_send("c1", 7, "8 9") == Verdict("8 9")
    assert await g.check_send("c1", 7, "16 12") == Verdict("16 12")
    third = await g.check_send("c1", 7, "3 45 67 ok?")
    assert third.text == "[hidden] ok?"
    assert third.moderation == Moderation("masked", ("phone",))
    assert recent.calls == 3
    # Another sender's parts are not joined with these.
    assert (await g.check_send("c1", 8, "3 45 67")).moderation is None


async def test_texts_that_neither_start_nor_end_like_a_number_never_reach_redis() -> None:
    g, _, recent = guard()
    for text in ("hello", "is it still available?", "I have 2 of them, see you tomorrow"):
        assert await g.check_send("c1", 7, text) == Verdict(text)
    assert recent.calls == 0


async def test_a_text_that_only_ends_like_a_number_is_remembered_without_waiting() -> None:
    g, _, recent = guard()
    assert await g.check_send("c1", 7, "call me at 8 916 12") == Verdict("call me at 8 916 12")
    assert (recent.calls, recent.remembered) == (0, 1)
    # the next part, which starts like a number, reads it back and completes the number
    assert (await guard()[0].check_send("c1", 7, "3 45 67")).moderation is None  # alone: none
    second = await g.check_send("c1", 7, "3 45 67")
    assert second.text == PLACEHOLDER
    assert (recent.calls, recent.remembered) == (1, 1)


async def test_without_redis_the_message_is_still_checked_on_its_own() -> None:
    g, _, _ = guard(recent=Recent(down=True))
    assert (await g.check_send("c1", 7, "8 916")).moderation is None
    assert (await g.check_send("c1", 7, "8 916 123 45 67")).text == PLACEHOLDER


async def test_an_edit_is_checked_without_the_split_check() -> None:
    g, _, recent = guard()
    await g.check_send("c1", 7, "8 9")
    await g.check_send("c1", 7, "16 12")
    assert (await g.check_edit("c1", 7, "3 45 67")).moderation is None
    assert recent.calls == 2
    assert (await g.check_edit("c1", 7, "mail ivan@mail.ru")).text == "mail [hidden]"


async def test_the_service_stores_the_masked_text_and_never_returns_the_original() -> None:
    clock = FakeClock()
    storage = MemoryStorage()
    notifier = RecordingNotifier()
    g, _, _ = guard()
    service = ChatService(
        storage,
        MemoryPresence(),
        MemoryTypingState(clock),
        CountingLimiter(),
        notifier,
        clock,
        limits(max_message_length=200),
        "node-a",
        MemoryBlocks(storage),
        contacts=g,
    )
    buyer, seller = new_user_id(), new_user_id()
    chat, _ = await storage.create_chat(buyer, seller, None, buyer, clock.now())
    sent = await service.send(
        buyer, MessageSend.model_validate({"chatId": chat.id, "text": "mail ivan@mail.ru"})
    )
    assert sent.text == "mail [hidden]"
    assert sent.moderation == Moderation("masked", ("email",))
    assert [m.text for m in storage.rows(chat.id)] == ["mail [hidden]"]
    assert "ivan@mail.ru" not in json.dumps([s.payload for s in notifier.sent])
    await service.drain()


# -- settings and cursors -----------------------------------------------------------------------


def test_contact_settings_default_and_hosts() -> None:
    s = ContactSettings(_env_file=None)
    assert s.contact_policy == "mask"
    assert s.allowed_hosts == []
    hosts = ContactSettings(
        _env_file=None, contact_allowed_hosts=" Market.example, cdn.market.example ,магазин.рф"
    )
    assert hosts.allowed_hosts == ["market.example", "cdn.market.example", "магазин.рф"]


def test_attempt_cursors_round_trip() -> None:
    at = FakeClock().now()
    cursor = encode_cursor(at, "6f1c7c4e-8e43-4f8e-9d0e-1d1a1e8a0b11")
    assert decode_cursor(cursor) == (at, "6f1c7c4e-8e43-4f8e-9d0e-1d1a1e8a0b11")
    with pytest.raises(Exception, match="before: not a cursor"):
        decode_cursor("nonsense")


def test_bad_contact_settings_are_named_by_their_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACT_POLICY", "hide")
    monkeypatch.setenv("CONTACT_ALLOWED_HOSTS", "market.example,https://shop.example/")
    with pytest.raises(SettingsError) as raised:
        Settings.load(env_file=None)
    problems = raised.value.problems
    assert any(p.startswith("CONTACT_POLICY: must be one of") for p in problems), problems
    assert any(
        p.startswith("CONTACT_ALLOWED_HOSTS: 'https://shop.example/' is not a host name")
        for p in problems
    ), problems


class Authors:
    def __init__(self, known: dict[str, tuple[str, int]]) -> None:
        self.known = known

    async def message_author(self, message_id: str) -> tuple[str, int] | None:
        return self.known.get(message_id)


async def test_an_edit_is_screened_in_its_message_s_chat_and_only_for_its_sender() -> None:
    attempts = Attempts()
    g = ContactGuard(
        DETECTOR,
        Policy.MASK,
        Own({"strict": "block"}),
        attempts,
        Recent(),
        FakeClock(),
        Authors({"m1": ("open", 7), "m2": ("strict", 7)}),
    )
    masked = await g.screen_edit(7, "m1", "mail ivan@mail.ru")
    assert masked is not None
    assert masked.text == "mail [hidden]"
    assert masked.original_text == "mail ivan@mail.ru"
    with pytest.raises(ContactNotAllowed, match="email"):
        await g.screen_edit(7, "m2", "mail ivan@mail.ru")
    assert [a.chat_id for a in attempts.stored] == ["strict"]
    # Not the sender, or no such message: the edit's own rules answer; nothing is kept.
    assert await g.screen_edit(8, "m2", "mail ivan@mail.ru") is None
    assert await g.screen_edit(7, "nope", "mail ivan@mail.ru") is None
    assert len(attempts.stored) == 1


def test_the_moderators_answers_match_their_openapi_models() -> None:
    from datetime import UTC

    import orjson

    from marketplace_chat.api import contact_moderation as api
    from marketplace_chat.models import Message
    from marketplace_chat.moderation import ModeratedMessage, Revision

    at = datetime(2026, 11, 26, 1, 10, 32, 123000, tzinfo=UTC)
    chat_id, message_id = (
        "6f1c7c4e-8e43-4f8e-9d0e-1d1a1e8a0b11",
        "0b7e2f4a-5c6d-4e8f-9a1b-2c3d4e5f6a7b",
    )
    message = Message(
        message_id, chat_id, 3, 7, "mail [hidden]", None, None, at, 4, at, None,
        Moderation("masked", ("email",)),
    )  # fmt: skip
    bodies: list[tuple[type[Any], dict[str, Any]]] = [
        (
            api.ModeratedMessage,
            ModeratedMessage(message, "mail ivan@mail.ru", (Revision("hello", at),)).to_wire(),
        ),
        (
            api.ContactAttemptsPage,
            {
                "attempts": [
                    ContactAttempt(message_id, chat_id, 7, "8 916", ("phone",), at).to_wire()
                ],
                "nextCursor": None,
            },
        ),
        (api.ContactPolicyState, {"chatId": chat_id, "policy": None, "effective": "mask"}),
    ]
    for model, body in bodies:
        parsed = model.model_validate_json(orjson.dumps(body))
        assert parsed.model_dump(by_alias=True, mode="json") == body


def test_the_pre_check_knows_every_top_level_domain_the_detector_reads_after_a_spaced_dot() -> None:
    from marketplace_chat.contact_policy import SPACED_TLDS
    from marketplace_chat.contacts import web

    found = re.search(r"\(\?P<tld>([^)]*)\)", web._SPACED_LINK_RE.pattern)
    assert found is not None
    assert set(found.group(1).split("|")) <= set(SPACED_TLDS)
