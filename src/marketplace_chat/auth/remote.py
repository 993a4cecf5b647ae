"""Verification by marketplace-api: `GET {MARKETPLACE_API_URL}{AUTH_VERIFY_PATH}`, bearer token."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from marketplace_chat.auth.base import Identity, refuse_if_expired, require, user_id_from
from marketplace_chat.clock import Clock
from marketplace_chat.errors import AuthError, ErrorCode

ID_FIELDS = ("id", "userId", "sub")
ID_CONTAINERS = ("user", "data")


def find_user_id(body: object) -> int | None:
    """The user id in `id`, `userId` or `sub`, at the top level or under `user` or `data`."""
    if not isinstance(body, Mapping):
        return None
    places: list[Mapping[str, Any]] = [body]
    places += [body[c] for c in ID_CONTAINERS if isinstance(body.get(c), Mapping)]
    for place in places:
        for field in ID_FIELDS:
            user_id = user_id_from(place.get(field))
            if user_id is not None:
                return user_id
    return None


def service_error() -> AuthError:
    return AuthError("Authentication service unavailable", ErrorCode.AUTH_SERVICE_ERROR)


class RemoteVerifier:
    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        clock: Clock,
        *,
        leeway_s: float = 0.0,
        observe: Callable[[float, str], None] | None = None,
    ) -> None:
        self._client = client
        self._url = url
        self._clock = clock
        self._leeway = leeway_s
        self._observe = observe

    async def verify(self, token: str) -> Identity:
        token = require(token)
        # An expired JWT is refused here, without a call to marketplace-api, and so is one whose
        # `exp` is no date at all (TOKEN_INVALID).
        expires_at = refuse_if_expired(token, self._clock.now(), self._leeway)
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._client.get(
                self._url, headers={"Authorization": f"Bearer {token}"}
            )
            outcome = str(response.status_code)
        except httpx.HTTPError:
            raise service_error() from None
        finally:
            if self._observe is not None:
                self._observe(time.perf_counter() - started, outcome)
        if response.status_code in (401, 403):
            raise AuthError("Invalid token")
        if not response.is_success:
            raise service_error()
        try:
            user_id = find_user_id(response.json())
        except ValueError:
            raise service_error() from None
        if user_id is None:
            raise service_error()
        return Identity(user_id, expires_at)
