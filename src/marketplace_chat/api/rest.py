"""REST: the same objects and error codes as the socket, with the same bearer tokens.

Bodies are the plain objects (no `{success, data}` wrapper); errors are `{error, code}` with an
HTTP status that matches the code. Every endpoint verifies the caller's token (a dependency)
before it reads its body or query, and hands both to the socket's own payload models.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from marketplace_chat.api import schemas
from marketplace_chat.api.inputs import json_object, query_args
from marketplace_chat.auth.base import Verifier
from marketplace_chat.blocking import Blocking
from marketplace_chat.errors import AuthError, ErrorCode, ValidationFailed
from marketplace_chat.payloads import (
    ChatCreate,
    ChatRef,
    ChatsQuery,
    HistoryQuery,
    MessageEdit,
    MessageRead,
    MessageRef,
    MessageSend,
    ReportCreate,
    UserRef,
    parse,
)
from marketplace_chat.reports import Reports
from marketplace_chat.service import ChatService

# The bearer scheme of the OpenAPI description (the Authorize button of /docs); a missing or
# malformed header is ours to refuse, with TOKEN_REQUIRED.
bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="a JWT issued by marketplace-api"
)

# FastAPI resolves these annotations at runtime, so this module keeps them as real objects.
ChatIdPath = Annotated[str, Path(alias="chatId", description="a chat id (UUID)")]
# Declared as strings so that the payload models, not FastAPI, judge them (see inputs.py);
# the description shows what the models accept.
Limit = Annotated[
    str | None,
    Query(
        description="1–100, written as plain digits",
        json_schema_extra={"anyOf": [{"type": "integer", "minimum": 1, "maximum": 100}]},
    ),
]
MessageId = Annotated[str | None, Query(description="a message id (UUID)")]
MessageIdPath = Annotated[str, Path(alias="messageId", description="a message id (UUID)")]
UserIdPath = Annotated[str, Path(alias="userId", description="a user id")]

READ_ERRORS = schemas.error_responses(401, 403, 404, 422, 429, 500, 503)
WRITE_ERRORS = schemas.error_responses(401, 403, 404, 413, 422, 429, 500, 503)
EDIT_ERRORS = schemas.error_responses(401, 403, 404, 409, 413, 422, 429, 500, 503)


def rest_router(
    service: ChatService, verifier: Verifier, blocking: Blocking, reports: Reports
) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["chats"])

    async def caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> int:
        if credentials is None:
            raise AuthError("Authentication token is required", ErrorCode.TOKEN_REQUIRED)
        return (await verifier.verify(credentials.credentials)).user_id

    User = Annotated[int, Depends(caller)]  # noqa: N806 - a type alias

    @router.get(
        "/chats", response_model=None, responses={200: {"model": schemas.ChatsPage}, **READ_ERRORS}
    )
    async def list_chats(
        user: User,
        request: Request,
        limit: Limit = None,
        before: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
    ) -> dict[str, Any]:
        """The caller's chats, most recent activity first (`limit` default 30)."""
        await service.admit_event(user, "chats:list")
        page = await service.list_chats(
            user, parse(ChatsQuery, query_args(request, ints=["limit"]))
        )
        return {"chats": [c.to_wire() for c in page.chats], "nextCursor": page.next_cursor}

    @router.post(
        "/chats",
        response_model=None,
        responses={
            200: {"model": schemas.Chat, "description": "the pair's existing chat"},
            201: {"model": schemas.Chat, "description": "a new chat"},
            **WRITE_ERRORS,
        },
        openapi_extra=schemas.request_body(ChatCreate, example={"buyerId": 1, "sellerId": 2}),
    )
    async def create_chat(user: User, request: Request) -> JSONResponse:
        """Open (or find) the chat of a buyer/seller pair; 201 when it is new."""
        chat, created = await service.create_chat(
            user, parse(ChatCreate, await json_object(request))
        )
        return JSONResponse(chat.to_wire(), status_code=201 if created else 200)

    @router.get(
        "/chats/{chatId}",
        response_model=None,
        responses={200: {"model": schemas.Chat}, **READ_ERRORS},
    )
    async def get_chat(user: User, chat_id: ChatIdPath) -> dict[str, Any]:
        """One of the caller's chats."""
        await service.admit_event(user, "chat:join")
        ref = parse(ChatRef, {"chatId": chat_id})
        return (await service.get_chat(user, ref.chat_id)).to_wire()

    @router.get(
        "/chats/{chatId}/messages",
        response_model=None,
        responses={200: {"model": schemas.HistoryPage}, **READ_ERRORS},
    )
    async def history(
        user: User,
        request: Request,
        chat_id: ChatIdPath,
        limit: Limit = None,
        before: MessageId = None,
        after: MessageId = None,
    ) -> dict[str, Any]:
        """A page of messages in chronological order (`limit` default 50): the newest before
        `before` (or overall), or the oldest after `after`."""
        await service.admit_event(user, "messages:history")
        args = query_args(request, ints=["limit"], path=["chatId"])
        page = await service.history(user, parse(HistoryQuery, {**args, "chatId": chat_id}))
        return {"messages": [m.to_wire() for m in page.messages], "hasMore": page.has_more}

    @router.post(
        "/chats/{chatId}/messages",
        status_code=201,
        response_model=None,
        responses={201: {"model": schemas.Message}, **WRITE_ERRORS},
        openapi_extra=schemas.request_body(
            MessageSend, example={"text": "Is it still available?"}, path=("chatId",)
        ),
    )
    async def send(user: User, request: Request, chat_id: ChatIdPath) -> dict[str, Any]:
        """Send a message; delivered in real time like a socket send."""
        p = parse(MessageSend, {**_without_chat_id(await json_object(request)), "chatId": chat_id})
        return (await service.send(user, p)).to_wire()

    @router.post(
        "/chats/{chatId}/read",
        response_model=None,
        responses={200: {"model": schemas.ReadPointer}, **WRITE_ERRORS},
        openapi_extra=schemas.request_body(
            MessageRead,
            example={"messageId": "0b7e2d52-6d1f-4c1e-9a34-3f1f0c6f9a10"},
            path=("chatId",),
        ),
    )
    async def read(user: User, request: Request, chat_id: ChatIdPath) -> dict[str, Any]:
        """Move the caller's read pointer forward to a message."""
        await service.admit_event(user, "message:read")
        p = parse(MessageRead, {**_without_chat_id(await json_object(request)), "chatId": chat_id})
        return (await service.read(user, p)).to_wire(with_user=False)

    # -- edits and deletes ---------------------------------------------------------------------

    @router.patch(
        "/chats/{chatId}/messages/{messageId}",
        response_model=None,
        responses={200: {"model": schemas.Message}, **EDIT_ERRORS},
        openapi_extra=schemas.request_body(
            MessageEdit, example={"text": "Is it still available today?"}, path=("messageId",)
        ),
    )
    async def edit(
        user: User, request: Request, chat_id: ChatIdPath, message_id: MessageIdPath
    ) -> dict[str, Any]:
        """Replace the text of the caller's own message, within the edit window; both
        participants get `message:updated`."""
        await service.admit_event(user, "message:edit")
        body = _without(await json_object(request), "chatId", "messageId")
        ref = await _own_chat(user, chat_id)
        p = parse(MessageEdit, {**body, "messageId": message_id})
        return (await service.edit(user, p, chat_id=ref.chat_id)).to_wire()

    @router.delete(
        "/chats/{chatId}/messages/{messageId}",
        response_model=None,
        responses={200: {"model": schemas.MessageDeleted}, **WRITE_ERRORS},
    )
    async def delete(user: User, chat_id: ChatIdPath, message_id: MessageIdPath) -> dict[str, Any]:
        """Delete the caller's own message, leaving a tombstone; both participants get
        `message:deleted`. A second delete answers as the first."""
        await service.admit_event(user, "message:delete")
        ref = await _own_chat(user, chat_id)
        p = parse(MessageRef, {"messageId": message_id})
        return (await service.edits.delete(user, p, chat_id=ref.chat_id)).to_wire()

    async def _own_chat(user: int, chat_id: str) -> ChatRef:
        """The path's chat, which must be the caller's: NOT_FOUND, FORBIDDEN as a send."""
        ref = parse(ChatRef, {"chatId": chat_id})
        await service.participants(user, ref.chat_id)
        return ref

    @router.get(
        "/users/{userId}/response-stats",
        response_model=None,
        responses={200: {"model": schemas.ResponseStats}, **READ_ERRORS},
    )
    async def response_stats(
        user: User,
        user_id: Annotated[str, Path(alias="userId", description="a user id")],
    ) -> dict[str, Any]:
        """How quickly a user answers as a seller, over the chats buyers started with them in
        the last 30 days (seconds; median and p90 null when nothing was answered)."""
        await service.admit_event(user, "chats:list")
        ref = parse(UserRef, {"userId": user_id})
        return (await service.response_stats(ref.user_id)).to_wire()

    # -- trust and safety ----------------------------------------------------------------------

    @router.post(
        "/users/{userId}/block",
        response_model=None,
        responses={200: {"model": schemas.BlockState}, **WRITE_ERRORS},
    )
    async def block(user: User, user_id: UserIdPath) -> dict[str, Any]:
        """Block a user: no sends, new chats, typing or presence between the two until the
        block is lifted; blocking again changes nothing."""
        await service.admit_event(user, "user:block")
        ref = parse(UserRef, {"userId": user_id})
        return (await blocking.block(user, ref.user_id)).to_wire()

    @router.delete(
        "/users/{userId}/block",
        response_model=None,
        responses={200: {"model": schemas.BlockState}, **WRITE_ERRORS},
    )
    async def unblock(user: User, user_id: UserIdPath) -> dict[str, Any]:
        """Lift the caller's block (the other user's own block, if any, stays)."""
        await service.admit_event(user, "user:unblock")
        ref = parse(UserRef, {"userId": user_id})
        return (await blocking.unblock(user, ref.user_id)).to_wire()

    @router.get(
        "/blocks",
        response_model=None,
        responses={200: {"model": schemas.BlockedUsers}, **READ_ERRORS},
    )
    async def blocks(user: User) -> dict[str, Any]:
        """The users the caller blocked, most recent first."""
        await service.admit_event(user, "blocks:list")
        return {"userIds": await blocking.blocked_users(user)}

    @router.post(
        "/chats/{chatId}/reports",
        response_model=None,
        responses={
            200: {"model": schemas.ReportReceipt, "description": "the caller's earlier report"},
            201: {"model": schemas.ReportReceipt, "description": "a new report"},
            **WRITE_ERRORS,
        },
        openapi_extra=schemas.request_body(
            ReportCreate,
            example={"reason": "fraud", "comment": "asks to pay off-site"},
            path=("chatId",),
        ),
    )
    async def report(user: User, request: Request, chat_id: ChatIdPath) -> JSONResponse:
        """Report the chat or one of its messages to the moderators; 201 when new, 200 with
        the first report when the caller already reported the same message (or chat)."""
        await service.admit_event(user, "report:create")
        body = _without_chat_id(await json_object(request))
        receipt, created = await reports.file(
            user, parse(ReportCreate, {**body, "chatId": chat_id})
        )
        return JSONResponse(receipt.to_wire(), status_code=201 if created else 200)

    return router


def _without_chat_id(body: dict[str, object]) -> dict[str, object]:
    if "chatId" in body:
        raise ValidationFailed("chatId: give it in the path")
    return body


def _without(body: dict[str, object], *path: str) -> dict[str, object]:
    for name in path:
        if name in body:
            raise ValidationFailed(f"{name}: give it in the path")
    return body
