from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from marketplace_chat.settings import (
    DEV_JWT_SECRET,
    DEV_WEBHOOK_SECRET,
    AuthSettings,
    DatabaseSettings,
    Environment,
    LimitSettings,
    RedisSettings,
    ServerSettings,
    Settings,
    SettingsError,
    VerifierKind,
    WebhookSettings,
)

SECTIONS = (
    ServerSettings,
    DatabaseSettings,
    RedisSettings,
    AuthSettings,
    LimitSettings,
    WebhookSettings,
)


def variables() -> list[str]:
    """Every variable the settings read, prefixes included."""
    names: list[str] = []
    for section in SECTIONS:
        prefix = section.model_config.get("env_prefix") or ""
        names += [(prefix + field).upper() for field in section.model_fields]
    return names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets counts; the machine's own variables are hidden."""
    for name in variables():
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def public_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load() -> Settings:
    return Settings.load(env_file=None)


def test_seed_variable_names_are_read() -> None:
    seed = {"DATABASE_HOST", "DATABASE_PORT", "DATABASE_USER", "DATABASE_PASSWORD"}
    seed |= {"DATABASE_NAME", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "PORT"}
    seed |= {"MARKETPLACE_API_URL", "DATABASE_URL", "REDIS_URL", "REDIS_DB"}
    assert seed <= set(variables())


def test_defaults_are_the_seed_port_production_and_embedded_backends() -> None:
    s = load()
    assert s.server.port == 3001
    assert s.server.chat_env is Environment.PRODUCTION
    assert not s.development
    assert s.server.migrate_on_start is True
    assert s.database.dsn() is None
    assert not s.database.configured
    assert s.redis.dsn() is None
    assert not s.redis.configured
    assert s.auth.auth_verify_path == "/auth/me"
    assert s.auth.auth_verify_timeout_s == 3.0
    assert s.auth.auth_cache_ttl_s == 600
    assert s.auth.jwt_user_id_claim == "sub"
    assert s.auth.jwt_leeway_s == 0
    assert s.auth.auth_expired_grace_s == 60
    assert (s.limits.rate_limit_messages, s.limits.rate_limit_window_s) == (20, 10)
    assert (s.limits.rate_limit_chats, s.limits.rate_limit_chats_window_s) == (10, 60)
    assert s.limits.max_message_length == 4000
    assert s.limits.typing_throttle_s == 2


def test_port_comes_from_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "4010")
    assert load().server.port == 4010


def test_cli_override_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "4010")
    assert Settings.load(env_file=None, port=4020).server.port == 4020


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_impossible_port_is_refused(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    monkeypatch.setenv("PORT", port)
    with pytest.raises(SettingsError):
        load()


def test_seed_database_variables_make_the_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_HOST", "db.internal")
    monkeypatch.setenv("DATABASE_PORT", "6543")
    monkeypatch.setenv("DATABASE_USER", "chat user")
    monkeypatch.setenv("DATABASE_PASSWORD", "p@ss:w/rd%")
    monkeypatch.setenv("DATABASE_NAME", "market")
    s = load()
    assert s.database.configured
    assert s.database.dsn() == "postgresql://chat%20user:p%40ss%3Aw%2Frd%25@db.internal:6543/market"


def test_database_host_alone_uses_the_default_user_port_and_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_HOST", "db")
    assert load().database.dsn() == "postgresql://postgres@db:5432/postgres"


def test_database_url_wins_over_the_seed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_HOST", "ignored")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u:p@h:5/d")
    assert load().database.dsn() == "postgresql://u:p@h:5/d"


def test_seed_redis_variables_make_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cr/t")
    monkeypatch.setenv("REDIS_DB", "4")
    s = load()
    assert s.redis.configured
    assert s.redis.dsn() == "redis://:s3cr%2Ft@cache:6380/4"


def test_redis_host_alone_uses_port_6379_and_db_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache")
    assert load().redis.dsn() == "redis://cache:6379/0"


def test_redis_url_wins_over_the_seed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "ignored")
    monkeypatch.setenv("REDIS_URL", "redis://other:1/2")
    assert load().redis.dsn() == "redis://other:1/2"


def test_migrate_on_start_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIGRATE_ON_START", "false")
    assert load().server.migrate_on_start is False


def test_rate_limit_zero_is_allowed_to_turn_limiting_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_MESSAGES", "0")
    assert load().limits.rate_limit_messages == 0


