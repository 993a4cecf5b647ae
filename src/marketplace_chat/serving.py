"""Serving under uvicorn: a listener bound before anything starts, a server that drains the chat
before it closes its connections, and a watchdog for a stop that overruns its deadline.

uvicorn itself is imported by `run_server` alone, so the other commands start without it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import structlog

from marketplace_chat.banner import Banner
from marketplace_chat.embedded import EmbeddedServers
from marketplace_chat.preflight import reach
from marketplace_chat.settings import Settings

log = structlog.get_logger("marketplace_chat")

# uvicorn's graceful phase (connections finishing their responses) may use this share of what is
# left of the shutdown deadline after the drain; the rest is for closing the pools.
GRACEFUL_SHARE = 0.5
# After the server has stopped, the tasks still running get this long to take their cancel.
TEARDOWN_S = 0.2
# Connections waiting to be accepted (see run_server).
LISTEN_BACKLOG = 8192
# The watchdog ends the process this long after the deadline if the stop has not ended it: the
# contract allows the deadline plus one second in all.
WATCHDOG_MARGIN_S = 0.5


def banner(settings: Settings) -> str:
    embedded = f"embedded (data in {settings.server.data_dir})"
    return Banner(
        host=settings.server.listen_host,
        port=settings.server.port,
        database="configured" if settings.database.dsn() else embedded,
        redis="configured" if settings.redis.dsn() else "embedded (in memory)",
        verifier=settings.verifier_kind().value,
    ).text()


def bind_listener(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts: a port in use is then one
    clear error at once, not a half-started service that uvicorn cannot shut down."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_server(
    settings: Settings,
    listener: socket.socket,
    dsn: str,
    redis_url: str,
    embedded: EmbeddedServers,
) -> None:
    import uvicorn

    from marketplace_chat.app import create_app
    from marketplace_chat.gateway.http_protocol import http_protocol
    from marketplace_chat.gateway.transport import MAX_PAYLOAD_BYTES, ChatWebSocketProtocol
    from marketplace_chat.shutdown import CLOSE_RESERVE_S, ChatApp
    from marketplace_chat.storage.migrate import upgrade

    class DrainingServer(uvicorn.Server):
        """On SIGTERM, drains the chat (events in flight, presence, sockets) before uvicorn
        closes its connections, so that long-polling requests do not hold the exit up; the
        whole stop keeps one deadline, and a watchdog ends the process if it does not."""

        def __init__(self, config: uvicorn.Config, app: ChatApp) -> None:
            super().__init__(config)
            self._app = app
            self._watchdog: threading.Timer | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self._watchdog is None:
                self._app.deadline()  # the deadline counts from the signal
                self._watchdog = threading.Timer(
                    self._app.shutdown_timeout_s + WATCHDOG_MARGIN_S, _force_exit, (embedded,)
                )
                self._watchdog.daemon = True
                self._watchdog.start()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            deadline = self._app.deadline()
            await self._app.drain()
            # uvicorn hands this to asyncio.wait_for, which takes fractions of a second too.
            self.config.timeout_graceful_shutdown = deadline.share(  # type: ignore[assignment]
                GRACEFUL_SHARE, CLOSE_RESERVE_S
            )
            await super().shutdown(sockets)

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn raises the SIGTERM or SIGINT it handled again once it has stopped, which
            # would kill the process before the embedded servers stop (SIGTERM) or end a clean
            # Ctrl-C in a traceback (SIGINT). The signal asked for this stop, and it is done.
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    reach(dsn, redis_url)
    if settings.server.migrate_on_start:
        upgrade(dsn)
    app = create_app(settings, dsn, redis_url)
    config = uvicorn.Config(
        app.asgi,
        host=settings.server.listen_host,
        port=settings.server.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        # httptools, with a deadline on request headers.
        http=http_protocol(settings.server.http_header_timeout_s),
        timeout_keep_alive=settings.server.http_keep_alive_timeout_s,
        ws=ChatWebSocketProtocol,
        ws_per_message_deflate=settings.server.ws_compression,
        # A frame above Engine.IO's packet limit is refused by the WebSocket parser before it is
        # assembled (uvicorn's default would take 16 MiB).
        ws_max_size=MAX_PAYLOAD_BYTES,
        # Engine.IO pings every socket itself; a second, WebSocket-level keepalive per
        # connection would only add timers and frames.
        ws_ping_interval=None,
        ws_ping_timeout=None,
        # Connections the kernel queues until they are accepted: a reconnect storm of thousands of
        # sockets at once overflowed uvicorn's 2,048, and each dropped SYN costs its client a
        # second or more before it tries again. The kernel caps it at net.core.somaxconn.
        backlog=LISTEN_BACKLOG,
        lifespan="on",
        access_log=False,
        log_config=None,
    )
    log.info(
        "listening",
        host=settings.server.listen_host,
        port=settings.server.port,
        env=settings.server.chat_env.value,
        verifier=settings.verifier_kind().value,
    )
    if settings.development:
        print(banner(settings), flush=True)
    server = DrainingServer(config, app)
    loop = (config.get_loop_factory() or asyncio.new_event_loop)()
    try:
        loop.run_until_complete(server.serve(sockets=[listener]))
        loop.run_until_complete(_cancel_leftovers(TEARDOWN_S))
    finally:
        loop.close()


async def _cancel_leftovers(timeout_s: float) -> None:
    """What asyncio.run does at the end, with a bound: the tasks a bounded step left behind
    are cancelled and given `timeout_s` to end; one that ignores its cancel is left to the
    closing loop instead of holding the exit."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout_s)


def _force_exit(embedded: EmbeddedServers) -> None:
    """The watchdog's last resort, from its own thread: whatever still hangs (a driver that
    swallowed a cancel, a thread blocked in a socket), the embedded servers are stopped at once
    and the process ends, one margin after the shutdown deadline."""
    log.error("shutdown_deadline_exceeded", action="exit now")
    embedded.kill()
    os._exit(1)
