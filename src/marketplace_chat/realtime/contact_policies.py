"""Each chat's own contact policy, cached in the process so that a send costs no query for it.

A change (the admin route) is stored in PostgreSQL, dropped from the cache of the node that made
it at once, and announced on a Redis pub/sub channel; every node's listener drops that chat's
entry when the announcement arrives (milliseconds). Pub/sub loses what is published while a
listener is away, so a listener that (re)subscribes drops its whole cache, and every entry
lives at most `POLICY_TTL_S` anyway: a change that no announcement carried (a node cut off from
Redis but not from PostgreSQL) is in effect everywhere within that bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from marketplace_chat.errors import ChatError

log = structlog.get_logger(__name__)

POLICY_TTL_S = 30.0  # the longest a node acts on a policy after it changed (see above)
POLICY_CACHE_SIZE = 100_000
POLICY_CHANNEL = "marketplace-chat:contact-policy"
LISTEN_POLL_S = 0.5  # how often the listener looks up from its channel to see if it must stop

Loader = Callable[[str], Awaitable[str | None]]


class ContactPolicies:
    """chat id -> the chat's own policy (None: the default), loaded on a miss, one load per chat
    at a time however many sends ask."""

    def __init__(
        self,
        load: Loader,
        *,
        ttl_s: float = POLICY_TTL_S,
        max_size: int = POLICY_CACHE_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_s
        self._max = max_size
        self._monotonic = monotonic
        self._entries: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._loading: dict[str, asyncio.Future[str | None]] = {}
        # Bumped by every invalidation: a load that started before one must not store what it
        # read, which may be the value the invalidation was about.
        self._generation = 0

    async def get(self, chat_id: str) -> str | None:
        entry = self._entries.get(chat_id)
        if entry is not None and entry[1] > self._monotonic():
            return entry[0]
        pending = self._loading.get(chat_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._loading[chat_id] = future
        generation = self._generation
        try:
            value = await self._load(chat_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: the waiters, if any, re-raise it
            raise
        else:
            future.set_result(value)
            if generation == self._generation:
                self._store(chat_id, value)
            return value
        finally:
            self._loading.pop(chat_id, None)

    def _store(self, chat_id: str, value: str | None) -> None:
        self._entries[chat_id] = (value, self._monotonic() + self._ttl)
        self._entries.move_to_end(chat_id)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, chat_id: str) -> None:
        self._generation += 1
        self._entries.pop(chat_id, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()


class PolicyAnnouncer:
    """The pub/sub side: announces a change, and listens for the other nodes' announcements."""

    def __init__(
        self, redis: aioredis.Redis, policies: ContactPolicies, channel: str = POLICY_CHANNEL
    ) -> None:
        self._redis = redis
        self._policies = policies
        self._channel = channel

    async def changed(self, chat_id: str) -> None:
        """Drop the chat here, then tell the other nodes. The change is committed already, so a
        Redis failure only delays it elsewhere (by the TTL at most): logged, not raised."""
        self._policies.forget(chat_id)
        try:
            await self._redis.publish(self._channel, chat_id)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("contact_policy_announce_failed", chat_id=chat_id, error=type(exc).__name__)

    async def listen(self, running: Callable[[], bool]) -> None:
        """Subscribe, drop the whole cache (announcements may have been missed), then drop each
        announced chat until `running()` turns false or the connection fails."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            self._policies.clear()
            while running():
                message = await pubsub.get_message(timeout=LISTEN_POLL_S)
                if message is None or message.get("type") != "message":
                    continue
                data = message.get("data")
                chat_id = data.decode() if isinstance(data, bytes) else str(data)
                self._policies.forget(chat_id)
        except (RedisError, OSError, TimeoutError) as exc:
            # Until the next subscription nothing is heard: the TTL bounds what is missed.
            raise ChatError(f"contact policy listener lost Redis: {type(exc).__name__}") from None
        finally:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
