"""Edits and deletes in PostgreSQL, and what a client that was away must re-read.

A change runs in one transaction of two statements. The first locks the message's chat row (the
lock every send takes too, so a chat's revisions are handed out in commit order) and the message
row, and reads both as they are once locked; the caller's rules judge that. The second bumps the
chat's `rev`, keeps the text being replaced in `chat.message_revisions` (an edit), writes the new
state with that `rev`, and, with the outbox on, adds the change's event and keeps the message's
pending `message.created` event as the message was (see `outbox_sql`), all in one statement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from marketplace_chat.models import Participants
from marketplace_chat.storage.base import Changed, Check, Revision, Target
from marketplace_chat.storage.outbox_sql import MESSAGE_JSON, freeze_created
from marketplace_chat.storage.rows import MESSAGE_COLUMNS, message_from_row

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = PoolConnectionProxy[asyncpg.Record]

# The message's columns qualified by `m`, where another relation also has a `rev`.
M_COLUMNS = ", ".join(f"m.{column}" for column in MESSAGE_COLUMNS.split(", "))

# Both rows locked: after waiting for another change of the chat, the rows read are the ones that
# change committed (PostgreSQL re-reads the rows it locks), never the versions from before it.
# NO KEY UPDATE is the lock the updates that follow take anyway; unlike FOR UPDATE it lets the
# rows that only refer to the chat (read pointers, say) be written meanwhile.
LOCK = f"""
SELECT {M_COLUMNS}, COALESCE(m.original_text, m.text) AS original,
       c.buyer_id, c.seller_id, c.blocked
  FROM chat.messages m JOIN chat.chats c ON c.id = m.chat_id
 WHERE m.id = $1
   FOR NO KEY UPDATE
"""


def _event(kind: str, when: str, enabled: str) -> str:
    """The outbox row of a change, from the CTE `changed` (the message as written)."""
    return f""", events AS (
  INSERT INTO chat.outbox (type, lane, chat_id, data, created_at, next_attempt_at)
  SELECT '{kind}', c.chat_id, c.chat_id,
         jsonb_build_object('message', {MESSAGE_JSON}), {when}, {when}
    FROM changed c WHERE {enabled}
)"""


# $1 message, $2 its chat, $3 text, $4 moderation action, $5 categories, $6 original text,
# $7 now, $8 whether the outbox is on. The revision keeps the text as sent of the version being
# replaced, which the new one's `original_text` no longer holds.
EDIT = f"""
WITH bump AS (
  UPDATE chat.chats SET rev = rev + 1 WHERE id = $2 RETURNING rev
), kept AS (
  INSERT INTO chat.message_revisions (message_id, text, at)
  SELECT id, COALESCE(original_text, text), $7 FROM chat.messages WHERE id = $1
), changed AS (
  UPDATE chat.messages m
     SET text = $3, moderation_action = $4, moderation_categories = $5::text[],
         original_text = $6, edited_at = $7, rev = bump.rev
    FROM bump
   WHERE m.id = $1 AND m.deleted_at IS NULL
  RETURNING {M_COLUMNS}
){freeze_created("$1", "$2", "$8::boolean")}
 {_event("message.updated", "$7::timestamptz", "$8::boolean")}
SELECT {MESSAGE_COLUMNS} FROM changed
"""

# $1 message, $2 its chat, $3 now, $4 whether the outbox is on. The tombstone keeps the text as
# sent in `original_text` (the SET list reads the row as it was), for moderators only.
DELETE = f"""
WITH bump AS (
  UPDATE chat.chats SET rev = rev + 1 WHERE id = $2 RETURNING rev
), changed AS (
  UPDATE chat.messages m
     SET text = '', original_text = COALESCE(m.original_text, m.text),
         moderation_action = NULL, moderation_categories = NULL, deleted_at = $3, rev = bump.rev
    FROM bump
   WHERE m.id = $1 AND m.deleted_at IS NULL
  RETURNING {M_COLUMNS}
){freeze_created("$1", "$2", "$4::boolean")}
 {_event("message.deleted", "$3::timestamptz", "$4::boolean")}
SELECT {MESSAGE_COLUMNS} FROM changed
"""


def _target(row: asyncpg.Record) -> Target:
    message = message_from_row(row)
    return Target(
        message=message,
        participants=Participants(message.chat_id, row["buyer_id"], row["seller_id"]),
        blocked=row["blocked"],
        original=row["original"],
    )


class _Vanished(Exception):
    """The locked message was not updated: impossible while the lock holds, so undone."""


async def edit(
    conn: Connection,
    message_id: str,
    revision: Revision,
    now: datetime,
    check: Check,
    events: bool,
) -> Changed | None:
    moderation = revision.moderation

    async def write(chat_id: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            EDIT,
            message_id,
            chat_id,
            revision.text,
            moderation.action if moderation else None,
            list(moderation.categories) if moderation else None,
            revision.original_text,
            now,
            events,
        )

    return await _change(conn, message_id, check, write)


async def delete(
    conn: Connection, message_id: str, now: datetime, check: Check, events: bool
) -> Changed | None:
    async def write(chat_id: str) -> asyncpg.Record | None:
        return await conn.fetchrow(DELETE, message_id, chat_id, now, events)

    return await _change(conn, message_id, check, write)


async def _change(
    conn: Connection,
    message_id: str,
    check: Check,
    write: Callable[[str], Awaitable[asyncpg.Record | None]],
) -> Changed | None:
    """Lock the message and its chat, let `check` judge the message as it now stands, then
    `write` the change in the same transaction; None for an unknown message."""
    async with conn.transaction():
        row = await conn.fetchrow(LOCK, message_id)
        if row is None:
            return None
        target = _target(row)
        if not check(target):
            return Changed(target, target.message, changed=False)
        written = await write(target.message.chat_id)
        if written is None:
            raise _Vanished
    return Changed(target, message_from_row(written), changed=True)
