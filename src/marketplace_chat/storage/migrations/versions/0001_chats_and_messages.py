"""Chats, messages, product context and read pointers.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE chat.chats (
            id              uuid PRIMARY KEY,
            buyer_id        bigint NOT NULL CHECK (buyer_id > 0),
            seller_id       bigint NOT NULL CHECK (seller_id > 0),
            created_at      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL,
            -- the seq of the newest message; bumped in the sending transaction, which also
            -- serialises the sends of one chat and so keeps seq gapless and in commit order
            last_seq        integer NOT NULL DEFAULT 0,
            CONSTRAINT chats_pair_key UNIQUE (buyer_id, seller_id),
            CONSTRAINT chats_distinct_users CHECK (buyer_id <> seller_id)
        )
        """
    )
    # The inbox: a user's chats by last activity, as buyer and as seller.
    op.execute(
        "CREATE INDEX chats_buyer_activity_idx ON chat.chats (buyer_id, updated_at DESC, id DESC)"
    )
    op.execute(
        "CREATE INDEX chats_seller_activity_idx ON chat.chats (seller_id, updated_at DESC, id DESC)"
    )
    op.execute(
        """
        CREATE TABLE chat.messages (
            id                uuid PRIMARY KEY,
            chat_id           uuid NOT NULL REFERENCES chat.chats (id) ON DELETE CASCADE,
            seq               integer NOT NULL CHECK (seq > 0),
            sender_id         bigint NOT NULL,
            text              text NOT NULL,
            product_id        bigint,
            client_message_id text,
            created_at        timestamptz NOT NULL,
            CONSTRAINT messages_client_id_key UNIQUE (chat_id, sender_id, client_message_id)
        )
        """
    )
    # History, catch-up and unread counts all walk one chat's messages by seq; sender_id is
    # included so that unread counts are answered from the index alone.
    op.execute(
        "CREATE UNIQUE INDEX messages_chat_seq_key "
        "ON chat.messages (chat_id, seq) INCLUDE (sender_id)"
    )
    op.execute(
        """
        CREATE TABLE chat.chat_context (
            chat_id    uuid PRIMARY KEY REFERENCES chat.chats (id) ON DELETE CASCADE,
            product_id bigint,
            updated_at timestamptz NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE chat.read_pointers (
            chat_id    uuid NOT NULL REFERENCES chat.chats (id) ON DELETE CASCADE,
            user_id    bigint NOT NULL,
            seq        integer NOT NULL,
            message_id uuid NOT NULL,
            read_at    timestamptz NOT NULL,
            PRIMARY KEY (chat_id, user_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE chat.read_pointers")
    op.execute("DROP TABLE chat.chat_context")
    op.execute("DROP TABLE chat.messages")
    op.execute("DROP TABLE chat.chats")
