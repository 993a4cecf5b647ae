"""The embedded PostgreSQL's guard: stops the server when the service that started it dies.

pg_ctl starts PostgreSQL as a daemon (under another user when the service runs as root), where
no parent-death signal reaches it. So the service starts this small process beside it, joined
by a pipe only the service writes to. When the service ends in any way, kill -9 included, the
pipe reads end-of-file here; the guard then drops the dead from the wheel's list of the server's
users and, if no live process is left on the list, stops the server (a fast shutdown). A clean
stop has already stopped it, and then the guard finds nothing to do.

Run as `python -m marketplace_chat.embedded_guard PGDATA SERVICE_PID`, stdin the pipe.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from marketplace_chat.embedded import alive, prune_dead_handles, wheel_lock

# How long the guard waits for the service to be gone after the pipe closed, and for the
# server to finish its fast shutdown once asked.
SERVICE_GONE_WITHIN_S = 10.0
SERVER_STOPPED_WITHIN_S = 10.0


def _postmaster(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_if_unused(pgdata: Path) -> bool:
    """Under the wheel's lock: stop the folder's server if no live process uses it any more;
    True if it was stopped here."""
    with wheel_lock():
        prune_dead_handles(pgdata)
        try:
            users = json.loads((pgdata / ".handle_pids.json").read_text())
        except (OSError, ValueError):
            users = []
        postmaster = _postmaster(pgdata)
        if users or postmaster is None or not alive(postmaster):
            return False
        os.kill(postmaster, signal.SIGINT)  # PostgreSQL's fast shutdown
        # Still under the lock: a service starting meanwhile must not join a server going down.
        _wait_gone(postmaster, SERVER_STOPPED_WITHIN_S)
        return True


def main(argv: list[str]) -> int:
    pgdata, service = Path(argv[0]), int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the service, not for us
    while sys.stdin.buffer.read(4096):
        pass
    _wait_gone(service, SERVICE_GONE_WITHIN_S)
    stop_if_unused(pgdata)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
