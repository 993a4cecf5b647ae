"""The machine's ceiling for the benchmark's closed loop: a bare python-socketio relay.

    python benchmarks/relay.py PORT

The same ASGI stack as the service (python-socketio on uvicorn with uvloop and httptools,
WebSocket pings and compression off, no access log) and the same events the load generator
uses, with nothing behind them: `chat:create` names the pair's room, and `message:send`
emits `message:new` to both participants and acks it, with no database, no Redis, no
validation and no authentication (the token's user id is read, not verified). What the
service achieves as a fraction of what this relay achieves on the same core, in the same run,
is a figure that another machine can reproduce.
"""

from __future__ import annotations

import base64
import itertools
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
users: dict[str, int] = {}
seqs: dict[str, itertools.count[int]] = {}


def _user_id(token: str) -> int:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return int(claims["sub"])


async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> bool:
    user_id = _user_id((auth or {}).get("token", ""))
    users[sid] = user_id
    await sio.enter_room(sid, f"user:{user_id}", namespace="/chat")
    return True


async def disconnect(sid: str, *args: Any) -> None:
    users.pop(sid, None)


async def chat_create(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    chat_id = f"{data['buyerId']}:{data['sellerId']}"
    seqs.setdefault(chat_id, itertools.count(1))
    return {"success": True, "data": {"id": chat_id}}


async def message_send(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    chat_id = data["chatId"]
    buyer, seller = chat_id.split(":")
    message = {
        "id": str(uuid.uuid4()),
        "chatId": chat_id,
        "seq": next(seqs[chat_id]),
        "senderId": users[sid],
        "text": data["text"].strip(),
        "productId": None,
        "clientMessageId": data.get("clientMessageId"),
        "createdAt": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    await sio.emit(
        "message:new", message, room=[f"user:{buyer}", f"user:{seller}"], namespace="/chat"
    )
    return {"success": True, "data": message}


async def other(event: str, sid: str, *args: Any) -> dict[str, Any]:
    return {"success": True, "data": {}}


async def health(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/health` for the benchmark's start-up wait; every other path is a 404."""
    if scope["type"] != "http":
        return
    status = 200 if scope["path"] == "/health" else 404
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def main() -> None:
    for event, handler in (
        ("connect", connect),
        ("disconnect", disconnect),
        ("chat:create", chat_create),
        ("message:send", message_send),
        ("*", other),
    ):
        sio.on(event, handler, namespace="/chat")
    uvicorn.run(
        socketio.ASGIApp(sio, other_asgi_app=health),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",  # the implementation the service's own transport builds on
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
