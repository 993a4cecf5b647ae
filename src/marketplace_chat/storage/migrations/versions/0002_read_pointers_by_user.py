"""Read pointers by user: sync and the inbox find a user's pointers with one index-only scan.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX read_pointers_user_idx ON chat.read_pointers (user_id, chat_id) INCLUDE (seq)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX chat.read_pointers_user_idx")
