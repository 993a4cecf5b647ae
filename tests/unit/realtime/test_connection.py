from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from marketplace_chat.errors import ErrorCode, Unavailable
from marketplace_chat.realtime.connection import connect, redis_errors


@pytest.mark.parametrize(
    "error", [RedisConnectionError("gone"), ResponseError("BUSY"), OSError("reset"), TimeoutError()]
)
def test_redis_failures_become_unavailable(error: Exception) -> None:
    with pytest.raises(Unavailable) as caught, redis_errors():
        raise error
    assert caught.value.code is ErrorCode.INTERNAL_ERROR
    assert "Redis" in caught.value.message
    assert caught.value.__cause__ is error


def test_other_errors_pass_through_untranslated() -> None:
    with pytest.raises(KeyError), redis_errors():
        raise KeyError("bug")


async def test_plain_url_gives_a_client_on_that_database() -> None:
    client = connect("redis://127.0.0.1:6390/3", timeout_s=1.5)
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6390, 3)
        assert kwargs["socket_timeout"] == 1.5
    finally:
        await client.aclose()


async def test_sentinel_url_gives_a_client_of_the_named_master() -> None:
    client = connect("redis+sentinel://127.0.0.1:26379,127.0.0.2:26380/2/orders", timeout_s=1)
    try:
        assert isinstance(client, aioredis.Redis)
        pool = client.connection_pool
        assert getattr(pool, "service_name", None) == "orders"
        assert pool.connection_kwargs["db"] == 2
    finally:
        await client.aclose()
