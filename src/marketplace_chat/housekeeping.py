"""What a node keeps up in Redis on a timer, so that its users' presence stays true and a dead
node's users go offline."""

from __future__ import annotations

import asyncio

import structlog

from marketplace_chat.errors import ChatError
from marketplace_chat.gateway.namespace import ChatNamespace
from marketplace_chat.metrics import Metrics
from marketplace_chat.service import ChatService

log = structlog.get_logger(__name__)

HEARTBEAT_S = 5.0  # node heartbeat; the key lives 20 s, so a dead node is reaped within 30 s
PRESENCE_REFRESH_S = 60.0  # user:{id}:online lives 300 s; refreshed well before it lapses


class Housekeeping:
    """The node's shared timer: heartbeat, presence refresh, and reaping of dead nodes."""

    def __init__(self, service: ChatService, namespace: ChatNamespace, metrics: Metrics) -> None:
        self._service = service
        self._namespace = namespace
        self._metrics = metrics
        self._last_refresh = 0.0
        self._healthy = True

    async def tick(self) -> None:
        presence = self._service.presence
        now = asyncio.get_running_loop().time()
        try:
            # A lapsed heartbeat means Redis lost our keys (a restart, however quick).
            intact = await presence.heartbeat()
            if not (self._healthy and intact) or now - self._last_refresh >= PRESENCE_REFRESH_S:
                await presence.refresh(self._namespace.sessions.users())
                self._last_refresh = now
            offline = await presence.reap_dead_nodes()
            if offline:
                log.info("dead_node_reaped", users_offline=len(offline))
                await self._service.went_offline(offline)
            self._healthy = True
        except ChatError as exc:
            self._healthy = False
            self._metrics.backend_errors.labels("redis").inc()
            log.warning("housekeeping_failed", error=exc.message)
