"""Deleted messages by chat and seq: unread counts leave them out from the index alone.

An unread count is an index-only count of the partner's messages after the read pointer, less
the deleted ones among them. This partial index holds only deleted messages, in the same order
and with the sender, so the second count also reads nothing but a few index entries, however
many messages of the chat were edited or deleted before the pointer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX messages_deleted_idx ON chat.messages (chat_id, seq) INCLUDE (sender_id) "
        "WHERE deleted_at IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX chat.messages_deleted_idx")
