"""Every place the service reaches past a library's public API, named once and checked at start.

The gateway subclasses python-socketio's server and pub/sub manager, python-engineio's server and
socket handling, and uvicorn's HTTP and WebSocket protocols, overriding methods those libraries
do not document. They were written for the versions below (pinned exactly in `pyproject.toml`);
`verify` looks up every name they rely on, so that another release fails at start with one line
naming what is missing, not later on a client's packet.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

WRITTEN_FOR = {
    "python-socketio": "5.18.1",
    "python-engineio": "4.15.1",
    "uvicorn": "0.54.0",
    "websockets": "17.4",
}

# (module, attribute path): what the gateway overrides, calls or reads.
NEEDED: tuple[tuple[str, str], ...] = (
    # gateway/server.py: refused packets answered, events admitted to their lane
    ("socketio", "AsyncServer._engineio_server_class"),
    ("socketio", "AsyncServer._handle_eio_message"),
    ("socketio", "AsyncServer._handle_event"),
    ("socketio", "AsyncServer._handle_event_internal"),
    ("socketio", "AsyncServer._send_packet"),
    # gateway/codec.py: the packet that refuses what it cannot read
    ("socketio.packet", "Packet.decode"),
    ("socketio.packet", "Packet.uses_binary_events"),
    # gateway/fanout.py and streams.py: a sibling backend under the pub/sub manager
    ("socketio.async_pubsub_manager", "AsyncPubSubManager._publish"),
    ("socketio.async_pubsub_manager", "AsyncPubSubManager._listen"),
    ("socketio.async_pubsub_manager", "AsyncPubSubManager._handle_emit"),
    ("socketio.async_pubsub_manager", "AsyncPubSubManager.basic_enter_room"),
    ("socketio.async_pubsub_manager", "AsyncPubSubManager.basic_leave_room"),
    ("socketio.async_pubsub_manager", "AsyncPubSubManager.basic_disconnect"),
    ("socketio.async_pubsub_manager", "AsyncPubSubManager.get_participants"),
    # gateway/fanout.py: the sockets connecting or disconnecting, kept in sets
    ("socketio.base_manager", "BaseManager.pre_connect"),
    ("socketio.base_manager", "BaseManager.pre_disconnect"),
    ("socketio.base_manager", "BaseManager.is_connected"),
    ("socketio", "AsyncServer._send_eio_packet"),
    # gateway/transport.py: lean queues and WebSocket transport, binary and oversized refusals
    ("engineio.async_drivers.asgi", "translate_request"),
    ("engineio", "AsyncServer.create_queue"),
    ("engineio", "AsyncServer.handle_request"),
    ("engineio", "AsyncServer.disconnect"),
    ("engineio.async_socket", "AsyncSocket.receive"),
    ("engineio.async_socket", "AsyncSocket.schedule_ping"),
    ("engineio.async_socket", "AsyncSocket._send_ping"),
    ("engineio", "AsyncServer.start_background_task"),
    ("engineio.async_socket", "AsyncSocket.close"),
    ("uvicorn.protocols.websockets.websockets_sansio_impl", "WebSocketsSansIOProtocol.send"),
    # gateway/transport.py: the frames queued together, written at once (what `send` does to
    # each, on the same connection state: conn, transport, writable, handshake_complete,
    # close_sent, initial_response, disconnected)
    ("uvicorn.protocols.utils", "ClientDisconnected"),
    ("websockets.exceptions", "InvalidState"),
    # gateway/http_protocol.py: the deadline on request headers
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol.connection_made"),
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol.on_message_begin"),
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol.on_headers_complete"),
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol.connection_lost"),
    # cli.py: the drain before uvicorn's own shutdown, and its re-raised signal
    ("uvicorn", "Server.shutdown"),
    ("uvicorn", "Server.capture_signals"),
)


def missing() -> list[str]:
    """The needed names the installed libraries lack, as `module:attribute`."""
    absent = []
    for module_name, path in NEEDED:
        try:
            found: object = importlib.import_module(module_name)
            for part in path.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            absent.append(f"{module_name}:{path}")
    return absent


def other_versions() -> list[str]:
    """The libraries installed at another version than the one the seams were written for."""
    differing = []
    for distribution, wanted in WRITTEN_FOR.items():
        try:
            installed = version(distribution)
        except PackageNotFoundError:
            installed = "none"
        if installed != wanted:
            differing.append(f"{distribution} {installed} (written for {wanted})")
    return differing


def verify() -> str | None:
    """One line saying why the service cannot run on these libraries, or None when it can."""
    absent = missing()
    if not absent:
        return None
    differing = other_versions()
    installed = f"; installed: {', '.join(differing)}" if differing else ""
    return (
        f"the installed libraries lack what the gateway relies on: {', '.join(absent)}"
        f"{installed}; install the locked versions (make install, or requirements.txt)"
    )
