"""Local verification of marketplace-api's JWTs: signature, `exp`, `nbf`, and `iss`/`aud` if set."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import jwt

from marketplace_chat.auth.base import (
    CONTENT_ERRORS,
    Identity,
    claim_time,
    expiry,
    require,
    user_id_from,
)
from marketplace_chat.clock import Clock
from marketplace_chat.errors import AuthError, token_expired

USER_ID_FALLBACKS = ("userId", "id")


class LocalVerifier:
    def __init__(
        self,
        key: str,
        algorithms: Sequence[str],
        clock: Clock,
        *,
        user_id_claim: str = "sub",
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: float = 0.0,
    ) -> None:
        if "none" in (a.lower() for a in algorithms):
            raise ValueError("the 'none' algorithm is never accepted")
        self._key = key
        self._algorithms = list(algorithms)
        self._clock = clock
        self._claims = [user_id_claim, *(c for c in USER_ID_FALLBACKS if c != user_id_claim)]
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s

    async def verify(self, token: str) -> Identity:
        token = require(token)
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                # sub and jti are not ours to police: marketplace-api may issue a numeric sub,
                # which PyJWT (>= 2.10) would otherwise refuse as "Subject must be a string".
                # Nor is iat: a token minted by a host whose clock runs a little ahead would be
                # refused as "not yet valid" right after it was issued. exp and nbf are read
                # below, on the injected clock and with the same rules for absurd values.
                options={
                    "verify_aud": self._audience is not None,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except CONTENT_ERRORS:
            raise AuthError("Invalid token") from None
        if not isinstance(claims, dict):
            raise AuthError("Invalid token")
        # exp is checked against the injected clock rather than PyJWT's, so that the socket's
        # later per-action checks and this one agree.
        identity_exp = expiry(claims)
        not_before = claim_time(claims, "nbf")
        now = self._clock.now()
        if not_before is not None and not_before > now + timedelta(seconds=self._leeway):
            raise AuthError("Invalid token: not yet valid")
        identity = None
        for claim in self._claims:
            user_id = user_id_from(claims.get(claim))
            if user_id is not None:
                identity = Identity(user_id, identity_exp)
                break
        if identity is None:
            raise AuthError("Invalid token: no user id")
        if identity.expired(now, self._leeway):
            raise token_expired()
        return identity
