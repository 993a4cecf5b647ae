"""Edits and deletes: the rules (sender only, the window on an injected clock, deleted messages,
blocked chats), the validation of the new text, who is told, and the sync form with revisions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from marketplace_chat import wire
from marketplace_chat.edits import Deletion
from marketplace_chat.errors import (
    Blocked,
    EditWindowClosed,
    Forbidden,
    NotFound,
    ValidationFailed,
)
from marketplace_chat.models import Message, Moderation, iso
from marketplace_chat.payloads import MAX_ID, MessageEdit, MessageRef, SyncPoint, SyncQuery, parse
from marketplace_chat.realtime.limits import event_budgets
from marketplace_chat.settings import LimitSettings
from marketplace_chat.storage.base import Revision

from .fakes import Sent, new_user_id
from .test_service import MAX_LENGTH, World, build, open_chat, send_payload

WINDOW_S = 900.0


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = build(edit_window_s=WINDOW_S)
    yield w
    await w.service.drain()


async def sent_message(w: World, text: str = "hello") -> tuple[Message, int, int]:
    chat, buyer, seller = await open_chat(w)
    message = await w.service.send(buyer, send_payload(chat.id, text))
    w.notifier.clear()
    return message, buyer, seller


def edit(message_id: str, text: str) -> MessageEdit:
    return MessageEdit(message_id=message_id, text=text)


# -- message:edit ------------------------------------------------------------------------------


async def test_the_sender_edits_within_the_window_and_both_users_hear_of_it(world: World) -> None:
    message, buyer, seller = await sent_message(world, "is it available?")
    world.clock.advance(WINDOW_S - 1)

    edited = await world.service.edits.edit(buyer, edit(message.id, "  is it still available?  "))

    assert edited.text == "is it still available?"
    assert edited.edited_at == world.clock.now()
    assert (edited.id, edited.seq, edited.created_at) == (message.id, 1, message.created_at)
    assert edited.rev == message.rev + 1
    assert world.notifier.sent == [
        Sent("users", (buyer, seller), "message:updated", edited.to_wire())
    ]
    chat = world.storage.chats[message.chat_id]
    assert chat.revisions[message.id] == ["is it available?"]
    assert chat.messages[0] == edited


async def test_the_window_closes_at_created_at_plus_edit_window_s(world: World) -> None:
    message, buyer, _ = await sent_message(world)
    world.clock.advance(WINDOW_S)

    with pytest.raises(EditWindowClosed):
        await world.service.edits.edit(buyer, edit(message.id, "too late"))

    assert world.storage.chats[message.chat_id].messages[0] == message
    assert world.notifier.sent == []


async def test_a_window_of_zero_turns_edits_off() -> None:
    w = build(edit_window_s=0)
    message, buyer, _ = await sent_message(w)
    with pytest.raises(EditWindowClosed):
        await w.service.edits.edit(buyer, edit(message.id, "no"))
    # deleting stays possible
    assert (
        await w.service.edits.delete(buyer, MessageRef(message_id=message.id))
    ).message.text == ""


async def test_only_the_sender_may_edit(world: World) -> None:
    message, _, seller = await sent_message(world)
    with pytest.raises(Forbidden):
        await world.service.edits.edit(seller, edit(message.id, "not mine"))
    with pytest.raises(Forbidden):
        await world.service.edits.edit(new_user_id(), edit(message.id, "an outsider"))
    assert world.storage.chats[message.chat_id].messages[0] == message
    assert world.notifier.sent == []


async def test_an_unknown_message_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        await world.service.edits.edit(new_user_id(), edit(str(uuid.uuid4()), "x"))
    with pytest.raises(NotFound):
        await world.service.edits.delete(new_user_id(), MessageRef(message_id=str(uuid.uuid4())))


async def test_a_message_of_another_chat_is_not_found_through_that_chat(world: World) -> None:
    message, buyer, _ = await sent_message(world)
    other, _, _ = await open_chat(world)
    with pytest.raises(NotFound):
        await world.service.edits.edit(buyer, edit(message.id, "x"), chat_id=other.id)
    with pytest.raises(NotFound):
        await world.service.edits.delete(buyer, MessageRef(message_id=message.id), chat_id=other.id)
    assert world.storage.chats[message.chat_id].messages[0] == message


async def test_a_deleted_message_cannot_be_edited(world: World) -> None:
    message, buyer, _ = await sent_message(world)
    await world.service.edits.delete(buyer, MessageRef(message_id=message.id))
    world.notifier.clear()
    with pytest.raises(NotFound, match="deleted"):
        await world.service.edits.edit(buyer, edit(message.id, "back"))
    assert world.notifier.sent == []


async def test_no_edit_in_a_blocked_chat(world: World) -> None:
    message, buyer, seller = await sent_message(world)
    world.storage.blocks[(seller, buyer)] = world.clock.now()
    with pytest.raises(Blocked):
        await world.service.edits.edit(buyer, edit(message.id, "still here"))
    # a delete takes words back, which a block does not stop
    deletion = await world.service.edits.delete(buyer, MessageRef(message_id=message.id))
    assert deletion.message.deleted_at is not None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("   ", "text: must not be empty"),
        ("x" * (MAX_LENGTH + 1), f"text: must be at most {MAX_LENGTH} characters"),
    ],
)
async def test_the_text_is_validated_as_a_send(world: World, text: str, error: str) -> None:
    message, buyer, _ = await sent_message(world)
    with pytest.raises(ValidationFailed) as caught:
        await world.service.edits.edit(buyer, edit(message.id, text))
    assert caught.value.message == error
    assert world.storage.chats[message.chat_id].messages[0] == message


async def test_text_counts_code_points_as_a_send(world: World) -> None:
    message, buyer, _ = await sent_message(world)
    edited = await world.service.edits.edit(buyer, edit(message.id, "😀" * MAX_LENGTH))
    assert edited.text == "😀" * MAX_LENGTH


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"])
def test_text_postgresql_cannot_store_is_refused_by_the_payload(text: str) -> None:
    with pytest.raises(ValidationFailed, match=r"^text: "):
        parse(MessageEdit, {"messageId": str(uuid.uuid4()), "text": text})


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "x"}, "messageId"),
        ({"messageId": "nope", "text": "x"}, "messageId"),
        ({"messageId": str(uuid.uuid4())}, "text"),
        ({"messageId": str(uuid.uuid4()), "text": 5}, "text"),
        ({"messageId": str(uuid.uuid4()), "text": "x", "chatId": str(uuid.uuid4())}, "chatId"),
    ],
)
def test_edit_payloads_are_validated(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed, match=rf"^{field}: "):
        parse(MessageEdit, payload)


async def test_the_same_text_again_is_no_edit(world: World) -> None:
    message, buyer, _ = await sent_message(world, "hello")
    again = await world.service.edits.edit(buyer, edit(message.id, " hello "))
    assert again == message
    assert world.notifier.sent == []
    assert message.id not in world.storage.chats[message.chat_id].revisions


async def test_a_screened_text_is_stored_masked_and_its_original_kept(world: World) -> None:
    message, buyer, _ = await sent_message(world, "call me")
    masked = Revision(
        "call me at [hidden]", Moderation("masked", ("phone",)), "call me at 8 999 314 15 92"
    )
    edited = await world.service.edits.edit(
        buyer, edit(message.id, "call me at 8 999 314 15 92"), screened=masked
    )
    assert edited.text == "call me at [hidden]"
    assert edited.moderation == Moderation("masked", ("phone",))
    chat = world.storage.chats[message.chat_id]
    assert chat.originals[message.id] == "call me at 8 999 314 15 92"
    assert "314 15 92" not in str(world.notifier.sent)


# -- message:delete ----------------------------------------------------------------------------


async def test_delete_leaves_a_tombstone_and_tells_both_users(world: World) -> None:
    message, buyer, seller = await sent_message(world, "oops")
    world.clock.advance(WINDOW_S * 10)  # no window for deletes

    deletion = await world.service.edits.delete(buyer, MessageRef(message_id=message.id))

    tombstone = deletion.message
    assert (tombstone.text, tombstone.moderation) == ("", None)
    assert tombstone.deleted_at == world.clock.now()
    assert (tombstone.seq, tombstone.rev) == (message.seq, message.rev + 1)
    assert deletion.to_wire() == {
        "chatId": message.chat_id,
        "messageId": message.id,
        "deletedAt": iso(world.clock.now()),
    }
    assert world.notifier.sent == [
        Sent(
            "users",
            (buyer, seller),
            "message:deleted",
            {**deletion.to_wire(), "seq": message.seq},
        )
    ]
    assert world.storage.chats[message.chat_id].originals[message.id] == "oops"


async def test_deleting_twice_changes_nothing_and_answers_the_same(world: World) -> None:
    message, buyer, _ = await sent_message(world)
    first = await world.service.edits.delete(buyer, MessageRef(message_id=message.id))
    rev = world.storage.chats[message.chat_id].rev
    world.notifier.clear()
    world.clock.advance(5)

    second = await world.service.edits.delete(buyer, MessageRef(message_id=message.id))

    assert second.to_wire() == first.to_wire()
    assert world.storage.chats[message.chat_id].rev == rev
    assert world.notifier.sent == []


async def test_only_the_sender_may_delete(world: World) -> None:
    message, _, seller = await sent_message(world)
    for user in (seller, new_user_id()):
        with pytest.raises(Forbidden):
            await world.service.edits.delete(user, MessageRef(message_id=message.id))
    assert world.storage.chats[message.chat_id].messages[0] == message


async def test_a_deleted_message_no_longer_counts_as_unread(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    first = await world.service.send(buyer, send_payload(chat.id, "one"))
    await world.service.send(buyer, send_payload(chat.id, "two"))
    assert (await world.service.get_chat(seller, chat.id)).unread_count == 2
    await world.service.edits.delete(buyer, MessageRef(message_id=first.id))
    assert (await world.service.get_chat(seller, chat.id)).unread_count == 1


def test_wire_forms_of_a_deletion_hold_to_their_models() -> None:
    tombstone = Message(
        id=str(uuid.uuid4()),
        chat_id=str(uuid.uuid4()),
        seq=3,
        sender_id=1,
        text="",
        product_id=None,
        client_message_id=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        rev=9,
        deleted_at=datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
    )
    deletion = Deletion(tombstone)
    wire.MessageDeleted.model_validate(deletion.to_wire())
    wire.MessageTombstone.model_validate(deletion.event())
    assert deletion.event()["seq"] == 3


# -- budgets and settings ----------------------------------------------------------------------


def test_edits_and_deletes_share_one_budget() -> None:
    budgets = event_budgets(LimitSettings(rate_limit_edits=7, rate_limit_edits_window_s=30))
    assert budgets["message:edit"] is budgets["message:delete"]
    assert (budgets["message:edit"].size, budgets["message:edit"].window_s) == (7, 30)
    assert budgets["message:edit"] not in {budgets["message:read"], budgets["chats:list"]}


def test_edit_window_defaults_to_15_minutes_and_is_bounded() -> None:
    assert LimitSettings().edit_window_s == 900
    for bad in (-1, float("nan"), float("inf"), 10**12):
        with pytest.raises(ValueError, match="edit_window_s"):
            LimitSettings(edit_window_s=bad)


# -- messages:sync with revisions --------------------------------------------------------------


def test_sync_takes_both_forms_mixed() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    q = parse(SyncQuery, {"chats": {a: 4, b: {"seq": 7, "rev": 12}}})
    assert q.chats == {a: 4, b: SyncPoint(seq=7, rev=12)}
    assert q.seqs() == {a: 4, b: 7}
    assert q.revs() == {b: 12}


def test_the_object_form_takes_counters_up_to_2_53_minus_1() -> None:
    chat = str(uuid.uuid4())
    q = parse(SyncQuery, {"chats": {chat: {"seq": MAX_ID, "rev": MAX_ID}}})
    assert q.revs() == {chat: MAX_ID}


@pytest.mark.parametrize(
    "point",
    [
        {"seq": 1},
        {"rev": 1},
        {"seq": 1, "rev": -1},
        {"seq": -1, "rev": 1},
        {"seq": 1, "rev": MAX_ID + 1},
        {"seq": 1, "rev": 1.5},
        {"seq": 1, "rev": "2"},
        {"seq": 1, "rev": True},
        {"seq": 1, "rev": 1, "extra": 0},
        [1, 2],
        "3",
        -1,
        2**31,
        None,
    ],
)
def test_bad_sync_points_are_refused_naming_the_chat(point: object) -> None:
    with pytest.raises(ValidationFailed, match=r"^chats\."):
        parse(SyncQuery, {"chats": {str(uuid.uuid4()): point}})


async def test_sync_with_a_rev_answers_what_changed_up_to_the_seq(world: World) -> None:
    chat, buyer, seller = await open_chat(world)
    m1 = await world.service.send(buyer, send_payload(chat.id, "one"))
    m2 = await world.service.send(seller, send_payload(chat.id, "two"))
    seen = (await world.service.get_chat(buyer, chat.id)).rev
    await world.service.edits.edit(buyer, edit(m1.id, "one, edited"))
    await world.service.send(buyer, send_payload(chat.id, "three"))

    [plain] = await world.service.sync(buyer, SyncQuery(chats={chat.id: 2}))
    assert plain.changed is None
    assert set(plain.to_wire()) == {"chatId", "messages", "hasMore"}

    [answer] = await world.service.sync(
        buyer, parse(SyncQuery, {"chats": {chat.id: {"seq": 2, "rev": seen}}})
    )
    assert [m.text for m in answer.messages] == ["three"]
    assert [(m.id, m.text) for m in answer.changed or []] == [(m1.id, "one, edited")]
    assert answer.rev == world.storage.chats[chat.id].rev
    body = answer.to_wire()
    assert body["changedHasMore"] is False
    wire.ChatCatchUp.model_validate(body)
    assert m2.id not in {m["id"] for m in body["changed"]}
