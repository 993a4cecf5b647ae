"""The service's side of the dispatcher's child process (see `webhooks.worker`): start it with
the service, mirror its figures, start it again if it ends on its own, stop it within the
shutdown's bound, and SIGKILL it if it does not."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time

import orjson
import structlog

from marketplace_chat.metrics import Metrics
from marketplace_chat.webhooks.worker import (
    RESTART_AFTER_S,
    STOP_GRACE_S,
    MetricsMirror,
    WorkerConfig,
)

log = structlog.get_logger(__name__)


class DispatcherProcess:
    """Started with the service; at shutdown asked to stop first (`ask_stop`), so that it winds
    down while the sockets drain, and waited for (`stop`) before the pools close, all from the
    shutdown's one deadline."""

    name = "webhooks"

    def __init__(self, config: WorkerConfig, metrics: Metrics) -> None:
        self._config = config
        self._mirror = MetricsMirror(metrics)
        self._proc: asyncio.subprocess.Process | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=self.name)

    async def started(self) -> None:
        """Returns once a child runs (for tests and the start-up log)."""
        await self._started.wait()

    async def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                await self._run_once()
            except Exception as exc:  # a child that cannot start must not end the service
                log.warning("webhooks_dispatcher_failed", error=type(exc).__name__)
            if self._stop.is_set():
                break
            log.warning("webhooks_dispatcher_exited", restart_in_s=RESTART_AFTER_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RESTART_AFTER_S)

    async def _run_once(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "marketplace_chat.webhooks.worker",
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        proc = self._proc
        assert proc.stdin is not None
        config = self._config.model_copy(update={"parent_pid": os.getpid(), "metrics_fd": write_fd})
        proc.stdin.write(config.model_dump_json().encode() + b"\n")
        self._mirror.restart()
        self._started.set()
        reports = asyncio.get_running_loop().create_task(self._read_reports(read_fd))
        try:
            await proc.wait()
        finally:
            await asyncio.wait({reports}, timeout=STOP_GRACE_S)
            reports.cancel()

    async def _read_reports(self, fd: int) -> None:
        reader = asyncio.StreamReader()
        pipe = os.fdopen(fd, "rb", buffering=0)
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            while line := await reader.readline():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self._mirror.apply(orjson.loads(line))
        finally:
            transport.close()

    def ask_stop(self, bound_s: float) -> None:
        """Tell the child to stop within `bound_s` (its round in flight finishes and settles)
        without waiting for it: it winds down while the service drains its sockets."""
        if self._stop.is_set():
            return
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                bound = max(0.0, bound_s - STOP_GRACE_S)
                line = f"stop {bound:.3f} {time.monotonic() + bound:.3f}\n"
                proc.stdin.write(line.encode())
                proc.stdin.close()

    async def stop(self, timeout_s: float) -> bool:
        """Stop the child (if not asked already) and wait at most `timeout_s` for it to exit;
        SIGKILL it then. True when it exited on its own."""
        self.ask_stop(timeout_s)
        proc = self._proc
        clean = True
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), max(0.0, timeout_s))
            except TimeoutError:
                clean = False
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
                log.warning("webhooks_dispatcher_killed", pid=proc.pid)
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=STOP_GRACE_S)
        return clean
