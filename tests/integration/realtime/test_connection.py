"""A Redis client's pooled connections after the server dropped them."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from marketplace_chat.realtime.connection import connect

pytestmark = pytest.mark.integration


async def drop_clients_named(admin: aioredis.Redis, name: str) -> int:
    clients = await admin.client_list()
    killed = 0
    for client in clients:
        if client.get("name") == name:
            await admin.client_kill_filter(_id=client["id"])
            killed += 1
    return killed


@pytest.mark.parametrize("retry_once", [True, False], ids=["state", "fan-out"])
async def test_a_command_on_a_connection_the_server_dropped(
    redis_url: str, redis: aioredis.Redis, retry_once: bool
) -> None:
    client = connect(redis_url, retry_once=retry_once)
    try:
        await client.client_setname("dropped-by-the-server")
        assert await drop_clients_named(redis, "dropped-by-the-server") == 1
        if retry_once:
            # the state clients try once more on a fresh connection: the command succeeds
            assert await client.ping() is True
        else:
            # the fan-out's clients must see the loss, to resume and look for a gap
            with pytest.raises(RedisConnectionError):
                await client.ping()
    finally:
        await client.aclose()
