"""A webhook receiver for the end-to-end tests: a small HTTP/1.1 server on asyncio, in the test's
own event loop, that records every request (headers and raw body) and answers as told.

It can be taken down (the port then refuses connections) and brought back on the same port, and
told to answer 503 to the next attempts about a chat, or 500 to every attempt about some chats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from marketplace_chat.webhooks import signing

from .server import free_port

WAIT_S = 20.0

SECRET = "e2e-webhook-secret"
ADMIN_KEY = "e2e-admin-key-0123456789"
REMIND_AFTER_S = 2  # short, so that reminders fall due within a test


def hook_env(receiver: WebhookReceiver, **extra: str) -> dict[str, str]:
    """The settings of a service that delivers to `receiver` (also for other modules)."""
    return {
        "WEBHOOK_URL": receiver.url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_TIMEOUT_S": "2",
        "WEBHOOK_MAX_ATTEMPTS": "3",
        "UNREAD_NOTIFY_AFTER_S": str(REMIND_AFTER_S),
        "ADMIN_API_KEY": ADMIN_KEY,
        **extra,
    }


@dataclass(frozen=True, slots=True)
class Delivery:
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int  # what the receiver answered
    at: float

    @property
    def event(self) -> dict[str, Any]:
        parsed = json.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed

    @property
    def id(self) -> str:
        return str(self.event["id"])

    @property
    def type(self) -> str:
        return str(self.event["type"])

    def chat_id(self) -> str | None:
        data = self.event["data"]
        chat = data.get("chat")
        if isinstance(chat, dict):
            return str(chat["id"])
        return str(data["chatId"]) if "chatId" in data else None

    def verified(self, secret: str) -> bool:
        return signing.verify(secret, self.headers["x-chat-signature"], self.body, int(time.time()))


@dataclass
class WebhookReceiver:
    port: int = field(default_factory=free_port)
    received: list[Delivery] = field(default_factory=list)
    fail_next: dict[str, int] = field(default_factory=dict)  # chat id: attempts to refuse
    poisoned_chats: set[str] = field(default_factory=set)
    _server: asyncio.Server | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        """Down: the port refuses connections until :meth:`start`."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def delivered(self, chat_id: str | None = None) -> list[Delivery]:
        """Accepted deliveries (2xx), of one chat when given."""
        return [
            d
            for d in self.received
            if d.status == 200 and (chat_id is None or d.chat_id() == chat_id)
        ]

    def attempts(self, delivery_id: str) -> list[Delivery]:
        return [d for d in self.received if d.id == delivery_id]

    async def wait_for(
        self, condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S
    ) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(condition), timeout_s)
            except TimeoutError:
                summary = [(d.type, d.chat_id(), d.status) for d in self.received[-20:]]
                raise AssertionError(
                    f"webhooks: no {what} within {timeout_s}s; {summary}"
                ) from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self._answer(body)
                async with self._changed:
                    self.received.append(Delivery(headers, body, status, time.monotonic()))
                    self._changed.notify_all()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode("latin-1")
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, body: bytes) -> int:
        data = json.loads(body).get("data", {})
        chat = data.get("chat", {}).get("id") if isinstance(data.get("chat"), dict) else None
        chat = chat or data.get("chatId")
        if self.fail_next.get(chat, 0) > 0:
            self.fail_next[chat] -= 1
            return 503
        if chat in self.poisoned_chats:
            return 500
        return 200


async def wait_types(receiver: WebhookReceiver, chat_id: str, types: list[str]) -> list[Delivery]:
    """The chat's ordered events once they are `types` (reminders, which have no order with
    them, left out)."""

    def ordered() -> list[Delivery]:
        return [d for d in receiver.delivered(chat_id) if d.type != "message.unread"]

    await receiver.wait_for(lambda: [d.type for d in ordered()] == types, f"{types} of {chat_id}")
    return ordered()
