"""What moderators read and change: per-chat contact policies, refused send attempts, and a
message's original text with its earlier versions."""

from __future__ import annotations

import json
from datetime import datetime

from marketplace_chat.moderation import ContactAttempt, ModeratedMessage, Revision
from marketplace_chat.storage.rows import MESSAGE_COLUMNS, message_from_row
from marketplace_chat.storage.store import PooledStore

# The message, its original (the text as sent: before masking, before any edit it had) and its
# earlier texts, oldest first, in one round trip.
MODERATED_MESSAGE = f"""
SELECT {MESSAGE_COLUMNS}, COALESCE(original_text, text) AS original,
       (SELECT COALESCE(json_agg(json_build_object('text', r.text, 'at', r.at) ORDER BY r.id),
                        '[]'::json)::text
          FROM chat.message_revisions r WHERE r.message_id = m.id) AS revisions
  FROM chat.messages m WHERE m.id = $1
"""

ATTEMPT_COLUMNS = "id, chat_id, sender_id, text, categories, created_at"
# A retry of a refused send (same chat, sender and client id) is the attempt already kept.
ADD_ATTEMPT = f"""
INSERT INTO chat.contact_attempts ({ATTEMPT_COLUMNS}, client_message_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (chat_id, sender_id, client_message_id) WHERE client_message_id IS NOT NULL
DO NOTHING
"""
ATTEMPTS_FIRST = f"""
SELECT {ATTEMPT_COLUMNS} FROM chat.contact_attempts WHERE chat_id = $1
 ORDER BY created_at DESC, id DESC LIMIT $2
"""
ATTEMPTS_AFTER = f"""
SELECT {ATTEMPT_COLUMNS} FROM chat.contact_attempts
 WHERE chat_id = $1 AND (created_at, id) < ($3, $4::uuid)
 ORDER BY created_at DESC, id DESC LIMIT $2
"""


class ModerationStore(PooledStore):
    async def contact_policy(self, chat_id: str) -> str | None:
        """The chat's own policy; None when it has none (or there is no such chat)."""
        async with self._conn() as conn:
            value: str | None = await conn.fetchval(
                "SELECT contact_policy FROM chat.chats WHERE id = $1", chat_id
            )
        return value

    async def message_author(self, message_id: str) -> tuple[str, int] | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "SELECT chat_id, sender_id FROM chat.messages WHERE id = $1", message_id
            )
        return (str(row["chat_id"]), row["sender_id"]) if row is not None else None

    async def set_contact_policy(self, chat_id: str, policy: str | None) -> bool:
        """False when there is no such chat."""
        async with self._conn() as conn:
            found = await conn.fetchval(
                "UPDATE chat.chats SET contact_policy = $2 WHERE id = $1 RETURNING true",
                chat_id,
                policy,
            )
        return bool(found)

    async def add_contact_attempt(self, attempt: ContactAttempt) -> None:
        """Stores the attempt, unless one of the same send (its client id) is stored already."""
        async with self._conn() as conn:
            await conn.execute(
                ADD_ATTEMPT,
                attempt.id,
                attempt.chat_id,
                attempt.sender_id,
                attempt.text,
                list(attempt.categories),
                attempt.created_at,
                attempt.client_message_id,
            )

    async def contact_attempts(
        self, chat_id: str, limit: int, before: tuple[datetime, str] | None
    ) -> list[ContactAttempt]:
        """A chat's attempts, newest first, strictly before the (created_at, id) cursor."""
        async with self._conn() as conn:
            if before is None:
                rows = await conn.fetch(ATTEMPTS_FIRST, chat_id, limit)
            else:
                rows = await conn.fetch(ATTEMPTS_AFTER, chat_id, limit, *before)
        return [
            ContactAttempt(
                id=str(r["id"]),
                chat_id=str(r["chat_id"]),
                sender_id=r["sender_id"],
                text=r["text"],
                categories=tuple(r["categories"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    async def moderated_message(self, message_id: str) -> ModeratedMessage | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(MODERATED_MESSAGE, message_id)
        if row is None:
            return None
        revisions = tuple(
            Revision(r["text"], datetime.fromisoformat(r["at"]))
            for r in json.loads(row["revisions"])
        )
        return ModeratedMessage(message_from_row(row), row["original"], revisions)
