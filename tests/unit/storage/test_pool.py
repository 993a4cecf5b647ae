"""The pool never hands out a connection in doubt, and the driver's state errors leave the storage
as `Unavailable`, without a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from marketplace_chat.errors import Unavailable
from marketplace_chat.storage.pool import (
    FIRST_REPLAN,
    MAX_REPLAN,
    ConnectionNotIdleError,
    GuardedConnection,
    leaves_connection_broken,
    reset_or_discard,
)
from marketplace_chat.storage.postgres import PostgresStorage

# What asyncpg raised on a pooled connection after a PostgreSQL restart.
STATE_ERROR = asyncpg.InternalClientError(
    "cannot switch to state 15; another operation (2) is in progress"
)


@pytest.mark.parametrize(
    "error",
    [
        STATE_ERROR,
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionResetError(),
        TimeoutError(),
    ],
)
def test_driver_network_and_shutdown_errors_leave_the_connection_broken(
    error: BaseException,
) -> None:
    assert leaves_connection_broken(error)


@pytest.mark.parametrize(
    "error",
    [asyncpg.UniqueViolationError("duplicate key"), asyncpg.DataError("invalid input")],
)
def test_an_ordinary_sql_error_leaves_the_connection_usable(error: BaseException) -> None:
    assert not leaves_connection_broken(error)


class _Connection:
    def __init__(self, *, broken: bool = False, closed: bool = False, in_tx: bool = False) -> None:
        self.broken = broken
        self._closed = closed
        self._in_tx = in_tx

    def is_closed(self) -> bool:
        return self._closed

    def is_in_transaction(self) -> bool:
        return self._in_tx


@pytest.mark.parametrize(
    "connection",
    [_Connection(broken=True), _Connection(closed=True), _Connection(in_tx=True)],
)
async def test_reset_refuses_a_connection_that_is_not_idle(connection: _Connection) -> None:
    with pytest.raises(ConnectionNotIdleError):
        await reset_or_discard(connection)  # type: ignore[arg-type]


async def test_reset_keeps_an_idle_connection_without_a_round_trip() -> None:
    await reset_or_discard(_Connection())  # type: ignore[arg-type]


class _Session:
    uses_to_replan = GuardedConnection.uses_to_replan
    replan_span = GuardedConnection.replan_span


def test_a_session_plans_again_after_spans_that_double_up_to_a_cap() -> None:
    session = _Session()
    due = [n for n in range(1, 6000) if GuardedConnection.replan_due(session)]  # type: ignore[arg-type]
    spans = [b - a for a, b in zip([0, *due], due, strict=False)]
    assert spans[:7] == [FIRST_REPLAN * 2**k for k in range(7)]
    assert len(spans) > 8
    assert spans[7:] == [MAX_REPLAN] * len(spans[7:])


class _StatePool:
    """A pool whose connection fails every statement the way a stale one did."""

    @asynccontextmanager
    async def acquire(self, **_: object) -> AsyncIterator[Any]:
        class Conn:
            async def fetchval(self, *args: object) -> object:
                raise STATE_ERROR

        yield Conn()


async def test_a_protocol_state_error_is_unavailable_without_the_driver_traceback() -> None:
    storage = PostgresStorage(_StatePool(), 1.0, group_commit=False)  # type: ignore[arg-type]
    with pytest.raises(Unavailable) as raised:
        await storage.ping()
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
