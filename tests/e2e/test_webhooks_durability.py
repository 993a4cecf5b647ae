"""An event committed just before a kill -9 is delivered by the restarted service: the outbox is
written in the change's own transaction, and delivery resumes from it.

A module of its own, so that no other instance with webhooks runs against the shared database
meanwhile: the delivery can then only come from the restarted service.
"""

from __future__ import annotations

import asyncpg
import pytest

from .conftest import ServerFactory
from .resthelp import body, rest
from .tokens import Tokens, new_user_id
from .webhookrecv import WebhookReceiver, hook_env, wait_types

pytestmark = pytest.mark.e2e


async def test_an_event_committed_before_a_kill_9_is_delivered_after_the_restart(
    server_factory: ServerFactory, tokens: Tokens, db: asyncpg.Pool
) -> None:
    hooks = WebhookReceiver()  # down: the service commits, cannot deliver, and dies
    server = await server_factory.start(**hook_env(hooks))
    buyer, seller = new_user_id(), new_user_id()
    async with rest(server, tokens.mint(buyer)) as http:
        chat = body(await http.post("/api/chats", json={"buyerId": buyer, "sellerId": seller}), 201)
        message = body(
            await http.post(f"/api/chats/{chat['id']}/messages", json={"text": "x"}), 201
        )
    assert server.proc is not None
    server.proc.kill()
    await server.proc.wait()
    pending = await db.fetchval(
        "SELECT count(*) FROM chat.outbox WHERE chat_id = $1 AND status = 'pending'", chat["id"]
    )
    assert pending == 3  # chat.created, message.created, the reminder
    await hooks.start()
    try:
        await server_factory.start(**hook_env(hooks))
        deliveries = await wait_types(hooks, chat["id"], ["chat.created", "message.created"])
        assert deliveries[1].event["data"]["message"] == message
    finally:
        await hooks.stop()
