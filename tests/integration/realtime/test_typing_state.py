from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from marketplace_chat.realtime.typing_state import TYPING_TTL_S, RedisTypingState, typing_key

from ..helpers import new_user_id

pytestmark = pytest.mark.integration

THROTTLE_S = 2.0


def new_chat_id() -> str:
    return str(uuid.uuid4())


def test_typing_key_is_the_seed_key() -> None:
    assert typing_key("abc", 42) == "chat:abc:typing:42"


async def test_start_sets_the_seed_key_for_at_most_10_seconds(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    assert await typing.start(chat, user, "node-a:1", THROTTLE_S)
    key = f"chat:{chat}:typing:{user}"
    assert await redis.exists(key)
    assert await redis.get(key + ":owner") == b"node-a:1"
    assert 0 < await redis.pttl(key) <= TYPING_TTL_S * 1000
    assert TYPING_TTL_S == 10


async def test_repeats_inside_the_throttle_refresh_the_key_but_tell_no_one(
    redis: aioredis.Redis,
) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    key = typing_key(chat, user)
    assert await typing.start(chat, user, "t1", THROTTLE_S)
    await redis.pexpire(key, 1000)
    assert not await typing.start(chat, user, "t2", THROTTLE_S)
    assert await redis.get(key + ":owner") == b"t2"
    assert await redis.pttl(key) > 1000
    assert 0 < await redis.pttl(key + ":sent") <= THROTTLE_S * 1000


async def test_partner_is_told_again_once_the_throttle_lapses(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    assert await typing.start(chat, user, "t1", THROTTLE_S)
    assert not await typing.start(chat, user, "t2", THROTTLE_S)
    await redis.delete(typing_key(chat, user) + ":sent")  # what the 2 s expiry does
    assert await typing.start(chat, user, "t3", THROTTLE_S)


async def test_zero_throttle_tells_every_time(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    assert await typing.start(chat, user, "t1", 0)
    assert await typing.start(chat, user, "t2", 0)


async def test_throttle_is_per_chat_and_user(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    assert await typing.start(chat, user, "t1", THROTTLE_S)
    assert await typing.start(chat, new_user_id(), "t1", THROTTLE_S)
    assert await typing.start(new_chat_id(), user, "t1", THROTTLE_S)


async def test_stop_clears_the_key_and_says_whether_it_was_set(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    assert not await typing.stop(chat, user)
    await typing.start(chat, user, "t1", THROTTLE_S)
    assert await typing.stop(chat, user)
    assert await redis.exists(typing_key(chat, user), typing_key(chat, user) + ":sent") == 0
    assert not await typing.stop(chat, user)


async def test_stop_resets_the_throttle(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    await typing.start(chat, user, "t1", THROTTLE_S)
    await typing.stop(chat, user)
    assert await typing.start(chat, user, "t2", THROTTLE_S)


async def test_expire_ends_the_indicator_its_token_set(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    await typing.start(chat, user, "node-a:1", THROTTLE_S)
    assert await typing.expire(chat, user, "node-a:1")
    assert await redis.exists(typing_key(chat, user), typing_key(chat, user) + ":sent") == 0


async def test_expire_leaves_an_indicator_another_start_took_over(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    await typing.start(chat, user, "node-a:1", THROTTLE_S)
    await typing.start(chat, user, "node-b:7", THROTTLE_S)
    assert not await typing.expire(chat, user, "node-a:1")
    assert await redis.get(typing_key(chat, user) + ":owner") == b"node-b:7"
    assert await typing.expire(chat, user, "node-b:7")


async def test_expire_after_an_explicit_stop_tells_no_one_again(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    await typing.start(chat, user, "node-a:1", THROTTLE_S)
    assert await typing.stop(chat, user)
    assert not await typing.expire(chat, user, "node-a:1")


async def test_stop_after_the_seed_key_lapsed_still_tells_once(redis: aioredis.Redis) -> None:
    typing = RedisTypingState(redis)
    chat, user = new_chat_id(), new_user_id()
    await typing.start(chat, user, "node-a:1", THROTTLE_S)
    await redis.delete(typing_key(chat, user))  # the 10 s TTL ran out before the node's timer
    assert await typing.stop(chat, user)
    assert not await typing.expire(chat, user, "node-a:1")
    assert not await typing.stop(chat, user)
