"""Alembic environment: everything, the version table included, lives in schema `chat`.

Several instances may start at once; a session-level advisory lock lets one migrate while the
others wait, so no two run the same DDL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

SCHEMA = "chat"
# A fixed key for pg_advisory_lock; it names no object, in `chat` or elsewhere.
MIGRATION_LOCK_KEY = 0x6D63_6861_7400  # "mchat\0"

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        try:
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            connection.commit()
            context.configure(
                connection=connection,
                version_table_schema=SCHEMA,
                include_schemas=False,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `marketplace-chat migrate`")
run_migrations_online()
