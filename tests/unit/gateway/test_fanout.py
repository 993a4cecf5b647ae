from __future__ import annotations

from marketplace_chat.gateway.fanout import PendingSids
from marketplace_chat.gateway.streams import FanoutHealth, StreamsManager

NS = "/chat"


def manager() -> StreamsManager:
    return StreamsManager("redis://127.0.0.1:1/0", channel="test")


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


def test_fanout_is_unhealthy_until_the_reader_has_read_and_while_publishes_fail() -> None:
    assert not FanoutHealth(False, None, True, 0).healthy
    assert FanoutHealth(True, 0.5, True, 3).healthy  # a batch in flight is normal
    assert not FanoutHealth(True, 0.5, False, 3).healthy
    assert not FanoutHealth(True, 60.0, True, 0).healthy


def test_the_stream_key_is_named_after_the_channel() -> None:
    assert manager().stream == "test:fanout"


def test_sockets_in_flight_are_kept_in_sets_with_the_stock_calls() -> None:
    m = manager()
    for sid in ("s0", "s1", "s2"):
        # What python-socketio's pre_connect does with the list it would keep.
        if NS not in m.pending_connect:
            m.pending_connect[NS] = []
        m.pending_connect[NS].append(sid)
        m.basic_enter_room(sid, NS, None, eio_sid="e" + sid)
    assert isinstance(m.pending_connect[NS], PendingSids)
    assert not m.is_connected("s1", NS)  # still connecting
    m.pending_connect[NS].remove("s1")
    assert m.is_connected("s1", NS)
    assert "s1" not in m.pending_connect[NS]
    assert len(m.pending_connect[NS]) == 2

    m.pre_disconnect("s1", NS)
    assert isinstance(m.pending_disconnect[NS], PendingSids)
    assert not m.is_connected("s1", NS)  # on its way out
    m.basic_disconnect("s1", NS)
    assert NS not in m.pending_disconnect
    assert list(m.pending_connect[NS]) == ["s0", "s2"]  # arrival order kept
