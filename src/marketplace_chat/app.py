"""Wiring: the one place that picks implementations and owns their lifetimes."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import redis.asyncio as aioredis
import socketio
import structlog
from fastapi import FastAPI

from marketplace_chat import heap
from marketplace_chat.api.admin import admin_router
from marketplace_chat.api.contact_moderation import contact_moderation_router
from marketplace_chat.api.docs import install_docs
from marketplace_chat.api.http_errors import install_error_handlers
from marketplace_chat.api.middleware import ApiCors, BodyLimit
from marketplace_chat.api.moderation import moderation_router
from marketplace_chat.api.ops import ops_router
from marketplace_chat.api.rest import rest_router
from marketplace_chat.auth.base import Verifier
from marketplace_chat.auth.cache import CachingVerifier
from marketplace_chat.auth.local import LocalVerifier
from marketplace_chat.auth.remote import RemoteVerifier
from marketplace_chat.blocking import Blocking
from marketplace_chat.clock import Clock, SystemClock
from marketplace_chat.contact_guard import ContactGuard
from marketplace_chat.contact_policy import Policy
from marketplace_chat.contacts import ContactDetector
from marketplace_chat.errors import ChatError
from marketplace_chat.gateway.namespace import ChatNamespace
from marketplace_chat.gateway.notifier import SocketNotifier
from marketplace_chat.gateway.server import create_server
from marketplace_chat.gateway.streams import StreamsManager
from marketplace_chat.housekeeping import HEARTBEAT_S, Housekeeping
from marketplace_chat.lifecycle import BackgroundLoop
from marketplace_chat.metrics import Metrics
from marketplace_chat.moderation import ModerationAdmin
from marketplace_chat.realtime.connection import connect as connect_redis
from marketplace_chat.realtime.contact_policies import ContactPolicies, PolicyAnnouncer
from marketplace_chat.realtime.limits import RedisRateLimiter
from marketplace_chat.realtime.presence import RedisPresence
from marketplace_chat.realtime.recent_texts import RecentTexts
from marketplace_chat.realtime.typing_state import RedisTypingState
from marketplace_chat.reports import Reports
from marketplace_chat.service import ChatService
from marketplace_chat.settings import Settings, VerifierKind
from marketplace_chat.shutdown import CLOSE_RESERVE_S, ChatApp
from marketplace_chat.storage.base import EventPolicy
from marketplace_chat.storage.blocks import PostgresBlocks
from marketplace_chat.storage.moderation import ModerationStore
from marketplace_chat.storage.outbox import OutboxStore
from marketplace_chat.storage.postgres import PostgresStorage
from marketplace_chat.storage.reports import PostgresReports
from marketplace_chat.webhooks.process import DispatcherProcess
from marketplace_chat.webhooks.worker import WorkerConfig

log = structlog.get_logger(__name__)

REDIS_CHANNEL = "marketplace-chat"
POLICY_RESUBSCRIBE_S = 1.0  # a contact-policy listener that lost Redis subscribes again after this


def node_identity(settings: Settings) -> str:
    return settings.server.node_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def build_verifier(
    settings: Settings,
    redis: aioredis.Redis,
    http: httpx.AsyncClient,
    clock: Clock,
    metrics: Metrics,
) -> CachingVerifier:
    auth = settings.auth
    remote = settings.verifier_kind() is VerifierKind.REMOTE
    inner: Verifier
    if remote:
        assert auth.marketplace_api_url is not None
        url = auth.marketplace_api_url.rstrip("/") + "/" + auth.auth_verify_path.lstrip("/")
        inner = RemoteVerifier(
            http, url, clock, leeway_s=auth.jwt_leeway_s, observe=metrics.observe_verifier
        )
    else:
        secret = settings.jwt_secret()
        if secret is not None:
            key, default_algorithms = secret, "HS256"
        else:
            assert auth.jwt_public_key is not None
            key, default_algorithms = auth.jwt_public_key.replace("\\n", "\n"), "RS256,ES256"
        algorithms = [a.strip() for a in (auth.jwt_algorithms or default_algorithms).split(",")]
        inner = LocalVerifier(
            key,
            algorithms,
            clock,
            user_id_claim=auth.jwt_user_id_claim,
            issuer=auth.jwt_issuer,
            audience=auth.jwt_audience,
            leeway_s=auth.jwt_leeway_s,
        )
    return CachingVerifier(
        inner,
        redis,
        clock,
        ttl_s=auth.auth_cache_ttl_s,
        leeway_s=auth.jwt_leeway_s,
        observe=metrics.observe_cache,
        lookup=remote,
    )


def create_app(
    settings: Settings, database_dsn: str, redis_url: str, clock: Clock | None = None
) -> ChatApp:
    """Build the app; its resources are opened and closed by the ASGI lifespan."""
    clock = clock or SystemClock()
    node_id = node_identity(settings)
    metrics = Metrics()
    sio = create_server(
        redis_url,
        REDIS_CHANNEL,
        settings.server.cors_origins,
        stream_maxlen=settings.redis.fanout_stream_maxlen,
        buffer_max=settings.redis.fanout_buffer_max,
        max_in_flight=settings.limits.max_events_in_flight,
        max_queued=settings.limits.max_events_queued,
    )
    fanout = sio.manager if isinstance(sio.manager, StreamsManager) else None
    sio.on_refused = lambda event: metrics.rate_limited.labels("events_in_flight").inc()
    metrics.events_running.set_function(lambda: sio.events_running)
    metrics.events_waiting.set_function(lambda: sio.events_waiting)
    redis = connect_redis(redis_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hooks = settings.webhooks
        events = EventPolicy(hooks.enabled, hooks.unread_notify_after_s)
        storage = await PostgresStorage.connect(
            database_dsn,
            min_size=settings.database.pool_min,
            max_size=settings.database.pool_max,
            timeout_s=settings.database.timeout_s,
            events=events,
        )
        outbox = OutboxStore(storage.pool, settings.database.timeout_s)
        blocks = PostgresBlocks(storage.pool, settings.database.timeout_s, events)
        app.state.storage = storage
        http = httpx.AsyncClient(timeout=settings.auth.auth_verify_timeout_s)
        verifier = build_verifier(settings, redis, http, clock, metrics)
        moderation = ModerationStore(storage.pool, settings.database.timeout_s)
        policies = ContactPolicies(moderation.contact_policy)
        announcer = PolicyAnnouncer(redis, policies)
        default_policy = Policy(settings.contacts.contact_policy)
        contacts = ContactGuard(
            ContactDetector(settings.contacts.allowed_hosts),
            default_policy,
            policies,
            moderation,
            RecentTexts(redis),
            clock,
            moderation,
        )
        service_typing, notifier = RedisTypingState(redis), SocketNotifier(sio, metrics)
        service = ChatService(
            storage,
            RedisPresence(redis, node_id, settings.limits.max_sockets_per_user),
            service_typing,
            RedisRateLimiter(redis, clock),
            notifier,
            clock,
            settings.limits,
            node_id,
            blocks,
            contacts=contacts,
        )
        blocking = Blocking(blocks, service_typing, notifier, clock)
        reports = Reports(
            PostgresReports(storage.pool, settings.database.timeout_s, events), service, clock
        )
        namespace = ChatNamespace(
            sio,
            service,
            verifier,
            metrics,
            clock,
            leeway_s=settings.auth.jwt_leeway_s,
            grace_s=settings.auth.auth_expired_grace_s,
            blocking=blocking,
            reports=reports,
        )
        app.include_router(rest_router(service, verifier, blocking, reports))
        app.include_router(admin_router(outbox, clock, hooks.admin_api_key))
        app.include_router(moderation_router(reports, hooks.admin_api_key))
        app.include_router(
            contact_moderation_router(
                ModerationAdmin(moderation, announcer, default_policy.value), hooks.admin_api_key
            )
        )
        chat_app._namespace, chat_app._service, chat_app._sio = namespace, service, sio
        if fanout is not None:
            fanout.start()
        housekeeping = BackgroundLoop(
            "housekeeping", Housekeeping(service, namespace, metrics).tick, HEARTBEAT_S
        )
        chat_app._loops.append(housekeeping)
        housekeeping.start()
        policy_listener: BackgroundLoop | None = None
        policy_listener = BackgroundLoop(
            "contact-policies",
            lambda: announcer.listen(
                lambda: policy_listener is not None and not policy_listener.stopping
            ),
            POLICY_RESUBSCRIBE_S,
        )
        chat_app._loops.append(policy_listener)
        policy_listener.start()
        if hooks.webhook_url:
            # Delivery runs in a child process at a lower CPU priority (webhooks/worker.py).
            webhooks = DispatcherProcess(
                WorkerConfig(
                    dsn=database_dsn,
                    redis_url=redis_url,
                    node_id=node_id,
                    max_sockets_per_user=settings.limits.max_sockets_per_user,
                    db_timeout_s=settings.database.timeout_s,
                    webhook_url=hooks.webhook_url,
                    secret=settings.webhook_secret(),
                    timeout_s=hooks.webhook_timeout_s,
                    max_attempts=hooks.webhook_max_attempts,
                    log_level=settings.server.log_level,
                    log_format=settings.log_format,
                ),
                metrics,
            )
            chat_app._processes.append(webhooks)
            webhooks.start()
        heap.settle()
        log.info("node_started", node_id=node_id)
        try:
            yield
        finally:
            deadline = chat_app.deadline()
            await chat_app.drain()
            await chat_app.stop_loops()
            await deadline.run(service.drain(), "background_work", keep_s=CLOSE_RESERVE_S)
            await deadline.run(verifier.flush(), "auth_cache_flush", keep_s=CLOSE_RESERVE_S)
            await deadline.run(http.aclose(), "http_client_close", keep_s=CLOSE_RESERVE_S)
            for process in chat_app._processes:
                await process.stop(deadline.share(1.0, 3 * CLOSE_RESERVE_S))
            if not await deadline.run(storage.close(), "postgres_close"):
                storage.terminate()
            if fanout is not None:
                await deadline.run(fanout.aclose(), "fanout_close", keep_s=CLOSE_RESERVE_S)
            await deadline.run(redis.aclose(), "redis_close")
            log.info("node_stopped", node_id=node_id)

    api = FastAPI(
        title="marketplace-chat",
        version="0.1.0",
        summary="Buyer/seller chat: REST view of the Socket.IO service",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs from packaged assets, not from a CDN
        redoc_url=None,
    )
    checks: dict[str, Callable[[], Awaitable[object]]] = {
        "database": _ping_db(api),
        "redis": redis.ping,
    }
    if fanout is not None:
        checks["fanout"] = fanout.check
    api.include_router(ops_router(checks, metrics))
    install_docs(api)
    install_error_handlers(api, lambda exc: metrics.rate_limited.labels(exc.action).inc())
    # Added inner first: CORS wraps the body limit, so a 413 carries the CORS headers too.
    api.add_middleware(BodyLimit, limit=settings.server.max_request_body_bytes)
    api.add_middleware(ApiCors, origins=settings.server.cors_origins)

    chat_app = ChatApp(
        socketio.ASGIApp(sio, other_asgi_app=api, socketio_path="socket.io"),
        shutdown_timeout_s=settings.server.shutdown_timeout_s,
    )
    return chat_app


def _ping_db(api: FastAPI) -> Any:
    async def ping() -> None:
        storage = getattr(api.state, "storage", None)
        if storage is None:
            raise ChatError("not started")
        await storage.ping()

    return ping
