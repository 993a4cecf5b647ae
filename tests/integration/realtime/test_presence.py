from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from marketplace_chat.realtime.presence import (
    NODE_HEARTBEAT_TTL_S,
    NODES_SET,
    ONLINE_SET,
    ONLINE_TTL_S,
    Arrival,
    RedisPresence,
    node_alive_key,
    node_sockets_key,
    online_key,
    socket_order_key,
    sockets_key,
)

from ..helpers import new_user_id

pytestmark = pytest.mark.integration

NodeFactory = Callable[..., RedisPresence]


def sid() -> str:
    return uuid.uuid4().hex[:20]


def node_name() -> str:
    return f"test-node-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture
async def nodes(redis: aioredis.Redis) -> AsyncIterator[NodeFactory]:
    """Presence as seen from fresh nodes; whatever they registered is forgotten afterwards."""
    made: list[str] = []

    def node(name: str | None = None, max_sockets_per_user: int = 0) -> RedisPresence:
        made.append(name or node_name())
        return RedisPresence(redis, made[-1], max_sockets_per_user)

    yield node
    for name in made:
        await redis.delete(node_sockets_key(name), node_alive_key(name))
        await redis.srem(NODES_SET, name)


async def online_holder(redis: aioredis.Redis, user: int) -> str | None:
    value = await redis.get(online_key(user))
    return value.decode() if isinstance(value, bytes) else value


async def in_online_set(redis: aioredis.Redis, user: int) -> bool:
    return bool(await redis.sismember(ONLINE_SET, str(user)))


