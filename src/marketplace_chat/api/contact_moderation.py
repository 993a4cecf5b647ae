"""`/api/admin` routes for moderators: a message with its original and revisions, the sends the
`block` policy refused, and a chat's own contact policy. Same `ADMIN_API_KEY` check as every
admin route, before anything of the request is read."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from marketplace_chat import wire
from marketplace_chat.api import schemas
from marketplace_chat.api.admin import ADMIN_ERRORS, operator_only
from marketplace_chat.api.inputs import json_object, query_args
from marketplace_chat.errors import ValidationFailed
from marketplace_chat.moderation import AttemptsQuery, MessageRef, ModerationAdmin, PolicyChange
from marketplace_chat.payloads import parse

Category = Literal["phone", "email", "link", "messenger"]
PolicyName = Literal["mask", "block", "flag", "off"]


# The answers' shapes, for the OpenAPI description (a unit test holds `to_wire()` to them).
class MessageRevision(wire.Out):
    """An earlier text of an edited message, as sent, and when it was replaced."""

    text: str
    at: wire.Timestamp


class ModeratedMessage(wire.Message):
    """The Message as participants see it, with the text as sent and its earlier versions."""

    original: str
    revisions: list[MessageRevision]


class ContactAttempt(wire.Out):
    """A send the `block` policy refused: never a message."""

    id: str
    chat_id: wire.ChatId
    sender_id: wire.UserId
    text: str
    categories: list[Category]
    created_at: wire.Timestamp


class ContactAttemptsPage(wire.Out):
    """Newest first; `nextCursor` is opaque and null on the last page."""

    attempts: list[ContactAttempt]
    next_cursor: str | None


class ContactPolicyState(wire.Out):
    """The chat's own policy (null: the service's default) and the one in effect."""

    chat_id: wire.ChatId
    policy: PolicyName | None
    effective: PolicyName


def contact_moderation_router(admin: ModerationAdmin, api_key: str | None) -> APIRouter:
    router = APIRouter(
        prefix="/api/admin", tags=["moderation"], dependencies=[Depends(operator_only(api_key))]
    )

    @router.get(
        "/messages/{id}",
        response_model=None,
        responses={200: {"model": ModeratedMessage}, **ADMIN_ERRORS},
    )
    async def moderated_message(
        message_id: Annotated[str, Path(alias="id", description="a message id (UUID)")],
    ) -> dict[str, Any]:
        """The Message as participants see it, plus `original` (the text as sent, before
        masking) and `revisions` (`[{ text, at }]`, the earlier texts of an edited message,
        oldest first)."""
        return (await admin.message(parse(MessageRef, {"id": message_id}))).to_wire()

    @router.get(
        "/contact-attempts",
        response_model=None,
        responses={200: {"model": ContactAttemptsPage}, **ADMIN_ERRORS},
    )
    async def contact_attempts(
        request: Request,
        chat_id: Annotated[str | None, Query(alias="chatId", description="a chat id")] = None,
        limit: Annotated[str | None, Query(description="1–100 (default 50)")] = None,
        before: Annotated[str | None, Query(description="the previous nextCursor")] = None,
    ) -> dict[str, Any]:
        """A chat's sends refused by the `block` policy, newest first:
        `{ attempts: [{ id, chatId, senderId, text, categories, createdAt }], nextCursor }`."""
        return await admin.attempts(parse(AttemptsQuery, query_args(request, ints=["limit"])))

    @router.put(
        "/chats/{chatId}/contact-policy",
        response_model=None,
        responses={200: {"model": ContactPolicyState}, **ADMIN_ERRORS},
        openapi_extra=schemas.request_body(
            PolicyChange, example={"policy": "off"}, path=("chatId",)
        ),
    )
    async def set_contact_policy(
        request: Request,
        chat_id: Annotated[str, Path(alias="chatId", description="a chat id (UUID)")],
    ) -> dict[str, Any]:
        """Body `{ policy: 'mask' | 'block' | 'flag' | 'off' | null }` (null: back to the
        service's CONTACT_POLICY). Answers `{ chatId, policy, effective }`; every node applies
        it within 30 s, within milliseconds while Redis is reachable."""
        body = await json_object(request)
        if "chatId" in body:
            raise ValidationFailed("chatId: give it in the path")
        return await admin.set_policy(parse(PolicyChange, {**body, "chatId": chat_id}))

    return router
