from __future__ import annotations

import json

import pytest

from marketplace_chat.gateway.codec import MAX_JSON_DEPTH, Codec, UndecodableError


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_nested_up_to_the_limit_is_read() -> None:
    assert Codec.loads(nested(MAX_JSON_DEPTH)) == json.loads(nested(MAX_JSON_DEPTH))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_json_nested_past_the_limit_is_refused_before_it_is_parsed(depth: int) -> None:
    with pytest.raises(UndecodableError) as caught:
        Codec.loads(f'["message:send",{nested(depth - 1)}]')
    assert caught.value.message == f"payload: nested deeper than {MAX_JSON_DEPTH} levels"
    assert caught.value.event == "message:send"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 500 + '\\"{' * 100 + "]" * 500
    data = json.dumps(["message:send", {"text": text}])
    assert Codec.loads(data) == ["message:send", {"text": text}]


@pytest.mark.parametrize(
    ("data", "event"),
    [
        ('["message:send",{"chatId":', "message:send"),
        ('["a\\"b", nope]', 'a"b'),
        ("{", ""),
        ("[5, nope]", ""),
    ],
)
def test_malformed_json_is_refused_with_the_event_name_when_it_can_be_read(
    data: str, event: str
) -> None:
    with pytest.raises(UndecodableError) as caught:
        Codec.loads(data)
    assert caught.value.message == "payload: not valid JSON"
    assert caught.value.event == event


def test_a_refusal_is_a_value_error_so_engineio_keeps_its_text_as_a_string() -> None:
    assert issubclass(UndecodableError, ValueError)


def test_integers_of_any_size_are_read_for_validation_to_judge() -> None:
    assert Codec.loads('["x",{"buyerId":9007199254740993}]') == ["x", {"buyerId": 2**53 + 1}]
