"""The dispatcher in a child process of `serve`, at a lower CPU priority than the sockets.

Delivery competes with the sockets for the instance's CPU. In a child process niced to
`NICE`, the scheduler gives it a small, bounded share when the core is full (the sockets keep
their throughput, and webhooks keep flowing, more slowly, from the outbox) and all the idle CPU
the service leaves: as soon as the core has room the dispatcher catches up. Every instance still
runs its own, and all the guarantees are the outbox's (leases, lanes, retries), so they hold
whichever process delivers.

The service starts the child with its settings as one JSON line on the child's standard input
and keeps that pipe open; `stop <seconds> <deadline>` on it (the deadline on the system's
monotonic clock, which both processes share, so that a child still starting when the stop was
written does not count its bound from when it read it), or its end (the service died, kill -9
included: the kernel closes the pipe), or SIGTERM (the parent-death signal the child asks
for, as the embedded Redis does), stops the child within that bound: the round in flight
finishes its posts and settles them. The child's counters and gauges come back as JSON lines
on a second pipe and the service shows them on its own `/metrics`.

Run as `python -m marketplace_chat.webhooks.worker` by `DispatcherProcess` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from typing import Any

import orjson
import structlog
from pydantic import BaseModel

from marketplace_chat.metrics import Metrics

log = structlog.get_logger(__name__)

NICE = 10
"""The dispatcher child's nice level. Under Linux's fair scheduler each nice step is a factor of
about 1.25 in CPU weight, so at 10 the child weighs about a tenth of the service (nice 0) when
both want the same core: the sockets keep 90 % of it and more, and delivery still progresses at
about a tenth of a core instead of stalling. At 19 (the lowest priority, a weight of 1.5 %) a
service under sustained load starved the child: webhooks then waited for the load to pass."""
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
REPORT_EVERY_S = 1.0  # how often the child's figures reach the service's metrics
RESTART_AFTER_S = 1.0  # a child that ended on its own is started again this much later
STOP_ON_EOF_S = 2.0  # the bound of a stop that came as the end of the pipe, not as `stop`
STOP_GRACE_S = 0.5  # past its bound, the child gets this long to exit before SIGKILL
RESULTS = ("delivered", "retried", "failed", "dropped")


class WorkerConfig(BaseModel):
    """What the child needs of the service's settings (never on its command line: the secret
    would show in the process list)."""

    parent_pid: int = 0  # both filled in by the service when it starts the child
    metrics_fd: int = -1
    dsn: str
    redis_url: str
    node_id: str
    max_sockets_per_user: int
    db_timeout_s: float
    webhook_url: str
    secret: str
    timeout_s: float
    max_attempts: int
    log_level: str
    log_format: str
    nice: int = NICE


def snapshot(metrics: Metrics) -> dict[str, Any]:
    """The dispatcher's figures as one report: counter totals and gauge values."""
    deliveries: dict[str, float] = {}
    for family in metrics.webhook_deliveries.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                deliveries[sample.labels["result"]] = sample.value
    errors = 0.0
    for family in metrics.backend_errors.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("backend") == "postgres":
                errors = sample.value
    return {
        "deliveries": deliveries,
        "postgresErrors": errors,
        "pending": _gauge(metrics.webhooks_pending),
        "failed": _gauge(metrics.webhooks_failed),
        "oldest": _gauge(metrics.webhooks_oldest_pending),
    }


def _gauge(gauge: Any) -> float:
    for family in gauge.collect():
        for sample in family.samples:
            return float(sample.value)
    return 0.0


