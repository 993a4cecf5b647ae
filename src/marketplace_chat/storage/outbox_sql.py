"""The outbox rows that ride along in the statements that commit messages, and the JSON of a
`message.created` event, which is built when the event is claimed.

Both send statements (the group commit's and the single-message one) end in a CTE named
`created`: the new messages with `ord` (arrival order), `buyer_id`, `seller_id` and
`chat_product_id` (the chat's product context as of that message), and no rows at all when the
outbox is off. From it, in the same statement and so the same transaction, come one
`message.created` event per new message and one `message.unread` reminder per recipient and
chat, unless one is pending already (the partial unique index decides, so a burst gives one).
A reminder carries no data yet: what it says is read when it falls due.

A `message.created` row holds the message's chat and seq and the chat's product context as of
it, not its JSON. The JSON is built from the message and its chat when the event is claimed
(`EVENT_DATA`), and kept in the row only once an attempt failed. The event must say what was
created, not what the message says by then: an edit or delete of a message whose event is still
pending first writes that event's JSON from the message as it was (`freeze_created`), in the
same statement as the change. A delivered event keeps no copy; an operator's re-send of one
builds it again from the message as it then stands.

Why: the group commit's statement is what every send's ack waits for. On batches of 14
messages in 14 chats (EXPLAIN-free timings of 1,000 statements each on the 2-core machine, the
outbox's rows growing, a checkpoint every 200), the statement took 0.98 ms of PostgreSQL without
the outbox, 1.88 ms with each event's JSON built in it, and 1.40 ms without: the JSON was half of
what the outbox cost there, and its 700 bytes were written to the WAL again by the lease's and
the outcome's updates of the row.

Skipping recipients with a pending reminder by a NOT EXISTS probe before the insert was slower
than letting ON CONFLICT decide: the probe reads the partial index that the insert's conflict
check reads anyway.
"""

from __future__ import annotations

# The ISO-8601 form of `models.iso`: UTC, milliseconds, a Z.
ISO = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""

MESSAGE_JSON = f"""jsonb_build_object(
      'id', c.id, 'chatId', c.chat_id, 'seq', c.seq, 'senderId', c.sender_id, 'text', c.text,
      'productId', c.product_id, 'clientMessageId', c.client_message_id,
      'createdAt', {ISO.format("c.created_at")}, 'rev', c.rev,
      'editedAt', {ISO.format("c.edited_at")}, 'deletedAt', {ISO.format("c.deleted_at")},
      'moderation', CASE WHEN c.moderation_action IS NULL THEN NULL ELSE jsonb_build_object(
        'action', c.moderation_action, 'categories', to_jsonb(c.moderation_categories)) END)"""

# The data of the `message.created` event `o` (an alias of chat.outbox), from its message and
# chat as they are now.
CREATED_DATA = f"""(
  SELECT jsonb_build_object(
           'message', {MESSAGE_JSON},
           'chat', jsonb_build_object('id', ch.id, 'buyerId', ch.buyer_id,
                                      'sellerId', ch.seller_id, 'productId', o.product_id),
           'recipientId', CASE WHEN c.sender_id = ch.buyer_id THEN ch.seller_id
                               ELSE ch.buyer_id END)
    FROM chat.messages c JOIN chat.chats ch ON ch.id = c.chat_id
   WHERE c.chat_id = o.chat_id AND c.seq = o.message_seq)"""

# The data the event `o` is sent with: as kept, or for a `message.created` not kept yet, built.
EVENT_DATA = f"""COALESCE(o.data, CASE WHEN o.type = 'message.created' THEN {CREATED_DATA} END)"""


def freeze_created(message_id: str, chat_id: str, enabled: str) -> str:
    """The CTE of an edit or delete that keeps the pending `message.created` event of the message
    as it was: the CTE reads the statement's snapshot, before the change's own update."""
    return f""", frozen AS (
  UPDATE chat.outbox o SET data = {CREATED_DATA}
   WHERE {enabled} AND o.lane = {chat_id} AND o.status = 'pending'
     AND o.type = 'message.created' AND o.data IS NULL
     AND o.message_seq = (SELECT seq FROM chat.messages WHERE id = {message_id})
)"""


OUTBOX_CTES = """, events AS (
  INSERT INTO chat.outbox (type, lane, chat_id, message_seq, product_id, created_at,
                           next_attempt_at)
  SELECT 'message.created', c.chat_id, c.chat_id, c.seq, c.chat_product_id,
         c.created_at, c.created_at
    FROM created c ORDER BY c.chat_id, c.seq
), reminders AS (
  INSERT INTO chat.outbox (type, chat_id, recipient_id, sender_id, message_seq, created_at,
                           next_attempt_at)
  SELECT DISTINCT ON (c.chat_id, recipient)
         'message.unread', c.chat_id, recipient, c.sender_id, c.seq,
         c.created_at, c.created_at + make_interval(secs => $9::float8)
    FROM created c,
         LATERAL (SELECT CASE WHEN c.sender_id = c.buyer_id THEN c.seller_id
                              ELSE c.buyer_id END AS recipient) r
   ORDER BY c.chat_id, recipient, c.seq
  ON CONFLICT (chat_id, recipient_id) WHERE type = 'message.unread' AND status = 'pending'
  DO NOTHING
)"""

# A message the `flag` policy let through is reported to marketplace-api as it was sent (its
# text is unchanged), in the same statement as the message and its other events. It goes in
# front of them: PostgreSQL runs the data-modifying CTEs nobody reads last one first, so this
# one inserts after `message.created` and comes after it in its chat's lane (a test holds it).
FLAGGED_EVENTS_CTE = f""", flagged AS (
  INSERT INTO chat.outbox (type, lane, chat_id, data, created_at, next_attempt_at)
  SELECT 'message.flagged', c.chat_id, c.chat_id,
         jsonb_build_object('message', {MESSAGE_JSON},
                            'categories', to_jsonb(c.moderation_categories)),
         c.created_at, c.created_at
    FROM created c WHERE c.moderation_action = 'flagged' ORDER BY c.chat_id, c.seq
)"""
OUTBOX_CTES = FLAGGED_EVENTS_CTE + OUTBOX_CTES
