"""The outbox rows that ride along in the statements that commit messages.

Both send statements (the group commit's and the single-message one) end in a CTE named
`created`: the new messages with `ord` (arrival order), `buyer_id`, `seller_id` and
`chat_product_id` (the chat's product context as of that message), and no rows at all when the
outbox is off. From it, in the same statement and so the same transaction, come one
`message.created` event per new message and one `message.unread` reminder per recipient and
chat, unless one is pending already (the partial unique index decides, so a burst gives one).
A reminder carries no data yet: what it says is read when it falls due.

What this costs the group commit, from EXPLAIN (ANALYZE, BUFFERS) of its statement on batches of
one message in each of 20 or 50 chats (a 200,000-row outbox; medians of 50 runs each on the
2-core machine while other jobs kept it busy): 1.6 ms and 3.7 ms of execution without the
outbox, 3.0 ms and 6.7 ms with it, 60 to 70 µs per message. Of that, `message.created` takes
0.8 and 1.9 ms, about half of it building its JSON; the reminders 0.4 and 0.75 ms when every
recipient already has one pending (a burst: the unique index's check finds the pending one and
nothing is written).

- The JSON is built here, not when the event is claimed, although storing ids alone would save
  that half: a message can be edited before its event goes out, and `message.created` must say
  what was created, not what the message says by then.
- Skipping recipients with a pending reminder by a NOT EXISTS probe before the insert was
  slower either way: 0.9 and 1.15 ms with one pending, and without one the whole statement took
  5.6 ms against 4.6 (20 messages) and 11.0 against 9.7 (50), end to end: the probe reads the
  partial index that the insert's conflict check reads anyway. ON CONFLICT alone decides.
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

OUTBOX_CTES = f""", events AS (
  INSERT INTO chat.outbox (id, type, lane, chat_id, data, created_at, next_attempt_at)
  SELECT gen_random_uuid(), 'message.created', c.chat_id, c.chat_id,
         jsonb_build_object(
           'message', {MESSAGE_JSON},
           'chat', jsonb_build_object('id', c.chat_id, 'buyerId', c.buyer_id,
                                      'sellerId', c.seller_id, 'productId', c.chat_product_id),
           'recipientId', CASE WHEN c.sender_id = c.buyer_id THEN c.seller_id
                               ELSE c.buyer_id END),
         c.created_at, c.created_at
    FROM created c ORDER BY c.chat_id, c.seq
), reminders AS (
  INSERT INTO chat.outbox (id, type, chat_id, recipient_id, sender_id, message_seq, created_at,
                           next_attempt_at)
  SELECT DISTINCT ON (c.chat_id, recipient)
         gen_random_uuid(), 'message.unread', c.chat_id, recipient, c.sender_id, c.seq,
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
  INSERT INTO chat.outbox (id, type, lane, chat_id, data, created_at, next_attempt_at)
  SELECT gen_random_uuid(), 'message.flagged', c.chat_id, c.chat_id,
         jsonb_build_object('message', {MESSAGE_JSON},
                            'categories', to_jsonb(c.moderation_categories)),
         c.created_at, c.created_at
    FROM created c WHERE c.moderation_action = 'flagged' ORDER BY c.chat_id, c.seq
)"""
OUTBOX_CTES = FLAGGED_EVENTS_CTE + OUTBOX_CTES
