"""REST: the same objects and error codes as the socket, with the same bearer tokens.

Bodies are the plain objects (no `{success, data}` wrapper); errors are `{error, code}` with an
HTTP status that matches the code.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from fastapi.responses import JSONResponse

from marketplace_chat.auth.base import Verifier
from marketplace_chat.errors import AuthError, ErrorCode, ValidationFailed
from marketplace_chat.models import (
    ChatCreate,
    ChatRef,
    ChatsQuery,
    HistoryQuery,
    MessageRead,
    MessageSend,
    parse,
)
from marketplace_chat.service import ChatService

ERROR_SCHEMA = {
    "description": "An error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
                "required": ["error", "code"],
            }
        }
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: ERROR_SCHEMA for status in (401, 403, 404, 422, 429, 500, 503)
}


# FastAPI resolves these annotations at runtime, so this module keeps them as real objects.
ChatIdPath = Annotated[str, Path(alias="chatId", description="a chat id (UUID)")]


def _query(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}


def rest_router(service: ChatService, verifier: Verifier) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["chats"], responses=ERRORS)

    async def caller(authorization: Annotated[str | None, Header()] = None) -> int:
        if not authorization or authorization[:7].lower() != "bearer ":
            raise AuthError("Authentication token is required", ErrorCode.TOKEN_REQUIRED)
        return (await verifier.verify(authorization[7:])).user_id

    User = Annotated[int, Depends(caller)]  # noqa: N806 - a type alias

    @router.get("/chats")
    async def list_chats(
        user: User,
        limit: Annotated[int | None, Query(description="1–100, default 30")] = None,
        before: Annotated[str | None, Query(description="nextCursor of the previous page")] = None,
    ) -> dict[str, Any]:
        """The caller's chats, most recent activity first."""
        page = await service.list_chats(user, parse(ChatsQuery, _query(limit=limit, before=before)))
        return {"chats": [c.to_wire() for c in page.chats], "nextCursor": page.next_cursor}

    @router.post("/chats")
    async def create_chat(
        user: User, body: Annotated[dict[str, Any], Body(examples=[{"buyerId": 1, "sellerId": 2}])]
    ) -> JSONResponse:
        """Open (or find) the chat of a buyer/seller pair; 201 when it is new."""
        chat, created = await service.create_chat(user, parse(ChatCreate, body))
        return JSONResponse(chat.to_wire(), status_code=201 if created else 200)

    @router.get("/chats/{chatId}")
    async def get_chat(user: User, chat_id: ChatIdPath) -> dict[str, Any]:
        ref = parse(ChatRef, {"chatId": chat_id})
        return (await service.get_chat(user, ref.chat_id)).to_wire()

    @router.get("/chats/{chatId}/messages")
    async def history(
        user: User,
        chat_id: ChatIdPath,
        limit: Annotated[int | None, Query(description="1–100, default 50")] = None,
        before: Annotated[str | None, Query(description="a message id")] = None,
        after: Annotated[str | None, Query(description="a message id")] = None,
    ) -> dict[str, Any]:
        """A page of messages in chronological order."""
        q = parse(HistoryQuery, _query(chatId=chat_id, limit=limit, before=before, after=after))
        page = await service.history(user, q)
        return {"messages": [m.to_wire() for m in page.messages], "hasMore": page.has_more}

    @router.post("/chats/{chatId}/messages", status_code=201)
    async def send(
        user: User,
        chat_id: ChatIdPath,
        body: Annotated[dict[str, Any], Body(examples=[{"text": "Is it still available?"}])],
    ) -> dict[str, Any]:
        """Send a message; delivered in real time like a socket send."""
        p = parse(MessageSend, {**_object(body), "chatId": chat_id})
        return (await service.send(user, p)).to_wire()

    @router.post("/chats/{chatId}/read")
    async def read(
        user: User,
        chat_id: ChatIdPath,
        body: Annotated[dict[str, Any], Body(examples=[{"messageId": "…"}])],
    ) -> dict[str, Any]:
        """Move the caller's read pointer forward to a message."""
        p = parse(MessageRead, {**_object(body), "chatId": chat_id})
        return (await service.read(user, p)).to_wire(with_user=False)

    return router


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed("payload: must be an object")
    if "chatId" in body:
        raise ValidationFailed("chatId: give it in the path")
    return body
