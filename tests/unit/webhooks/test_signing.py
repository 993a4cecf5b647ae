"""The wire form of a webhook: the envelope, the signature a receiver checks, the back-off."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from marketplace_chat.webhooks import signing

SECRET = "whsec-test"
BODY = b'{"id":"e1","type":"message.created","createdAt":"2026-11-26T01:10:32.123Z","data":{}}'


def test_signature_is_hmac_sha256_of_timestamp_dot_raw_body() -> None:
    header = signing.signature(SECRET, 1_764_000_000, BODY)
    expected = hmac.new(SECRET.encode(), b"1764000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1764000000,v1={expected}"


def test_a_receiver_accepts_the_signature_and_refuses_any_change() -> None:
    header = signing.signature(SECRET, 1_764_000_000, BODY)
    assert signing.verify(SECRET, header, BODY, now=1_764_000_010)
    assert not signing.verify(SECRET, header, BODY + b" ", now=1_764_000_010)
    assert not signing.verify("another", header, BODY, now=1_764_000_010)
    assert not signing.verify(SECRET, header.replace("t=1764000000", "t=1764000001"), BODY, 0)
    assert not signing.verify(SECRET, header, BODY, now=1_764_000_000 + 301)  # replayed late
    assert not signing.verify(SECRET, "garbage", BODY, now=1_764_000_000)


def test_envelope_carries_id_type_created_at_and_the_stored_data_verbatim() -> None:
    data = '{"chat": {"id": "c1", "buyerId": 1}}'
    body = signing.envelope(
        "e1", "chat.created", datetime(2026, 11, 26, 1, 2, 3, 456789, UTC), data
    )
    parsed = json.loads(body)
    assert list(parsed) == ["id", "type", "createdAt", "data"]
    assert parsed == {
        "id": "e1",
        "type": "chat.created",
        "createdAt": "2026-11-26T01:02:03.456Z",
        "data": {"chat": {"id": "c1", "buyerId": 1}},
    }
    assert body.endswith(b',"data":' + data.encode() + b"}")


def test_headers_name_the_event_and_the_delivery() -> None:
    assert signing.headers("e1", "message.unread", "t=1,v1=ab") == {
        "Content-Type": "application/json",
        "X-Chat-Event": "message.unread",
        "X-Chat-Delivery": "e1",
        "X-Chat-Signature": "t=1,v1=ab",
    }


def test_back_off_doubles_from_one_second_up_to_five_minutes() -> None:
    assert [signing.backoff_s(n) for n in range(1, 12)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300,
    ]  # fmt: skip
    assert signing.backoff_s(10_000) == 300


@pytest.mark.parametrize("attempts", [0, -1])
def test_back_off_before_any_failure_is_the_first_step(attempts: int) -> None:
    assert signing.backoff_s(attempts) == 1
