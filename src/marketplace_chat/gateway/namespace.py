"""The `/chat` namespace: each handler parses its payload, calls the service and shapes the ack."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from prometheus_client import Counter

from marketplace_chat.auth.base import Identity, Verifier, verify_guarded
from marketplace_chat.blocking import Blocking
from marketplace_chat.clock import Clock
from marketplace_chat.errors import (
    INTERNAL,
    AuthError,
    ChatError,
    ErrorCode,
    RateLimited,
    ValidationFailed,
    token_expired,
)
from marketplace_chat.gateway.notifier import chat_room, user_room
from marketplace_chat.gateway.server import ACK_REQUESTED, NAMESPACE, ChatSocketServer
from marketplace_chat.gateway.sessions import Sessions, SocketSession, token_from_handshake
from marketplace_chat.gateway.transport import release_handshake
from marketplace_chat.metrics import Metrics
from marketplace_chat.models import iso
from marketplace_chat.payloads import (
    ChatCreate,
    ChatRef,
    ChatsQuery,
    HistoryQuery,
    MessageEdit,
    MessageRead,
    MessageRef,
    MessageSend,
    NoArgs,
    ReportCreate,
    SyncQuery,
    TokenRefresh,
    UserRef,
    UsersOnlineQuery,
    parse,
)
from marketplace_chat.reports import Reports
from marketplace_chat.service import ChatService

log = structlog.get_logger(__name__)

Handler = Callable[[SocketSession, object], Awaitable[dict[str, Any]]]

# An unknown event's name is echoed in its error up to this length (the client chose it).
MAX_EVENT_NAME_SHOWN = 100
UNKNOWN_EVENT_LABEL = "unknown"


class ChatNamespace:
    def __init__(
        self,
        sio: ChatSocketServer,
        service: ChatService,
        verifier: Verifier,
        metrics: Metrics,
        clock: Clock,
        *,
        leeway_s: float,
        grace_s: float,
        blocking: Blocking,
        reports: Reports,
    ) -> None:
        self._sio = sio
        self._service = service
        self._blocking = blocking
        self._reports = reports
        self._verifier = verifier
        self._metrics = metrics
        self.sessions = Sessions(clock, leeway_s, grace_s, self._suspend, self._expel)
        self._refused: dict[str, AuthError] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._inflight = 0
        # Each (event, outcome)'s counter, looked up once: the registry's lookup takes a lock.
        self._event_counters: dict[tuple[str, str], Counter] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = True
        self._handlers: dict[str, Handler] = {
            "chat:create": self._chat_create,
            "chat:join": self._chat_join,
            "chat:leave": self._chat_leave,
            "chats:list": self._chats_list,
            "message:send": self._message_send,
            "messages:history": self._messages_history,
            "messages:sync": self._messages_sync,
            "message:read": self._message_read,
            "typing:start": self._typing_start,
            "typing:stop": self._typing_stop,
            "users:online": self._users_online,
            "message:edit": self._message_edit,
            "message:delete": self._message_delete,
            "user:block": self._user_block,
            "user:unblock": self._user_unblock,
            "blocks:list": self._blocks_list,
            "report:create": self._report_create,
        }
        sio.on("connect", self._connect, namespace=NAMESPACE)
        sio.on("disconnect", self._disconnect, namespace=NAMESPACE)
        sio.on("auth:refresh-token", self._wrap("auth:refresh-token", None), namespace=NAMESPACE)
        for event, handler in self._handlers.items():
            sio.on(event, self._wrap(event, handler), namespace=NAMESPACE)
        sio.on("*", self._unknown_event, namespace=NAMESPACE)

    # -- connection ----------------------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> bool:
        """Accept every socket that can be answered, so that a refused one sees connect, then
        `auth:error`, then the disconnect; a socket whose client left while its token was being
        verified is refused outright, so python-socketio forgets it at once."""
        if not self.accepting:
            self._metrics.connections.labels("draining").inc()
            return False
        token = token_from_handshake(auth, environ)
        # Nothing reads the handshake again; it would otherwise stay for the connection's life.
        release_handshake(environ)
        try:
            identity = await verify_guarded(self._verifier, token or "", sid=sid)
        except AuthError as exc:
            self._metrics.connections.labels(exc.code.value).inc()
            log.info("connection_refused", sid=sid, code=exc.code.value)
            if not self._present(sid):
                return False
            # A fresh error: the verifier's one holds a traceback, and through it the token.
            self._refused[sid] = AuthError(exc.message, exc.code)
            self._later(self._refuse(sid))
            return True
        if not self._present(sid):
            return False
        session = self.sessions.add(sid, identity, token or "")
        await self._sio.enter_room(sid, user_room(identity.user_id), namespace=NAMESPACE)
        session.rooms.add(user_room(identity.user_id))
        try:
            arrival = await self._service.socket_connected(identity.user_id, sid)
            for oldest in arrival.evicted:
                self._later(self._sio.disconnect(oldest, namespace=NAMESPACE))
        except ChatError as exc:
            # Presence is re-asserted by the periodic refresh once Redis answers again.
            self._metrics.backend_errors.labels("redis").inc()
            log.warning("presence_unavailable", sid=sid, error=exc.message)
        self._metrics.connections.labels("accepted").inc()
        self._metrics.sockets.inc()
        log.info("connected", sid=sid, user_id=identity.user_id)
        return True

    def _present(self, sid: str) -> bool:
        """Whether the client is still there: python-socketio drops a client's environ when its
        Engine.IO connection ends, and does not tell a connect handler that is still running."""
        return self._sio.get_environ(sid, namespace=NAMESPACE) is not None

    async def _refuse(self, sid: str) -> None:
        # Let the CONNECT packet go out first, so the client sees connect, auth:error, disconnect.
        # python-socketio sends it and marks the socket connected without yielding in between.
        await asyncio.sleep(0)
        refused = self._refused.get(sid)
        try:
            if refused is not None:
                await self._sio.emit(
                    "auth:error",
                    {"error": refused.message, "code": refused.code.value},
                    to=sid,
                    namespace=NAMESPACE,
                )
        finally:
            await self._sio.disconnect(sid, namespace=NAMESPACE, ignore_queue=True)
            # The disconnect handler forgets the refusal; this covers a socket that was already
            # gone, for which python-socketio calls no handler.
            self._refused.pop(sid, None)

    async def _disconnect(self, sid: str, reason: object = None) -> None:
        self._refused.pop(sid, None)
        session = self.sessions.remove(sid)
        if session is None:
            return
        self._metrics.sockets.dec()
        log.info("disconnected", sid=sid, user_id=session.user_id, reason=str(reason))
        try:
            await self._service.socket_disconnected(session.user_id, sid)
        except ChatError as exc:
            self._metrics.backend_errors.labels("redis").inc()
            log.warning("presence_unavailable", sid=sid, error=exc.message)

    async def _suspend(self, session: SocketSession) -> None:
        """Token expired: the socket hears nothing about others until it refreshes."""
        session.suspended = True
        for room in session.rooms:
            await self._sio.leave_room(session.sid, room, namespace=NAMESPACE)
        log.info("token_expired", sid=session.sid, user_id=session.user_id)

    async def _resume(self, session: SocketSession) -> None:
        session.suspended = False
        for room in session.rooms:
            await self._sio.enter_room(session.sid, room, namespace=NAMESPACE)

    async def _expel(self, session: SocketSession) -> None:
        log.info("token_grace_over", sid=session.sid, user_id=session.user_id)
        await self._sio.disconnect(session.sid, namespace=NAMESPACE)

    # -- event plumbing ------------------------------------------------------------------------

    def _wrap(self, event: str, handler: Handler | None) -> Callable[..., Awaitable[Any]]:
        async def on_event(sid: str, *args: Any) -> dict[str, Any]:
            self._inflight += 1
            self._idle.clear()
            try:
                return await handle(sid, *args)
            finally:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.set()

        async def handle(sid: str, *args: Any) -> dict[str, Any]:
            started = time.perf_counter()
            data = args[0] if args else None
            try:
                session = self._session(sid)
                await self._service.admit_event(session.user_id, event)
                if handler is None:
                    body = await self._refresh_token(session, data)
                else:
                    if self.sessions.expired(session):
                        await self._sio.emit(
                            "auth:token-expired",
                            {"error": "Token expired", "code": "TOKEN_EXPIRED"},
                            to=sid,
                            namespace=NAMESPACE,
                        )
                        raise token_expired()
                    body = await handler(session, data)
                reply: dict[str, Any] = {"success": True, "data": body}
                outcome = "ok"
            except ChatError as exc:
                reply, outcome = await self._fail(sid, event, exc)
            except Exception:
                log.exception("event_crashed", sid=sid, event_name=event)
                reply, outcome = await self._fail(sid, event, INTERNAL)
            counter = self._event_counters.get((event, outcome))
            if counter is None:
                counter = self._event_counters[(event, outcome)] = self._metrics.events.labels(
                    event, outcome
                )
            counter.inc()
            if event == "message:send":
                self._metrics.send_latency.observe(time.perf_counter() - started)
            log.debug("event", sid=sid, event_name=event, outcome=outcome)
            return reply

        return on_event

    async def _fail(self, sid: str, event: str, exc: ChatError) -> tuple[dict[str, Any], str]:
        if isinstance(exc, RateLimited):
            self._metrics.rate_limited.labels(exc.action or event).inc()
        if exc.code is ErrorCode.INTERNAL_ERROR:
            self._metrics.backend_errors.labels("service").inc()
        if not ACK_REQUESTED.get():
            await self._sio.emit(
                "exception", exc.to_exception_event(event), to=sid, namespace=NAMESPACE
            )
        return exc.to_ack(), exc.code.value

    async def _unknown_event(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        """Any other event name is refused by name, so that a client waiting for its ack does
        not hang; the metrics count them under one label, since the names are the client's."""
        name = event if len(event) <= MAX_EVENT_NAME_SHOWN else event[:MAX_EVENT_NAME_SHOWN] + "…"
        reply, outcome = await self._fail(sid, name, ValidationFailed(f"Unknown event {name!r}"))
        self._metrics.events.labels(UNKNOWN_EVENT_LABEL, outcome).inc()
        return reply

    async def drain(self, timeout_s: float) -> dict[str, int]:
        """Refuse new sockets, let the events in flight finish, and hand back this node's sockets.

        The sessions are forgotten here, so the disconnects that follow do no per-socket work.
        Events that have not started yet (waiting in their socket's lane, or arriving now) are
        dropped unanswered, as if they had not reached this node: the client sees the transport
        close and sends them again after it reconnects.
        """
        self.accepting = False
        self._sio.stop_events()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("drain_timeout", events_in_flight=self._inflight)
        sockets = self.sessions.users()
        for sid in sockets:
            self.sessions.remove(sid)
        self._metrics.sockets.set(0)
        return sockets

    def _session(self, sid: str) -> SocketSession:
        session = self.sessions.get(sid)
        if session is None:
            refused = self._refused.get(sid)
            if refused is not None:
                # A new error each time: raising the stored one would grow its traceback.
                raise AuthError(refused.message, refused.code)
            raise AuthError("Not authenticated", ErrorCode.TOKEN_REQUIRED)
        return session

    def _later(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- handlers ------------------------------------------------------------------------------

    async def _refresh_token(self, session: SocketSession, data: object) -> dict[str, Any]:
        p = parse(TokenRefresh, data)
        identity: Identity = await verify_guarded(self._verifier, p.token, sid=session.sid)
        if identity.user_id != session.user_id:
            raise AuthError("The new token belongs to another user", ErrorCode.TOKEN_USER_MISMATCH)
        self.sessions.rebind(session, identity, p.token)
        if session.suspended:
            await self._resume(session)
        expires = identity.expires_at
        return {"expiresAt": iso(expires) if expires is not None else None}

    async def _chat_create(self, session: SocketSession, data: object) -> dict[str, Any]:
        chat, _ = await self._service.create_chat(
            session.user_id, parse(ChatCreate, data), origin=session.sid
        )
        await self._join(session, chat.id)
        return chat.to_wire()

    async def _chat_join(self, session: SocketSession, data: object) -> dict[str, Any]:
        chat = await self._service.get_chat(session.user_id, parse(ChatRef, data).chat_id)
        await self._join(session, chat.id)
        return chat.to_wire()

    async def _join(self, session: SocketSession, chat_id: str) -> None:
        room = chat_room(chat_id, session.user_id)
        session.rooms.add(room)
        if not session.suspended:
            await self._sio.enter_room(session.sid, room, namespace=NAMESPACE)

    async def _chat_leave(self, session: SocketSession, data: object) -> dict[str, Any]:
        chat_id = parse(ChatRef, data).chat_id
        await self._service.participants(session.user_id, chat_id)
        room = chat_room(chat_id, session.user_id)
        session.rooms.discard(room)
        await self._sio.leave_room(session.sid, room, namespace=NAMESPACE)
        return {}

    async def _chats_list(self, session: SocketSession, data: object) -> dict[str, Any]:
        page = await self._service.list_chats(session.user_id, parse(ChatsQuery, data))
        return {"chats": [c.to_wire() for c in page.chats], "nextCursor": page.next_cursor}

    async def _message_send(self, session: SocketSession, data: object) -> dict[str, Any]:
        message = await self._service.send(session.user_id, parse(MessageSend, data))
        return message.to_wire()

    async def _messages_history(self, session: SocketSession, data: object) -> dict[str, Any]:
        page = await self._service.history(session.user_id, parse(HistoryQuery, data))
        return {"messages": [m.to_wire() for m in page.messages], "hasMore": page.has_more}

    async def _messages_sync(self, session: SocketSession, data: object) -> dict[str, Any]:
        synced = await self._service.sync(session.user_id, parse(SyncQuery, data))
        return {"chats": [s.to_wire() for s in synced]}

    async def _message_read(self, session: SocketSession, data: object) -> dict[str, Any]:
        receipt = await self._service.read(session.user_id, parse(MessageRead, data))
        return receipt.to_wire(with_user=False)

    async def _typing_start(self, session: SocketSession, data: object) -> dict[str, Any]:
        chat_id = parse(ChatRef, data).chat_id
        await self._service.typing_start(session.user_id, chat_id, origin=session.sid)
        return {}

    async def _typing_stop(self, session: SocketSession, data: object) -> dict[str, Any]:
        await self._service.typing_stop(session.user_id, parse(ChatRef, data).chat_id)
        return {}

    async def _users_online(self, session: SocketSession, data: object) -> dict[str, Any]:
        p = parse(UsersOnlineQuery, data)
        online = await self._service.users_online(session.user_id, p.user_ids)
        body = {"userIds": online}
        await self._sio.emit("users:online", body, to=session.sid, namespace=NAMESPACE)
        return body

    # -- edits and deletes ---------------------------------------------------------------------

    async def _message_edit(self, session: SocketSession, data: object) -> dict[str, Any]:
        message = await self._service.edit(session.user_id, parse(MessageEdit, data))
        return message.to_wire()

    async def _message_delete(self, session: SocketSession, data: object) -> dict[str, Any]:
        deletion = await self._service.edits.delete(session.user_id, parse(MessageRef, data))
        return deletion.to_wire()

    # -- trust and safety ----------------------------------------------------------------------

    async def _user_block(self, session: SocketSession, data: object) -> dict[str, Any]:
        target = parse(UserRef, data).user_id
        return (await self._blocking.block(session.user_id, target)).to_wire()

    async def _user_unblock(self, session: SocketSession, data: object) -> dict[str, Any]:
        target = parse(UserRef, data).user_id
        return (await self._blocking.unblock(session.user_id, target)).to_wire()

    async def _blocks_list(self, session: SocketSession, data: object) -> dict[str, Any]:
        parse(NoArgs, data)
        return {"userIds": await self._blocking.blocked_users(session.user_id)}

    async def _report_create(self, session: SocketSession, data: object) -> dict[str, Any]:
        receipt, _ = await self._reports.file(session.user_id, parse(ReportCreate, data))
        return receipt.to_wire()
