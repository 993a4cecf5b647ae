"""`/api/admin`: for marketplace-api and the operators, authenticated by `ADMIN_API_KEY`.

Every route answers 403 `FORBIDDEN` without the setting, without the header or with another
key, before it reads anything else of the request.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from marketplace_chat.api import schemas
from marketplace_chat.api.inputs import query_args
from marketplace_chat.clock import Clock
from marketplace_chat.payloads import parse
from marketplace_chat.storage.outbox import OutboxStore
from marketplace_chat.webhooks.admin import (
    WebhookAdmin,
    WebhookRef,
    WebhooksQuery,
    admitted,
    to_wire,
)

admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="adminKey", description="the service's ADMIN_API_KEY"
)
ADMIN_ERRORS = schemas.error_responses(403, 404, 422, 500)


def operator_only(api_key: str | None) -> Callable[..., Awaitable[None]]:
    """The dependency of every `/api/admin` router: the key check, before anything else."""

    async def operator(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)],
    ) -> None:
        admitted(api_key, credentials.credentials if credentials is not None else None)

    return operator


def admin_router(store: OutboxStore, clock: Clock, api_key: str | None) -> APIRouter:
    admin = WebhookAdmin(store, clock)
    router = APIRouter(
        prefix="/api/admin", tags=["admin"], dependencies=[Depends(operator_only(api_key))]
    )

    @router.get("/webhooks", response_model=None, responses=ADMIN_ERRORS)
    async def list_webhooks(request: Request) -> dict[str, Any]:
        """Pending or failed webhook events (`status`, default failed), newest first;
        `limit` 1 to 100 (default 50), `before` the previous page's nextCursor."""
        q = parse(WebhooksQuery, query_args(request, ints=["limit"]))
        return (await admin.list(q)).to_wire()

    @router.post("/webhooks/{id}/retry", response_model=None, responses=ADMIN_ERRORS)
    async def retry_webhook(
        event_id: Annotated[str, Path(alias="id", description="the event id (UUID)")],
    ) -> dict[str, Any]:
        """Send a failed (or delivered) event again, with the same id, from attempt 1."""
        return to_wire(await admin.retry(parse(WebhookRef, {"id": event_id})))

    return router
