"""What every verifier promises, and the JWT facts all of them read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import jwt

from marketplace_chat.errors import AuthError, ErrorCode, token_expired
from marketplace_chat.models import MAX_TOKEN_LENGTH, positive_id, storable


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    expires_at: datetime | None  # the token's own `exp`; None for a token without one

    def expired(self, now: datetime, leeway_s: float = 0.0) -> bool:
        return self.expires_at is not None and now >= self.expires_at + timedelta(seconds=leeway_s)


class Verifier(Protocol):
    """Turns a bearer token into an Identity, or raises `AuthError` with its code.

    TOKEN_REQUIRED for an empty token, TOKEN_EXPIRED for a JWT whose `exp` has passed (decided
    before anything else is asked), TOKEN_INVALID for a token that is wrong, AUTH_SERVICE_ERROR
    when the authority cannot answer.
    """

    async def verify(self, token: str) -> Identity: ...


def require(token: str | None) -> str:
    token = (token or "").strip()
    if not token:
        raise AuthError("Authentication token is required", ErrorCode.TOKEN_REQUIRED)
    # A NUL or a lone surrogate is no token, and the surrogate would fail the hashing and the
    # JWT decoding with an encoding error rather than an AuthError.
    if len(token) > MAX_TOKEN_LENGTH or not storable(token):
        raise AuthError("Invalid token", ErrorCode.TOKEN_INVALID)
    return token


def unverified_claims(token: str) -> Mapping[str, Any] | None:
    """The claims of a JWT read without its signature, or None for a token that is no JWT."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def expiry(claims: Mapping[str, Any] | None) -> datetime | None:
    exp = claims.get("exp") if claims else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return datetime.fromtimestamp(exp, UTC)
    return None


def refuse_if_expired(token: str, now: datetime, leeway_s: float) -> datetime | None:
    """Raise TOKEN_EXPIRED for a JWT past its `exp`; return that `exp` (None if it has none)."""
    expires_at = expiry(unverified_claims(token))
    if expires_at is not None and now >= expires_at + timedelta(seconds=leeway_s):
        raise token_expired()
    return expires_at


user_id_from = positive_id  # a user id in a token or an answer: the same rule as on the wire
