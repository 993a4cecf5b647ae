from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from marketplace_chat.errors import ErrorCode, ValidationFailed
from marketplace_chat.models import Chat, Message, Moderation, Participants, ReadReceipt, iso
from marketplace_chat.payloads import (
    MAX_CLIENT_MESSAGE_ID,
    MAX_ID,
    MAX_TOKEN_LENGTH,
    ChatCreate,
    ChatRef,
    ChatsQuery,
    HistoryQuery,
    MessageRead,
    MessageSend,
    Payload,
    SyncQuery,
    TokenRefresh,
    UsersOnlineQuery,
    parse,
    positive_id,
)

CHAT_ID = "3f2b8c1e-9a4d-4c6b-8e2f-1a2b3c4d5e6f"
NOT_AN_ID = "must be a positive integer up to 9007199254740991"


def refusal(model: type[Payload], data: object) -> str:
    with pytest.raises(ValidationFailed) as caught:
        parse(model, data)
    assert caught.value.code is ErrorCode.VALIDATION_ERROR
    return caught.value.message


def test_missing_payload_names_the_first_required_field() -> None:
    assert refusal(ChatCreate, None) == "buyerId: Field required"


def test_none_payload_takes_the_defaults_of_a_model_without_required_fields() -> None:
    q = parse(ChatsQuery, None)
    assert (q.limit, q.before) == (30, None)


@pytest.mark.parametrize("data", ["{}", "", [], [{"chatId": CHAT_ID}], 5, 1.5, True, b"{}"])
def test_non_object_payload_is_refused_as_payload(data: object) -> None:
    assert refusal(ChatRef, data) == "payload: must be an object"


@pytest.mark.parametrize(
    "value",
    [True, False, 1.0, 1.5, "abc", "", " 5", "5 ", "-5", "+5", "1e3", "٣", [1], {"id": 1}, None],
)
def test_id_of_wrong_type_is_refused_naming_the_field(value: object) -> None:
    message = refusal(ChatCreate, {"buyerId": value, "sellerId": 2})
    assert message == f"buyerId: {NOT_AN_ID}"


@pytest.mark.parametrize(("value", "expected"), [("42", 42), ("007", 7), (str(MAX_ID), MAX_ID)])
def test_string_of_digits_is_normalised_to_an_integer_id(value: str, expected: int) -> None:
    p = parse(ChatCreate, {"buyerId": value, "sellerId": 1, "productId": value})
    assert p.buyer_id == expected
    assert p.product_id == expected
    assert type(p.buyer_id) is int


@pytest.mark.parametrize("value", [0, -1, "0", -(2**70)])
def test_non_positive_id_is_refused(value: object) -> None:
    assert refusal(ChatCreate, {"buyerId": 1, "sellerId": value}).startswith("sellerId: ")


@pytest.mark.parametrize(
    "value",
    [
        2**53,
        "9007199254740992",
        "9007199254740993",
        2**63 - 1,
        10**30,
        "1" * 20,
        "9" * 400,
    ],
)
@pytest.mark.parametrize("field", ["buyerId", "productId"])
def test_id_beyond_what_javascript_represents_exactly_is_refused(value: object, field: str) -> None:
    data = {"buyerId": 1, "sellerId": 2, field: value}
    assert refusal(ChatCreate, data) == f"{field}: {NOT_AN_ID}"


def test_id_beyond_what_javascript_represents_exactly_is_refused_in_a_list() -> None:
    message = refusal(UsersOnlineQuery, {"userIds": [1, "9007199254740993"]})
    assert message == f"userIds.1: {NOT_AN_ID}"


@pytest.mark.parametrize("value", [2**53 - 1, "9007199254740991"])
def test_largest_exact_javascript_integer_is_accepted_as_an_id(value: object) -> None:
    assert MAX_ID == 2**53 - 1
    assert parse(ChatCreate, {"buyerId": value, "sellerId": 1}).buyer_id == 2**53 - 1
    assert positive_id(value) == 2**53 - 1


