"""How a message is read from and written to its table, for every statement that touches it."""

from __future__ import annotations

import asyncpg

from marketplace_chat.models import Message, Moderation

MESSAGE_COLUMNS = (
    "id, chat_id, seq, sender_id, text, product_id, client_message_id, created_at, rev, "
    "edited_at, deleted_at, moderation_action, moderation_categories"
)
# What a new row writes; the rest of MESSAGE_COLUMNS starts NULL.
INSERT_COLUMNS = (
    "id, chat_id, seq, sender_id, text, product_id, client_message_id, created_at, rev, "
    "moderation_action, moderation_categories, original_text"
)

# A refused send, in the shape of MESSAGE_COLUMNS: the input row `i` and nothing stored.
REFUSED_COLUMNS = (
    "i.id, i.chat_id, 0, i.sender_id, '', NULL::bigint, i.client_message_id, i.created_at, "
    "0::bigint, NULL::timestamptz, NULL::timestamptz, NULL::text, NULL::text[]"
)


def message_from_row(row: asyncpg.Record, prefix: str = "") -> Message:
    return Message(
        id=str(row[prefix + "id"]),
        chat_id=str(row[prefix + "chat_id"]) if not prefix else str(row["id"]),
        seq=row[prefix + "seq"],
        sender_id=row[prefix + "sender_id"],
        text=row[prefix + "text"],
        product_id=row[prefix + "product_id"],
        client_message_id=row[prefix + "client_message_id"],
        created_at=row[prefix + "created_at"],
        rev=row[prefix + "rev"],
        edited_at=row[prefix + "edited_at"],
        deleted_at=row[prefix + "deleted_at"],
        moderation=moderation(
            row[prefix + "moderation_action"], row[prefix + "moderation_categories"]
        ),
    )


def moderation(action: str | None, categories: list[str] | None) -> Moderation | None:
    return Moderation(action, tuple(categories or ())) if action is not None else None
