"""Run the chat service as a separate process, the way production runs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

# Start-up runs the migrations; on a cold 2-core CI machine that can take a while.
STARTUP_TIMEOUT_S = 60.0
# SIGTERM drains and the process exits within 10 s.
STOP_TIMEOUT_S = 10.0
# Variables of the developer's shell that would change what the tests see.
SCRUBBED_PREFIXES = ("AUTH_", "JWT_", "RATE_LIMIT_", "MARKETPLACE_", "DATABASE_", "REDIS_", "CHAT_")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerStartError(RuntimeError):
    pass


@dataclass
class ChatServer:
    """One ``python -m marketplace_chat serve`` process on a free port."""

    port: int
    env: dict[str, str | None]  # None: the variable is not set
    log_path: Path
    serve_args: tuple[str, ...] = ()  # after `serve`, such as `--dev`
    proc: asyncio.subprocess.Process | None = None
    terminated: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def start(self, workdir: Path) -> None:
        await self.launch(workdir)
        await self._wait_healthy()

    async def launch(self, workdir: Path) -> None:
        """Start the process without waiting for it to become healthy."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        env["PYTHONUNBUFFERED"] = "1"  # the log file is read while the server runs
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        with self.log_path.open("wb") as log:
            # The working directory is an empty folder, so that no .env file is picked up.
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "marketplace_chat",
                "serve",
                *self.serve_args,
                cwd=str(workdir),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def _wait_healthy(self) -> None:
        assert self.proc is not None
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT_S), httpx.AsyncClient(timeout=2.0) as http:
                while not await self._healthy(http):
                    done, _ = await asyncio.wait({exited}, timeout=0.1)
                    if done:
                        raise ServerStartError(
                            f"server exited with {self.proc.returncode} during start-up:\n"
                            f"{self.log_text()[-6000:]}"
                        )
        except TimeoutError:
            await self.stop()
            raise ServerStartError(
                f"server not healthy within {STARTUP_TIMEOUT_S}s:\n{self.log_text()[-6000:]}"
            ) from None
        finally:
            if not exited.done():
                exited.cancel()

    async def _healthy(self, http: httpx.AsyncClient) -> bool:
        try:
            response = await http.get(f"{self.url}/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def terminate(self) -> None:
        """Send SIGTERM (the start of a drain); :meth:`stop` waits for the end."""
        # Only once: uvicorn takes a second signal as "exit now, skip the drain".
        if self.proc is not None and self.proc.returncode is None and not self.terminated:
            self.terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            self.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        return await proc.wait()
