"""JWTs as marketplace-api would issue them, and broken ones, for the tests."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from typing import Any

import jwt

TEST_JWT_SECRET = "e2e-test-secret-0123456789abcdef-not-for-production"
OTHER_SECRET = "some-other-secret-0123456789abcdef-nope"
_MISSING: Any = object()


def new_user_id() -> int:
    """A user id no other test uses."""
    return random.randint(10**9, 10**12)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Tokens:
    """Mints tokens and remembers every one, so log checks can look for all of them."""

    def __init__(self, secret: str = TEST_JWT_SECRET) -> None:
        self.secret = secret
        self.minted: list[str] = []

    def _keep(self, token: str) -> str:
        self.minted.append(token)
        return token

    def mint(
        self,
        user_id: int | str | None,
        *,
        exp_in: float | None = 3600,
        exp: float | None = None,
        nbf_in: float | None = None,
        claim: str = "sub",
        secret: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """An HS256 token for ``user_id`` in ``claim`` (``sub`` as a string, per RFC 7519).

        ``exp`` is an absolute epoch time; ``exp_in`` is relative to now; both None: no ``exp``.
        """
        now = time.time()
        claims: dict[str, Any] = {"iat": int(now), "jti": f"{random.getrandbits(64):x}"}
        if user_id is not None:
            claims[claim] = str(user_id) if claim == "sub" else user_id
        if exp is not None:
            claims["exp"] = int(exp)
        elif exp_in is not None:
            claims["exp"] = int(now + exp_in)
        if nbf_in is not None:
            claims["nbf"] = int(now + nbf_in)
        claims.update(extra or {})
        return self._keep(jwt.encode(claims, secret or self.secret, algorithm="HS256"))

    def alg_none(self, user_id: int) -> str:
        header = {"alg": "none", "typ": "JWT"}
        claims = {"sub": str(user_id), "exp": int(time.time() + 3600)}
        return self._keep(f"{_b64(header)}.{_b64(claims)}.")

    def expiring_soon(self, user_id: int, seconds: float = 3.0) -> tuple[str, float]:
        """A token valid for a few seconds; returns it with its ``exp`` (epoch seconds)."""
        exp = int(time.time() + seconds) + 1
        return self.mint(user_id, exp=exp), float(exp)


async def sleep_until(epoch: float) -> None:
    """Sleep until the wall clock passes ``epoch`` (used to let a token's ``exp`` pass)."""
    delay = epoch - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
