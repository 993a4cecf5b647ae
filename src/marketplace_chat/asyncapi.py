"""The AsyncAPI 3.0 description of namespace `/chat`, built from the wire models.

`docs/asyncapi.yaml` is this module's output (`make asyncapi`); a unit test regenerates it and
fails when the committed file differs, and another checks that the client events listed here are
exactly the events the gateway registers. The document describes the service: it *receives*
the client events (each answered through its ack, an AsyncAPI reply) and *sends* the server
events.

The payload schemas come from the pydantic models themselves: the client payloads in
`payloads.py` (the ones the gateway validates with) and the answers in `wire.py` (which a test
holds to the `to_wire()` output).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from marketplace_chat import payloads, wire

NAMESPACE = "/chat"
CHANNEL = "chat"
SCHEMAS = "#/components/schemas/"


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """An event a client emits; `ack` is the model of the ack's `data` on success."""

    name: str
    payload: type[BaseModel]
    ack: type[BaseModel]
    summary: str


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """An event the service emits; `audience` says which sockets receive it."""

    name: str
    payload: type[BaseModel]
    audience: str


CLIENT_EVENTS: tuple[ClientEvent, ...] = (
    ClientEvent(
        "chat:create",
        payloads.ChatCreate,
        wire.Chat,
        "Open the chat of a buyer/seller pair (or find the existing one) and join it.",
    ),
    ClientEvent(
        "chat:join", payloads.ChatRef, wire.Chat, "Join a chat's room (its typing events)."
    ),
    ClientEvent("chat:leave", payloads.ChatRef, wire.Empty, "Leave a chat's room."),
    ClientEvent(
        "chats:list",
        payloads.ChatsQuery,
        wire.ChatsPage,
        "The caller's chats, most recent activity first, a page at a time.",
    ),
    ClientEvent(
        "message:send",
        payloads.MessageSend,
        wire.Message,
        "Send a message; it is committed before the ack and before anyone is told.",
    ),
    ClientEvent(
        "messages:history",
        payloads.HistoryQuery,
        wire.HistoryPage,
        "A page of a chat's messages in chronological order.",
    ),
    ClientEvent(
        "messages:sync",
        payloads.SyncQuery,
        wire.SyncResult,
        "After a reconnect: each chat's messages after the last seq the client has, and with "
        "{ seq, rev } the ones up to it edited or deleted since.",
    ),
    ClientEvent(
        "message:read",
        payloads.MessageRead,
        wire.ReadPointer,
        "Move the caller's read pointer forward to a message.",
    ),
    ClientEvent("typing:start", payloads.ChatRef, wire.Empty, "The caller is typing in a chat."),
    ClientEvent("typing:stop", payloads.ChatRef, wire.Empty, "The caller stopped typing."),
    ClientEvent(
        "users:online",
        payloads.UsersOnlineQuery,
        wire.OnlineUsers,
        "Which of the given users (default: the caller's chat partners) are online.",
    ),
    ClientEvent(
        "message:edit",
        payloads.MessageEdit,
        wire.Message,
        "Replace the text of one's own message, within the edit window of its createdAt.",
    ),
    ClientEvent(
        "message:delete",
        payloads.MessageRef,
        wire.MessageDeleted,
        "Delete one's own message: it stays in place as a tombstone.",
    ),
    ClientEvent(
        "user:block",
        payloads.UserRef,
        wire.BlockState,
        "Block a user: nothing new passes between the two until the block is lifted.",
    ),
    ClientEvent("user:unblock", payloads.UserRef, wire.BlockState, "Lift the caller's block."),
    ClientEvent("blocks:list", payloads.NoArgs, wire.BlockedUsers, "The users the caller blocked."),
    ClientEvent(
        "report:create",
        payloads.ReportCreate,
        wire.ReportReceipt,
        "Report a chat or one of its messages to the moderators.",
    ),
    ClientEvent(
        "auth:refresh-token",
        payloads.TokenRefresh,
        wire.TokenRefreshed,
        "Replace the socket's token without reconnecting.",
    ),
)

SERVER_EVENTS: tuple[ServerEvent, ...] = (
    ServerEvent("message:new", wire.Message, "every socket of both participants, once each"),
    ServerEvent("message:read", wire.ReadReceipt, "every socket of both participants"),
    ServerEvent(
        "message:updated", wire.Message, "every socket of both participants, when one is edited"
    ),
    ServerEvent(
        "message:deleted",
        wire.MessageTombstone,
        "every socket of both participants, when one is deleted",
    ),
    ServerEvent(
        "typing:start", wire.Typing, "the other participant's sockets that joined the chat"
    ),
    ServerEvent(
        "typing:stop",
        wire.Typing,
        "the other participant's sockets that joined the chat; also sent by itself when the "
        "typist sends a message, disconnects, or stays silent for 10 s",
    ),
    ServerEvent(
        "user:online",
        wire.UserOnline,
        "sockets of the users who share a chat with that user, when the user's first socket "
        "anywhere connects",
    ),
    ServerEvent(
        "user:offline",
        wire.UserOffline,
        "sockets of the users who share a chat with that user, when the user's last socket "
        "anywhere goes",
    ),
    ServerEvent(
        "chat:created",
        wire.Chat,
        "the socket that sent chat:create; when the chat is new, every other socket of both "
        "participants too",
    ),
    ServerEvent("users:online", wire.OnlineUsers, "the socket that sent users:online"),
    ServerEvent(
        "auth:error",
        wire.AuthFailure,
        "a socket whose handshake token was refused, right before the server disconnects it",
    ),
    ServerEvent(
        "auth:token-expired",
        wire.AuthFailure,
        "a socket that sent an event after its token expired",
    ),
    ServerEvent(
        "exception",
        wire.ExceptionEvent,
        "a socket whose event failed and had no ack callback",
    ),
)


