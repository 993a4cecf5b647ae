"""What every PostgreSQL store shares: connections from the one pool, within the database
timeout, and driver failures that reach the caller as `Unavailable`, never as a traceback."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from marketplace_chat.errors import Unavailable
from marketplace_chat.storage.pool import pooled, unreachable


def unavailable(exc: BaseException) -> Unavailable:
    """The client-facing error of a driver failure: an outage, or a refusal of this one request
    (a row that slipped past validation), which must not read as an outage in the logs."""
    if unreachable(exc):
        return Unavailable("The database is unavailable")
    return Unavailable("The database refused the request")


class PooledStore:
    def __init__(self, pool: asyncpg.Pool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout = timeout_s

    def _conn(self) -> AbstractAsyncContextManager[PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection; every driver or network failure leaves as `Unavailable`."""
        return pooled(self._pool, self._timeout, unavailable)
