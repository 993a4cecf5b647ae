"""The admin key check and the operators' query of the outbox."""

from __future__ import annotations

import pytest

from marketplace_chat.errors import Forbidden, ValidationFailed
from marketplace_chat.payloads import parse
from marketplace_chat.webhooks.admin import WebhooksQuery, admitted


@pytest.mark.parametrize(
    ("configured", "presented"),
    [
        (None, "anything"),
        ("", ""),
        ("key", None),
        ("key", "other"),
        ("key", "key2"),
        ("kex", "key"),
    ],
)
def test_every_other_case_than_the_configured_key_is_forbidden(
    configured: str | None, presented: str | None
) -> None:
    with pytest.raises(Forbidden):
        admitted(configured, presented)


def test_the_configured_key_is_admitted() -> None:
    admitted("s3cr3t-key", "s3cr3t-key")


@pytest.mark.parametrize(
    "args",
    [{"status": "delivered"}, {"limit": 0}, {"limit": 101}, {"limit": "5"}, {"extra": 1}],
)
def test_a_bad_query_is_a_validation_error(args: dict[str, object]) -> None:
    with pytest.raises(ValidationFailed):
        parse(WebhooksQuery, args)


def test_the_query_defaults_to_failed_events_fifty_a_page() -> None:
    q = parse(WebhooksQuery, {})
    assert (q.status, q.limit, q.before) == ("failed", 50, None)
