"""How a group-commit batch settles when the database refuses some of its rows: the statement
itself is faked here; tests/integration/storage runs the real one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from marketplace_chat.errors import Unavailable
from marketplace_chat.models import Message, SendResult
from marketplace_chat.storage.base import NewMessage
from marketplace_chat.storage.group_commit import GroupCommitter

T0 = datetime(2026, 11, 26, tzinfo=UTC)
CHAT_ID = str(uuid.UUID(int=7))


def draft(text: str) -> NewMessage:
    return NewMessage(str(uuid.uuid4()), CHAT_ID, 1, text, None, None, T0)


def stored(message: NewMessage, seq: int = 1) -> SendResult:
    return SendResult(
        Message(message.id, message.chat_id, seq, message.sender_id, message.text, None, None, T0),
        created=True,
    )


class FakeCommitter(GroupCommitter):
    """The batch statement refuses any batch holding a text starting with "bad" (as PostgreSQL
    refuses a NUL); the single-message path refuses only that row."""

    def __init__(self, failure: Exception | None = None) -> None:
        super().__init__(pool=None, write_one=self._one, to_message=_unused, timeout_s=1.0)  # type: ignore[arg-type]
        self.failure = failure
        self.statements: list[int] = []
        self.singles: list[str] = []

    async def _write_batch(self, messages: list[NewMessage]) -> dict[int, asyncpg.Record]:
        self.statements.append(len(messages))
        if self.failure is not None:
            raise self.failure
        if any(m.text.startswith("bad") for m in messages):
            raise asyncpg.CharacterNotInRepertoireError("invalid byte sequence")
        return {i: _Row(m) for i, m in enumerate(messages, start=1)}  # type: ignore[misc]

    async def _one(self, message: NewMessage) -> SendResult | None:
        self.singles.append(message.text)
        if self.failure is not None:
            raise Unavailable("The database is unavailable") from self.failure
        if message.text.startswith("bad"):
            raise Unavailable("refused") from asyncpg.CharacterNotInRepertoireError("nul")
        return stored(message)


class _Row(dict[str, Any]):
    def __init__(self, message: NewMessage) -> None:
        super().__init__(message=message, created=True, blocked=False)


def _unused(row: Any) -> Message:
    return stored(row["message"]).message


async def send_all(committer: GroupCommitter, texts: list[str]) -> list[object]:
    return await asyncio.gather(
        *(committer.add(draft(text)) for text in texts), return_exceptions=True
    )


async def test_a_batch_that_succeeds_takes_one_statement() -> None:
    committer = FakeCommitter()
    results = await send_all(committer, [f"m{n}" for n in range(64)])
    assert all(isinstance(r, SendResult) for r in results)
    assert committer.statements == [64]
    assert committer.singles == []


async def test_one_refused_row_fails_alone_after_a_bisection() -> None:
    committer = FakeCommitter()
    texts = [f"m{n}" for n in range(64)]
    texts[37] = "bad"
    results = await send_all(committer, texts)
    failed = [n for n, r in enumerate(results) if not isinstance(r, SendResult)]
    assert failed == [37]
    assert isinstance(results[37], Unavailable)
    assert [r.message.text for r in results if isinstance(r, SendResult)] == [
        t for t in texts if t != "bad"
    ]
    # log2(64) halvings, two statements each, plus the first: not one statement per row.
    assert len(committer.statements) + len(committer.singles) <= 2 * 6 + 1
    assert "bad" in committer.singles


async def test_several_refused_rows_each_fail_alone() -> None:
    committer = FakeCommitter()
    texts = [f"bad{n}" if n % 10 == 3 else f"m{n}" for n in range(40)]
    results = await send_all(committer, texts)
    for text, result in zip(texts, results, strict=True):
        assert isinstance(result, Unavailable) == text.startswith("bad"), (text, result)


@pytest.mark.parametrize(
    "failure",
    [ConnectionResetError("reset"), TimeoutError(), asyncpg.CannotConnectNowError("starting")],
)
async def test_an_unreachable_database_fails_the_batch_without_bisecting(
    failure: Exception,
) -> None:
    committer = FakeCommitter(failure)
    results = await send_all(committer, [f"m{n}" for n in range(16)])
    assert all(r is failure for r in results)
    assert committer.statements == [16]
    assert committer.singles == []
