"""Small flows the conversation tests share: a buyer/seller pair, a batch of messages, what
PostgreSQL holds, and the paging calls (``messages:history``, ``messages:sync``, ``chats:list``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from .conftest import Connect
from .helpers import create_chat, ok, send
from .jsclient import JsClient
from .tokens import new_user_id


@dataclass
class Pair:
    """A chat with one connected socket per participant (the buyer's created it)."""

    buyer_id: int
    seller_id: int
    buyer: JsClient
    seller: JsClient
    chat: dict[str, Any]

    @property
    def chat_id(self) -> str:
        return str(self.chat["id"])


async def pair(connect: Connect, buyer_id: int | None = None, **kw: Any) -> Pair:
    buyer_id = buyer_id if buyer_id is not None else new_user_id()
    seller_id = new_user_id()
    buyer = await connect(buyer_id, **kw)
    seller = await connect(seller_id, **kw)
    chat = await create_chat(buyer, buyer_id, seller_id)
    return Pair(buyer_id, seller_id, buyer, seller, chat)


async def send_many(client: JsClient, chat_id: str, count: int, prefix: str = "m") -> list[Any]:
    """``count`` messages one after the other (so their seq follows the order given)."""
    return [await send(client, chat_id, f"{prefix}{i}") for i in range(count)]


async def send_concurrently(client: JsClient, chat_id: str, count: int) -> list[Any]:
    """``count`` messages at once; returned in seq order."""
    sent = await asyncio.gather(*(send(client, chat_id, f"c{i}") for i in range(count)))
    return sorted(sent, key=lambda m: m["seq"])


async def message_rows(db: asyncpg.Pool, chat_id: str) -> list[asyncpg.Record]:
    return list(
        await db.fetch(
            "SELECT id, seq, sender_id, text, client_message_id"
            " FROM chat.messages WHERE chat_id = $1 ORDER BY seq",
            chat_id,
        )
    )


async def history(client: JsClient, chat_id: str, **query: Any) -> Any:
    """The raw ``messages:history`` ack."""
    return await client.emit_ack("messages:history", {"chatId": chat_id, **query})


async def history_page(client: JsClient, chat_id: str, **query: Any) -> tuple[list[Any], bool]:
    data = ok(await history(client, chat_id, **query))
    assert set(data) == {"messages", "hasMore"}, data
    assert isinstance(data["hasMore"], bool), data
    return data["messages"], data["hasMore"]


async def sync(client: JsClient, payload: Any) -> dict[str, dict[str, Any]]:
    """``messages:sync`` as a map chatId → entry (asserting every chat comes once)."""
    data = ok(await client.emit_ack("messages:sync", payload))
    assert set(data) == {"chats"}, data
    entries = data["chats"]
    assert isinstance(entries, list), data
    by_chat = {entry["chatId"]: entry for entry in entries}
    assert len(by_chat) == len(entries), f"a chat came twice: {entries}"
    for entry in entries:
        assert set(entry) == {"chatId", "messages", "hasMore"}, entry
        assert isinstance(entry["hasMore"], bool), entry
    return by_chat


async def chats_page(client: JsClient, **query: Any) -> tuple[list[Any], Any]:
    data = ok(await client.emit_ack("chats:list", query))
    assert set(data) == {"chats", "nextCursor"}, data
    return data["chats"], data["nextCursor"]


async def wait_for_news(
    client: JsClient, chat_id: str, count: int, within: float = 5.0
) -> list[Any]:
    """The chat's ``message:new`` events once ``client`` has ``count`` of them (or the time is
    up: the caller's assertions then say what is missing)."""
    deadline = time.monotonic() + within
    while True:
        got = client.events("message:new", lambda m: m["chatId"] == chat_id)
        if len(got) >= count or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


def seqs(messages: list[Any]) -> list[int]:
    return [int(m["seq"]) for m in messages]
