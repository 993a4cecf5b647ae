"""Kept plans follow the tables as they grow, whatever their statistics say.

A session keeps the plans of its statements. Made while the tables were empty (a new deployment,
or statistics taken before the first message) they read chats and messages whole, and with no
ANALYZE to invalidate them (autovacuum off, or not yet due) each call would cost more with every
message stored. This runs in a database of its own, freshly migrated and analyzed while empty,
with autovacuum off on its tables, as such a deployment is.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from marketplace_chat.storage.group_commit import SEND_BATCH_NO_EVENTS, WRITER_SETTINGS
from marketplace_chat.storage.messages_sql import HISTORY_LATEST
from marketplace_chat.storage.migrate import upgrade
from marketplace_chat.storage.pool import FIRST_REPLAN, create_pool
from marketplace_chat.storage.postgres import PostgresStorage

from ..conftest import DB_TIMEOUT_S
from ..helpers import new_chat, send

pytestmark = pytest.mark.integration

STORED = 50_000  # messages of another chat, stored behind the sessions' backs

# The statements' parameters, of the types they declare, for EXPLAIN EXECUTE.
BATCH_PARAMETERS = (
    "ARRAY[gen_random_uuid()], ARRAY[gen_random_uuid()], ARRAY[1::bigint], ARRAY['x'], "
    "ARRAY[NULL::bigint], ARRAY['c'], ARRAY[now()], false, 60, ARRAY[NULL::text], "
    "ARRAY[NULL::text], ARRAY[NULL::text]"
)
HISTORY_PARAMETERS = "gen_random_uuid(), 51"


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest_asyncio.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    name = f"chat_plans_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = _with_database(database_url, name)
        try:
            await asyncio.to_thread(upgrade, url)
            conn = await asyncpg.connect(url)
            try:
                for table in ("chat.chats", "chat.messages"):
                    await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
                await conn.execute("VACUUM (ANALYZE) chat.chats, chat.messages")
            finally:
                await conn.close()
            yield url
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def seq_scans(node: dict[str, Any]) -> Iterator[str]:
    if node["Node Type"] == "Seq Scan":
        yield str(node["Relation Name"])
    for child in node.get("Plans", []):
        yield from seq_scans(child)


async def session_plan(pool: asyncpg.Pool, statement: str, parameters: str) -> dict[str, Any]:
    """The plan that the pool's one session holds for `statement`, as it would run it now."""
    async with pool.acquire() as conn:
        name = await conn.fetchval(
            "SELECT name FROM pg_prepared_statements WHERE statement = $1", statement
        )
        assert name is not None, "the session has not prepared the statement"
        text = await conn.fetchval(f'EXPLAIN (FORMAT JSON) EXECUTE "{name}"({parameters})')
    plan: dict[str, Any] = json.loads(text)[0]["Plan"]
    return plan


async def store_behind_the_sessions(pool: asyncpg.Pool, storage: PostgresStorage) -> None:
    stored, owner, _ = await new_chat(storage)
    await pool.execute(
        """
        INSERT INTO chat.messages (id, chat_id, seq, sender_id, text, created_at, rev)
        SELECT gen_random_uuid(), $1, g, $2, 'stored', now(), g::bigint
          FROM generate_series(1, $3::integer) g
        """,
        uuid.UUID(stored.id),
        owner,
        STORED,
    )
    await pool.execute(
        "UPDATE chat.chats SET last_seq = $2::integer, rev = $2::bigint WHERE id = $1",
        uuid.UUID(stored.id),
        STORED,
    )


async def test_plans_made_on_empty_tables_are_made_again_once_they_hold_rows(
    fresh_database: str,
) -> None:
    # One session each, so that the session asked is the one that ran the calls.
    pool = await create_pool(fresh_database, min_size=1, max_size=1, timeout_s=DB_TIMEOUT_S)
    writers = await create_pool(
        fresh_database, min_size=1, max_size=1, timeout_s=DB_TIMEOUT_S, settings=WRITER_SETTINGS
    )
    try:
        storage = PostgresStorage(pool, DB_TIMEOUT_S, writers=writers)
        chat, buyer, _ = await new_chat(storage)
        await send(storage, chat.id, buyer, "first")
        for _ in range(6):  # past the custom plans PostgreSQL tries before it keeps one
            await storage.history(chat.id, None, None, 50)
        before = (
            set(seq_scans(await session_plan(writers, SEND_BATCH_NO_EVENTS, BATCH_PARAMETERS))),
            set(seq_scans(await session_plan(pool, HISTORY_LATEST, HISTORY_PARAMETERS))),
        )
        assert before == ({"chats", "messages"}, {"messages"}), (
            "the premise: on empty tables PostgreSQL plans to read them whole"
        )

        await store_behind_the_sessions(pool, storage)
        for n in range(FIRST_REPLAN):
            await send(storage, chat.id, buyer, f"after {n}")
            await storage.history(chat.id, None, None, 50)

        # chats holds two rows: reading its one page whole is the right plan for it
        assert "messages" not in set(
            seq_scans(await session_plan(writers, SEND_BATCH_NO_EVENTS, BATCH_PARAMETERS))
        )
        assert set(seq_scans(await session_plan(pool, HISTORY_LATEST, HISTORY_PARAMETERS))) == set()
        page = await storage.history(chat.id, None, None, 50)
        assert [m.text for m in page.messages][-1] == f"after {FIRST_REPLAN - 1}"
    finally:
        await writers.close()
        await pool.close()
