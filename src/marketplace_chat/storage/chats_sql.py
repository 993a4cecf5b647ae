"""The statements that read and write chats: a chat as its viewer sees it (the unread count, the
last message), a user's chats newest first, a new chat's event, and a seller's answer times.

Apart from the storage class, whose methods then read as the use cases, and importable as they
are by the query benchmarks, which EXPLAIN the very text the service runs."""

from __future__ import annotations

import asyncpg

from marketplace_chat.models import Chat
from marketplace_chat.storage.outbox_sql import ISO
from marketplace_chat.storage.rows import message_from_row

# A chat as one viewer ($2) sees it. The unread count reads only the (chat_id, seq) index, less
# the deleted messages among them, counted from the partial index of deleted messages (for most
# chats one probe that finds nothing).
CHAT_SELECT = """
SELECT c.id, c.buyer_id, c.seller_id, c.created_at, c.updated_at, c.last_seq, c.rev, c.blocked,
       ctx.product_id AS ctx_product_id,
       m.id AS m_id, m.seq AS m_seq, m.sender_id AS m_sender_id, m.text AS m_text,
       m.product_id AS m_product_id, m.client_message_id AS m_client_message_id,
       m.created_at AS m_created_at, m.rev AS m_rev, m.edited_at AS m_edited_at,
       m.deleted_at AS m_deleted_at, m.moderation_action AS m_moderation_action,
       m.moderation_categories AS m_moderation_categories,
       (SELECT count(*) FROM chat.messages u
         WHERE u.chat_id = c.id AND u.seq > COALESCE(r.seq, 0) AND u.sender_id <> $2)
     - (SELECT count(*) FROM chat.messages d
         WHERE d.chat_id = c.id AND d.deleted_at IS NOT NULL
           AND d.seq > COALESCE(r.seq, 0) AND d.sender_id <> $2) AS unread
"""
CHAT_JOINS = """
LEFT JOIN chat.chat_context ctx ON ctx.chat_id = c.id
LEFT JOIN chat.messages m ON m.chat_id = c.id AND m.seq = c.last_seq
LEFT JOIN chat.read_pointers r ON r.chat_id = c.id AND r.user_id = $2
"""

GET_CHAT = f"{CHAT_SELECT} FROM chat.chats c {CHAT_JOINS} WHERE c.id = $1"

# $1 user, $2 page size + 1, optional $3/$4 the cursor's (updated_at, id).
LIST_CHATS = (
    """
WITH mine AS (
  (SELECT id, updated_at FROM chat.chats WHERE buyer_id = $1 {cond}
    ORDER BY updated_at DESC, id DESC LIMIT $3)
  UNION ALL
  (SELECT id, updated_at FROM chat.chats WHERE seller_id = $1 {cond}
    ORDER BY updated_at DESC, id DESC LIMIT $3)
), page AS (SELECT id FROM mine ORDER BY updated_at DESC, id DESC LIMIT $3)
"""
    + f"""{CHAT_SELECT} FROM page JOIN chat.chats c ON c.id = page.id {CHAT_JOINS}
ORDER BY c.updated_at DESC, c.id DESC"""
)
LIST_CHATS_FIRST = LIST_CHATS.format(cond="")
LIST_CHATS_AFTER = LIST_CHATS.format(cond="AND (updated_at, id) < ($4, $5)")

SET_CONTEXT = """
WITH ctx AS (
  INSERT INTO chat.chat_context (chat_id, product_id, updated_at) VALUES ($1, $2, $3)
  ON CONFLICT (chat_id) DO UPDATE
    SET product_id = EXCLUDED.product_id, updated_at = EXCLUDED.updated_at
)
UPDATE chat.chats SET updated_at = $3 WHERE id = $1
"""

# A new chat's event, written in the transaction that creates the chat.
CHAT_CREATED_EVENT = f"""
INSERT INTO chat.outbox (type, lane, chat_id, data, created_at, next_attempt_at)
SELECT 'chat.created', c.id, c.id,
       jsonb_build_object('chat', jsonb_build_object(
         'id', c.id, 'buyerId', c.buyer_id, 'sellerId', c.seller_id,
         'productId', ctx.product_id, 'createdAt', {ISO.format("c.created_at")})),
       c.created_at, c.created_at
  FROM chat.chats c LEFT JOIN chat.chat_context ctx ON ctx.chat_id = c.id
 WHERE c.id = $1
"""

# A seller's chats active since $2 (updated_at is at least the time of every message, so the
# seller's activity index bounds the scan), each with its first message if the buyer sent it
# inside the window (an exact lookup of seq 1), and the seller's first message after it: two
# probes of the (chat, sender, seq) index per chat, answered from the index alone.
RESPONSE_STATS = """
WITH starts AS (
  SELECT c.id, c.seller_id, f.created_at AS asked_at
    FROM chat.chats c
    JOIN chat.messages f ON f.chat_id = c.id AND f.sender_id = c.buyer_id AND f.seq = 1
   WHERE c.seller_id = $1 AND c.updated_at >= $2 AND f.created_at >= $2
), replies AS (
  SELECT extract(epoch FROM r.created_at - s.asked_at)::float8 AS wait_s
    FROM starts s
    LEFT JOIN LATERAL (
      SELECT m.created_at FROM chat.messages m
       WHERE m.chat_id = s.id AND m.sender_id = s.seller_id ORDER BY m.seq LIMIT 1
    ) r ON true
)
SELECT count(*) AS chats, count(wait_s) AS answered,
       count(*) FILTER (WHERE wait_s <= 86400) AS within_24h,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_s) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY wait_s) AS p90
  FROM replies
"""


def chat_from_row(row: asyncpg.Record) -> Chat:
    return Chat(
        id=str(row["id"]),
        buyer_id=row["buyer_id"],
        seller_id=row["seller_id"],
        product_id=row["ctx_product_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_message=message_from_row(row, "m_") if row["m_id"] is not None else None,
        unread_count=row["unread"],
        last_seq=row["last_seq"],
        rev=row["rev"],
        blocked=row["blocked"],
    )
