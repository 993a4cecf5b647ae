"""Set-up problems come out as one line per problem naming the variable, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace_chat import cli, serving
from marketplace_chat.preflight import masked, url_problem
from marketplace_chat.settings import Settings, SettingsError

from .test_settings import variables


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in variables():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env of the working directory


def problems(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        Settings.load(env_file=None)
    return list(caught.value.problems)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DATABASE_POOL_MAX", "ten", "DATABASE_POOL_MAX: must be a whole number (got 'ten')"),
        ("REDIS_PORT", "6379x", "REDIS_PORT: must be a whole number"),
        ("MIGRATE_ON_START", "perhaps", "MIGRATE_ON_START: must be true or false"),
        ("CHAT_ENV", "staging", "CHAT_ENV: must be one of"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: must be one of"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: must be one of DEBUG, INFO"),
        ("PORT", "70000", "PORT: must be at most 65535"),
        ("SHUTDOWN_TIMEOUT_S", "-1", "SHUTDOWN_TIMEOUT_S: must be greater than 0"),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    (line,) = problems(monkeypatch, **{variable: value})
    assert line.startswith(says)


def test_every_bad_setting_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = problems(monkeypatch, PORT="x", DATABASE_POOL_MIN="-3", RATE_LIMIT_MESSAGES="many")
    assert [line.split(":")[0] for line in lines] == [
        "PORT",
        "DATABASE_POOL_MIN",
        "RATE_LIMIT_MESSAGES",
    ]


def test_a_secret_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    (line,) = problems(monkeypatch, JWT_PUBLIC_KEY="not-a-key-but-secret")
    assert line.startswith("JWT_PUBLIC_KEY: not a PEM public key")
    assert "not-a-key-but-secret" not in line


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("DATABASE_URL", "mysql://app:hunter2@db/app"),
        ("DATABASE_URL", "postgresql://app:hunter2@db:port/app"),
        ("REDIS_URL", "http://app:hunter2@cache:6379/0"),
        ("MARKETPLACE_API_URL", "ftp://app:hunter2@api"),
    ],
)
def test_a_wrong_url_names_its_variable_and_hides_the_password(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    (line,) = problems(monkeypatch, **{variable: url})
    assert line.startswith(f"{variable}: ")
    assert "hunter2" not in line


def test_good_urls_pass() -> None:
    assert url_problem("DATABASE_URL", "postgresql://u:p@h:5432/d", ("postgresql",)) is None
    assert masked("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"


def test_cli_prints_one_line_per_problem_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_POOL_MAX", "ten")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "marketplace-chat: configuration error: LOG_LEVEL: must be one of DEBUG, INFO, WARNING, "
        "ERROR, CRITICAL (got 'LOUD')",
        "marketplace-chat: configuration error: DATABASE_POOL_MAX: must be a whole number "
        "(got 'ten')",
    ]


def test_a_missing_env_file_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--env-file", "missing.env", "migrate"]) == 2
    assert "--env-file: no such file: missing.env" in capsys.readouterr().err


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("marketplace-chat ")


def test_check_reports_unreachable_backends_and_a_missing_verifier(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://chat:hunter2@127.0.0.1:1/chat")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert cli.main(["check"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [
        "FAIL verifier",
        "FAIL DATABASE_URL",
        "FAIL REDIS_URL",
    ]
    assert not any("hunter2" in line for line in out)


def test_serve_stops_with_one_line_when_postgres_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://chat:hunter2@127.0.0.1:1/chat")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("JWT_SECRET", "a-secret-long-enough-for-hs256-000000")
    monkeypatch.setenv("LOG_LEVEL", "CRITICAL")
    # The service's logging would bind the loggers to this test's captured stdout for good.
    monkeypatch.setattr(cli, "configure_logging", lambda level, fmt: None)
    assert cli.main(["migrate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("marketplace-chat: configuration error: DATABASE_URL: cannot reach")
    assert err[1].startswith("marketplace-chat: configuration error: REDIS_URL: cannot reach")


def test_the_development_banner_says_where_it_runs_and_how_to_get_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_ENV", "development")
    text = serving.banner(Settings.load(env_file=None))
    assert "http://localhost:3001/chat" in text
    assert "http://localhost:3001/docs" in text
    assert "marketplace-chat token --dev --user 42" in text
    assert "PostgreSQL   embedded" in text
    assert "Redis        embedded" in text
