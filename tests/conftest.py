"""Session-wide PostgreSQL and Redis for the tests that need them.

With TEST_DATABASE_URL / TEST_REDIS_URL set (as `.ci/run` does with the machine's servers) those
are used; otherwise the embedded servers are started in a temporary folder and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketplace_chat.embedded import EmbeddedServers
from marketplace_chat.storage.migrate import upgrade


@pytest.fixture(scope="session")
def _embedded() -> Iterator[EmbeddedServers]:
    # Not under pytest's tmp folder: pytest narrows its permissions at every start, and the
    # embedded PostgreSQL runs as another system user when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="marketplace-chat-test-"))
    servers = EmbeddedServers(folder)
    yield servers
    servers.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = request.getfixturevalue("_embedded").start_postgres()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        url = request.getfixturevalue("_embedded").start_redis()
    return url
