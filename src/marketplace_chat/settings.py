"""Configuration: one object, read once from the environment and `.env`, then passed down.

The seed's variable names (`DATABASE_HOST`, `REDIS_PORT`, `PORT`, `MARKETPLACE_API_URL`…) keep
working; the URL forms (`DATABASE_URL`, `REDIS_URL`) take precedence when set. Each section reads
its own variables so that the names stay exactly those the operators already use.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from marketplace_chat.preflight import (
    explain,
    public_key_problem,
    url_problem,
    webhook_url_problem,
)

DEV_JWT_SECRET = "marketplace-chat-development-secret-do-not-use-in-production"  # noqa: S105
DEV_WEBHOOK_SECRET = "marketplace-chat-development-webhooks"  # noqa: S105


class Environment(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"


class VerifierKind(StrEnum):
    LOCAL = "local"
    REMOTE = "remote"


def _config(prefix: str = "") -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
        frozen=True,
    )


class ServerSettings(BaseSettings):
    model_config = _config()

    chat_env: Environment = Environment.PRODUCTION
    # Unset: every interface in production, loopback only in development mode, whose built-in
    # secret (in the source) signs tokens anyone can mint.
    host: str | None = None
    port: int = Field(default=3001, ge=1, le=65535)
    data_dir: Path = Path(".data")
    migrate_on_start: bool = True
    log_level: str = "INFO"
    # Unset: the console layout in development mode, JSON lines (one object per line) otherwise.
    log_format: Literal["json", "console"] | None = None
    ws_compression: bool = False
    shutdown_timeout_s: PositiveFloat = 8.0
    cors_origins: str = "*"
    # REST bodies are a few hundred bytes; 64 kB leaves room and bounds what a client can make
    # the server hold.
    max_request_body_bytes: PositiveInt = 65_536
    node_id: str | None = None
    # Seconds a client has to send complete request headers, and an idle keep-alive connection
    # stays open, before the server closes the connection.
    http_header_timeout_s: PositiveFloat = 5.0
    http_keep_alive_timeout_s: PositiveInt = 5

    @property
    def listen_host(self) -> str:
        """Where to listen: `HOST`, else all interfaces, or loopback in development mode."""
        if self.host:
            return self.host
        return "127.0.0.1" if self.chat_env is Environment.DEVELOPMENT else "0.0.0.0"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in logging.getLevelNamesMapping():
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()


class DatabaseSettings(BaseSettings):
    model_config = _config("DATABASE_")

    url: str | None = None
    host: str | None = None
    port: int = 5432
    user: str = "postgres"
    password: str | None = None
    name: str = "postgres"
    pool_min: int = Field(default=2, ge=0)
    pool_max: PositiveInt = 10
    timeout_s: PositiveFloat = 5.0

    @property
    def configured(self) -> bool:
        return bool(self.url or self.host)

    def dsn(self) -> str | None:
        """The libpq-style URL asyncpg takes, or None when the embedded server should be used."""
        if self.url:
            return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        if not self.host:
            return None
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.name, safe='')}"


class RedisSettings(BaseSettings):
    model_config = _config("REDIS_")

    url: str | None = None
    host: str | None = None
    port: int = 6379
    password: str | None = None
    db: int = Field(default=0, ge=0)
    # The fan-out stream keeps about this many entries (a batch of publishes each): sized for a
    # few minutes of peak traffic, the longest outage a node resumes from without a reset.
    fanout_stream_maxlen: PositiveInt = Field(
        default=200_000, validation_alias="FANOUT_STREAM_MAXLEN"
    )
    # Publishes a node keeps while Redis is down; past it they are given up and signalled.
    fanout_buffer_max: PositiveInt = Field(default=50_000, validation_alias="FANOUT_BUFFER_MAX")

    @property
    def configured(self) -> bool:
        return bool(self.url or self.host)

    def dsn(self) -> str | None:
        if self.url:
            return self.url
        if not self.host:
            return None
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{self.db}"


class AuthSettings(BaseSettings):
    model_config = _config()

    auth_verifier: VerifierKind | None = None
    marketplace_api_url: str | None = None
    auth_verify_path: str = "/auth/me"
    auth_verify_timeout_s: PositiveFloat = 3.0
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_user_id_claim: str = "sub"
    jwt_leeway_s: float = Field(default=0.0, ge=0)
    auth_cache_ttl_s: PositiveInt = 600
    auth_expired_grace_s: float = Field(default=60.0, ge=0)


class LimitSettings(BaseSettings):
    model_config = _config()

    max_message_length: PositiveInt = 4000
    rate_limit_messages: int = Field(default=20, ge=0)
    rate_limit_window_s: PositiveFloat = 10.0
    rate_limit_chats: int = Field(default=10, ge=0)
    rate_limit_chats_window_s: PositiveFloat = 60.0
    typing_throttle_s: float = Field(default=2.0, ge=0)
    # Budgets of the other events, per user on all nodes: a burst of N, refilled at N per window.
    rate_limit_reads: int = Field(default=200, ge=0)
    rate_limit_reads_window_s: PositiveFloat = 10.0
    rate_limit_receipts: int = Field(default=60, ge=0)
    rate_limit_receipts_window_s: PositiveFloat = 10.0
    rate_limit_typing: int = Field(default=60, ge=0)
    rate_limit_typing_window_s: PositiveFloat = 10.0
    rate_limit_refresh: int = Field(default=10, ge=0)
    rate_limit_refresh_window_s: PositiveFloat = 60.0
    # Edits and deletes together share one budget per user.
    rate_limit_edits: int = Field(default=30, ge=0)
    rate_limit_edits_window_s: PositiveFloat = 60.0
    # How long after `createdAt` the sender may still edit a message; 0 turns edits off. Ten
    # years at most: beyond that "forever" is meant, and the sum must stay a real date.
    edit_window_s: float = Field(default=900.0, ge=0, le=315_360_000)
    # Trust and safety: `user:block` + `user:unblock` together, and `report:create`. A person
    # blocks or reports a handful of users a day; these leave room for a spam wave while keeping
    # one account from churning blocks (each recomputes chats and writes a webhook).
    rate_limit_blocks: int = Field(default=20, ge=0)
    rate_limit_blocks_window_s: PositiveFloat = 600.0
    rate_limit_reports: int = Field(default=10, ge=0)
    rate_limit_reports_window_s: PositiveFloat = 3600.0
    # Per socket: events handled at once, and events waiting behind them; past both, refused.
    max_events_in_flight: int = Field(default=4, ge=0)
    max_events_queued: int = Field(default=256, ge=0)
    max_sockets_per_user: int = Field(default=50, ge=0)


class WebhookSettings(BaseSettings):
    """Events for marketplace-api (webhooks) and the operators' routes that manage them."""

    model_config = _config()

    # Unset: no webhooks, and nothing is written to the outbox.
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_timeout_s: PositiveFloat = 5.0
    webhook_max_attempts: PositiveInt = 15
    unread_notify_after_s: float = Field(default=60.0, ge=0)
    # Unset: every /api/admin route answers 403.
    admin_api_key: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url)


