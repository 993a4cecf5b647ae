"""`marketplace-chat serve | migrate | check | token | asyncapi | webhooks`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

import jwt
import structlog

from marketplace_chat import seams
from marketplace_chat.embedded import EXTRA_HINT, EmbeddedServers, embedded_installed
from marketplace_chat.logs import configure_logging
from marketplace_chat.preflight import check, reach
from marketplace_chat.serving import bind_listener, run_server
from marketplace_chat.settings import Settings, SettingsError

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
    hooks = sub.add_parser("webhooks", help="list webhook events, or send a failed one again")
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    listing = hooks_sub.add_parser("list", help="pending or failed events, newest first")
    listing.add_argument("--status", choices=["pending", "failed"], default="failed")
    listing.add_argument("--limit", type=int, default=50, help="1 to 100 (default 50)")
    retry = hooks_sub.add_parser("retry", help="send a failed event again (same id)")
    retry.add_argument("id", help="the event id")
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
        if args.command == "webhooks":
            return webhooks(settings, args)
        settings.verifier_kind()
        if (problem := seams.verify()) is not None:
            print(f"marketplace-chat: cannot start: {problem}", file=sys.stderr)
            return 2
        if differing := seams.other_versions():
            log.warning("library_versions_differ", installed=differing)
        exit_now(serve(settings))
    except SettingsError as exc:
        for problem in exc.problems or (str(exc),):
            print(f"marketplace-chat: configuration error: {problem}", file=sys.stderr)
        return 2


def exit_now(code: int) -> NoReturn:
    """End a stopped service at once. Everything it started is stopped by now; what is left is
    the interpreter's own teardown of a large process, which took half a second on a busy
    2-core machine: half of the margin the shutdown deadline allows."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
def backends(
    settings: Settings, embedded: EmbeddedServers | None = None
) -> Iterator[tuple[str, str]]:
    """The configured PostgreSQL and Redis, or embedded ones started (and stopped) here."""
    embedded = embedded or EmbeddedServers(settings.server.data_dir)
    try:
        dsn = settings.database.dsn()
        if (dsn is None or settings.redis.dsn() is None) and not embedded_installed():
            raise SettingsError(EXTRA_HINT.format(what="DATABASE_URL and REDIS_URL"))
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
        if embedded.stale_handles or embedded.stale_redis:
            log.warning(
                "embedded_leftovers",
                dead_postgres_users=embedded.stale_handles,
                stale_redis_stopped=embedded.stale_redis,
            )
        yield dsn, redis_url
    finally:
        embedded.stop()


def migrate(settings: Settings) -> int:
    from marketplace_chat.storage.migrate import upgrade

    with backends(settings) as (dsn, redis_url):
        reach(dsn, redis_url)
        upgrade(dsn)
    log.info("migrated")
    return 0


def webhooks(settings: Settings, args: argparse.Namespace) -> int:
    """`webhooks list` prints one JSON object per event; `webhooks retry ID` the event after."""
    from marketplace_chat.errors import ChatError

    with backends(settings) as (dsn, _):
        try:
            for line in asyncio.run(_webhooks(settings, dsn, args)):
                print(line)
        except ChatError as exc:
            print(f"marketplace-chat: {exc.message}", file=sys.stderr)
            return 1
    return 0


async def _webhooks(settings: Settings, dsn: str, args: argparse.Namespace) -> list[str]:
    import orjson

    from marketplace_chat.clock import SystemClock
    from marketplace_chat.payloads import parse
    from marketplace_chat.storage.outbox import OutboxStore
    from marketplace_chat.storage.pool import create_pool
    from marketplace_chat.webhooks import admin

    timeout = settings.database.timeout_s
    pool = await create_pool(dsn, min_size=1, max_size=1, timeout_s=timeout)
    try:
        operator = admin.WebhookAdmin(OutboxStore(pool, timeout), SystemClock())
        if args.webhooks_command == "retry":
            event = await operator.retry(parse(admin.WebhookRef, {"id": args.id}))
            return [orjson.dumps(admin.to_wire(event)).decode()]
        query = parse(admin.WebhooksQuery, {"status": args.status, "limit": args.limit})
        page = await operator.list(query)
        return [orjson.dumps(admin.to_wire(e)).decode() for e in page.webhooks]
    finally:
        await pool.close()


def serve(settings: Settings) -> int:
    try:
        listener = bind_listener(settings.server.listen_host, settings.server.port)
    except OSError as exc:
        log.error(
            "bind_failed",
            host=settings.server.listen_host,
            port=settings.server.port,
            error=exc.strerror or type(exc).__name__,
        )
        return 1
    embedded = EmbeddedServers(settings.server.data_dir, guard=True)
    with listener, backends(settings, embedded) as (dsn, redis_url):
        run_server(settings, listener, dsn, redis_url, embedded)
    return 0
