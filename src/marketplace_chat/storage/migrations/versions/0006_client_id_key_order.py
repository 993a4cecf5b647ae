"""A message's client id is looked up by (chat, client id), whatever the statistics say.

The send statements look for an earlier message with the same client id before they number a
new one. With the unique key in (chat_id, sender_id, client_message_id) order, a lookup by all
three ties, on a table without fresh statistics, with the (chat_id, sender_id, seq) index of
the response statistics; the planner then takes the smaller index and walks every message of
the sender in the chat, so a send got slower with each message of its chat. With the client id
second, the lookups match (chat_id, client_message_id) and no other index can serve them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE chat.messages DROP CONSTRAINT messages_client_id_key, "
        "ADD CONSTRAINT messages_client_id_key UNIQUE (chat_id, client_message_id, sender_id)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE chat.messages DROP CONSTRAINT messages_client_id_key, "
        "ADD CONSTRAINT messages_client_id_key UNIQUE (chat_id, sender_id, client_message_id)"
    )
