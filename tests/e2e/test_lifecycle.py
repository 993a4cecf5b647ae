"""The service's own lifecycle: a port in use, a SIGTERM whatever hangs (Redis or PostgreSQL that
stopped answering, hundreds of pending long-polls), a PostgreSQL fast restart under traffic, and
the embedded servers after the service was killed with -9.

The backends broken here are private to the test; the machine's own servers are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ServerFactory
from .faultkit import (
    PrivatePostgres,
    PrivateRedis,
    alive,
    children_of,
    eventually,
    log_records,
    ready_is,
    scrape,
)
from .helpers import create_chat, failed
from .jsclient import AckTimeoutError, Bridge, BridgeError, JsClient
from .server import ChatServer
from .test_faults import SendLoad
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e

# Small, to keep the tests quick; the contract: SIGTERM → exit within SHUTDOWN_TIMEOUT_S + 1 s.
SHUTDOWN_TIMEOUT_S = 3.0
EXIT_WITHIN_S = SHUTDOWN_TIMEOUT_S + 1.0
BIND_FAILURE_WITHIN_S = 2.0
DATABASE_TIMEOUT_S = 2.0
CLIENTS = 6
LONG_POLLS = 300
RESTARTS = 3


def _outside_pytest_tmp(prefix: str) -> Path:
    # As in test_faults: the embedded PostgreSQL runs as another user when we are root, and
    # pytest takes the group bits off its own temporary folders.
    return Path(tempfile.mkdtemp(prefix=prefix))


async def _sigterm_and_time_the_exit(server: ChatServer) -> float:
    assert server.proc is not None
    started = time.monotonic()
    server.terminate()
    try:
        await asyncio.wait_for(server.proc.wait(), EXIT_WITHIN_S + 10)
    except TimeoutError:
        server.proc.kill()
        await server.proc.wait()
    return time.monotonic() - started


async def _clients_in_chats(bridge: Bridge, server: ChatServer, tokens: Tokens) -> list[JsClient]:
    """Connected users who each share a chat, so that going offline has partners to tell."""
    seller_id = new_user_id()
    clients = []
    for _ in range(CLIENTS):
        buyer_id = new_user_id()
        client = await bridge.connect(server.url, token=tokens.mint(buyer_id), user_id=buyer_id)
        await create_chat(client, buyer_id, seller_id)
        clients.append(client)
    return clients


# -- a port in use ---------------------------------------------------------------------------


async def test_serve_on_a_busy_port_exits_1_at_once_with_one_log_line(
    local_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = int(holder.getsockname()[1])
        server = ChatServer(
            port=port, env={**local_env, "PORT": str(port)}, log_path=tmp_path / "busy.log"
        )
        started = time.monotonic()
        await server.launch(tmp_path)
        assert server.proc is not None
        try:
            code = await asyncio.wait_for(server.proc.wait(), BIND_FAILURE_WITHIN_S + 10)
        finally:
            if server.proc.returncode is None:
                server.proc.kill()
                await server.proc.wait()
        took = time.monotonic() - started

    assert code == 1, server.log_text()
    assert took < BIND_FAILURE_WITHIN_S, f"exited {took:.1f}s after start"
    lines = [line for line in server.log_text().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["event"] == "bind_failed"
    assert record["port"] == port
    assert "in use" in record["error"].lower()


# -- SIGTERM whatever hangs ------------------------------------------------------------------


async def test_sigterm_exits_within_the_deadline_while_redis_does_not_answer(
    bridge: Bridge, server_factory: ServerFactory, tokens: Tokens, private_redis: PrivateRedis
) -> None:
    server = await server_factory.start(
        REDIS_URL=private_redis.url, SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S)
    )
    await _clients_in_chats(bridge, server, tokens)
    private_redis.freeze()
    try:
        took = await _sigterm_and_time_the_exit(server)
    finally:
        private_redis.thaw()
    assert took < EXIT_WITHIN_S, f"exited {took:.1f}s after SIGTERM:\n{server.log_text()[-3000:]}"


async def test_sigterm_exits_within_the_deadline_while_postgres_does_not_answer(
    bridge: Bridge,
    server_factory: ServerFactory,
    tokens: Tokens,
    private_postgres: PrivatePostgres,
) -> None:
    assert private_postgres.dsn is not None
    server = await server_factory.start(
        DATABASE_URL=private_postgres.dsn,
        DATABASE_TIMEOUT_S=str(DATABASE_TIMEOUT_S),
        SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S),
    )
    await _clients_in_chats(bridge, server, tokens)
    private_postgres.freeze()
    try:
        took = await _sigterm_and_time_the_exit(server)
    finally:
        private_postgres.thaw()
    assert took < EXIT_WITHIN_S, f"exited {took:.1f}s after SIGTERM:\n{server.log_text()[-3000:]}"


async def _pending_long_poll(
    http: httpx.AsyncClient, url: str, token: str | None
) -> asyncio.Task[object]:
    """An HTTP long-polling session with its next GET left waiting: a /chat socket when a token
    is given, else an Engine.IO session that has not joined the namespace yet, which only the
    server's own graceful phase can close."""
    base = f"{url}/socket.io/?EIO=4&transport=polling"
    opened = await http.get(base)
    sid = json.loads(opened.text[1:])["sid"]
    polling = f"{base}&sid={sid}"
    if token is not None:
        posted = await http.post(polling, content="40/chat," + json.dumps({"token": token}))
        assert posted.status_code == 200, posted.text
        connected = await http.get(polling)
        assert connected.text.startswith("40/chat,"), connected.text
    return asyncio.ensure_future(http.get(polling))