class MetricsMirror:
    """The service's side: applies the child's reports to its own metrics (the counters by
    what they grew since the last report, so a restarted child, which counts from 0 again,
    adds to them rather than turning them back)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._seen: dict[str, float] = {}

    def restart(self) -> None:
        self._seen = {}

    def apply(self, report: dict[str, Any]) -> None:
        m = self._metrics
        totals = {**{f"d:{k}": float(v) for k, v in report["deliveries"].items()}}
        totals["errors"] = float(report["postgresErrors"])
        for key, total in totals.items():
            grown = total - self._seen.get(key, 0.0)
            if grown > 0:
                if key == "errors":
                    m.backend_errors.labels("postgres").inc(grown)
                else:
                    m.webhook_deliveries.labels(key[2:]).inc(grown)
            self._seen[key] = total
        m.webhooks_pending.set(report["pending"])
        m.webhooks_failed.set(report["failed"])
        m.webhooks_oldest_pending.set(report["oldest"])


def stop_bound(words: list[bytes], now: float) -> float:
    """The seconds a `stop` line leaves the child: its bound, cut to what is left before its
    deadline (`now` on the monotonic clock)."""
    try:
        bound = float(words[0]) if words else STOP_ON_EOF_S
        if len(words) > 1:
            bound = min(bound, float(words[1]) - now)
    except ValueError:
        return STOP_ON_EOF_S
    return max(0.0, bound)


# -- the child --------------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when the service's thread that started it dies; if the service is
    already gone (it died before this line), exit now."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


async def run_child(config: WorkerConfig, stdin: asyncio.StreamReader) -> None:
    from marketplace_chat.clock import SystemClock
    from marketplace_chat.lifecycle import BackgroundLoop
    from marketplace_chat.realtime.connection import connect as connect_redis
    from marketplace_chat.realtime.presence import RedisPresence
    from marketplace_chat.storage.outbox import OutboxStore
    from marketplace_chat.storage.pool import create_pool
    from marketplace_chat.webhooks.dispatcher import (
        CONCURRENCY,
        PIPELINES,
        POLL_S,
        Dispatcher,
        DispatchPolicy,
    )
    from marketplace_chat.webhooks.poster import WebhookPoster

    metrics = Metrics()
    # min_size 0: a database down at this moment is a failed round, not a failed start.
    pool = await create_pool(
        config.dsn, min_size=0, max_size=PIPELINES + 1, timeout_s=config.db_timeout_s
    )
    redis = connect_redis(config.redis_url)
    presence = RedisPresence(redis, config.node_id, config.max_sockets_per_user)
    sender = WebhookPoster(config.webhook_url, config.timeout_s, CONCURRENCY)
    loop: BackgroundLoop | None = None

    async def is_online(user_id: int) -> bool:
        return bool(await presence.online([user_id]))

    dispatcher = Dispatcher(
        OutboxStore(pool, config.db_timeout_s),
        sender,
        SystemClock(),
        DispatchPolicy(config.secret, config.timeout_s, config.max_attempts),
        metrics,
        is_online,
        running=lambda: loop is not None and not loop.stopping,
    )
    loop = BackgroundLoop("webhooks", dispatcher.tick, POLL_S)
    out = os.fdopen(config.metrics_fd, "wb", buffering=0)
    stop_s: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def signal_stop(bound_s: float = STOP_ON_EOF_S) -> None:
        if not stop_s.done():
            stop_s.set_result(bound_s)

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, signal_stop)

    async def control() -> None:
        while line := await stdin.readline():
            words = line.split()
            if words[:1] == [b"stop"]:
                signal_stop(stop_bound(words[1:], time.monotonic()))
        signal_stop()

    async def report() -> None:
        last = None
        while True:
            now = snapshot(metrics)
            if now != last:
                with contextlib.suppress(OSError):
                    out.write(orjson.dumps(now) + b"\n")
                last = now
            await asyncio.sleep(REPORT_EVERY_S)

    tasks = [asyncio.ensure_future(control()), asyncio.ensure_future(report())]
    # One turn of the loop first: a stop written while this process was starting is then
    # usually read before any round begins.
    await asyncio.sleep(0)
    if not stop_s.done():
        loop.start()
        log.info("webhooks_dispatcher_started", pid=os.getpid(), nice=config.nice)
    try:
        bound = await stop_s
        await loop.stop(max(0.0, bound - STOP_GRACE_S / 2))
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(OSError):
            out.write(orjson.dumps(snapshot(metrics)) + b"\n")
        await sender.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), STOP_GRACE_S / 2)
        with contextlib.suppress(Exception):
            await redis.aclose()
        log.info("webhooks_dispatcher_stopped", pid=os.getpid())


async def _main() -> None:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    config = WorkerConfig.model_validate_json(await reader.readline())
    _die_with_parent(config.parent_pid)
    os.nice(config.nice)
    from marketplace_chat.logs import configure_logging

    configure_logging(config.log_level, config.log_format)
    await run_child(config, reader)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the service, which stops us
    import uvloop

    uvloop.run(_main())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
