"""The dispatcher's child process lives and dies with the service: it runs at a lower CPU
priority than the service, its deliveries show on the service's /metrics, a SIGTERM stops it
with the service, and a kill -9 of the service ends it too (nothing is left delivering on its
own)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from marketplace_chat.webhooks.worker import NICE

from .conftest import ServerFactory
from .resthelp import body, rest
from .tokens import Tokens, new_user_id
from .webhookrecv import WebhookReceiver, hook_env, wait_types

pytestmark = pytest.mark.e2e

WAIT_S = 15.0
WORKER = b"marketplace_chat.webhooks.worker"


def _stat(pid: int) -> list[str]:
    # The fields after the command name, which is in parentheses and may hold spaces.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def dispatcher_children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and WORKER in cmdline and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


async def until(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.05)


async def _child_of(server_pid: int) -> int:
    children: list[int] = []

    def found() -> bool:
        children[:] = dispatcher_children(server_pid)
        return len(children) == 1

    await until(found, "one dispatcher process")
    return children[0]


async def test_the_dispatcher_runs_niced_and_its_deliveries_show_on_the_services_metrics(
    server_factory: ServerFactory, tokens: Tokens
) -> None:
    hooks = WebhookReceiver()
    await hooks.start()
    try:
        server = await server_factory.start(**hook_env(hooks))
        assert server.proc is not None
        child = await _child_of(server.proc.pid)
        await until(lambda: int(_stat(child)[16]) == NICE, f"the dispatcher at nice {NICE}")
        assert int(_stat(server.proc.pid)[16]) == 0
        buyer, seller = new_user_id(), new_user_id()
        async with rest(server, tokens.mint(buyer)) as http:
            chat = body(
                await http.post("/api/chats", json={"buyerId": buyer, "sellerId": seller}), 201
            )
        await wait_types(hooks, chat["id"], ["chat.created"])
        shown: list[str] = []

        async def metrics() -> str:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{server.url}/metrics")).text

        deadline = time.monotonic() + WAIT_S
        while not any(
            line.startswith('chat_webhook_deliveries_total{result="delivered"}')
            and float(line.split()[-1]) >= 1
            for line in shown
        ):
            assert time.monotonic() < deadline, "no delivery on /metrics"
            shown = (await metrics()).splitlines()
            await asyncio.sleep(0.1)
    finally:
        await hooks.stop()


async def test_a_sigterm_stops_the_dispatcher_with_the_service(
    server_factory: ServerFactory,
) -> None:
    hooks = WebhookReceiver()
    server = await server_factory.start(**hook_env(hooks, SHUTDOWN_TIMEOUT_S="4"))
    assert server.proc is not None
    child = await _child_of(server.proc.pid)
    started = time.monotonic()
    assert await server.stop() == 0
    assert time.monotonic() - started < 4.0 + 1.0
    assert not alive(child)
    assert "webhooks_dispatcher_stopped" in server.log_text()


async def test_a_kill_9_of_the_service_ends_its_dispatcher(server_factory: ServerFactory) -> None:
    hooks = WebhookReceiver()
    server = await server_factory.start(**hook_env(hooks))
    assert server.proc is not None
    child = await _child_of(server.proc.pid)
    server.proc.kill()
    await server.proc.wait()
    await until(lambda: not alive(child), "the dispatcher gone after its service")
