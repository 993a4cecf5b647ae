"""The statements that write and read messages: the single-message send, a chat's history
around an anchor, what a returning client has missed, and the reminders a read makes moot.

Apart from the storage class, whose methods then read as the use cases, and importable as they
are by the query benchmarks, which EXPLAIN the very text the service runs."""

from __future__ import annotations

from marketplace_chat.storage.outbox_sql import OUTBOX_CTES
from marketplace_chat.storage.rows import INSERT_COLUMNS, MESSAGE_COLUMNS, REFUSED_COLUMNS

# One statement, run in a transaction: a repeated client id returns the first message without
# bumping seq; otherwise seq is bumped (locking the chat row) and the row inserted. When two
# sends with the same client id race, the unique constraint makes the loser's insert a no-op and
# the statement returns nothing: the caller rolls back (undoing the bump) and reads the winner.
SEND = f"""
WITH existing AS (
  SELECT {MESSAGE_COLUMNS} FROM chat.messages
   WHERE $6::text IS NOT NULL AND chat_id = $2 AND client_message_id = $6
     AND sender_id + 0 = $3  -- the client id's key, never the sender's seq index (see 0005)
), bump AS (
  UPDATE chat.chats SET last_seq = last_seq + 1, rev = rev + 1,
         updated_at = GREATEST(updated_at, $7)
   WHERE id = $2 AND NOT blocked AND NOT EXISTS (SELECT 1 FROM existing)
  RETURNING last_seq, rev, buyer_id, seller_id
), ins AS (
  INSERT INTO chat.messages ({INSERT_COLUMNS})
  SELECT $1, $2, bump.last_seq, $3, $4, $5, $6, $7, bump.rev, $10, $11::text[], $12 FROM bump
  ON CONFLICT (chat_id, sender_id, client_message_id) DO NOTHING
  RETURNING {MESSAGE_COLUMNS}
), ctx AS (
  INSERT INTO chat.chat_context (chat_id, product_id, updated_at)
  SELECT $2, $5, $7 FROM ins WHERE $5::bigint IS NOT NULL
  ON CONFLICT (chat_id) DO UPDATE
    SET product_id = EXCLUDED.product_id, updated_at = EXCLUDED.updated_at
), created AS (
  SELECT ins.*, 1 AS ord, bump.buyer_id, bump.seller_id,
         COALESCE($5::bigint, prior.product_id) AS chat_product_id
    FROM ins CROSS JOIN bump
    LEFT JOIN chat.chat_context prior ON prior.chat_id = $2
   WHERE $8::boolean
){OUTBOX_CTES}
SELECT {MESSAGE_COLUMNS}, true AS created, false AS blocked FROM ins
UNION ALL
SELECT {MESSAGE_COLUMNS}, false AS created, false AS blocked FROM existing
UNION ALL
SELECT {REFUSED_COLUMNS}, false AS created, true AS blocked
  FROM (SELECT $1::uuid AS id, $2::uuid AS chat_id, $3::bigint AS sender_id,
               $6::text AS client_message_id, $7::timestamptz AS created_at) i
  JOIN chat.chats c ON c.id = i.chat_id
 WHERE c.blocked AND NOT EXISTS (SELECT 1 FROM existing)
"""

HISTORY_LATEST = (
    f"SELECT {MESSAGE_COLUMNS} FROM chat.messages WHERE chat_id = $1 ORDER BY seq DESC LIMIT $2"
)
# One round trip with the anchor: no row at all means the anchor is not a message of the chat;
# a row of NULLs, that the anchor exists and the page is empty.
HISTORY_AROUND = """
SELECT m.* FROM (SELECT seq FROM chat.messages WHERE id = $2 AND chat_id = $1) a
LEFT JOIN LATERAL (
  SELECT {columns} FROM chat.messages
   WHERE chat_id = $1 AND seq {op} a.seq ORDER BY seq {order} LIMIT $3
) m ON true
"""
HISTORY_BEFORE = HISTORY_AROUND.format(columns=MESSAGE_COLUMNS, op="<", order="DESC")
HISTORY_AFTER = HISTORY_AROUND.format(columns=MESSAGE_COLUMNS, op=">", order="")

# $1 user, $2/$3/$5 the listed chats with their seq and (NULL for the plain form) rev, $4 the page
# size + 1. The new messages of each chat, then (`changed`) for the chats listed with a rev the
# messages up to their seq edited or deleted after it, oldest change first, from the index of
# changed messages; one statement, so both parts and the chat's rev are of one moment.
SYNC = f"""
WITH mine AS (
  SELECT c.id, c.last_seq, c.rev, COALESCE(s.seq, r.seq, 0) AS from_seq,
         s.seq IS NOT NULL AS listed, s.rev AS since_rev
    FROM chat.chats c
    LEFT JOIN unnest($2::uuid[], $3::bigint[], $5::bigint[]) AS s(chat_id, seq, rev)
      ON s.chat_id = c.id
    LEFT JOIN chat.read_pointers r ON r.chat_id = c.id AND r.user_id = $1
   WHERE c.buyer_id = $1 OR c.seller_id = $1
)
SELECT mine.id AS sync_chat_id, mine.rev AS chat_rev, mine.since_rev, false AS changed,
       m.seq AS ord, m.*
  FROM mine
  LEFT JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS} FROM chat.messages
     WHERE chat_id = mine.id AND seq > mine.from_seq ORDER BY seq LIMIT $4
  ) m ON true
 WHERE mine.listed OR mine.last_seq > mine.from_seq
UNION ALL
SELECT mine.id, mine.rev, mine.since_rev, true, m.rev, m.*
  FROM mine
  JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS} FROM chat.messages
     WHERE chat_id = mine.id AND rev > mine.since_rev AND seq <= mine.from_seq
       AND (edited_at IS NOT NULL OR deleted_at IS NOT NULL)
     ORDER BY rev LIMIT $4
  ) m ON true
 WHERE mine.since_rev IS NOT NULL
 ORDER BY 1, 4, 5
"""


# A recipient who read up to a message needs no reminder of it: the pending one is dropped, so
# that the next message schedules a fresh one.
DROP_REMINDERS = """
UPDATE chat.outbox SET status = 'cancelled', finished_at = $4, lease_token = NULL
 WHERE type = 'message.unread' AND status = 'pending'
   AND chat_id = $1 AND recipient_id = $2 AND message_seq <= $3
"""