@pytest.mark.parametrize("value", [2**53, "9007199254740993"])
def test_token_user_id_claims_share_the_id_bound(value: object) -> None:
    assert positive_id(value) is None


def test_absent_and_null_product_id_mean_no_product() -> None:
    assert parse(ChatCreate, {"buyerId": 1, "sellerId": 2}).product_id is None
    assert parse(ChatCreate, {"buyerId": 1, "sellerId": 2, "productId": None}).product_id is None


def test_bad_product_id_names_product_id() -> None:
    message = refusal(ChatCreate, {"buyerId": 1, "sellerId": 2, "productId": "x"})
    assert message == f"productId: {NOT_AN_ID}"


@pytest.mark.parametrize(
    "value",
    ["abc", "", 123, None, True, "x" * 100, CHAT_ID + "0", CHAT_ID[:-1], "g" * 32, [CHAT_ID]],
)
def test_bad_uuid_is_refused_naming_the_field(value: object) -> None:
    assert refusal(ChatRef, {"chatId": value}) == "chatId: must be a UUID string"


def test_uuid_is_normalised_to_the_canonical_lowercase_form() -> None:
    assert parse(ChatRef, {"chatId": CHAT_ID.upper()}).chat_id == CHAT_ID
    assert parse(ChatRef, {"chatId": CHAT_ID.replace("-", "")}).chat_id == CHAT_ID


def test_bad_message_id_names_message_id() -> None:
    message = refusal(MessageRead, {"chatId": CHAT_ID, "messageId": "nope"})
    assert message == "messageId: must be a UUID string"


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (ChatRef, {"chatId": CHAT_ID, "extra": 1}),
        (ChatCreate, {"buyerId": 1, "sellerId": 2, "extra": 1}),
        (MessageSend, {"chatId": CHAT_ID, "text": "hi", "extra": 1}),
        (ChatsQuery, {"extra": 1}),
        (TokenRefresh, {"token": "t", "extra": 1}),
    ],
)
def test_unknown_field_is_refused_by_name(model: type[Payload], data: object) -> None:
    assert refusal(model, data) == "extra: unknown field"


@pytest.mark.parametrize("model", [HistoryQuery, SyncQuery, ChatsQuery])
@pytest.mark.parametrize("limit", [0, -1, 101, 10**9, "10", 10.0, True, None])
def test_limit_outside_1_to_100_or_not_an_integer_is_refused(
    model: type[Payload], limit: object
) -> None:
    data: dict[str, object] = {"limit": limit}
    if model is HistoryQuery:
        data["chatId"] = CHAT_ID
    assert refusal(model, data).startswith("limit: ")


@pytest.mark.parametrize("limit", [1, 100])
def test_limit_bounds_are_inclusive(limit: int) -> None:
    assert parse(HistoryQuery, {"chatId": CHAT_ID, "limit": limit}).limit == limit
    assert parse(ChatsQuery, {"limit": limit}).limit == limit
    assert parse(SyncQuery, {"limit": limit}).limit == limit


def test_limit_defaults_are_50_for_messages_and_30_for_chats() -> None:
    assert parse(HistoryQuery, {"chatId": CHAT_ID}).limit == 50
    assert parse(SyncQuery, {}).limit == 50
    assert parse(ChatsQuery, {}).limit == 30


def test_history_cursors_must_be_uuids() -> None:
    assert refusal(HistoryQuery, {"chatId": CHAT_ID, "before": "1"}).startswith("before: ")
    assert refusal(HistoryQuery, {"chatId": CHAT_ID, "after": 5}).startswith("after: ")


@pytest.mark.parametrize("text", [5, None, ["hi"], {"t": "hi"}, True])
def test_text_must_be_a_string(text: object) -> None:
    assert refusal(MessageSend, {"chatId": CHAT_ID, "text": text}).startswith("text: ")


def test_text_is_required() -> None:
    assert refusal(MessageSend, {"chatId": CHAT_ID}) == "text: Field required"


