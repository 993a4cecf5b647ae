"""The outbox of events for marketplace-api, and the index of response statistics.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every event is written once and updated twice (its lease, then its outcome). The room the
    # fill factor leaves on each page lets the lease's update, which changes no indexed column,
    # stay on its page without touching an index (a HOT update).
    op.execute(
        """
        CREATE TABLE chat.outbox (
            -- commit order: rows of one chat are written while its chat row is locked
            pos             bigserial PRIMARY KEY,
            id              uuid NOT NULL UNIQUE,
            type            text NOT NULL,
            -- events of one lane (a chat) are delivered in pos order; NULL: no order
            lane            uuid,
            chat_id         uuid,
            -- reminders: whom to remind, of which sender's message (data is built when due)
            recipient_id    bigint,
            sender_id       bigint,
            message_seq     integer,
            data            jsonb,
            created_at      timestamptz NOT NULL,
            status          text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL,
            lease_token     uuid,
            lease_until     timestamptz,
            last_error      text,
            finished_at     timestamptz
        ) WITH (fillfactor = 70)
        """
    )
    # What the dispatchers claim: the pending events that are due.
    op.execute(
        "CREATE INDEX outbox_due_idx ON chat.outbox (next_attempt_at) WHERE status = 'pending'"
    )
    # A lane's earlier pending event holds back its later ones.
    op.execute(
        "CREATE INDEX outbox_lane_idx ON chat.outbox (lane, pos) "
        "WHERE status = 'pending' AND lane IS NOT NULL"
    )
    # At most one pending reminder per recipient and chat: a burst gives one reminder.
    op.execute(
        "CREATE UNIQUE INDEX outbox_reminder_key ON chat.outbox (chat_id, recipient_id) "
        "WHERE type = 'message.unread' AND status = 'pending'"
    )
    # Failed events for the operators (pending ones are listed from the due index), and the
    # pruning of what was delivered.
    op.execute("CREATE INDEX outbox_failed_idx ON chat.outbox (pos) WHERE status = 'failed'")
    op.execute(
        "CREATE INDEX outbox_finished_idx ON chat.outbox (finished_at) "
        "WHERE status IN ('delivered', 'cancelled')"
    )
    # Response statistics: a participant's first message in a chat, from the index alone.
    op.execute(
        "CREATE INDEX messages_chat_sender_seq_idx "
        "ON chat.messages (chat_id, sender_id, seq) INCLUDE (created_at)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX chat.messages_chat_sender_seq_idx")
    op.execute("DROP TABLE chat.outbox")
