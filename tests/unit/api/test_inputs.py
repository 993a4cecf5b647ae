"""The REST edge turns query strings and bodies into the socket's payloads, and no more."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.types import Message

from marketplace_chat.api.inputs import MAX_JSON_DEPTH, json_object, query_args
from marketplace_chat.errors import ValidationFailed
from marketplace_chat.payloads import ChatsQuery, parse


def _request(query: bytes = b"", body: bytes = b"") -> Request:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "query_string": query, "headers": []}, receive)


@pytest.mark.parametrize(("query", "limit"), [(b"limit=1", 1), (b"limit=100", 100), (b"", 30)])
def test_canonical_digits_become_the_integer_the_model_takes(query: bytes, limit: int) -> None:
    assert parse(ChatsQuery, query_args(_request(query), ints=["limit"])).limit == limit


@pytest.mark.parametrize(
    "value", [b"007", b"50.0", b"%2B5", b"-1", b"1e1", b"", b"0x10", b"%D9%A5"]
)
def test_any_other_spelling_stays_a_string_that_the_strict_model_refuses(value: bytes) -> None:
    args = query_args(_request(b"limit=" + value), ints=["limit"])

    assert isinstance(args["limit"], str)
    with pytest.raises(ValidationFailed, match=r"^limit: "):
        parse(ChatsQuery, args)


def test_only_the_named_parameters_become_integers() -> None:
    assert query_args(_request(b"before=123"), ints=["limit"]) == {"before": "123"}


def test_a_repeated_parameter_is_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"^limit: given more than once"):
        query_args(_request(b"limit=5&limit=5"), ints=["limit"])


def test_a_path_parameter_in_the_query_string_is_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"^chatId: give it in the path"):
        query_args(_request(b"chatId=x"), path=["chatId"])


async def test_a_json_object_is_read() -> None:
    assert await json_object(_request(body=b' {"a": [1, {"b": 2}]} ')) == {"a": [1, {"b": 2}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "a JSON object is required"),
        (b"  \n", "a JSON object is required"),
        (b"{bad", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1]", "must be an object"),
        (b"null", "must be an object"),
        (b'{"a":' * MAX_JSON_DEPTH + b"{}" + b"}" * MAX_JSON_DEPTH, "nested deeper"),
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper"),
    ],
    ids=["empty", "blank", "bad", "not-utf8", "array", "null", "just-too-deep", "very-deep"],
)
async def test_a_body_that_is_not_a_plain_json_object_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(ValidationFailed, match=f"^payload: {message}"):
        await json_object(_request(body=body))


async def test_a_body_at_the_depth_limit_is_read() -> None:
    nested = b'{"a":' * (MAX_JSON_DEPTH - 1) + b"{}" + b"}" * (MAX_JSON_DEPTH - 1)
    assert isinstance(await json_object(_request(body=nested)), dict)
