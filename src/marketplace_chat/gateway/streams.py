"""Fan-out between nodes on a Redis stream, so that a Redis outage loses nothing silently.

Pub/sub drops whatever is published while a subscriber is away. Here every node appends its
batches to one capped stream (`XADD … MAXLEN ~`) and reads it from the last entry it saw
(`XREAD BLOCK`), so a node that lost Redis resumes where it stopped, as Socket.IO's own Redis
Streams adapter does. What cannot be resumed is signalled, never dropped:

- a publish that fails waits, in order, in a bounded local buffer and is appended once Redis
  answers; past the bound the buffer is given up and a reset entry appended in its place, which
  makes every other node close its sockets;
- a reader whose last entry is no longer in the stream (trimmed away during a long outage, or
  lost with a Redis that restarted empty) closes its node's sockets.

A closed socket's client reconnects and catches up with `messages:sync`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from socketio.async_pubsub_manager import AsyncPubSubManager

from marketplace_chat.gateway.fanout import LeanFanout
from marketplace_chat.realtime.connection import connect

log = structlog.get_logger(__name__)

READ_BLOCK_MS = 1_000  # a connected reader returns at least this often, so staleness shows
READ_COUNT = 500  # entries per read: a batch each, so up to a few thousand messages
# Reads start at most this often. A blocked read returns with the first entry appended, the
# node's own ones included (skipped, but read); spaced, a read takes the entries of several
# appends, and a node reads at most 200 times a second. The first entry after a quiet spell is
# read at once.
READ_SPACING_S = 0.005
FLUSH_COUNT = 100  # buffered batches appended per round trip once Redis is back
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0  # Redis back means fan-out back within this (pub/sub waited up to 60 s)
# A reader that has not come back from a read this long after its block is not healthy.
STALE_AFTER_S = READ_BLOCK_MS / 1000 + 4.0
# The reader's socket timeout: longer than a block, so only a dead connection trips it.
READ_TIMEOUT_S = READ_BLOCK_MS / 1000 + 5.0

HOST = b"h"  # the appending node's host id: a reader skips its own entries without decoding
BATCH = b"b"  # a JSON list of python-socketio messages
RESET = b"r"  # an entry without a batch: the appending node gave up buffered publishes
START = b"0-0"  # before every entry: a reader that has seen none reads all that comes


@dataclass(frozen=True, slots=True)
class FanoutHealth:
    reader_connected: bool
    seconds_since_read: float | None
    publishing: bool  # False while appends fail and publishes wait in the buffer
    buffered: int

    @property
    def healthy(self) -> bool:
        return (
            self.reader_connected
            and self.publishing
            and self.seconds_since_read is not None
            and self.seconds_since_read < STALE_AFTER_S
        )


class FanoutUnhealthy(Exception):
    """The fan-out cannot currently reach the other nodes."""


class StreamsManager(LeanFanout, AsyncPubSubManager):  # type: ignore[misc]
    """python-socketio's pub/sub manager, on a Redis stream (`{channel}:fanout`)."""

    name = "redis-streams"

    def __init__(
        self,
        url: str,
        channel: str = "socketio",
        maxlen: int = 200_000,
        buffer_max: int = 50_000,
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(channel=channel, **kwargs)
        self.redis_url = url
        self.stream = f"{channel}:fanout"
        self._maxlen = maxlen
        self._buffer_max = buffer_max
        self._monotonic = monotonic
        self._writer: aioredis.Redis | None = None
        self._reader: aioredis.Redis | None = None
        # Batches not yet appended, oldest first, with their message counts.
        self._pending: deque[tuple[bytes, int]] = deque()
        self._pending_count = 0
        self._gave_up = False  # a reset entry is owed to the other nodes
        self._generation = 0  # moves when the buffer is given up, so an append in flight knows
        self._failing = False
        self._flush_lock = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None
        self._reader_connected = False
        self._last_read: float | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        """Start reading now, at the node's start: python-socketio starts a manager on the first
        connection, and until then `/ready` would report a reader that never ran."""
        if not self.server.manager_initialized:
            self.server.manager_initialized = True  # as the server's own first connect does
            self.initialize()

    # -- health --------------------------------------------------------------------------------

    def health(self) -> FanoutHealth:
        since = None if self._last_read is None else self._monotonic() - self._last_read
        return FanoutHealth(self._reader_connected, since, not self._failing, self._pending_count)

    async def check(self) -> None:
        """For `/ready`: raises while the fan-out cannot carry messages to the other nodes."""
        health = self.health()
        if not health.healthy:
            raise FanoutUnhealthy(repr(health))

    async def aclose(self) -> None:
        """Stop the reader and the retries, and close the connections (bounded by the caller)."""
        tasks = [t for t in (getattr(self, "thread", None), self._retry) if t is not None]
        # Cancelled before the stop event is set: a reader woken by the event instead would end
        # its listen loop, which python-socketio logs as an error.
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._stopping.set()
        for client in (self._writer, self._reader):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    # -- publishing ----------------------------------------------------------------------------

    async def _publish_batch(self, encoded: bytes, count: int) -> None:
        self._pending.append((encoded, count))
        self._pending_count += count
        if self._pending_count > self._buffer_max:
            log.error("fanout_buffer_overflow", dropped=self._pending_count)
            self._pending.clear()
            self._pending_count = 0
            self._gave_up = True
            self._generation += 1
        await self._flush()

    async def _flush(self) -> bool:
        """Append what is pending, in order; True when nothing is left. On failure a retry loop
        takes over, so a quiet node still empties its buffer as soon as Redis answers."""
        async with self._flush_lock:
            try:
                while self._gave_up or self._pending:
                    await self._append_some()
            except Exception as exc:  # any failure leaves the rest for the retry loop
                self._drop_writer()
                self._failing = True
                if self._retry is None or self._retry.done():
                    log.warning(
                        "fanout_publish_failed", error=repr(exc), buffered=self._pending_count
                    )
                    self._retry = asyncio.get_running_loop().create_task(self._retry_loop())
                return False
            self._failing = False
            return True

    async def _append_some(self) -> None:
        writer = self._writer or connect(self.redis_url, retry_once=False)
        self._writer = writer
        batches = list(self._pending)[:FLUSH_COUNT]
        generation = self._generation
        async with writer.pipeline(transaction=False) as pipe:
            if self._gave_up:
                pipe.xadd(self.stream, {HOST: self.host_id, RESET: b"1"}, maxlen=self._maxlen)
            for encoded, _ in batches:
                pipe.xadd(self.stream, {HOST: self.host_id, BATCH: encoded}, maxlen=self._maxlen)
            await pipe.execute()
        if generation != self._generation:
            return  # given up meanwhile: what was sent went out, the reset entry is still owed
        self._gave_up = False
        for _ in batches:
            _, count = self._pending.popleft()
            self._pending_count -= count

    async def _retry_loop(self) -> None:
        delay = RETRY_FIRST_S
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            if await self._flush():
                log.info("fanout_publish_recovered")
                return
            delay = min(delay * 2, RETRY_MAX_S)

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            asyncio.get_running_loop().create_task(_close_quietly(writer))

    # -- reading -------------------------------------------------------------------------------

    async def _listen(self) -> AsyncIterator[dict[str, Any]]:
        # The last entry seen (its absence later means a gap), or the start of the stream.
        position: bytes | None = None
        mine = self.host_id.encode()
        delay = RETRY_FIRST_S
        lost = False
        read_at = -READ_SPACING_S  # when the last read started
        while not self._stopping.is_set():
            try:
                reader = self._reader or connect(
                    self.redis_url, timeout_s=READ_TIMEOUT_S, retry_once=False
                )
                self._reader = reader
                if position is None or lost:
                    position = await self._resume_from(reader, position)
                    lost = False
                    self._reader_connected = True
                    self._last_read = self._monotonic()
                rest = READ_SPACING_S - (self._monotonic() - read_at)
                if rest > 0:
                    await asyncio.sleep(rest)
                read_at = self._monotonic()
                answer: Any = await reader.xread(
                    {self.stream: position}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except Exception as exc:  # any failure: reconnect soon, then check for a gap
                if not lost:
                    log.warning("fanout_reader_lost", error=repr(exc))
                lost = True
                self._reader_connected = False
                broken, self._reader = self._reader, None
                if broken is not None:
                    await _close_quietly(broken)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_FIRST_S
            self._reader_connected = True
            self._last_read = self._monotonic()
            for _, entries in answer or ():
                for entry_id, fields in entries:
                    position = entry_id
                    if fields.get(HOST) == mine:
                        continue
                    if RESET in fields:
                        await self._reset("a node gave up buffered publishes")
                        continue
                    for message in orjson.loads(fields.get(BATCH, b"[]")):
                        yield message

    async def _resume_from(self, reader: aioredis.Redis, position: bytes | None) -> bytes:
        """Where to read from on starting (None) or after reconnecting: the last entry seen
        while it is still in the stream (or the start, when none was seen); otherwise the local
        sockets are closed and reading goes on from the current end."""
        if position == START:
            return START
        if position is not None and await reader.xrange(self.stream, position, position):
            log.info("fanout_reader_resumed")
            return position
        last: Any = await reader.xrevrange(self.stream, count=1)
        if position is not None:
            await self._reset("entries since the last one read are gone")
        return bytes(last[0][0]) if last else START

    async def _reset(self, why: str) -> None:
        closed = await self.disconnect_local_sockets()
        log.warning("fanout_gap", reason=why, sockets_closed=closed)


async def _close_quietly(client: aioredis.Redis) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()
