"""A refused send is kept once per client id, not once per retry.

Under the `block` policy a refused send is stored as a contact attempt, and a client that does
not hear its answer (a lost connection, a timeout) sends the same message again with the same
`clientMessageId`: every retry was stored as one more attempt, so the moderators' list showed
one attempt as many, and a client retrying in a loop grew the table by a row per retry. An
attempt now keeps the send's client id, unique per chat and sender when there is one; a retry
is refused again and stores nothing.

The index is built concurrently: attempts may be written while it builds.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE chat.contact_attempts ADD COLUMN IF NOT EXISTS client_message_id text")
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS contact_attempts_client_id_key "
            "ON chat.contact_attempts (chat_id, sender_id, client_message_id) "
            "WHERE client_message_id IS NOT NULL"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS chat.contact_attempts_client_id_key")
    op.execute("ALTER TABLE chat.contact_attempts DROP COLUMN IF EXISTS client_message_id")