async def test_first_socket_anywhere_brings_the_user_online(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a = nodes()
    user, s1 = new_user_id(), sid()
    assert (await a.connected(user, s1)).first
    assert await online_holder(redis, user) == s1
    assert 0 < await redis.ttl(online_key(user)) <= ONLINE_TTL_S
    assert await in_online_set(redis, user)
    assert await a.online([user]) == [user]


async def test_sockets_on_two_nodes_make_one_online_and_one_offline(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a, b = nodes(), nodes()
    user, s1, s2 = new_user_id(), sid(), sid()
    assert (await a.connected(user, s1)).first
    assert not (await b.connected(user, s2)).first
    assert await online_holder(redis, user) == s2
    assert not await a.disconnected(user, s1)
    assert await in_online_set(redis, user)
    assert await online_holder(redis, user) == s2
    assert await b.disconnected(user, s2)
    assert await redis.exists(online_key(user)) == 0
    assert not await in_online_set(redis, user)
    assert await a.online([user]) == []


async def test_latest_socket_leaving_hands_the_key_to_one_that_remains(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a, b = nodes(), nodes()
    user, s1, s2 = new_user_id(), sid(), sid()
    await a.connected(user, s1)
    await b.connected(user, s2)
    assert not await b.disconnected(user, s2)
    assert await online_holder(redis, user) == s1
    assert 0 < await redis.ttl(online_key(user)) <= ONLINE_TTL_S


async def test_forgetting_an_unknown_socket_changes_nothing(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a = nodes()
    user, s1 = new_user_id(), sid()
    await a.connected(user, s1)
    assert not await a.disconnected(user, sid())
    assert not await a.disconnected(new_user_id(), sid())
    assert await online_holder(redis, user) == s1
    assert await a.disconnected(user, s1)
    assert not await a.disconnected(user, s1)


async def test_racing_connects_and_disconnects_decide_first_and_last_once(
    nodes: NodeFactory,
) -> None:
    a, b = nodes(), nodes()
    user = new_user_id()
    sockets = [(a if n % 2 else b, sid()) for n in range(20)]
    arrivals = await asyncio.gather(*(node.connected(user, s) for node, s in sockets))
    assert [a.first for a in arrivals].count(True) == 1
    lasts = await asyncio.gather(*(node.disconnected(user, s) for node, s in sockets))
    assert lasts.count(True) == 1
    assert await a.online([user]) == []


async def test_online_answers_in_the_given_order_without_repeats(nodes: NodeFactory) -> None:
    a = nodes()
    on1, on2, off = new_user_id(), new_user_id(), new_user_id()
    await a.connected(on1, sid())
    await a.connected(on2, sid())
    assert await a.online([off, on2, on1, on2]) == [on2, on1]
    assert await a.online([]) == []


async def test_lookups_in_flight_together_each_get_their_own_answer(
    nodes: NodeFactory, redis: aioredis.Redis
) -> None:
    a = nodes()
    on = [new_user_id() for _ in range(3)]
    off = new_user_id()
    for user in on:
        await a.connected(user, sid())
    asked = [[on[0], off], [off], [on[2], on[1], on[0]], [on[1], on[1]], [off, on[2]]] * 30
    before = (await redis.info("commandstats")).get("cmdstat_smismember", {}).get("calls", 0)
    answers = await asyncio.gather(*(a.online(ids) for ids in asked))
    after = (await redis.info("commandstats"))["cmdstat_smismember"]["calls"]
    expected = [[on[0]], [], [on[2], on[1], on[0]], [on[1]], [on[2]]] * 30
    assert answers == expected
    assert after - before < len(asked) / 10  # shared round trips, not one a lookup


async def test_refresh_keeps_keys_alive_and_restores_them_after_loss(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a = nodes()
    user, s1 = new_user_id(), sid()
    await a.connected(user, s1)
    await redis.delete(online_key(user))
    await redis.srem(ONLINE_SET, str(user))
    await a.refresh({s1: user})
    assert await online_holder(redis, user) == s1
    assert 0 < await redis.ttl(online_key(user)) <= ONLINE_TTL_S
    assert await in_online_set(redis, user)


async def test_refresh_keeps_the_current_holder(redis: aioredis.Redis, nodes: NodeFactory) -> None:
    a, b = nodes(), nodes()
    user, s1, s2 = new_user_id(), sid(), sid()
    await a.connected(user, s1)
    await b.connected(user, s2)
    await a.refresh({s1: user})
    assert await online_holder(redis, user) == s2


async def test_refresh_beats_the_nodes_heartbeat(redis: aioredis.Redis, nodes: NodeFactory) -> None:
    name = node_name()
    a = nodes(name)
    await a.refresh({})
    assert 0 < await redis.ttl(node_alive_key(name)) <= NODE_HEARTBEAT_TTL_S
    assert await redis.sismember(NODES_SET, name)


async def test_leave_forgets_the_nodes_sockets_and_names_who_went_offline(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    name = node_name()
    a, b = nodes(name), nodes()
    only_a, both = new_user_id(), new_user_id()
    sa1, sa2, sb = sid(), sid(), sid()
    await a.connected(only_a, sa1)
    await a.connected(both, sa2)
    await b.connected(both, sb)
    await a.refresh({sa1: only_a, sa2: both})
    assert await a.leave({sa1: only_a, sa2: both}) == [only_a]
    assert await a.online([only_a, both]) == [both]
    assert await redis.exists(node_sockets_key(name), node_alive_key(name)) == 0


async def test_dead_nodes_sockets_are_reaped_by_a_live_node(
    private_redis: aioredis.Redis,
) -> None:
    dead_name = node_name()
    dead = RedisPresence(private_redis, dead_name)
    live = RedisPresence(private_redis, node_name())
    alive_name = node_name()
    alive = RedisPresence(private_redis, alive_name)
    only_dead, also_live, on_alive = new_user_id(), new_user_id(), new_user_id()
    s_dead1, s_dead2, s_live, s_alive = sid(), sid(), sid(), sid()
    await dead.connected(only_dead, s_dead1)
    await dead.connected(also_live, s_dead2)
    await live.connected(also_live, s_live)
    await alive.connected(on_alive, s_alive)
    await alive.refresh({s_alive: on_alive})
    await live.refresh({s_live: also_live})
    try:
        offline = await live.reap_dead_nodes()
        assert only_dead in offline
        assert also_live not in offline
        assert await live.online([only_dead, also_live, on_alive]) == [also_live, on_alive]
        assert await private_redis.exists(online_key(only_dead)) == 0
        assert await private_redis.hkeys(sockets_key(also_live)) == [s_live.encode()]
        assert await private_redis.exists(node_sockets_key(dead_name)) == 0
        assert not await private_redis.sismember(NODES_SET, dead_name)
        assert await private_redis.sismember(NODES_SET, alive_name)
        assert only_dead not in await live.reap_dead_nodes()
    finally:
        await alive.leave({s_alive: on_alive})
        await live.leave({s_live: also_live})


async def test_users_of_a_node_dead_longer_than_the_ttl_are_reaped_too(
    private_redis: aioredis.Redis,
) -> None:
    dead = RedisPresence(private_redis, node_name())
    live = RedisPresence(private_redis, node_name())
    user = new_user_id()
    await dead.connected(user, sid())
    # No node was alive to reap it in time: the user's keys lapsed, the node's list did not.
    await private_redis.delete(sockets_key(user), online_key(user))
    try:
        assert user in await live.reap_dead_nodes()
        assert await live.online([user]) == []
    finally:
        await live.leave({})


async def test_heartbeat_reports_a_lapsed_key_so_the_node_reasserts_its_sockets(
    redis: aioredis.Redis,
) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    presence = RedisPresence(redis, node)
    assert not await presence.heartbeat()  # first beat: nothing was there
    assert await presence.heartbeat()
    await redis.delete(f"node:{node}:alive")  # as after a Redis restart
    assert not await presence.heartbeat()
    await redis.delete(f"node:{node}:alive")


async def test_bursts_of_connects_and_disconnects_decide_each_first_and_last_once(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a = nodes()
    users = [new_user_id() for _ in range(60)]
    sockets = [(user, sid()) for user in users for _ in range(3)]  # three sockets each
    firsts = [x.first for x in await asyncio.gather(*(a.connected(user, s) for user, s in sockets))]
    assert sum(firsts) == len(users)
    assert {user for (user, _), first in zip(sockets, firsts, strict=True) if first} == set(users)
    registered = await redis.hgetall(node_sockets_key(a._node))
    assert {_text(k): int(v) for k, v in registered.items()} == {s: u for u, s in sockets}
    for user in users:
        assert await in_online_set(redis, user)
        assert await redis.hlen(sockets_key(user)) == 3
        assert await online_holder(redis, user) in {s for u, s in sockets if u == user}
    lasts = await asyncio.gather(*(a.disconnected(user, s) for user, s in sockets))
    assert sum(lasts) == len(users)
    assert {user for (user, _), last in zip(sockets, lasts, strict=True) if last} == set(users)
    assert await redis.exists(node_sockets_key(a._node)) == 0
    for user in users:
        assert not await in_online_set(redis, user)
        assert await redis.exists(online_key(user), sockets_key(user)) == 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_past_the_limit_the_oldest_socket_on_any_node_is_named_for_disconnect(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a, b = nodes(max_sockets_per_user=3), nodes(max_sockets_per_user=3)
    user = new_user_id()
    first, *rest = [sid() for _ in range(3)]
    assert (await a.connected(user, first)).evicted == ()
    for s in rest:
        assert (await b.connected(user, s)).evicted == ()
    newest = sid()
    assert await b.connected(user, newest) == Arrival(first=False, evicted=(first,))
    order = await redis.zrange(socket_order_key(user), 0, -1)
    assert [_text(cast(bytes, s)) for s in order] == [*rest, newest]
    # The evicted socket's own node forgets it when it disconnects; it is not named again.
    assert not await a.disconnected(user, first)
    assert (await a.connected(user, sid())).evicted == (rest[0],)


async def test_a_burst_of_connects_of_one_user_keeps_the_newest(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a = nodes(max_sockets_per_user=2)
    user = new_user_id()
    sockets = [sid() for _ in range(6)]
    arrivals = await asyncio.gather(*(a.connected(user, s) for s in sockets))
    evicted = [s for arrival in arrivals for s in arrival.evicted]
    assert sorted(evicted) == sorted(sockets[:4])
    assert await redis.zcard(socket_order_key(user)) == 2


async def test_the_order_goes_with_the_users_last_socket(
    redis: aioredis.Redis, nodes: NodeFactory
) -> None:
    a = nodes(max_sockets_per_user=5)
    user, s1, s2 = new_user_id(), sid(), sid()
    await a.connected(user, s1)
    await a.connected(user, s2)
    assert 0 < await redis.ttl(socket_order_key(user)) <= ONLINE_TTL_S
    await a.disconnected(user, s1)
    assert await redis.zcard(socket_order_key(user)) == 1
    await a.disconnected(user, s2)
    assert await redis.exists(socket_order_key(user)) == 0


async def test_without_a_limit_no_order_is_kept(redis: aioredis.Redis, nodes: NodeFactory) -> None:
    a = nodes()
    user = new_user_id()
    arrivals = [await a.connected(user, sid()) for _ in range(60)]
    assert all(arrival.evicted == () for arrival in arrivals)
    assert await redis.exists(socket_order_key(user)) == 0