# A host name as operators write one: labels of letters, digits and hyphens, at least one dot.
_HOST_RE = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}")


class ContactSettings(BaseSettings):
    """The contact-detail check on every text that enters (see the protocol's "Contact details")."""

    model_config = _config()

    # mask: spans replaced by "[hidden]"; block: the send refused; flag: delivered and reported
    # to marketplace-api; off: no check. A chat's own policy (the admin route) overrides it.
    contact_policy: Literal["mask", "block", "flag", "off"] = "mask"
    # The marketplace's own domains (their subdomains count too): links to them are allowed.
    contact_allowed_hosts: str = ""

    @field_validator("contact_allowed_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for host in value.split(","):
            host = host.strip()
            if host and not _HOST_RE.fullmatch(host):
                raise ValueError(
                    f"{host[:60]!r} is not a host name: give bare domains separated by commas, "
                    "such as shop.example,shop-cdn.example (no scheme, port or path)"
                )
        return value

    @property
    def allowed_hosts(self) -> list[str]:
        return [h.strip().lower() for h in self.contact_allowed_hosts.split(",") if h.strip()]


class SettingsError(Exception):
    """The configuration cannot run a service; each line of the message says what to set."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")


HTTP = ("http", "https")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    server: ServerSettings
    database: DatabaseSettings
    redis: RedisSettings
    auth: AuthSettings
    limits: LimitSettings
    webhooks: WebhookSettings
    contacts: ContactSettings

    @classmethod
    def load(cls, env_file: str | Path | None = ".env", **server: Any) -> Settings:
        """Read every section from the environment and `env_file`; `server` holds CLI overrides."""
        kw: dict[str, Any] = {"_env_file": env_file}
        sections: dict[str, BaseSettings] = {}
        problems: list[str] = []
        for key, section in SECTIONS.items():
            try:
                sections[key] = section(**kw, **(server if key == "server" else {}))
            except ValidationError as exc:
                problems += explain(section, exc)
        if problems:
            raise SettingsError(*problems)
        settings = cls.model_validate(sections)
        problems = [
            line
            for line in (
                url_problem("DATABASE_URL", settings.database.url, DATABASE_SCHEMES),
                url_problem("REDIS_URL", settings.redis.url, REDIS_SCHEMES),
                url_problem("MARKETPLACE_API_URL", settings.auth.marketplace_api_url, HTTP),
                public_key_problem(settings.auth.jwt_public_key),
                webhook_url_problem(settings.webhooks.webhook_url),
                settings._webhook_secret_problem(),
            )
            if line is not None
        ]
        if problems:
            raise SettingsError(*problems)
        return settings

    def _webhook_secret_problem(self) -> str | None:
        hooks = self.webhooks
        if hooks.enabled and not hooks.webhook_secret and not self.development:
            return "WEBHOOK_URL is set but WEBHOOK_SECRET is not: set the secret that signs them"
        return None

    @property
    def development(self) -> bool:
        return self.server.chat_env is Environment.DEVELOPMENT

    @property
    def log_format(self) -> Literal["json", "console"]:
        if self.server.log_format is not None:
            return self.server.log_format
        return "console" if self.development else "json"

    def verifier_kind(self) -> VerifierKind:
        """Which verifier runs: explicit `AUTH_VERIFIER`, else a local key, else marketplace-api.

        Outside development mode a service without any verifier refuses to start.
        """
        auth = self.auth
        kind = auth.auth_verifier
        if kind is None:
            if auth.jwt_secret or auth.jwt_public_key:
                kind = VerifierKind.LOCAL
            elif auth.marketplace_api_url:
                kind = VerifierKind.REMOTE
            elif self.development:
                kind = VerifierKind.LOCAL
            else:
                raise SettingsError(
                    "no token verifier is configured: set JWT_SECRET (HS256) or JWT_PUBLIC_KEY "
                    "(RS256/ES256) for local verification, or MARKETPLACE_API_URL for verification "
                    "by marketplace-api; or run in development mode "
                    "(CHAT_ENV=development / serve --dev)"
                )
        if kind is VerifierKind.REMOTE and not auth.marketplace_api_url:
            raise SettingsError("AUTH_VERIFIER=remote needs MARKETPLACE_API_URL")
        if (
            kind is VerifierKind.LOCAL
            and not (auth.jwt_secret or auth.jwt_public_key)
            and not self.development
        ):
            raise SettingsError("AUTH_VERIFIER=local needs JWT_SECRET or JWT_PUBLIC_KEY")
        return kind

    def webhook_secret(self) -> str:
        """The key that signs webhooks: `WEBHOOK_SECRET`, or in development mode a fixed one."""
        return self.webhooks.webhook_secret or DEV_WEBHOOK_SECRET

    def jwt_secret(self) -> str | None:
        if self.auth.jwt_secret:
            return self.auth.jwt_secret
        if self.development and not self.auth.jwt_public_key:
            return DEV_JWT_SECRET
        return None


SECTIONS: dict[str, type[BaseSettings]] = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "redis": RedisSettings,
    "auth": AuthSettings,
    "limits": LimitSettings,
    "webhooks": WebhookSettings,
    "contacts": ContactSettings,
}
