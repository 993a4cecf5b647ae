"""`marketplace-chat serve | migrate | token`."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager

import jwt
import structlog

from marketplace_chat.embedded import EmbeddedServers
from marketplace_chat.logs import configure_logging
from marketplace_chat.settings import Settings, SettingsError

log = structlog.get_logger("marketplace_chat")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketplace-chat", description="Real-time buyer/seller chat for marketplaces."
    )
    parser.add_argument("--env-file", default=".env", help="file of settings (default: .env)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--dev", action="store_true", help="development mode (CHAT_ENV=development)")
    serve.add_argument(
        "--host", help="address to listen on (HOST; default 0.0.0.0, with --dev 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, help="port to listen on (PORT, default 3001)")
    serve.add_argument("--no-migrate", action="store_true", help="skip migrations at start")
    sub.add_parser("migrate", help="bring schema chat up to date, then exit")
    token = sub.add_parser("token", help="mint a token for the configured local verifier")
    token.add_argument("--user", type=int, required=True, help="user id (the sub claim)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--dev", action="store_true", help="use the development secret")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "dev", False):
        os.environ["CHAT_ENV"] = "development"
    overrides = {
        k: v
        for k, v in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "migrate_on_start": False if getattr(args, "no_migrate", False) else None,
        }.items()
        if v is not None
    }
    try:
        settings = Settings.load(args.env_file, **overrides)
        if args.command == "token":
            print(mint_token(settings, args.user, args.ttl))
            return 0
        configure_logging(settings.server.log_level, settings.server.log_format)
        settings.verifier_kind()
        if args.command == "migrate":
            return migrate(settings)
        return serve(settings)
    except SettingsError as exc:
        print(f"marketplace-chat: configuration error: {exc}", file=sys.stderr)
        return 2


def mint_token(settings: Settings, user_id: int, ttl_s: int) -> str:
    secret = settings.jwt_secret()
    if secret is None:
        raise SettingsError(
            "`token` mints HS256 tokens: set JWT_SECRET, or use --dev for the development secret"
        )
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + ttl_s}
    if settings.auth.jwt_issuer:
        claims["iss"] = settings.auth.jwt_issuer
    if settings.auth.jwt_audience:
        claims["aud"] = settings.auth.jwt_audience
    return jwt.encode(claims, secret, algorithm="HS256")


@contextmanager
def backends(settings: Settings) -> Iterator[tuple[str, str]]:
    """The configured PostgreSQL and Redis, or embedded ones started (and stopped) here."""
    embedded = EmbeddedServers(settings.server.data_dir)
    try:
        dsn = settings.database.dsn()
        database = "configured"
        if dsn is None:
            dsn, database = embedded.start_postgres(), "embedded"
        redis_url = settings.redis.dsn()
        redis = "configured"
        if redis_url is None:
            redis_url, redis = embedded.start_redis(), "embedded"
        log.info(
            "backends",
            postgres=database,
            redis=redis,
            data_dir=str(settings.server.data_dir) if "embedded" in (database, redis) else None,
        )
        yield dsn, redis_url
    finally:
        embedded.stop()


def migrate(settings: Settings) -> int:
    from marketplace_chat.storage.migrate import upgrade

    with backends(settings) as (dsn, _):
        upgrade(dsn)
    log.info("migrated")
    return 0


def serve(settings: Settings) -> int:
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """On SIGTERM, drains the chat (events in flight, presence, sockets) before uvicorn
        closes its connections, so that long-polling requests do not hold the exit up.

        The drain and uvicorn's wait for the requests still running share one deadline,
        `SHUTDOWN_TIMEOUT_S` from the signal: whatever a peer holds open, the process exits.
        """

        def __init__(
            self, config: uvicorn.Config, drain: Callable[[], Awaitable[None]], budget_s: float
        ) -> None:
            super().__init__(config)
            self._drain = drain
            self._budget_s = budget_s

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._budget_s
            try:
                # At least a second is left for the requests still running to finish.
                async with asyncio.timeout_at(deadline - min(1.0, self._budget_s / 2)):
                    await self._drain()
            except TimeoutError:
                log.warning("drain_timed_out", budget_s=self._budget_s)
            self.config.timeout_graceful_shutdown = max(1, int(deadline - loop.time()))
            await super().shutdown(sockets)

        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn raises the SIGTERM or SIGINT it handled again once it has stopped, which
            # would kill the process before the embedded servers stop (SIGTERM) or end a clean
            # Ctrl-C in a traceback (SIGINT). The signal asked for this stop, and it is done.
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    from marketplace_chat.app import create_app
    from marketplace_chat.gateway.http_protocol import http_protocol
    from marketplace_chat.gateway.transport import MAX_PAYLOAD_BYTES, ChatWebSocketProtocol
    from marketplace_chat.storage.migrate import upgrade

    with backends(settings) as (dsn, redis_url):
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
            # A frame above Engine.IO's packet limit is refused by the WebSocket parser before
            # it is assembled (uvicorn's default would take 16 MiB).
            ws_max_size=MAX_PAYLOAD_BYTES,
            # Engine.IO pings every socket itself; a second, WebSocket-level keepalive per
            # connection would only add timers and frames.
            ws_ping_interval=None,
            ws_ping_timeout=None,
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
        DrainingServer(config, app.drain, settings.server.shutdown_timeout_s).run()
    return 0
