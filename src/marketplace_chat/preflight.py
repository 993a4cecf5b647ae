"""Set-up problems said in one line each, naming the variable an operator sets.

A misconfigured service should say what to change, not print a library's traceback: settings
errors are named by their environment variable, backends that cannot be reached by their URL (with
any password masked), and `marketplace-chat check` reaches every dependency and prints what it
found.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import BaseSettings

if TYPE_CHECKING:  # settings.py reads this module's helpers: no import of it at run time here
    from marketplace_chat.settings import Settings, VerifierKind

SECRET_VARIABLES = frozenset(
    {"JWT_SECRET", "JWT_PUBLIC_KEY", "DATABASE_PASSWORD", "REDIS_PASSWORD", "ADMIN_API_KEY"}
)
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@]*):[^@/]*@")
CHECK_TIMEOUT_S = 5.0  # one dependency that does not answer in this long is reported as down


def variable_name(section: type[BaseSettings], field: str) -> str:
    """The environment variable that sets `field` of `section`."""
    info = section.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, str):
        return alias.upper()
    prefix = str(section.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def explain(section: type[BaseSettings], exc: ValidationError) -> list[str]:
    """One line per invalid variable: its name, what is wrong and (unless secret) what was read."""
    lines = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = variable_name(section, field) if field else section.__name__
        message = _reason(error)
        value = error.get("input")
        if name not in SECRET_VARIABLES and isinstance(value, str | int | float):
            message += f" (got {str(value)[:60]!r})"
        lines.append(f"{name}: {message}")
    return lines


def _reason(error: Any) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in ("int_parsing", "int_type"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind in ("enum", "literal_error"):
        return f"must be one of {ctx.get('expected', 'the documented values')}"
    if kind == "greater_than":
        return f"must be greater than {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    message = str(error.get("msg", "is invalid"))
    return message.removeprefix("Value error, ")


def masked(url: str) -> str:
    """A URL fit for a message: its password replaced by `***`."""
    return _URL_PASSWORD.sub(r"\1:***@", url)


def url_problem(name: str, url: str | None, schemes: Iterable[str]) -> str | None:
    """A line saying why `url` cannot be a URL for `name`, or None when it can."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        return f"{name}: not a valid URL ({exc}): {masked(url)}"
    allowed = tuple(schemes)
    if parts.scheme not in allowed:
        return f"{name}: the scheme must be one of {', '.join(allowed)}: {masked(url)}"
    if not parts.hostname and not parts.path:
        return f"{name}: no host in {masked(url)}"
    return None


def webhook_url_problem(url: str | None) -> str | None:
    """A line saying why `WEBHOOK_URL` cannot be posted to, or None when it can."""
    problem = url_problem("WEBHOOK_URL", url, ("http", "https"))
    if problem is None and url and not urlsplit(url).hostname:
        problem = f"WEBHOOK_URL: no host in {masked(url)}"
    if problem is None and url and (urlsplit(url).username or urlsplit(url).password):
        # Not sent: the receiver authenticates the service by the signature.
        problem = f"WEBHOOK_URL: credentials in the URL are not supported: {masked(url)}"
    return problem


def public_key_problem(pem: str | None) -> str | None:
    """A line saying why `JWT_PUBLIC_KEY` is not a usable PEM public key, or None."""
    if not pem:
        return None
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        load_pem_public_key(pem.replace("\\n", "\n").encode())
    except (ValueError, TypeError):
        return "JWT_PUBLIC_KEY: not a PEM public key (-----BEGIN PUBLIC KEY----- …)"
    return None


@dataclass(frozen=True, slots=True)
class Finding:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


async def probe(name: str, attempt: Callable[[], Any]) -> Finding:
    """Run one reachability check with a deadline; its failure becomes a line, not a traceback."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            detail = await attempt()
    except TimeoutError:
        return Finding(name, False, f"no answer within {CHECK_TIMEOUT_S:g} s")
    except Exception as exc:  # any failure of a dependency is a finding to print
        return Finding(name, False, one_line(exc))
    return Finding(name, True, str(detail))


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return masked(text)[:200]


def reach(dsn: str, redis_url: str) -> None:
    """Fail with one line per backend that does not answer, before anything is started on it."""
    from marketplace_chat.settings import SettingsError

    findings = asyncio.run(_reach(dsn, redis_url))
    down = [f"{f.name}: cannot reach it ({f.detail})" for f in findings if not f.ok]
    if down:
        raise SettingsError(*down)


async def _reach(dsn: str | None, redis_url: str | None) -> list[Finding]:
    """Probe the backends given (None: not configured, nothing to probe)."""
    import asyncpg

    from marketplace_chat.realtime.connection import connect

    async def postgres() -> str:
        assert dsn is not None
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            server = await conn.fetchval("SHOW server_version")
            migrated = await conn.fetchval("SELECT to_regclass('chat.alembic_version') IS NOT NULL")
        finally:
            await conn.close()
        return f"PostgreSQL {server} at {masked(dsn)}, schema chat " + (
            "present" if migrated else "not migrated yet"
        )

    async def redis() -> str:
        assert redis_url is not None
        client = connect(redis_url, timeout_s=5)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        return f"Redis {info.get('redis_version', '?')} at {masked(redis_url)}"

    probes = []
    if dsn is not None:
        probes.append(probe("DATABASE_URL", postgres))
    if redis_url is not None:
        probes.append(probe("REDIS_URL", redis))
    return list(await asyncio.gather(*probes))


def check(settings: Settings) -> int:
    """Print what the settings reach; exit 0 when everything answers, 2 when something does not."""
    from marketplace_chat.settings import SettingsError

    findings: list[Finding] = []
    try:
        kind = settings.verifier_kind()
        findings.append(Finding("verifier", True, kind.value))
    except SettingsError as exc:
        findings.append(Finding("verifier", False, str(exc)))
        kind = None
    dsn, redis_url = settings.database.dsn(), settings.redis.dsn()
    if dsn is None or redis_url is None:
        findings.append(
            Finding("backends", True, "embedded servers start for what is not configured")
        )
    findings += asyncio.run(_check_remote(settings, dsn, redis_url, kind))
    for finding in findings:
        print(finding.line())
    return 0 if all(f.ok for f in findings) else 2


async def _check_remote(
    settings: Settings, dsn: str | None, redis_url: str | None, kind: VerifierKind | None
) -> list[Finding]:
    import httpx

    from marketplace_chat.settings import VerifierKind

    found = await _reach(dsn, redis_url)
    api = settings.auth.marketplace_api_url
    if kind is VerifierKind.REMOTE and api:
        url = api.rstrip("/") + "/" + settings.auth.auth_verify_path.lstrip("/")

        async def marketplace_api() -> str:
            async with httpx.AsyncClient(timeout=5, follow_redirects=False) as http:
                answer = await http.get(url)
            if answer.status_code >= 500:
                raise RuntimeError(f"{url} answered {answer.status_code}")
            return f"{url} answered {answer.status_code} without a token"

        found.append(await probe("MARKETPLACE_API_URL", marketplace_api))
    return found
