"""Run the Alembic migrations of schema `chat`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_url(dsn: str) -> str:
    """The SQLAlchemy URL for a libpq DSN (Alembic runs on the synchronous psycopg driver)."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn.removeprefix(prefix)
    return dsn


def upgrade(dsn: str, revision: str = "head") -> None:
    """Bring schema `chat` to `revision`; blocking, so the service runs it in a thread."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would read a % in a password as a directive.
    config.set_main_option("sqlalchemy.url", alembic_url(dsn).replace("%", "%%"))
    command.upgrade(config, revision)
