"""What clients send and what the server writes: the JSON codec and the Socket.IO packet class.

Both refuse what cannot be an event (malformed JSON, JSON nested too deep, a packet that is no
`[name, ...]` list, a reserved name) with an error that still knows the packet's ack id, so the
server can answer it like any other bad input instead of dropping it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import socketio
import socketio.packet

# No payload of the protocol nests more than a few levels; a cap far below Python's recursion
# limit refuses a JSON bomb before the parser recurses into it.
MAX_JSON_DEPTH = 32

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: one step per run, not per char
_BRACKET = re.compile(r"[\[\]{}]")
_EVENT_NAME = re.compile(r'\A\s*\[\s*("(?:[^"\\]|\\.){0,200}")')


class UndecodableError(ValueError):
    """Client JSON that cannot be read (malformed, or nested deeper than MAX_JSON_DEPTH).

    A ValueError, so that Engine.IO, which tries the same codec on its own messages, keeps
    treating such text as a plain string. `event` is the event name when it can still be read.
    """

    def __init__(self, message: str, event: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.event = event


class Codec:
    """orjson for what the server writes; the standard library for what clients send, since it
    takes integers of any size, which then get a validation error rather than a dropped packet.
    What cannot be read raises UndecodableError, which the server answers like bad input."""

    @staticmethod
    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, *args: Any, **kwargs: Any) -> Any:
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        # Counting brackets runs at C speed; only a payload with many of them is measured.
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(text) > MAX_JSON_DEPTH:
            raise UndecodableError(
                f"payload: nested deeper than {MAX_JSON_DEPTH} levels", _event_name(text)
            )
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise UndecodableError("payload: not valid JSON", _event_name(text)) from None


def _depth(text: str) -> int:
    """How deep the brackets of a JSON text nest, outside its strings."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _event_name(text: str) -> str:
    """The event name at the head of an event's JSON (`["name", ...`), or "" if there is none."""
    found = _EVENT_NAME.match(text)
    if found is None:
        return ""
    try:
        name = json.loads(found.group(1))
    except ValueError:
        return ""
    return name if isinstance(name, str) else ""


# Names the library dispatches itself: a client event called `disconnect` would run the
# disconnect handler, and one called `*` the catch-all without its event-name argument.
DISPATCHED_BY_NAME = frozenset([*socketio.AsyncServer.reserved_events, "*"])


class RefusedPacketError(ValueError):
    """A client EVENT packet that is not a readable event; it still carries its ack id."""

    def __init__(self, namespace: str | None, ack_id: int | None, event: str, reason: str) -> None:
        super().__init__(reason)
        self.namespace = namespace or "/"
        self.ack_id = ack_id
        self.event = event
        self.reason = reason


class ChatPacket(socketio.packet.Packet):  # type: ignore[misc]
    """python-socketio's packet (written for 5.x), refusing an EVENT it cannot read.

    `Packet.decode` reads the type, namespace and ack id before it parses the JSON, so they are
    known when the JSON (or the event's shape) is refused, and the refusal can answer that ack.

    The server sends only JSON, so the packets it builds skip the stock constructor's walk of
    the whole payload for binary data (on every ack and every event); what clients send is
    decoded as before, and the transport refuses binary frames.
    """

    uses_binary_events = False

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments: int = super().decode(encoded_packet)
        except UndecodableError as exc:
            if self.packet_type != socketio.packet.EVENT:
                raise
            raise RefusedPacketError(self.namespace, self.id, exc.event, exc.message) from None
        if self.packet_type == socketio.packet.EVENT:
            data = self.data
            if not (isinstance(data, list) and data and isinstance(data[0], str)):
                raise RefusedPacketError(
                    self.namespace, self.id, "", "payload: an event is a list led by its name"
                )
            if data[0] in DISPATCHED_BY_NAME:
                raise RefusedPacketError(
                    self.namespace, self.id, data[0], f"Unknown event {data[0]!r}"
                )
        return attachments