def test_text_is_kept_as_sent_for_the_service_to_trim() -> None:
    assert parse(MessageSend, {"chatId": CHAT_ID, "text": "  hi  "}).text == "  hi  "


UNSTORABLE = [
    pytest.param("poison\u0000", id="nul"),
    pytest.param("\u0000", id="only-nul"),
    pytest.param("\ud800", id="lone-high-surrogate"),
    pytest.param("a\udfffb", id="lone-low-surrogate"),
    pytest.param("ok 😀 \ud83d", id="half-a-pair"),
]
NOT_STORABLE = "must be valid Unicode text without NUL characters or lone surrogates"


@pytest.mark.parametrize("text", UNSTORABLE)
def test_text_postgresql_cannot_store_is_refused_naming_text(text: str) -> None:
    assert refusal(MessageSend, {"chatId": CHAT_ID, "text": text}) == f"text: {NOT_STORABLE}"


@pytest.mark.parametrize("cmid", UNSTORABLE)
def test_client_message_id_postgresql_cannot_store_is_refused_by_name(cmid: str) -> None:
    data = {"chatId": CHAT_ID, "text": "hi", "clientMessageId": cmid}
    assert refusal(MessageSend, data).startswith("clientMessageId: ")


@pytest.mark.parametrize("cursor", UNSTORABLE)
def test_chats_cursor_postgresql_cannot_store_is_refused_naming_before(cursor: str) -> None:
    assert refusal(ChatsQuery, {"before": cursor}).startswith("before: ")


@pytest.mark.parametrize("token", UNSTORABLE)
def test_refresh_token_text_is_left_to_the_verifier(token: str) -> None:
    # A NUL or a lone surrogate is TOKEN_INVALID from the verifier, as in a handshake.
    assert parse(TokenRefresh, {"token": token}).token == token.strip()


def test_text_with_pairs_of_surrogates_and_other_controls_is_kept() -> None:
    text = "emoji 😀 \u200b tab\t bell\u0007 \U0010ffff"
    assert (
        parse(MessageSend, {"chatId": CHAT_ID, "text": text, "clientMessageId": text}).text == text
    )


@pytest.mark.parametrize("cmid", ["", "x" * (MAX_CLIENT_MESSAGE_ID + 1), 5, True])
def test_client_message_id_outside_its_bounds_is_refused(cmid: object) -> None:
    data = {"chatId": CHAT_ID, "text": "hi", "clientMessageId": cmid}
    assert refusal(MessageSend, data).startswith("clientMessageId: ")


@pytest.mark.parametrize("cmid", ["a", "x" * MAX_CLIENT_MESSAGE_ID])
def test_client_message_id_within_its_bounds_is_kept(cmid: str) -> None:
    p = parse(MessageSend, {"chatId": CHAT_ID, "text": "hi", "clientMessageId": cmid})
    assert p.client_message_id == cmid


def test_sync_normalises_chat_ids_and_keeps_seqs() -> None:
    q = parse(SyncQuery, {"chats": {CHAT_ID.upper(): 7}})
    assert q.chats == {CHAT_ID: 7}


@pytest.mark.parametrize("chats", [{"nope": 1}, {CHAT_ID: -1}, {CHAT_ID: "1"}, {CHAT_ID: True}, []])
def test_sync_with_bad_chats_names_chats(chats: object) -> None:
    assert refusal(SyncQuery, {"chats": chats}).startswith("chats")


def test_users_online_normalises_ids_and_caps_the_list_at_500() -> None:
    assert parse(UsersOnlineQuery, {"userIds": ["5", 6]}).user_ids == [5, 6]
    assert parse(UsersOnlineQuery, {"userIds": list(range(1, 501))}).user_ids is not None
    assert refusal(UsersOnlineQuery, {"userIds": list(range(1, 502))}).startswith("userIds: ")
    assert refusal(UsersOnlineQuery, {"userIds": [1, 0]}).startswith("userIds.1: ")


