"""What every verifier promises, and the JWT facts all of them read."""

from __future__ import annotations

import hashlib
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt
import structlog

from marketplace_chat.errors import AuthError, ErrorCode, token_expired
from marketplace_chat.payloads import MAX_TOKEN_LENGTH, positive_id

log = structlog.get_logger(__name__)

# A bearer token is printable ASCII (RFC 6750's b64token is narrower still). Anything else, a lone
# surrogate above all, is refused before it reaches a codec, a hash or an HTTP header.
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")

# The latest `exp`/`nbf` taken as a date. Leeway and grace periods are added to a token's `exp`;
# a date this far from datetime's year 9999 leaves them room, and no real token lives so long
# (one meant to live forever has no `exp`).
LATEST_NUMERIC_DATE = datetime(9000, 1, 1, tzinfo=UTC)

# What decoding a token's own bytes, JSON and claims can raise when they are absurd.
CONTENT_ERRORS: tuple[type[Exception], ...] = (
    jwt.PyJWTError,
    ValueError,  # UnicodeError and json.JSONDecodeError among them
    TypeError,
    ArithmeticError,  # OverflowError
    LookupError,
    RecursionError,
)


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    expires_at: datetime | None  # the token's own `exp`; None for a token without one

    def expired(self, now: datetime, leeway_s: float = 0.0) -> bool:
        return self.expires_at is not None and now >= self.expires_at + timedelta(seconds=leeway_s)


class Verifier(Protocol):
    """Turns a bearer token into an Identity, or raises `AuthError` with its code.

    TOKEN_REQUIRED for an empty token, TOKEN_EXPIRED for a JWT whose `exp` has passed (decided
    before anything else is asked), TOKEN_INVALID for a token that is wrong (absurd claims and
    text that is no token included), AUTH_SERVICE_ERROR when the authority cannot answer.
    Nothing else escapes, whatever the token holds.
    """

    async def verify(self, token: str) -> Identity: ...


def require(token: str | None) -> str:
    token = (token or "").strip()
    if not token:
        raise AuthError("Authentication token is required", ErrorCode.TOKEN_REQUIRED)
    if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_TEXT.fullmatch(token):
        raise AuthError("Invalid token", ErrorCode.TOKEN_INVALID)
    return token


def token_digest(token: str) -> str:
    """The sha256 of a token, for keys that must not hold it; defined for any text at all."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_digest_bytes(token: str) -> bytes:
    """`token_digest` as the raw 32 bytes, for keys held in memory (half the size of the hex)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def unverified_claims(token: str) -> Mapping[str, Any] | None:
    """The claims of a JWT read without its signature, or None for a token that is no JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except CONTENT_ERRORS:
        return None
    return claims if isinstance(claims, dict) else None


def claim_time(claims: Mapping[str, Any] | None, name: str) -> datetime | None:
    """The NumericDate claim `name` as a datetime, None when absent.

    Anything but a number of seconds between year 1 and `LATEST_NUMERIC_DATE` (a bool, a string,
    NaN, an infinity, 1e308) is TOKEN_INVALID: such a claim means the token is not what it says.
    """
    value = claims.get(name) if claims else None
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (ArithmeticError, ValueError, OSError):
            moment = None
        if moment is not None and moment <= LATEST_NUMERIC_DATE:
            return moment
    raise AuthError(f"Invalid token: malformed {name}")


def expiry(claims: Mapping[str, Any] | None) -> datetime | None:
    return claim_time(claims, "exp")


def refuse_if_expired(token: str, now: datetime, leeway_s: float) -> datetime | None:
    """Raise TOKEN_EXPIRED for a JWT past its `exp`, TOKEN_INVALID for a malformed one; return
    that `exp` (None if it has none)."""
    expires_at = expiry(unverified_claims(token))
    if expires_at is not None and now >= expires_at + timedelta(seconds=leeway_s):
        raise token_expired()
    return expires_at


async def verify_guarded(verifier: Verifier, token: str, *, sid: str | None = None) -> Identity:
    """`verifier.verify`, with whatever else it raises turned into an `AuthError`.

    Such an exception is a bug in a verifier; it is logged once, by its type and the line that
    raised it but not its message (which may quote the token), and answered TOKEN_INVALID when it
    comes from reading the token's content, AUTH_SERVICE_ERROR otherwise.
    """
    try:
        return await verifier.verify(token)
    except AuthError:
        raise
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        log.error(
            "verifier_failed",
            sid=sid,
            error_type=type(exc).__name__,
            where=f"{where[0].filename}:{where[0].lineno} in {where[0].name}" if where else None,
        )
        if isinstance(exc, CONTENT_ERRORS):
            raise AuthError("Invalid token") from None
        raise AuthError(
            "Authentication service unavailable", ErrorCode.AUTH_SERVICE_ERROR
        ) from None


user_id_from = positive_id  # a user id in a token or an answer: the same rule as on the wire
