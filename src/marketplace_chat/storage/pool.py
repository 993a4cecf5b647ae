"""The asyncpg pool: connections that are never handed out again unless they are idle.

asyncpg's own reset sends a query on every release; the storage leaves no session state behind,
so that round trip buys nothing but the proof that the connection still works. The same proof is
had for free by remembering how the connection's last statement ended: a statement that failed
in the driver, the network or the server's shutdown (rather than with an ordinary SQL error, after
which the server says it is ready again) leaves the connection in an unknown state, and such a
connection is terminated on release and replaced by a fresh one. Without this, after a
PostgreSQL restart the pool hands out connections whose protocol is still waiting for the dead
server, and the next statement fails with asyncpg's `InternalClientError`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from marketplace_chat.errors import Unavailable

# Every error by which the driver says "the database did not answer": the edges of the storage
# translate exactly these into `Unavailable`, without a traceback.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

# SQLSTATE classes of a server going away or out of room rather than refusing one statement:
# 08 connection exception, 57 operator intervention (admin/crash shutdown, cannot connect now),
# 53 insufficient resources. After these and XX (internal error) a connection may be
# mid-protocol.
OUTAGE_CLASSES = ("08", "57", "53")
BROKEN_CLASSES = (*OUTAGE_CLASSES, "XX")


def _sqlstate_class(exc: asyncpg.PostgresError) -> str:
    return str(getattr(exc, "sqlstate", "") or "")[:2]


def leaves_connection_broken(exc: BaseException) -> bool:
    """Whether a statement that ended in `exc` may have left its connection mid-protocol."""
    if isinstance(exc, asyncpg.PostgresError):
        return _sqlstate_class(exc) in BROKEN_CLASSES
    return True


def unreachable(exc: BaseException) -> bool:
    """Whether a failure says the database is out of reach (no connection, timed out, shutting
    down, out of connections) rather than refusing something in the statement's rows."""
    # The storage raises Unavailable `from None` (no driver traceback in the logs); the driver's
    # error is still its context.
    cause = (exc.__cause__ or exc.__context__) if isinstance(exc, Unavailable) else exc
    if isinstance(cause, asyncpg.PostgresError):
        return _sqlstate_class(cause) in OUTAGE_CLASSES
    return isinstance(cause, OSError | TimeoutError | asyncpg.InterfaceError)


# A kept plan is as good as the table sizes it was made for. Made while the tables were small (a
# new deployment, or statistics taken while they were empty) it reads them whole (the group
# commit's statement read every message on every batch; history, sync and the inbox likewise),
# for as long as the session lives unless an ANALYZE makes PostgreSQL plan again, which never
# comes with autovacuum off. So every session drops its plans after 16 uses, then after twice as
# many each time, up to every 1,024: the plans follow a table that grows from nothing, and later
# cost a re-planning now and then (about a millisecond for the group commit's statement).
FIRST_REPLAN = 16
MAX_REPLAN = 1024


class GuardedConnection(asyncpg.Connection):
    """A connection that remembers whether its last statement left it in doubt, and when it
    plans its statements again (see FIRST_REPLAN)."""

    broken: bool = False
    uses_to_replan: int = FIRST_REPLAN
    replan_span: int = FIRST_REPLAN

    def replan_due(self) -> bool:
        """Counts a use; whether the session drops its plans after it."""
        self.uses_to_replan -= 1
        if self.uses_to_replan > 0:
            return False
        self.replan_span = min(2 * self.replan_span, MAX_REPLAN)
        self.uses_to_replan = self.replan_span
        return True

    def _note(self, exc: BaseException) -> None:
        if leaves_connection_broken(exc):
            self.broken = True

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute(*args, **kwargs)
        except BaseException as exc:
            self._note(exc)
            raise

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().executemany(*args, **kwargs)
        except BaseException as exc:
            self._note(exc)
            raise

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().fetch(*args, **kwargs)
        except BaseException as exc:
            self._note(exc)
            raise

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().fetchrow(*args, **kwargs)
        except BaseException as exc:
            self._note(exc)
            raise

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().fetchval(*args, **kwargs)
        except BaseException as exc:
            self._note(exc)
            raise


class ConnectionNotIdleError(Exception):
    """Raised by the pool's reset: asyncpg then terminates the connection instead of reusing it."""


async def reset_or_discard(connection: asyncpg.Connection) -> None:
    """The pool's reset: no round trip but to plan again now and then, and a connection that is
    not idle never goes back."""
    if (
        getattr(connection, "broken", False)
        or connection.is_closed()
        or connection.is_in_transaction()
    ):
        raise ConnectionNotIdleError
    if isinstance(connection, GuardedConnection) and connection.replan_due():
        await connection.execute("DISCARD PLANS")


async def configure_connection(connection: asyncpg.Connection) -> None:
    """Ids travel as the strings the wire uses: no uuid.UUID built and printed again per row."""
    await connection.set_type_codec(
        "uuid", encoder=str, decoder=str, schema="pg_catalog", format="text"
    )


class ShortDriverWarnings(logging.Filter):
    """asyncpg's pool logs its failed reconnects (while the database is away) with the whole
    traceback; the fact and the error's type are what an operator needs, once per retry."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_SHORT_WARNINGS = ShortDriverWarnings()


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    timeout_s: float,
    settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """`settings`: server settings of the pool's sessions, beyond the application name."""
    pool_logger = logging.getLogger("asyncpg.pool")
    if _SHORT_WARNINGS not in pool_logger.filters:
        pool_logger.addFilter(_SHORT_WARNINGS)
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=timeout_s,
        timeout=timeout_s,
        server_settings={"application_name": "marketplace-chat", **(settings or {})},
        connection_class=GuardedConnection,
        reset=reset_or_discard,
        init=configure_connection,
    )


@asynccontextmanager
async def pooled(
    pool: asyncpg.Pool, timeout_s: float, failed: Callable[[BaseException], Exception]
) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
    """A connection of `pool`; a driver or network failure leaves as `failed(exc)`, without the
    driver's traceback (the error names what went wrong)."""
    try:
        async with pool.acquire(timeout=timeout_s) as conn:
            yield conn
    except DRIVER_ERRORS as exc:
        raise failed(exc) from None
