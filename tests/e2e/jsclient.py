# Waiting with a timeout is what a test harness is for: its API takes `timeout=` throughout.
# ruff: noqa: ASYNC109
"""Drive the official JavaScript ``socket.io-client`` from Python tests.

One Node process (``js/bridge.mjs``) multiplexes many clients; it reads JSON-lines commands on stdin
and writes replies and every received event on stdout. :class:`NodeBridge` owns that process;
:class:`Bridge` is a per-test view on it that closes the test's clients at teardown;
:class:`JsClient` is one Socket.IO client.

Every event a client receives is kept, in order, in :attr:`JsClient.log`. ``wait_for`` looks at the
whole log (or from a ``since`` mark on), so an event that came before the wait began is not missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).parent / "js"
BRIDGE_SCRIPT = JS_DIR / "bridge.mjs"

Predicate = Callable[[Any], bool]


class BridgeError(RuntimeError):
    """The bridge process failed or refused a command."""


class AckTimeoutError(AssertionError):
    """The server did not call the ack callback in time."""


class EventTimeoutError(AssertionError):
    """An awaited event did not arrive in time."""


@dataclass(frozen=True, slots=True)
class Received:
    """One event as a client received it."""

    event: str
    args: list[Any]
    transport: str | None
    at: float  # time.monotonic() on arrival in Python

    @property
    def payload(self) -> Any:
        """The first argument (every event of the protocol has exactly one), or None."""
        return self.args[0] if self.args else None


class NodeBridge:
    """The Node process; use :meth:`start` and :meth:`stop`."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self._proc = proc
        self._stderr_path = stderr_path
        self._ids = itertools.count(1)
        self._names = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._clients: dict[str, JsClient] = {}
        self._ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(), name="node-bridge-reader")
        self.errors: list[str] = []
        self.version = ""

    @classmethod
    async def start(cls, stderr_path: Path, node: str = "node") -> NodeBridge:
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        with stderr_path.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                node,
                str(BRIDGE_SCRIPT),
                cwd=str(JS_DIR),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                limit=32 * 1024 * 1024,
                env={**os.environ, "NODE_NO_WARNINGS": "1"},
            )
        bridge = cls(proc, stderr_path)
        try:
            bridge.version = await asyncio.wait_for(asyncio.shield(bridge._ready), 30)
        except (TimeoutError, BridgeError) as exc:
            await bridge.stop()
            raise BridgeError(f"bridge did not start: {exc}\n{bridge.stderr_tail()}") from None
        return bridge

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None and not self._reader.done()

    def stderr_tail(self, size: int = 4000) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    async def stop(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
            with contextlib.suppress(ConnectionError):
                await self._proc.stdin.wait_closed()
        try:
            await asyncio.wait_for(self._proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(BridgeError("bridge stopped"))
        self._pending.clear()

    async def command(self, op: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Send one command and wait for its reply."""
        if not self.alive:
            raise BridgeError(f"bridge is not running\n{self.stderr_tail()}")
        cmd_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        line = json.dumps({"op": op, "id": cmd_id, **fields}) + "\n"
        assert self._proc.stdin is not None
        self._proc.stdin.write(line.encode())
        await self._proc.stdin.drain()
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise BridgeError(f"no reply from the bridge to {op} in {timeout}s") from None
        finally:
            self._pending.pop(cmd_id, None)

    def new_client_name(self) -> str:
        return f"c{next(self._names)}"

    def register(self, client: JsClient) -> None:
        self._clients[client.name] = client

    def forget(self, client: JsClient) -> None:
        self._clients.pop(client.name, None)

    async def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        try:
            while True:
                raw = await self._proc.stdout.readline()
                if not raw:
                    break
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self.errors.append(f"unparsable bridge output: {raw[:200]!r}")
                    continue
                self._dispatch(msg)
        finally:
            exc = BridgeError(f"bridge exited\n{self.stderr_tail()}")
            if not self._ready.done():
                self._ready.set_exception(exc)
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(exc)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "ready":
            if not self._ready.done():
                self._ready.set_result(str(msg.get("version")))
        elif kind == "reply":
            fut = self._pending.get(msg.get("id", -1))
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind == "event":
            client = self._clients.get(str(msg.get("client")))
            if client is not None:
                client._receive(msg)
        else:
            self.errors.append(f"bridge: {msg}")


class Bridge:
    """A test's view on the shared :class:`NodeBridge`: opens clients, closes them at teardown."""

    def __init__(self, node: NodeBridge, default_url: str | None = None) -> None:
        self.node = node
        self.default_url = default_url
        self.clients: list[JsClient] = []

    async def connect(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        auth: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        transports: list[str] | None = None,
        namespace: str = "/chat",
        wait: bool = True,
        timeout: float = 10.0,
        user_id: int | None = None,
        **options: Any,
    ) -> JsClient:
        """Open a client on ``{url}{namespace}``.

        ``token`` goes into ``auth.token``; ``auth``, ``query`` and ``headers`` go as they are.
        With ``wait`` (the default) this returns once the client saw ``connect`` and raises
        :class:`EventTimeoutError` on ``connect_error`` or no answer.
        """
        base = url or self.default_url
        if base is None:
            raise ValueError("no server url")
        opts: dict[str, Any] = {"transports": transports or ["websocket"], **options}
        if token is not None:
            opts["auth"] = {**(auth or {}), "token": token}
        elif auth is not None:
            opts["auth"] = auth
        if query is not None:
            opts["query"] = query
        if headers is not None:
            opts["extraHeaders"] = headers
        name = self.node.new_client_name()
        client = JsClient(self.node, name, user_id=user_id)
        self.node.register(client)
        self.clients.append(client)
        reply = await self.node.command("open", client=name, url=base + namespace, options=opts)
        if not reply.get("ok"):
            raise BridgeError(f"open failed: {reply.get('error')}")
        if wait:
            first = await client.wait_for_any(["connect", "connect_error"], timeout=timeout)
            if first.event == "connect_error":
                raise EventTimeoutError(f"connect_error: {first.payload}")
        return client

    async def close_all(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        self.clients.clear()


@dataclass(eq=False, repr=False)
class JsClient:
    """One ``socket.io-client`` socket living in the bridge."""

    node: NodeBridge
    name: str
    user_id: int | None = None
    log: list[Received] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def __repr__(self) -> str:
        return f"<JsClient {self.name} user={self.user_id} sid={self.sid} events={len(self.log)}>"

    def _receive(self, msg: dict[str, Any]) -> None:
        args = msg.get("args")
        self.log.append(
            Received(
                event=str(msg.get("event")),
                args=args if isinstance(args, list) else [],
                transport=msg.get("transport"),
                at=time.monotonic(),
            )
        )
        self._changed.set()

    @property
    def sid(self) -> str | None:
        """The socket id of the latest ``connect``."""
        for item in reversed(self.log):
            if item.event == "connect" and isinstance(item.payload, dict):
                return str(item.payload.get("id"))
        return None

    @property
    def connected(self) -> bool:
        for item in reversed(self.log):
            if item.event == "connect":
                return True
            if item.event in ("disconnect", "connect_error"):
                return False
        return False

    @property
    def transport(self) -> str | None:
        return self.log[-1].transport if self.log else None

    def mark(self) -> int:
        """A position in the log, for ``since=``."""
        return len(self.log)

    def event_names(self, since: int = 0) -> list[str]:
        return [item.event for item in self.log[since:]]

    def received(
        self, event: str, predicate: Predicate | None = None, since: int = 0
    ) -> list[Received]:
        return [
            item
            for item in self.log[since:]
            if item.event == event and (predicate is None or predicate(item.payload))
        ]

    def events(self, event: str, predicate: Predicate | None = None, since: int = 0) -> list[Any]:
        """The payloads of every ``event`` received so far."""
        return [item.payload for item in self.received(event, predicate, since)]

    async def wait_for_any(
        self, events: Iterable[str], timeout: float = 5.0, since: int = 0
    ) -> Received:
        wanted = set(events)
        return await self._wait(lambda item: item.event in wanted, timeout, since, str(wanted))

    async def wait_for(
        self,
        event: str,
        predicate: Predicate | None = None,
        timeout: float = 5.0,
        since: int = 0,
    ) -> Any:
        """The payload of the first ``event`` (matching ``predicate``) in the log from ``since``."""
        item = await self._wait(
            lambda item: item.event == event and (predicate is None or predicate(item.payload)),
            timeout,
            since,
            event,
        )
        return item.payload

    async def wait_for_received(
        self,
        event: str,
        predicate: Predicate | None = None,
        timeout: float = 5.0,
        since: int = 0,
    ) -> Received:
        """Like :meth:`wait_for`, but returns the :class:`Received` (with its arrival time)."""
        return await self._wait(
            lambda item: item.event == event and (predicate is None or predicate(item.payload)),
            timeout,
            since,
            event,
        )

    async def wait_for_disconnect(self, timeout: float = 5.0, since: int = 0) -> str:
        """The reason of the first ``disconnect`` from ``since``."""
        payload = await self.wait_for("disconnect", timeout=timeout, since=since)
        return str(payload)

    async def _wait(
        self, match: Callable[[Received], bool], timeout: float, since: int, what: str
    ) -> Received:
        deadline = time.monotonic() + timeout
        index = since
        while True:
            while index < len(self.log):
                item = self.log[index]
                index += 1
                if match(item):
                    return item
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EventTimeoutError(
                    f"{self.name}: no {what} within {timeout}s; received: {self._summary(since)}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def assert_no_event(
        self,
        event: str,
        within: float = 1.0,
        predicate: Predicate | None = None,
        since: int | None = None,
    ) -> None:
        """Wait ``within`` seconds and fail if ``event`` came (from ``since``, default: now)."""
        start = self.mark() if since is None else since
        await asyncio.sleep(within)
        got = self.events(event, predicate, since=start)
        assert not got, f"{self.name} unexpectedly received {event}: {got}"

    def _summary(self, since: int = 0) -> str:
        return json.dumps([[item.event, *item.args] for item in self.log[since:]])[:2000]

    async def emit_ack(
        self, event: str, *args: Any, timeout: float = 5.0, args_json: str | None = None
    ) -> Any:
        """Emit with an ack callback; return the ack's first argument.

        ``emit_ack(event)`` sends no payload at all; ``emit_ack(event, None)`` sends ``null``.
        ``args_json`` instead of ``args``: the arguments as the text of a JSON array, parsed in
        Node (for payloads Python's json cannot write, such as 1,000 levels deep).
        """
        reply = await self.node.command(
            "emit",
            timeout=timeout + 10,
            client=self.name,
            event=event,
            args=list(args),
            ack=True,
            timeoutMs=int(timeout * 1000),
            **_as_json_args(args_json),
        )
        return self._ack_of(reply, f"{self.name}: {event}", timeout)

    async def emit(self, event: str, *args: Any, args_json: str | None = None) -> None:
        """Emit without an ack callback (returns once the client has sent it)."""
        reply = await self.node.command(
            "emit",
            client=self.name,
            event=event,
            args=list(args),
            **_as_json_args(args_json),
        )
        if not reply.get("ok"):
            raise BridgeError(f"emit failed: {reply.get('error')}")

    async def send_packet(
        self, packet: str, *, ack_id: int | None = None, timeout: float = 5.0
    ) -> Any:
        """Write one Socket.IO packet as it is (``2/chat,7["x"]``), past the client library's
        checks; with ``ack_id`` (the id written in the packet), return the server's ack to it."""
        fields: dict[str, Any] = {"client": self.name, "data": packet}
        if ack_id is not None:
            fields.update(ackId=ack_id, timeoutMs=int(timeout * 1000))
        reply = await self.node.command("raw", timeout=timeout + 10, **fields)
        if ack_id is None:
            if not reply.get("ok"):
                raise BridgeError(f"raw send failed: {reply.get('error')}")
            return None
        return self._ack_of(reply, f"{self.name}: {packet[:40]}", timeout)

    @staticmethod
    def _ack_of(reply: dict[str, Any], what: str, timeout: float) -> Any:
        if reply.get("timeout"):
            raise AckTimeoutError(f"no ack to {what} within {timeout}s")
        if not reply.get("ok"):
            raise BridgeError(f"emit failed: {reply.get('error')}")
        response = reply.get("args") or []
        return response[0] if len(response) == 1 else (response or None)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.node.alive:
                await self.node.command("close", client=self.name, timeout=10)
        finally:
            self.node.forget(self)


def _as_json_args(args_json: str | None) -> dict[str, Any]:
    """The bridge's field for arguments given as JSON text, when there are such."""
    return {} if args_json is None else {"argsJson": args_json}
