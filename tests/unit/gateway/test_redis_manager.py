from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from marketplace_chat.gateway.server import BATCH_MARK, RedisManager

NS = "/chat"


def manager() -> RedisManager:
    return RedisManager("redis://127.0.0.1:1/0", channel="test")


def test_disconnect_leaves_exactly_the_sockets_rooms() -> None:
    m = manager()
    for sid, eio in (("a", "ea"), ("b", "eb")):
        m.basic_enter_room(sid, NS, None, eio_sid=eio)
        m.basic_enter_room(sid, NS, sid)
        m.basic_enter_room(sid, NS, "u:1")
    m.basic_enter_room("a", NS, "c:x:1")
    m.basic_leave_room("b", NS, "u:1")

    m.basic_disconnect("a", NS)

    assert set(m.rooms[NS]) == {None, "b"}
    assert dict(m.rooms[NS][None]) == {"b": "eb"}
    m.basic_disconnect("b", NS)
    assert NS not in m.rooms


async def test_listener_yields_other_hosts_batches_item_by_item_and_skips_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m = manager()
    own = BATCH_MARK + m.host_id.encode() + b"\n" + orjson.dumps([{"method": "emit", "n": 0}])
    other = BATCH_MARK + b"otherhost\n" + orjson.dumps([{"n": 1}, {"n": 2}])
    plain = orjson.dumps({"method": "emit", "n": 3})

    async def raw(self: Any) -> AsyncIterator[bytes]:
        for item in (own, other, plain):
            yield item

    monkeypatch.setattr("socketio.AsyncRedisManager._listen", raw)
    received = [message async for message in m._listen()]
    assert received == [{"n": 1}, {"n": 2}, plain]
