"""docs/protocol.md keeps up with the code: every event and error code is documented, and its
strict JSON examples of objects are what the service really sends."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from marketplace_chat import asyncapi, wire
from marketplace_chat.errors import ErrorCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("event", [e.name for e in asyncapi.CLIENT_EVENTS])
def test_every_client_event_has_its_own_heading(text: str, event: str) -> None:
    assert f"\n### `{event}`\n" in section(text, "Client → server events")


@pytest.mark.parametrize("event", sorted({e.name for e in asyncapi.SERVER_EVENTS}))
def test_every_server_event_is_in_the_server_events_table(text: str, event: str) -> None:
    assert f"\n| `{event}` |" in section(text, "Server → client events")


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_is_in_the_error_codes_table(text: str, code: ErrorCode) -> None:
    assert f"\n| `{code.value}` |" in section(text, "Error codes")


def strict_examples(text: str) -> list[Any]:
    return [json.loads(body) for body in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_the_message_example_is_a_message_the_service_could_send(text: str) -> None:
    messages = [e for e in strict_examples(text) if {"seq", "senderId"} <= set(e)]
    assert messages, "protocol.md lost its full Message example"
    for example in messages:
        wire.Message.model_validate_json(json.dumps(example))
