"""docs/asyncapi.yaml: current with the code, a well-formed AsyncAPI 3.0 document, and the
events the gateway really handles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast
from unittest.mock import MagicMock

import pytest
import yaml

from marketplace_chat import asyncapi
from marketplace_chat.cli import main
from marketplace_chat.gateway.namespace import ChatNamespace
from marketplace_chat.gateway.server import ChatSocketServer

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")  # what AsyncAPI 3.0 allows in components


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(asyncapi.render())
    return loaded


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def test_committed_document_is_up_to_date() -> None:
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert committed == asyncapi.render(), "docs/asyncapi.yaml is out of date: run `make asyncapi`"


def test_document_has_the_asyncapi_3_skeleton(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"]
    assert doc["info"]["version"]
    assert doc["channels"]["chat"]["address"] == "/chat"
    assert set(doc["components"]) == {"securitySchemes", "messages", "schemas"}
    for section in ("messages", "schemas", "securitySchemes"):
        for key in doc["components"][section]:
            assert COMPONENT_KEY.match(key), f"components.{section}.{key} is not a valid key"


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    found = refs(doc)
    assert len(found) > 100
    for ref in found:
        resolve(doc, ref)


def test_operations_use_only_their_channels_messages(doc: dict[str, Any]) -> None:
    for key, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), key
        channel_ref = op["channel"]["$ref"]
        prefix = channel_ref + "/messages/"
        assert op["messages"], key
        for m in op["messages"] + op.get("reply", {}).get("messages", []):
            assert m["$ref"].startswith(prefix), f"{key}: {m['$ref']} is not in {channel_ref}"
            assert "payload" in resolve(doc, resolve(doc, m["$ref"])["$ref"])
        if "reply" in op:
            assert op["reply"]["channel"]["$ref"] == channel_ref


def test_every_client_event_is_received_with_an_ack_and_every_server_event_sent(
    doc: dict[str, Any],
) -> None:
    ops = doc["operations"]
    messages = doc["components"]["messages"]
    received = {messages[k]["name"] for k, op in ops.items() if op["action"] == "receive"}
    sent = {messages[k]["name"] for k, op in ops.items() if op["action"] == "send"}
    assert received == {e.name for e in asyncapi.CLIENT_EVENTS}
    assert sent == {e.name for e in asyncapi.SERVER_EVENTS}
    assert all("reply" in op for op in ops.values() if op["action"] == "receive")
    assert {"message:new", "auth:error", "exception"} <= sent


def test_the_message_send_ack_is_a_message_or_a_failure(doc: dict[str, Any]) -> None:
    ack = doc["components"]["messages"]["client.message.send.ack"]["payload"]
    success, failure = ack["oneOf"]
    assert success["properties"]["data"] == {"$ref": "#/components/schemas/Message"}
    assert failure == {"$ref": "#/components/schemas/AckFailure"}
    message = doc["components"]["schemas"]["Message"]
    assert set(message["required"]) == set(message["properties"]) >= {"id", "seq", "senderId"}


class RecordingServer:
    """Just enough of the Socket.IO server for the namespace to register its handlers."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def on(self, event: str, handler: object, namespace: str | None = None) -> None:
        self.events.append(event)


def test_client_events_are_exactly_the_events_the_gateway_handles() -> None:
    server = RecordingServer()
    # The collaborators are not called while handlers register; mocks keep the test to that.
    ChatNamespace(
        cast(ChatSocketServer, server),
        MagicMock(),
        MagicMock(),
        MagicMock(),
        MagicMock(),
        leeway_s=0,
        grace_s=60,
        blocking=MagicMock(),
        reports=MagicMock(),
    )
    handled = set(server.events) - {"connect", "disconnect", "*"}
    assert handled == {e.name for e in asyncapi.CLIENT_EVENTS}


def test_cli_writes_the_document(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    assert main(["asyncapi", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == asyncapi.render()