async def test_sigterm_exits_within_the_deadline_with_hundreds_of_pending_long_polls(
    server_factory: ServerFactory, tokens: Tokens
) -> None:
    server = await server_factory.start(SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S))
    limits = httpx.Limits(max_connections=LONG_POLLS + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
        polls = [
            await _pending_long_poll(
                http, server.url, tokens.mint(new_user_id()) if n % 2 else None
            )
            for n in range(LONG_POLLS)
        ]

        async def all_connected() -> bool:
            return (await scrape(server)).value("chat_connected_sockets") >= LONG_POLLS // 2

        await eventually(all_connected, 30, f"{LONG_POLLS // 2} polling /chat sockets connected")
        assert not any(poll.done() for poll in polls), "a long-poll was answered before SIGTERM"

        took = await _sigterm_and_time_the_exit(server)
        await asyncio.gather(*polls, return_exceptions=True)
    assert took < EXIT_WITHIN_S, f"exited {took:.1f}s after SIGTERM:\n{server.log_text()[-3000:]}"


# -- PostgreSQL fast restart -----------------------------------------------------------------


class ReadLoad:
    """Loops reading a chat (history, the chat list) until stopped; each answer is kept."""

    def __init__(self, client: JsClient, chat_id: str, loops: int = 4) -> None:
        self.acks: list[tuple[float, object]] = []
        self._running = True
        requests: list[tuple[str, dict[str, object]]] = [
            ("messages:history", {"chatId": chat_id, "limit": 5}),
            ("chats:list", {"limit": 5}),
        ]
        self._tasks = [
            asyncio.ensure_future(self._loop(client, *requests[n % len(requests)]))
            for n in range(loops)
        ]

    async def _loop(self, client: JsClient, event: str, payload: dict[str, object]) -> None:
        while self._running:
            started = time.monotonic()
            ack: object = None
            with contextlib.suppress(AckTimeoutError, BridgeError):
                ack = await client.emit_ack(event, payload, timeout=20)
            self.acks.append((started, ack))
            if not (isinstance(ack, dict) and ack.get("success")):
                await asyncio.sleep(0.05)  # a client backs off a little after a failure

    def since(self, moment: float) -> list[object]:
        return [ack for started, ack in self.acks if started >= moment]

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)


def _acked_since(load: SendLoad, moment: float, count: int) -> Callable[[], bool]:
    return lambda: sum(o.acked for o in load.since(moment)) >= count


async def test_postgres_fast_restart_under_traffic_logs_no_crash_and_recovers(
    bridge: Bridge,
    server_factory: ServerFactory,
    tokens: Tokens,
    private_postgres: PrivatePostgres,
) -> None:
    dsn = private_postgres.dsn
    assert dsn is not None
    server = await server_factory.start(
        # The read loop runs flat out: no read budget, so its answers show only the outage.
        DATABASE_URL=dsn,
        DATABASE_TIMEOUT_S=str(DATABASE_TIMEOUT_S),
        RATE_LIMIT_READS="0",
    )
    buyer_id = new_user_id()
    client = await bridge.connect(server.url, token=tokens.mint(buyer_id), user_id=buyer_id)
    chat_id = (await create_chat(client, buyer_id, new_user_id()))["id"]
    sends, reads = SendLoad(client, chat_id), ReadLoad(client, chat_id)
    try:
        await eventually(lambda: sum(o.acked for o in sends.outcomes) >= 20, 10, "20 sends acked")
        for _ in range(RESTARTS):
            await private_postgres.stop()
            assert await private_postgres.start() == dsn
            await eventually(ready_is(server, 200), 10, "/ready 200 after the restart")
            await eventually(_acked_since(sends, time.monotonic(), 10), 15, "sends acked after")
        recovered_at = time.monotonic()
        await eventually(lambda: len(sends.since(recovered_at)) >= 20, 10, "20 more sends")
    finally:
        await sends.stop()
        await reads.stop()

    for outcome in sends.outcomes:
        if not outcome.acked:
            failed(outcome.ack, "INTERNAL_ERROR")
    for _, ack in reads.acks:
        if not (isinstance(ack, dict) and ack.get("success")):
            failed(ack, "INTERNAL_ERROR")
    # Once the database is back, no stale pooled connection fails a request.
    assert all(o.acked for o in sends.since(recovered_at)), [
        o.ack for o in sends.since(recovered_at) if not o.acked
    ]
    late = reads.since(recovered_at + DATABASE_TIMEOUT_S)
    assert all(isinstance(a, dict) and a.get("success") for a in late), late[:5]
    crashes = [
        (record.get("event"), record.get("timestamp"))
        for record in log_records(server)
        if record.get("event") in ("event_crashed", "request_crashed")
        or "exception" in record
        or "exc_info" in record
    ]
    assert not crashes, crashes[:10]
    assert "Traceback" not in server.log_text()


