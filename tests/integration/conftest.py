"""PostgreSQL and Redis clients for the integration tests, one pool and one client per session.

Tests keep out of each other's way by owning their data: fresh random user ids (and so their own
chats), random chat and node ids, and their own Redis keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest_asyncio
import redis.asyncio as aioredis

from marketplace_chat.realtime.connection import connect
from marketplace_chat.storage.postgres import PostgresStorage, configure_connection

# 50 concurrent sends must not wait on one another for a connection longer than a statement.
POOL_SIZE = 20
DB_TIMEOUT_S = 10.0
# Reaping dead nodes looks at every node in Redis; that test gets a database of its own so that it
# never reaps the nodes of servers that other suites run against the same Redis.
PRIVATE_REDIS_DB = 13
HERE = Path(__file__).parent


@pytest_asyncio.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(
        database_url, min_size=2, max_size=POOL_SIZE, init=configure_connection
    )
    yield created
    await created.close()


@pytest_asyncio.fixture(scope="session")
async def storage(pool: asyncpg.Pool) -> PostgresStorage:
    return PostgresStorage(pool, DB_TIMEOUT_S)


@pytest_asyncio.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="session")
async def private_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    parts = urlsplit(redis_url)
    client = connect(urlunsplit(parts._replace(path=f"/{PRIVATE_REDIS_DB}")))
    yield client
    await client.aclose()
