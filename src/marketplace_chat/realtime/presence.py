"""Who is online, across every node and every socket.

Keys (the first two are the seed's, read by other services):
- `user:{id}:online`    string: the id of the user's latest socket; TTL 5 min, refreshed while any
                        socket of the user is connected; deleted when the user goes offline.
- `online:users`        set of the ids of online users.
- `user:{id}:sockets`   hash socket id → node id: every live socket of the user on any node.
- `user:{id}:socket_order`  sorted set socket id → connect time (µs), kept while a limit of
                        sockets per user is set, to find the user's oldest socket.
- `node:{id}:sockets`   hash socket id → user id: the sockets a node holds, so that a surviving
                        node can clean up after one that died.
- `node:{id}:alive`     a node's heartbeat; its expiry marks the node dead.
- `nodes`               set of the node ids that registered sockets.

Every change is one Lua script, so that "first socket" and "last socket" are decided atomically
however many nodes race.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis

from marketplace_chat.batching import Coalescer
from marketplace_chat.realtime.connection import redis_errors

ONLINE_TTL_S = 300  # seed: user:{id}:online lives 5 minutes unless refreshed
NODE_HEARTBEAT_TTL_S = 20  # a node silent this long is dead; reaped within 30 s of dying

# Registers a batch of sockets of this node. KEYS: online:users, this node's sockets, nodes, then
# each socket's user:{id}:sockets, user:{id}:online and user:{id}:socket_order. ARGV: node id,
# TTL, the most sockets a user keeps (0: no limit), then each socket's id and user id. Returns,
# a socket each, its user's socket count after it was added (1: first), then the ids of the
# user's oldest sockets that are now over the limit (taken out of the order, to be disconnected).
CONNECT = """
local node, ttl, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('SADD', KEYS[3], node)
local results = {}
for i = 1, (#ARGV - 3) / 2 do
  local sid, uid = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local sockets, online, order = KEYS[1 + 3 * i], KEYS[2 + 3 * i], KEYS[3 + 3 * i]
  redis.call('HSET', sockets, sid, node)
  redis.call('EXPIRE', sockets, ttl)
  redis.call('SET', online, sid, 'EX', ttl)
  redis.call('SADD', KEYS[1], uid)
  redis.call('HSET', KEYS[2], sid, uid)
  local result = {redis.call('HLEN', sockets)}
  if keep > 0 then
    redis.call('ZADD', order, now + i, sid)
    redis.call('EXPIRE', order, ttl)
    local over = redis.call('ZCARD', order) - keep
    if over > 0 then
      for _, old in ipairs(redis.call('ZRANGE', order, 0, over - 1)) do
        result[#result + 1] = old
      end
      redis.call('ZREMRANGEBYRANK', order, 0, over - 1)
    end
  end
  results[i] = result
end
return results
"""

# Forgets a batch of sockets of one node. KEYS: online:users, the node's sockets, then each
# socket's user:{id}:sockets, user:{id}:online and user:{id}:socket_order. ARGV: TTL, then each
# socket's id and user id.
# Returns, a socket each: -1 when it was already gone, 0 when it was its user's last, else the
# count left. A user whose socket hash lapsed (no node refreshed it for ONLINE_TTL_S, e.g. every
# node was down) but who is still in `online:users` has no socket left: they go offline too.
DISCONNECT = """
local ttl = ARGV[1]
local results = {}
for i = 1, (#ARGV - 1) / 2 do
  local sid, uid = ARGV[2 * i], ARGV[2 * i + 1]
  local sockets, online, order = KEYS[3 * i], KEYS[1 + 3 * i], KEYS[2 + 3 * i]
  redis.call('HDEL', KEYS[2], sid)
  redis.call('ZREM', order, sid)
  local result = -1
  if redis.call('HDEL', sockets, sid) == 0 then
    if redis.call('EXISTS', sockets) == 0 and redis.call('SREM', KEYS[1], uid) == 1 then
      redis.call('DEL', online, order)
      result = 0
    end
  else
    local left = redis.call('HKEYS', sockets)
    if #left == 0 then
      redis.call('DEL', online, order)
      redis.call('SREM', KEYS[1], uid)
      result = 0
    else
      local current = redis.call('GET', online)
      if (not current) or current == sid then
        redis.call('SET', online, left[#left], 'EX', ttl)
      end
      result = #left
    end
  end
  results[i] = result
end
return results
"""

SCRIPT_BATCH = 500  # sockets per script run: bounds how long one run holds Redis
# `online` lookups answered by one SMISMEMBER: each names up to 500 users (a `users:online`
# bound), so one run asks about 32,000 at most.
LOOKUP_BATCH = 64


def online_key(user_id: int) -> str:
    return f"user:{user_id}:online"


def sockets_key(user_id: int) -> str:
    return f"user:{user_id}:sockets"


def socket_order_key(user_id: int) -> str:
    return f"user:{user_id}:socket_order"


def node_sockets_key(node_id: str) -> str:
    return f"node:{node_id}:sockets"


def node_alive_key(node_id: str) -> str:
    return f"node:{node_id}:alive"


ONLINE_SET = "online:users"
NODES_SET = "nodes"


@dataclass(frozen=True, slots=True)
class Arrival:
    """A registered socket: whether it is the user's first anywhere, and the user's oldest
    sockets (on any node) that it pushed over the limit, which are to be disconnected."""

    first: bool
    evicted: tuple[str, ...] = ()


class Presence(Protocol):
    """Presence shared by all nodes; every method is atomic in Redis."""

    async def connected(self, user_id: int, socket_id: str) -> Arrival:
        """Register a socket: first when it is the user's first anywhere (they came online), and
        past the limit of sockets per user the oldest ones to disconnect."""
        ...

    async def disconnected(self, user_id: int, socket_id: str) -> bool:
        """Forget a socket; True when it was the user's last anywhere (they went offline)."""
        ...

    async def online(self, user_ids: Iterable[int]) -> list[int]:
        """Those of `user_ids` that are online, in the given order."""
        ...

    async def heartbeat(self) -> bool:
        """Renew this node's heartbeat; False when it had lapsed (Redis restarted or lost it),
        so that the caller re-asserts its sockets at once."""
        ...

    async def refresh(self, sockets: Mapping[str, int]) -> None:
        """Keep (or put back) this node's users' keys and its sockets."""
        ...

    async def reap_dead_nodes(self) -> list[int]:
        """Remove the sockets of nodes whose heartbeat stopped; the users who went offline."""
        ...

    async def leave(self, sockets: Mapping[str, int]) -> list[int]:
        """Forget all of this node's sockets (shutdown); the users who went offline."""
        ...


class RedisPresence:
    def __init__(self, redis: aioredis.Redis, node_id: str, max_sockets_per_user: int = 0) -> None:
        self._redis = redis
        self._node = node_id
        self._keep = max_sockets_per_user
        self._connect: Any = redis.register_script(CONNECT)
        self._disconnect: Any = redis.register_script(DISCONNECT)
        # A burst of connects (a node restart, a deploy) registers its sockets in a few scripts.
        self._arrivals: Coalescer[tuple[int, str], Arrival] = Coalescer(
            self._register, SCRIPT_BATCH
        )
        self._departures: Coalescer[tuple[int, str], bool] = Coalescer(
            self._forget_here, SCRIPT_BATCH
        )
        # A reconnect storm asks who is online once a socket: the lookups in flight share one
        # SMISMEMBER instead of a round trip each.
        self._lookups: Coalescer[list[int], list[int]] = Coalescer(self._look_up, LOOKUP_BATCH)

    async def connected(self, user_id: int, socket_id: str) -> Arrival:
        return await self._arrivals.submit((user_id, socket_id))

    async def _register(self, arrivals: list[tuple[int, str]]) -> list[Arrival]:
        keys = [ONLINE_SET, node_sockets_key(self._node), NODES_SET]
        args: list[str | int] = [self._node, ONLINE_TTL_S, self._keep]
        for user_id, socket_id in arrivals:
            keys += [sockets_key(user_id), online_key(user_id), socket_order_key(user_id)]
            args += [socket_id, user_id]
        with redis_errors():
            results = await self._connect(keys=keys, args=args)
        return [
            Arrival(int(count) == 1, tuple(_text(sid) for sid in evicted))
            for count, *evicted in results
        ]

    async def disconnected(self, user_id: int, socket_id: str) -> bool:
        return await self._departures.submit((user_id, socket_id))

    async def _forget_here(self, sockets: list[tuple[int, str]]) -> list[bool]:
        return await self._forget(self._node, sockets)

    async def _forget(self, node_id: str, sockets: list[tuple[int, str]]) -> list[bool]:
        """Whether each socket was its user's last."""
        gone: list[bool] = []
        for start in range(0, len(sockets), SCRIPT_BATCH):
            keys = [ONLINE_SET, node_sockets_key(node_id)]
            args: list[str | int] = [ONLINE_TTL_S]
            for user_id, socket_id in sockets[start : start + SCRIPT_BATCH]:
                keys += [sockets_key(user_id), online_key(user_id), socket_order_key(user_id)]
                args += [socket_id, user_id]
            with redis_errors():
                left = await self._disconnect(keys=keys, args=args)
            gone += [int(n) == 0 for n in left]
        return gone

    @staticmethod
    def _last_ones(sockets: list[tuple[int, str]], gone: list[bool]) -> list[int]:
        return [user_id for (user_id, _), last in zip(sockets, gone, strict=True) if last]

    async def online(self, user_ids: Iterable[int]) -> list[int]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return []
        return await self._lookups.submit(ids)

    async def _look_up(self, lookups: list[list[int]]) -> list[list[int]]:
        asked = list(dict.fromkeys(user for ids in lookups for user in ids))
        with redis_errors():
            flags = await self._redis.smismember(ONLINE_SET, [str(u) for u in asked])
        online = {user for user, flag in zip(asked, flags, strict=True) if flag}
        return [[user for user in ids if user in online] for ids in lookups]

    async def heartbeat(self) -> bool:
        with redis_errors():
            previous = await self._redis.set(
                node_alive_key(self._node), "1", ex=NODE_HEARTBEAT_TTL_S, get=True
            )
        return previous is not None

    async def refresh(self, sockets: Mapping[str, int]) -> None:
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(node_alive_key(self._node), "1", ex=NODE_HEARTBEAT_TTL_S)
                pipe.sadd(NODES_SET, self._node)
                latest: dict[int, str] = {}
                for socket_id, user_id in sockets.items():
                    latest[user_id] = socket_id
                    pipe.hset(sockets_key(user_id), socket_id, self._node)
                    pipe.hset(node_sockets_key(self._node), socket_id, user_id)
                    if self._keep:
                        # A socket put back after a Redis restart counts as the oldest.
                        pipe.zadd(socket_order_key(user_id), {socket_id: 0}, nx=True)
                for user_id, socket_id in latest.items():
                    pipe.expire(sockets_key(user_id), ONLINE_TTL_S)
                    if self._keep:
                        pipe.expire(socket_order_key(user_id), ONLINE_TTL_S)
                    # Re-asserts presence after a Redis restart too; keeps the current holder.
                    pipe.set(online_key(user_id), socket_id, ex=ONLINE_TTL_S, nx=True)
                    pipe.expire(online_key(user_id), ONLINE_TTL_S)
                    pipe.sadd(ONLINE_SET, user_id)
                await pipe.execute()

    async def reap_dead_nodes(self) -> list[int]:
        offline: list[int] = []
        with redis_errors():
            nodes = await self._redis.smembers(NODES_SET)
            for raw in nodes:
                node = raw.decode() if isinstance(raw, bytes) else str(raw)
                if node == self._node or await self._redis.exists(node_alive_key(node)):
                    continue
                held = await self._redis.hgetall(node_sockets_key(node))
                sockets = [
                    (int(user_id), sid.decode() if isinstance(sid, bytes) else str(sid))
                    for sid, user_id in held.items()
                ]
                offline += self._last_ones(sockets, await self._forget(node, sockets))
                await self._redis.delete(node_sockets_key(node))
                await self._redis.srem(NODES_SET, node)
        return offline

    async def leave(self, sockets: Mapping[str, int]) -> list[int]:
        pairs = [(user_id, socket_id) for socket_id, user_id in sockets.items()]
        offline = self._last_ones(pairs, await self._forget(self._node, pairs))
        with redis_errors():
            await self._redis.delete(node_sockets_key(self._node), node_alive_key(self._node))
            await self._redis.srem(NODES_SET, self._node)
        return offline


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
