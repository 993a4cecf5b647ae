"""Fixtures of the end-to-end suite: real server processes, the JS client bridge, a fake
marketplace-api, tokens, and direct views on PostgreSQL and Redis for checking what was stored.

Every module gets one server (``chat_server``, local verifier, no rate limit); a module that needs
other settings overrides ``chat_server`` or starts its own with ``server_factory``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from .fakeapi import FakeMarketplaceApi
from .faultkit import PrivatePostgres, PrivateRedis
from .jsclient import JS_DIR, Bridge, JsClient, NodeBridge
from .server import ChatServer, free_port
from .tokens import TEST_JWT_SECRET, Tokens, new_user_id
from .webhookrecv import WebhookReceiver


def _missing_prerequisite(reason: str) -> None:
    """Under CI nothing may be skipped: a missing prerequisite fails loudly."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"e2e prerequisite missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        _missing_prerequisite("node is not installed")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        _missing_prerequisite(f"run `npm ci` in {JS_DIR}")
    assert node is not None
    return node


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, the headless browser of the documentation pages' test."""
    path = shutil.which("chromium")
    if path is None:
        _missing_prerequisite("chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


@pytest_asyncio.fixture(scope="session")
async def node_bridge(
    node_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[NodeBridge]:
    logs = tmp_path_factory.mktemp("bridge")
    node = await NodeBridge.start(logs / "stderr.log", node=node_executable)
    yield node
    await node.stop()


@pytest_asyncio.fixture
async def bridge(node_bridge: NodeBridge) -> AsyncIterator[Bridge]:
    """This test's clients; all closed at teardown."""
    view = Bridge(node_bridge)
    yield view
    await view.close_all()


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens(TEST_JWT_SECRET)


@pytest.fixture
def user_id() -> int:
    return new_user_id()


@pytest.fixture(scope="session")
def base_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "HOST": "127.0.0.1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CHAT_ENV": "production",
        "LOG_FORMAT": "json",
        "RATE_LIMIT_MESSAGES": "0",
    }


@pytest.fixture(scope="session")
def local_env(base_env: dict[str, str]) -> dict[str, str]:
    return {**base_env, "AUTH_VERIFIER": "local", "JWT_SECRET": TEST_JWT_SECRET}


class ServerFactory:
    """Starts servers with given environment variables; stops them all at teardown."""

    def __init__(self, workdir: Path, defaults: dict[str, str]) -> None:
        self.workdir = workdir
        self.defaults = defaults
        self.servers: list[ChatServer] = []

    async def start(self, *serve_args: str, **env: str | None) -> ChatServer:
        """A server with ``env`` over the defaults (a None value unsets the variable), run as
        ``serve *serve_args``."""
        port = free_port()
        index = len(self.servers)
        server = ChatServer(
            port=port,
            env={**self.defaults, **env, "PORT": str(port)},
            log_path=self.workdir / f"server-{index}-{port}.log",
            serve_args=serve_args,
        )
        self.servers.append(server)
        rundir = self.workdir / f"run-{index}"
        rundir.mkdir()
        await server.start(rundir)
        return server

    def retire_all(self, reaper: ServerReaper) -> None:
        reaper.retire(self.servers)
        self.servers = []


class ServerReaper:
    """Servers a test or module is done with get SIGTERM at once and drain while the next tests
    run; the session's end waits for them all (SIGKILL after 10 s)."""

    def __init__(self) -> None:
        self.servers: list[ChatServer] = []

    def retire(self, servers: list[ChatServer]) -> None:
        for server in servers:
            server.terminate()
            self.servers.append(server)

    async def reap(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers))


@pytest_asyncio.fixture(scope="session")
async def server_reaper() -> AsyncIterator[ServerReaper]:
    reaper = ServerReaper()
    yield reaper
    await reaper.reap()


@pytest_asyncio.fixture(scope="module")
async def module_server_factory(
    local_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    server_reaper: ServerReaper,
) -> AsyncIterator[ServerFactory]:
    factory = ServerFactory(tmp_path_factory.mktemp("servers"), local_env)
    yield factory
    factory.retire_all(server_reaper)


@pytest_asyncio.fixture
async def server_factory(
    local_env: dict[str, str], tmp_path: Path, server_reaper: ServerReaper
) -> AsyncIterator[ServerFactory]:
    """Servers of one test (defaults: local verifier); ``await server_factory.start(**env)``."""
    factory = ServerFactory(tmp_path, local_env)
    yield factory
    factory.retire_all(server_reaper)


@pytest_asyncio.fixture(scope="module")
async def chat_server(module_server_factory: ServerFactory) -> ChatServer:
    """The module's server: local verifier, default settings, no message rate limit."""
    return await module_server_factory.start()


class Connect(Protocol):
    def __call__(
        self, user_id: int | None = None, *, server: ChatServer | None = None, **kw: Any
    ) -> Awaitable[JsClient]: ...


@pytest.fixture
def connect(bridge: Bridge, chat_server: ChatServer, tokens: Tokens) -> Connect:
    """``await connect(user_id)``: a client of ``chat_server`` with a fresh valid token."""

    async def _connect(
        user_id: int | None = None, *, server: ChatServer | None = None, **kw: Any
    ) -> JsClient:
        uid = user_id if user_id is not None else new_user_id()
        if "token" not in kw and "auth" not in kw and "query" not in kw and "headers" not in kw:
            kw["token"] = tokens.mint(uid)
        return await bridge.connect((server or chat_server).url, user_id=uid, **kw)

    return _connect


@pytest_asyncio.fixture(scope="module")
async def fake_api() -> AsyncIterator[FakeMarketplaceApi]:
    api = FakeMarketplaceApi().start()
    yield api
    api.stop()


def _asyncpg_dsn(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


@pytest_asyncio.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the service's database, to check what it stored."""
    pool = await asyncpg.create_pool(_asyncpg_dsn(database_url), min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A PostgreSQL of this test's own, to stop, restart and freeze."""
    # Not under pytest's tmp_path: every pytest run that starts (another session's, say) takes the
    # group and other bits off /tmp/pytest-of-<user>, and the embedded server, which runs as
    # another user when we are root, then loses its way to its own files.
    data_dir = Path(tempfile.mkdtemp(prefix="chat-e2e-pg-"))
    try:
        async with PrivatePostgres(data_dir) as postgres:
            yield postgres
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest_asyncio.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A Redis of this test's own, to kill, restart and freeze."""
    async with PrivateRedis(tmp_path / "private-redis") as redis:
        yield redis


@pytest_asyncio.fixture(scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A real HTTP webhook receiver, shared by one module's tests."""
    hooks = WebhookReceiver()
    await hooks.start()
    yield hooks
    await hooks.stop()