def test_token_refresh_requires_a_bounded_token_and_strips_it() -> None:
    assert refusal(TokenRefresh, {}) == "token: Field required"
    assert refusal(TokenRefresh, {"token": ""}).startswith("token: ")
    assert refusal(TokenRefresh, {"token": "x" * (MAX_TOKEN_LENGTH + 1)}).startswith("token: ")
    assert parse(TokenRefresh, {"token": "  abc \n"}).token == "abc"


def test_iso_has_milliseconds_and_a_z() -> None:
    ts = datetime(2026, 11, 26, 1, 10, 32, 123999, tzinfo=UTC)
    assert iso(ts) == "2026-11-26T01:10:32.123Z"


def test_iso_pads_whole_seconds_with_zero_milliseconds() -> None:
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 7000, tzinfo=UTC)) == "2026-01-02T03:04:05.007Z"


def test_iso_converts_other_offsets_to_utc() -> None:
    ts = datetime(2026, 11, 26, 3, 10, 32, 500000, tzinfo=timezone(timedelta(hours=2)))
    assert iso(ts) == "2026-11-26T01:10:32.500Z"


def _message(chat_id: str = CHAT_ID) -> Message:
    return Message(
        id=str(uuid.UUID(int=1)),
        chat_id=chat_id,
        seq=3,
        sender_id=11,
        text="hello",
        product_id=None,
        client_message_id="c-1",
        created_at=datetime(2026, 11, 26, 1, 10, 32, 123000, tzinfo=UTC),
    )


def test_message_wire_form_is_camel_case_with_iso_time() -> None:
    assert _message().to_wire() == {
        "id": str(uuid.UUID(int=1)),
        "chatId": CHAT_ID,
        "seq": 3,
        "senderId": 11,
        "text": "hello",
        "productId": None,
        "clientMessageId": "c-1",
        "createdAt": "2026-11-26T01:10:32.123Z",
        "rev": 0,
        "editedAt": None,
        "deletedAt": None,
        "moderation": None,
    }


def test_message_wire_form_carries_edits_deletes_and_moderation() -> None:
    at = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
    message = replace(
        _message(), rev=7, edited_at=at, deleted_at=at, moderation=Moderation("masked", ("phone",))
    )
    wire = message.to_wire()
    assert wire["rev"] == 7
    assert wire["editedAt"] == wire["deletedAt"] == "2026-11-26T02:00:00.000Z"
    assert wire["moderation"] == {"action": "masked", "categories": ["phone"]}


def test_chat_wire_form_carries_last_message_and_unread_count() -> None:
    at = datetime(2026, 11, 26, tzinfo=UTC)
    chat = Chat(CHAT_ID, 11, 22, 5, at, at, _message(), 2, last_seq=3)
    wire = chat.to_wire()
    assert wire == {
        "id": CHAT_ID,
        "buyerId": 11,
        "sellerId": 22,
        "productId": 5,
        "createdAt": "2026-11-26T00:00:00.000Z",
        "updatedAt": "2026-11-26T00:00:00.000Z",
        "lastMessage": _message().to_wire(),
        "unreadCount": 2,
        "rev": 0,
        "blocked": False,
    }
    assert Chat(CHAT_ID, 11, 22, None, at, at, None, 0).to_wire()["lastMessage"] is None


def test_read_receipt_names_the_reader_unless_asked_not_to() -> None:
    at = datetime(2026, 11, 26, tzinfo=UTC)
    receipt = ReadReceipt(CHAT_ID, 22, "m", 4, at)
    assert receipt.to_wire() == {
        "chatId": CHAT_ID,
        "userId": 22,
        "messageId": "m",
        "seq": 4,
        "readAt": "2026-11-26T00:00:00.000Z",
    }
    assert "userId" not in receipt.to_wire(with_user=False)


def test_participants_know_each_other() -> None:
    parts = Participants(CHAT_ID, 11, 22)
    assert parts.includes(11)
    assert parts.includes(22)
    assert not parts.includes(33)
    assert parts.other(11) == 22
    assert parts.other(22) == 11