def message_key(side: str, event: str) -> str:
    """A component key for an event (AsyncAPI keys allow letters, digits, `.`, `-`, `_`)."""
    return f"{side}.{event.replace(':', '.')}"


def _schemas() -> dict[str, Any]:
    used: dict[type[BaseModel], None] = {wire.AckFailure: None}
    for c in CLIENT_EVENTS:
        used[c.payload] = used[c.ack] = None
    for s in SERVER_EVENTS:
        used[s.payload] = None
    _, top = models_json_schema(
        [(m, "validation") for m in used], by_alias=True, ref_template=SCHEMAS + "{model}"
    )
    defs: dict[str, Any] = top.get("$defs", {})
    for schema in defs.values():
        # pydantic titles every field after its Python name ("Buyerid"); the key says it better.
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
    return dict(sorted(defs.items()))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": SCHEMAS + model.__name__}


def _ack_payload(ack: type[BaseModel]) -> dict[str, Any]:
    success = {
        "type": "object",
        "properties": {"success": {"const": True}, "data": _ref(ack)},
        "required": ["success", "data"],
        "additionalProperties": False,
    }
    return {"oneOf": [success, _ref(wire.AckFailure)]}


def _messages() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for c in CLIENT_EVENTS:
        messages[message_key("client", c.name)] = {
            "name": c.name,
            "title": f"{c.name} (client to server)",
            "summary": c.summary,
            "description": "A missing payload counts as `{}`; unknown fields are refused.",
            "payload": _ref(c.payload),
        }
        messages[message_key("client", c.name) + ".ack"] = {
            "name": f"{c.name} ack",
            "title": f"ack of {c.name}",
            "summary": "`{ success: true, data }`, or `{ success: false, error, code }`.",
            "payload": _ack_payload(c.ack),
        }
    for s in SERVER_EVENTS:
        messages[message_key("server", s.name)] = {
            "name": s.name,
            "title": f"{s.name} (server to client)",
            "summary": f"Sent to {s.audience}.",
            "payload": _ref(s.payload),
        }
    return messages


def _operations(messages: dict[str, Any]) -> dict[str, Any]:
    def channel() -> dict[str, str]:
        return {"$ref": f"#/channels/{CHANNEL}"}

    def in_channel(key: str) -> dict[str, str]:
        return {"$ref": f"#/channels/{CHANNEL}/messages/{key}"}

    operations: dict[str, Any] = {}
    for c in CLIENT_EVENTS:
        key = message_key("client", c.name)
        operations[key] = {
            "action": "receive",
            "channel": channel(),
            "summary": messages[key]["summary"],
            "messages": [in_channel(key)],
            "reply": {"channel": channel(), "messages": [in_channel(key + ".ack")]},
        }
    for s in SERVER_EVENTS:
        key = message_key("server", s.name)
        operations[key] = {
            "action": "send",
            "channel": channel(),
            "summary": messages[key]["summary"],
            "messages": [in_channel(key)],
        }
    return operations


def _version() -> str:
    try:
        return version("marketplace-chat")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "0.0.0"


def build() -> dict[str, Any]:
    """The AsyncAPI document as plain data, in a stable order."""
    messages = _messages()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "marketplace-chat",
            "version": _version(),
            "description": (
                "Real-time buyer/seller chat over Socket.IO v4, namespace `/chat`. This document "
                "describes the service: it receives the client events, answers each through its "
                "ack (the operation's reply), and sends the server events. docs/protocol.md "
                "explains the rules behind them."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "localhost:3001",
                "protocol": "ws",
                "pathname": "/socket.io/",
                "description": (
                    "Socket.IO v4 (Engine.IO 4) over WebSocket, or HTTP long-polling with "
                    "upgrade; the port is the PORT setting."
                ),
                "security": [{"$ref": "#/components/securitySchemes/token"}],
            }
        },
        "channels": {
            CHANNEL: {
                "address": NAMESPACE,
                "title": "The chat namespace",
                "servers": [{"$ref": "#/servers/local"}],
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
            }
        },
        "operations": _operations(messages),
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A JWT issued by marketplace-api, given in the handshake as `auth.token`, "
                        "else as the `token` query parameter, else as an `Authorization: Bearer` "
                        "header."
                    ),
                }
            },
            "messages": messages,
            "schemas": _schemas(),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes every repeated value out in full: no `&id001` anchors for a reader to chase."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    """The document as YAML, byte for byte what `docs/asyncapi.yaml` holds."""
    text: str = yaml.dump(
        build(),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return text
