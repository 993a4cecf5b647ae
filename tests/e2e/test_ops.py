"""docs/deploy.md for the people who run the service: `/health`, `/ready`,
Prometheus `/metrics` whose counters follow what happened, and JSON logs that name the socket and
the user but never carry a message's text. (`/ready` turning 503 in an outage: test_faults.py.)
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid

import httpx
import pytest
import pytest_asyncio

from .conftest import Connect, ServerFactory
from .fakeapi import FakeMarketplaceApi
from .faultkit import Metrics, eventually, log_records, scrape
from .helpers import assert_auth_rejected, create_chat, failed, send
from .jsclient import Bridge
from .server import ChatServer
from .tokens import OTHER_SECRET, Tokens, new_user_id

pytestmark = pytest.mark.e2e

RATE_LIMIT = 2
METRIC_FAMILIES = {
    "chat_connected_sockets",
    "chat_connections",
    "chat_events",
    "chat_message_send_seconds",
    "chat_fanout_seconds",
    "chat_backend_errors",
    "chat_auth_cache",
    "chat_auth_remote_seconds",
    "chat_rate_limited",
}
AT_LEAST_INFO = {"info", "warning", "error", "critical", "exception"}


@pytest_asyncio.fixture(scope="module")
async def chat_server(module_server_factory: ServerFactory) -> ChatServer:
    """A low message rate limit (to count refusals) and DEBUG logs (what an operator chasing a
    bug turns on), JSON as in production."""
    return await module_server_factory.start(
        RATE_LIMIT_MESSAGES=str(RATE_LIMIT),
        RATE_LIMIT_WINDOW_S="60",
        LOG_LEVEL="DEBUG",
        LOG_FORMAT="json",
    )


async def test_health_and_ready_answer_200_while_both_backends_answer(
    chat_server: ChatServer,
) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        health = await http.get(chat_server.url + "/health")
        ready = await http.get(chat_server.url + "/ready")

    assert health.status_code == 200, health.text
    assert ready.status_code == 200, ready.text
    assert isinstance(ready.json(), dict)


def _delta(before: Metrics, after: Metrics, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


async def test_metrics_are_prometheus_text_and_follow_connections_and_events(
    bridge: Bridge, chat_server: ChatServer, connect: Connect, tokens: Tokens, user_id: int
) -> None:
    before = await scrape(chat_server)
    assert before.families() >= METRIC_FAMILIES
    token = tokens.mint(user_id)

    first = await connect(user_id, token=token)
    second = await connect(user_id, token=token)  # the same token: a cache hit
    await assert_auth_rejected(
        await bridge.connect(
            chat_server.url, token=tokens.mint(user_id, secret=OTHER_SECRET), wait=False
        ),
        "TOKEN_INVALID",
    )
    chat = await create_chat(first, user_id, new_user_id())
    for n in range(RATE_LIMIT):
        await send(first, chat["id"], f"counted {n}")
    failed(
        await first.emit_ack("message:send", {"chatId": chat["id"], "text": " "}),
        "VALIDATION_ERROR",
    )
    failed(
        await first.emit_ack("message:send", {"chatId": chat["id"], "text": "one too many"}),
        "RATE_LIMITED",
    )

    async def sockets_are(count: float) -> bool:
        return (await scrape(chat_server)).value("chat_connected_sockets") == count

    connected = before.value("chat_connected_sockets")
    await eventually(lambda: sockets_are(connected + 2), 5, "chat_connected_sockets up by 2")
    after = await scrape(chat_server)
    await second.close()
    await eventually(lambda: sockets_are(connected + 1), 5, "chat_connected_sockets down by 1")

    assert _delta(before, after, "chat_connections_total", outcome="accepted") == 2
    assert _delta(before, after, "chat_connections_total", outcome="TOKEN_INVALID") == 1
    send_ok = {"event": "message:send", "outcome": "ok"}
    assert _delta(before, after, "chat_events_total", **send_ok) == RATE_LIMIT
    for outcome in ("VALIDATION_ERROR", "RATE_LIMITED"):
        assert (
            _delta(before, after, "chat_events_total", event="message:send", outcome=outcome) == 1
        )
    assert _delta(before, after, "chat_events_total", event="chat:create", outcome="ok") == 1
    assert _delta(before, after, "chat_message_send_seconds_count") >= RATE_LIMIT
    assert after.value("chat_message_send_seconds_count") == after.value(
        "chat_message_send_seconds_bucket", le="+Inf"
    )
    assert _delta(before, after, "chat_fanout_seconds_count") >= RATE_LIMIT  # message:new
    # The local verifier checks signatures itself and never reads the cache.
    assert _delta(before, after, "chat_auth_cache_total", result="hit") == 0
    assert _delta(before, after, "chat_auth_cache_total", result="miss") == 0
    assert _delta(before, after, "chat_rate_limited_total", action="message:send") == 1


async def test_remote_verifier_latency_is_measured(
    bridge: Bridge, server_factory: ServerFactory, fake_api: FakeMarketplaceApi, tokens: Tokens
) -> None:
    server = await server_factory.start(
        AUTH_VERIFIER="remote", MARKETPLACE_API_URL=fake_api.url, JWT_SECRET=None
    )
    user_id = new_user_id()
    accepted = tokens.mint(user_id, secret=OTHER_SECRET)
    fake_api.accept(accepted, user_id)
    refused = tokens.mint(user_id, secret=OTHER_SECRET)  # unknown to the fake: 401

    await bridge.connect(server.url, token=accepted)
    await assert_auth_rejected(
        await bridge.connect(server.url, token=refused, wait=False), "TOKEN_INVALID"
    )
    await bridge.connect(server.url, token=accepted)  # answered from the cache

    metrics = await scrape(server)
    assert metrics.value("chat_auth_cache_total", result="miss") == 2
    assert metrics.value("chat_auth_cache_total", result="hit") == 1
    assert metrics.value("chat_auth_remote_seconds_count") == 2
    assert metrics.value("chat_auth_remote_seconds_sum") > 0
    assert len(metrics.label_values("chat_auth_remote_seconds_count", "status")) == 2
    assert metrics.value("chat_connections_total", outcome="accepted") == 2
    assert metrics.value("chat_connections_total", outcome="TOKEN_INVALID") == 1


async def test_json_logs_name_socket_user_and_outcome_but_never_the_text(
    bridge: Bridge, chat_server: ChatServer, connect: Connect, tokens: Tokens, user_id: int
) -> None:
    marker = f"unmistakable-{uuid.uuid4().hex}"
    client = await connect(user_id)
    refused = await bridge.connect(
        chat_server.url, token=tokens.mint(user_id, secret=OTHER_SECRET), wait=False
    )
    await assert_auth_rejected(refused, "TOKEN_INVALID")
    chat = await create_chat(client, user_id, new_user_id())
    await send(client, chat["id"], f"hello {marker}")
    too_long = {"chatId": chat["id"], "text": marker * (4001 // len(marker) + 1)}
    failed(await client.emit_ack("message:send", too_long), "VALIDATION_ERROR")
    sid, refused_sid = client.sid, refused.sid
    assert sid is not None
    assert refused_sid is not None

    def about(socket_id: str) -> list[dict[str, object]]:
        return [r for r in log_records(chat_server) if r.get("sid") == socket_id]

    while_connected = len(about(sid))
    await client.close()
    await eventually(lambda: len(about(sid)) > while_connected, 5, "a log line on the disconnect")

    lines = about(sid)
    connected, disconnected = lines[0], lines[-1]
    for record in (connected, disconnected):
        assert record.get("user_id") == user_id, record
        assert record.get("level") == "info", record
    assert any("TOKEN_INVALID" in r.values() for r in about(refused_sid)), about(refused_sid)
    for outcome in ("ok", "VALIDATION_ERROR"):
        assert any("message:send" in r.values() and outcome in r.values() for r in lines), (
            f"no log of message:send with outcome {outcome}: {lines}"
        )
    leaks = [r for r in log_records(chat_server) if marker in json.dumps(r)]
    assert not [r for r in leaks if str(r.get("level")) in AT_LEAST_INFO], leaks


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_a_stop_signal_ends_the_process_cleanly(
    server_factory: ServerFactory, connect: Connect, stop: signal.Signals
) -> None:
    server = await server_factory.start()
    client = await connect(new_user_id(), server=server)
    assert client.connected
    assert server.proc is not None
    server.terminated = True  # the harness sends nothing more
    server.proc.send_signal(stop)
    assert await asyncio.wait_for(server.proc.wait(), 15) == 0
    log = server.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert '"event": "node_stopped"' in log