# -- embedded servers after kill -9 ----------------------------------------------------------


def _pid_in(path: Path) -> int:
    return int(path.read_text().split()[0])


def _redis_child(server: ChatServer) -> int:
    """The embedded Redis: the service's child running the wheel's redis-server."""
    assert server.proc is not None
    for pid in children_of(server.proc.pid):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/exe").endswith("redis-server"):
                return pid
    raise AssertionError("no embedded Redis among the service's children")


def _child_running(server: ChatServer, what: str) -> int:
    """The service's child whose command line mentions ``what``."""
    assert server.proc is not None
    for pid in children_of(server.proc.pid):
        with contextlib.suppress(OSError):
            if what.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise AssertionError(f"no {what} among the service's children")


@pytest.fixture
def embedded_env() -> Iterator[dict[str, str | None]]:
    """A service with embedded PostgreSQL and Redis in a folder of the test's own; whatever the
    test leaves running there is killed at the end."""
    data_dir = _outside_pytest_tmp("chat-e2e-embedded-")
    yield {
        "DATABASE_URL": None,
        "REDIS_URL": None,
        "DATA_DIR": str(data_dir),
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
    }
    for pid in _working_in(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(data_dir, ignore_errors=True)


def _working_in(folder: Path) -> list[int]:
    """The processes whose working folder is inside ``folder`` (PostgreSQL and Redis move into
    their data folders)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append(int(proc.name))
    return found


def _postmaster(env: dict[str, str | None]) -> int:
    return _pid_in(Path(str(env["DATA_DIR"])) / "postgres" / "postmaster.pid")


async def test_embedded_servers_stop_by_themselves_when_the_service_is_killed_with_9(
    server_factory: ServerFactory, embedded_env: dict[str, str | None]
) -> None:
    service = await server_factory.start(**embedded_env)
    assert service.proc is not None
    postgres, redis = _postmaster(embedded_env), _redis_child(service)

    service.proc.send_signal(signal.SIGKILL)
    await service.proc.wait()

    # Redis by the kernel's parent-death signal, PostgreSQL by the guard beside the service.
    await eventually(lambda: not alive(redis), 5, "the killed service's Redis gone")
    await eventually(lambda: not alive(postgres), 15, "the killed service's PostgreSQL gone")


async def test_embedded_servers_left_by_a_kill_9_are_stopped_by_the_next_run(
    server_factory: ServerFactory, embedded_env: dict[str, str | None]
) -> None:
    first = await server_factory.start(**embedded_env)
    assert first.proc is not None
    first_postgres, first_redis = _postmaster(embedded_env), _redis_child(first)
    # The guard dies too (an OOM killer, a container's kill): nothing is left to clean up.
    os.kill(_child_running(first, "embedded_guard"), signal.SIGKILL)
    first.proc.send_signal(signal.SIGKILL)
    await first.proc.wait()
    await eventually(lambda: not alive(first_redis), 5, "the killed run's Redis gone")
    assert alive(first_postgres)

    second = await server_factory.start(**embedded_env)
    assert "embedded_leftovers" in second.log_text()
    second_postgres, second_redis = _postmaster(embedded_env), _redis_child(second)
    assert second_postgres == first_postgres, "the server left behind is adopted"
    assert await second.stop() == 0, second.log_text()[-3000:]

    left = [pid for pid in (first_postgres, first_redis, second_redis) if alive(pid)]
    assert not left, f"still running after the clean stop: {left}"
    handles = Path(str(embedded_env["DATA_DIR"])) / "postgres" / ".handle_pids.json"
    assert json.loads(handles.read_text()) == []