def test_no_verifier_outside_development_refuses_to_start() -> None:
    with pytest.raises(SettingsError) as caught:
        load().verifier_kind()
    assert "JWT_SECRET" in str(caught.value)
    assert "MARKETPLACE_API_URL" in str(caught.value)


def test_marketplace_api_url_alone_selects_the_remote_verifier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MARKETPLACE_API_URL", "http://api:3000")
    assert load().verifier_kind() is VerifierKind.REMOTE


@pytest.mark.parametrize("variable", ["JWT_SECRET", "JWT_PUBLIC_KEY"])
def test_a_local_key_selects_the_local_verifier_even_beside_the_api_url(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv("MARKETPLACE_API_URL", "http://api:3000")
    monkeypatch.setenv(variable, public_key_pem() if variable == "JWT_PUBLIC_KEY" else "s" * 32)
    assert load().verifier_kind() is VerifierKind.LOCAL


def test_explicit_auth_verifier_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPLACE_API_URL", "http://api:3000")
    monkeypatch.setenv("JWT_SECRET", "s" * 32)
    monkeypatch.setenv("AUTH_VERIFIER", "remote")
    assert load().verifier_kind() is VerifierKind.REMOTE


def test_remote_verifier_without_api_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_VERIFIER", "remote")
    monkeypatch.setenv("JWT_SECRET", "s" * 32)
    with pytest.raises(SettingsError, match="MARKETPLACE_API_URL"):
        load().verifier_kind()


def test_local_verifier_without_key_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTH_VERIFIER", "local")
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        load().verifier_kind()


def test_development_without_verifier_uses_the_development_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_ENV", "development")
    s = load()
    assert s.development
    assert s.verifier_kind() is VerifierKind.LOCAL
    assert s.jwt_secret() == DEV_JWT_SECRET


def test_configured_secret_wins_over_the_development_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_ENV", "development")
    monkeypatch.setenv("JWT_SECRET", "s" * 32)
    assert load().jwt_secret() == "s" * 32


def test_production_never_falls_back_to_the_development_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_PUBLIC_KEY", public_key_pem())
    assert load().jwt_secret() is None
    monkeypatch.setenv("CHAT_ENV", "development")
    assert load().jwt_secret() is None


def test_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_ENV", "staging")
    with pytest.raises(SettingsError):
        load()


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "DATABASE_URL", "REDIS_URL", "JWT_SECRET", "MARKETPLACE_API_URL"):
        monkeypatch.setenv(name, "")
    s = load()
    assert s.server.port == 3001
    assert s.database.dsn() is None
    assert s.redis.dsn() is None
    with pytest.raises(SettingsError):
        s.verifier_kind()


def test_development_mode_listens_on_loopback_unless_host_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load().server.listen_host == "0.0.0.0"
    monkeypatch.setenv("CHAT_ENV", "development")
    assert load().server.listen_host == "127.0.0.1"
    monkeypatch.setenv("HOST", "0.0.0.0")
    assert load().server.listen_host == "0.0.0.0"
    assert Settings.load(env_file=None, host="10.0.0.5").server.listen_host == "10.0.0.5"


def test_logs_are_console_in_development_and_json_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load().log_format == "json"
    monkeypatch.setenv("CHAT_ENV", "development")
    assert load().log_format == "console"
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert load().log_format == "json"


def test_webhooks_are_off_by_default_and_the_spec_defaults_hold() -> None:
    hooks = load().webhooks
    assert not hooks.enabled
    assert (hooks.webhook_timeout_s, hooks.webhook_max_attempts) == (5.0, 15)
    assert hooks.unread_notify_after_s == 60.0
    assert hooks.admin_api_key is None


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://api.example.test/hooks",
        "http://",
        "https://:80/x",
        "https://user:pw@api.example.test/hooks",
    ],
)
def test_an_unusable_webhook_url_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("WEBHOOK_URL", url)
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    with pytest.raises(SettingsError) as raised:
        load()
    assert len(raised.value.problems) == 1
    assert raised.value.problems[0].startswith("WEBHOOK_URL: ")
    assert "pw@" not in raised.value.problems[0]  # a password is never echoed


def test_a_webhook_url_without_a_secret_is_refused_outside_development_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://api.example.test/chat-events")
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET"):
        load()
    monkeypatch.setenv("CHAT_ENV", "development")
    settings = load()
    assert settings.webhooks.enabled
    assert settings.webhook_secret() == DEV_WEBHOOK_SECRET
    monkeypatch.setenv("WEBHOOK_SECRET", "mine")
    assert load().webhook_secret() == "mine"
