"""The library internals the gateway relies on are all there in the locked versions, and a
release without one of them stops `serve` with one line naming it."""

from __future__ import annotations

import pytest

from marketplace_chat import cli, seams


def test_every_needed_name_exists_in_the_installed_libraries() -> None:
    assert seams.missing() == []
    assert seams.verify() is None


def test_the_locked_versions_are_the_ones_the_seams_were_written_for() -> None:
    assert seams.other_versions() == []


def test_a_missing_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        seams, "NEEDED", (*seams.NEEDED, ("socketio", "AsyncServer._gone_in_a_later_release"))
    )
    assert seams.missing() == ["socketio:AsyncServer._gone_in_a_later_release"]
    problem = seams.verify()
    assert problem is not None
    assert "socketio:AsyncServer._gone_in_a_later_release" in problem


def test_serve_refuses_to_start_with_one_line_when_a_name_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(seams, "NEEDED", (("uvicorn", "Server._no_such_method"),))
    monkeypatch.setenv("CHAT_ENV", "development")
    monkeypatch.setenv("LOG_LEVEL", "CRITICAL")
    # The service's logging would bind the loggers to this test's captured stdout for good.
    monkeypatch.setattr(cli, "configure_logging", lambda level, fmt: None)
    assert cli.main(["serve"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("marketplace-chat: cannot start: ")
    assert "uvicorn:Server._no_such_method" in line
