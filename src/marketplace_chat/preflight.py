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
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import BaseSettings

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
