"""The marketplace layer's state: revisions, edits and deletes, moderation, blocks, reports.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each chat counts its changes (new messages, edits, deletes); a message's rev is the chat's
    # count at its last change. Every message so far was one change, in seq order.
    op.execute(
        """
        ALTER TABLE chat.chats
          ADD COLUMN rev bigint NOT NULL DEFAULT 0,
          ADD COLUMN contact_policy text
              CHECK (contact_policy IN ('mask', 'block', 'flag', 'off')),
          -- whether either participant has blocked the other, kept on the chat so that a send
          -- learns it from the row it locks anyway
          ADD COLUMN blocked boolean NOT NULL DEFAULT false
        """
    )
    op.execute("UPDATE chat.chats SET rev = last_seq WHERE last_seq > 0")
    op.execute(
        """
        ALTER TABLE chat.messages
          ADD COLUMN rev bigint NOT NULL DEFAULT 0,
          ADD COLUMN edited_at timestamptz,
          ADD COLUMN deleted_at timestamptz,
          ADD COLUMN moderation_action text CHECK (moderation_action IN ('masked', 'flagged')),
          ADD COLUMN moderation_categories text[],
          -- the text as sent when it differs from `text` (masked); moderators only
          ADD COLUMN original_text text
        """
    )
    op.execute("UPDATE chat.messages SET rev = seq")
    # What a client that was away must re-read: only changed messages are indexed, so a new
    # message writes no entry here.
    op.execute(
        "CREATE INDEX messages_changed_idx ON chat.messages (chat_id, rev) "
        "WHERE edited_at IS NOT NULL OR deleted_at IS NOT NULL"
    )
    # Earlier texts of edited messages, and the original of a deleted one, for moderators.
    op.execute(
        """
        CREATE TABLE chat.message_revisions (
            id          bigserial PRIMARY KEY,
            message_id  uuid NOT NULL REFERENCES chat.messages (id) ON DELETE CASCADE,
            text        text NOT NULL,
            at          timestamptz NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX message_revisions_message_idx ON chat.message_revisions (message_id, id)"
    )
    op.execute(
        """
        CREATE TABLE chat.blocks (
            blocker_id  bigint NOT NULL,
            blocked_id  bigint NOT NULL,
            created_at  timestamptz NOT NULL,
            PRIMARY KEY (blocker_id, blocked_id),
            CHECK (blocker_id <> blocked_id)
        )
        """
    )
    op.execute("CREATE INDEX blocks_blocked_idx ON chat.blocks (blocked_id, blocker_id)")
    op.execute(
        """
        CREATE TABLE chat.reports (
            id                uuid PRIMARY KEY,
            chat_id           uuid NOT NULL REFERENCES chat.chats (id),
            message_id        uuid REFERENCES chat.messages (id),
            reporter_id       bigint NOT NULL,
            reported_user_id  bigint NOT NULL,
            reason            text NOT NULL
                              CHECK (reason IN ('spam', 'fraud', 'abuse', 'contact', 'other')),
            comment           text,
            -- the conversation as it was when the report was filed, original texts included
            snapshot          jsonb NOT NULL,
            status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
            resolution        text CHECK (resolution IN ('dismissed', 'actioned')),
            note              text,
            resolved_at       timestamptz,
            created_at        timestamptz NOT NULL
        )
        """
    )
    # A repeated report of the same message (or of the same chat without one) is the first one.
    op.execute(
        "CREATE UNIQUE INDEX reports_once_key ON chat.reports "
        "(reporter_id, chat_id, COALESCE(message_id, '00000000-0000-0000-0000-000000000000'))"
    )
    op.execute("CREATE INDEX reports_status_idx ON chat.reports (status, created_at DESC, id DESC)")
    # Sends refused under the `block` policy: never a message, kept for moderators.
    op.execute(
        """
        CREATE TABLE chat.contact_attempts (
            id          uuid PRIMARY KEY,
            chat_id     uuid NOT NULL REFERENCES chat.chats (id),
            sender_id   bigint NOT NULL,
            text        text NOT NULL,
            categories  text[] NOT NULL,
            created_at  timestamptz NOT NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX contact_attempts_chat_idx ON chat.contact_attempts "
        "(chat_id, created_at DESC, id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE chat.contact_attempts")
    op.execute("DROP TABLE chat.reports")
    op.execute("DROP TABLE chat.blocks")
    op.execute("DROP TABLE chat.message_revisions")
    op.execute("DROP INDEX chat.messages_changed_idx")
    op.execute(
        "ALTER TABLE chat.messages DROP COLUMN rev, DROP COLUMN edited_at, DROP COLUMN deleted_at, "
        "DROP COLUMN moderation_action, DROP COLUMN moderation_categories, "
        "DROP COLUMN original_text"
    )
    op.execute(
        "ALTER TABLE chat.chats DROP COLUMN rev, DROP COLUMN contact_policy, DROP COLUMN blocked"
    )
