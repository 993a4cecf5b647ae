"""`marketplace-chat serve | migrate | check | token | asyncapi`."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import jwt
import structlog

from marketplace_chat import seams
from marketplace_chat.embedded import EmbeddedServers
from marketplace_chat.logs import configure_logging
from marketplace_chat.preflight import Finding, masked, probe
from marketplace_chat.settings import Settings, SettingsError, VerifierKind

log = structlog.get_logger("marketplace_chat")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketplace-chat", description="Real-time buyer/seller chat for marketplaces."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('marketplace-chat')}"
    )
    parser.add_argument("--env-file", help="file of settings (default: .env, when present)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--dev", action="store_true", help="development mode (CHAT_ENV=development)")
    serve.add_argument(
        "--host", help="address to listen on (HOST; default 0.0.0.0, with --dev 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, help="port to listen on (PORT, default 3001)")
    serve.add_argument("--no-migrate", action="store_true", help="skip migrations at start")
    sub.add_parser("migrate", help="bring schema chat up to date, then exit")
    sub.add_parser(
        "check", help="validate the settings and reach PostgreSQL, Redis and marketplace-api"
    )
    token = sub.add_parser("token", help="mint a token for the configured local verifier")
    token.add_argument("--user", type=int, required=True, help="user id (the sub claim)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--dev", action="store_true", help="use the development secret")
    spec = sub.add_parser("asyncapi", help="print the AsyncAPI 3 description of /chat")
    spec.add_argument("--output", help="write it to this file instead of stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "asyncapi":
        return write_asyncapi(args.output)
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
        if args.env_file is not None and not Path(args.env_file).is_file():
            raise SettingsError(f"--env-file: no such file: {args.env_file}")
        settings = Settings.load(args.env_file or ".env", **overrides)
        if args.command == "token":
            print(mint_token(settings, args.user, args.ttl))
            return 0
        if args.command == "check":
            return check(settings)
        configure_logging(settings.server.log_level, settings.log_format)
        if args.command == "migrate":
            return migrate(settings)
        settings.verifier_kind()
        if (problem := seams.verify()) is not None:
            print(f"marketplace-chat: cannot start: {problem}", file=sys.stderr)
            return 2
        if differing := seams.other_versions():
            log.warning("library_versions_differ", installed=differing)
        return serve(settings)
    except SettingsError as exc:
        for problem in exc.problems or (str(exc),):
            print(f"marketplace-chat: configuration error: {problem}", file=sys.stderr)
        return 2


def write_asyncapi(output: str | None) -> int:
    """The event reference needs no settings: it is built from the code alone."""
    from marketplace_chat.asyncapi import render

    text = render()
    if output is None:
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as file:
            file.write(text)
    return 0


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


def reach(dsn: str, redis_url: str) -> None:
    """Fail with one line per backend that does not answer, before anything is started on it."""
    findings = asyncio.run(_reach(dsn, redis_url))
    down = [f"{f.name}: cannot reach it ({f.detail})" for f in findings if not f.ok]
    if down:
        raise SettingsError(*down)


async def _reach(dsn: str | None, redis_url: str | None) -> list[Finding]:
    """Probe the backends given (None: not configured, nothing to probe)."""
    import asyncpg

    from marketplace_chat.realtime.connection import connect

    async def postgres() -> str:
        assert dsn is not None
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            server = await conn.fetchval("SHOW server_version")
            migrated = await conn.fetchval("SELECT to_regclass('chat.alembic_version') IS NOT NULL")
        finally:
            await conn.close()
        return f"PostgreSQL {server} at {masked(dsn)}, schema chat " + (
            "present" if migrated else "not migrated yet"
        )

    async def redis() -> str:
        assert redis_url is not None
        client = connect(redis_url, timeout_s=5)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        return f"Redis {info.get('redis_version', '?')} at {masked(redis_url)}"

    probes = []
    if dsn is not None:
        probes.append(probe("DATABASE_URL", postgres))
    if redis_url is not None:
        probes.append(probe("REDIS_URL", redis))
    return list(await asyncio.gather(*probes))


def check(settings: Settings) -> int:
    """Print what the settings reach; exit 0 when everything answers, 2 when something does not."""
    findings: list[Finding] = []
    try:
        kind = settings.verifier_kind()
        findings.append(Finding("verifier", True, kind.value))
    except SettingsError as exc:
        findings.append(Finding("verifier", False, str(exc)))
        kind = None
    dsn, redis_url = settings.database.dsn(), settings.redis.dsn()
    if dsn is None or redis_url is None:
        findings.append(
            Finding("backends", True, "embedded servers start for what is not configured")
        )
    findings += asyncio.run(_check_remote(settings, dsn, redis_url, kind))
    for finding in findings:
        print(finding.line())
    return 0 if all(f.ok for f in findings) else 2


async def _check_remote(
    settings: Settings, dsn: str | None, redis_url: str | None, kind: VerifierKind | None
) -> list[Finding]:
    import httpx

    found = await _reach(dsn, redis_url)
    api = settings.auth.marketplace_api_url
    if kind is VerifierKind.REMOTE and api:
        url = api.rstrip("/") + "/" + settings.auth.auth_verify_path.lstrip("/")

        async def marketplace_api() -> str:
            async with httpx.AsyncClient(timeout=5, follow_redirects=False) as http:
                answer = await http.get(url)
            if answer.status_code >= 500:
                raise RuntimeError(f"{url} answered {answer.status_code}")
            return f"{url} answered {answer.status_code} without a token"

        found.append(await probe("MARKETPLACE_API_URL", marketplace_api))
    return found


def migrate(settings: Settings) -> int:
    from marketplace_chat.storage.migrate import upgrade

    with backends(settings) as (dsn, redis_url):
        reach(dsn, redis_url)
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
