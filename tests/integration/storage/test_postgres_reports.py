"""Reports on PostgreSQL: the snapshot (original texts, the window around the reported message)
survives later edits and deletes, a repeat or a racing duplicate is the first report, the event
rides along, and moderators page and resolve."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from marketplace_chat.errors import NotFound, ValidationFailed
from marketplace_chat.models import Chat
from marketplace_chat.storage.base import EventPolicy, NewReport
from marketplace_chat.storage.postgres import PostgresStorage
from marketplace_chat.storage.reports import PostgresReports

from ..conftest import DB_TIMEOUT_S
from ..helpers import at, new_chat, send

pytestmark = pytest.mark.integration

ON = EventPolicy(enabled=True, reminder_after_s=60.0)


@pytest.fixture
def reports(pool: asyncpg.Pool) -> PostgresReports:
    return PostgresReports(pool, DB_TIMEOUT_S, ON)


def filed(
    chat: Chat,
    reporter: int,
    message_id: str | None = None,
    *,
    when: datetime | None = None,
    reason: str = "fraud",
) -> NewReport:
    return NewReport(
        id=str(uuid.uuid4()),
        chat_id=chat.id,
        message_id=message_id,
        reporter_id=reporter,
        reported_user_id=chat.seller_id if reporter == chat.buyer_id else chat.buyer_id,
        reason=reason,
        comment="asks to pay by card off-site",
        created_at=when or at(100),
    )


async def test_the_snapshot_keeps_the_original_texts_through_later_edits_and_deletes(
    storage: PostgresStorage, reports: PostgresReports, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    hello = await send(storage, chat.id, buyer, "hello", when=at(1))
    scam = await send(storage, chat.id, seller, "pay me at [hidden]", when=at(2))
    # the contact check masked it: the text as sent is the original
    await pool.execute(
        "UPDATE chat.messages SET original_text = 'pay me at 8 999 123 45 67', "
        "moderation_action = 'masked', moderation_categories = '{phone}' WHERE id = $1",
        scam.id,
    )
    receipt, created = await reports.create_report(filed(chat, buyer, scam.id))
    assert created
    # the seller edits and then deletes after the report: the evidence stays as it was
    await pool.execute(
        "UPDATE chat.messages SET text = 'sorry', edited_at = $2 WHERE id = $1", scam.id, at(200)
    )
    await pool.execute(
        "UPDATE chat.messages SET original_text = COALESCE(original_text, text), text = '', "
        "deleted_at = $2 WHERE id = $1",
        hello.id,
        at(201),
    )
    report = await reports.get_report(receipt.id)
    assert report is not None
    assert (report.chat_id, report.message_id, report.reporter_id) == (chat.id, scam.id, buyer)
    assert (report.reported_user_id, report.reason, report.status) == (seller, "fraud", "open")
    assert report.snapshot == {
        "messageId": scam.id,
        "takenAt": "2026-11-26T01:12:12.123Z",
        "messages": [
            {
                "id": hello.id,
                "seq": 1,
                "senderId": buyer,
                "text": "hello",
                "createdAt": "2026-11-26T01:10:33.123Z",
                "editedAt": None,
                "deletedAt": None,
            },
            {
                "id": scam.id,
                "seq": 2,
                "senderId": seller,
                "text": "pay me at 8 999 123 45 67",
                "createdAt": "2026-11-26T01:10:34.123Z",
                "editedAt": None,
                "deletedAt": None,
            },
        ],
    }


async def test_a_message_deleted_before_the_report_shows_its_original_text(
    storage: PostgresStorage, reports: PostgresReports, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    gone = await send(storage, chat.id, seller, "insult", when=at(1))
    await pool.execute(
        "UPDATE chat.messages SET original_text = text, text = '', deleted_at = $2 WHERE id = $1",
        gone.id,
        at(2),
    )
    receipt, _ = await reports.create_report(filed(chat, buyer, gone.id, reason="abuse"))
    report = await reports.get_report(receipt.id)
    assert report is not None
    assert report.snapshot is not None
    [entry] = report.snapshot["messages"]
    assert (entry["text"], entry["deletedAt"]) == ("insult", "2026-11-26T01:10:34.123Z")


async def test_the_snapshot_is_the_message_and_50_before_it_or_the_chats_last_50(
    storage: PostgresStorage, reports: PostgresReports
) -> None:
    chat, buyer, seller = await new_chat(storage)
    sent = [await send(storage, chat.id, seller, f"m{i}", when=at(i)) for i in range(1, 71)]
    anchored, _ = await reports.create_report(filed(chat, buyer, sent[59].id))  # seq 60
    whole, _ = await reports.create_report(filed(chat, buyer))
    report = await reports.get_report(anchored.id)
    assert report is not None
    assert report.snapshot is not None
    assert [m["seq"] for m in report.snapshot["messages"]] == list(range(10, 61))
    report = await reports.get_report(whole.id)
    assert report is not None
    assert report.snapshot is not None
    assert report.snapshot["messageId"] is None
    assert [m["seq"] for m in report.snapshot["messages"]] == list(range(21, 71))


async def test_an_empty_chat_can_be_reported_with_an_empty_snapshot(
    storage: PostgresStorage, reports: PostgresReports
) -> None:
    chat, buyer, _ = await new_chat(storage)
    receipt, created = await reports.create_report(filed(chat, buyer))
    report = await reports.get_report(receipt.id)
    assert created
    assert report is not None
    assert report.snapshot is not None
    assert report.snapshot["messages"] == []


async def test_a_message_of_another_chat_is_not_found_and_nothing_is_filed(
    storage: PostgresStorage, reports: PostgresReports, pool: asyncpg.Pool
) -> None:
    chat, buyer, _ = await new_chat(storage)
    other, other_buyer, _ = await new_chat(storage)
    elsewhere = await send(storage, other.id, other_buyer, "hi")
    for message_id in (elsewhere.id, str(uuid.uuid4())):
        with pytest.raises(NotFound):
            await reports.create_report(filed(chat, buyer, message_id))
    assert await pool.fetchval("SELECT count(*) FROM chat.reports WHERE chat_id = $1", chat.id) == 0


async def test_a_repeat_and_racing_duplicates_are_the_first_report_with_one_event(
    storage: PostgresStorage, reports: PostgresReports, pool: asyncpg.Pool
) -> None:
    chat, buyer, seller = await new_chat(storage)
    message = await send(storage, chat.id, seller, "spam")
    results = await asyncio.gather(
        *(reports.create_report(filed(chat, buyer, message.id)) for _ in range(8))
    )
    assert sum(created for _, created in results) == 1
    assert len({receipt for receipt, _ in results}) == 1
    whole = await asyncio.gather(*(reports.create_report(filed(chat, buyer)) for _ in range(4)))
    assert sum(created for _, created in whole) == 1
    assert whole[0][0].id != results[0][0].id
    # the other participant's report of the same message is a report of its own
    _, theirs = await reports.create_report(filed(chat, seller, message.id))
    assert theirs
    rows = await pool.fetch(
        "SELECT data::text AS data FROM chat.outbox WHERE type = 'report.created' "
        "AND chat_id = $1 ORDER BY pos",
        chat.id,
    )
    assert len(rows) == 3
    first = json.loads(rows[0]["data"])["report"]
    receipt = next(r for r, created in results if created)
    assert first == {
        "id": receipt.id,
        "chatId": chat.id,
        "messageId": message.id,
        "reporterId": buyer,
        "reportedUserId": seller,
        "reason": "fraud",
        "createdAt": "2026-11-26T01:12:12.123Z",
    }


async def test_without_webhooks_a_report_writes_no_event(
    storage: PostgresStorage, pool: asyncpg.Pool
) -> None:
    quiet = PostgresReports(pool, DB_TIMEOUT_S)
    chat, buyer, _ = await new_chat(storage)
    await quiet.create_report(filed(chat, buyer))
    count = await pool.fetchval(
        "SELECT count(*) FROM chat.outbox WHERE type = 'report.created' AND chat_id = $1", chat.id
    )
    assert count == 0


async def test_moderators_page_open_reports_and_resolve_once(
    storage: PostgresStorage, reports: PostgresReports, pool: asyncpg.Pool
) -> None:
    # a century ahead of now, so that every other report (earlier runs' included) sorts after;
    # a millisecond apart, so that a run seconds after another never meets its reports
    now = datetime.now(UTC)
    when = now.replace(microsecond=now.microsecond // 1000 * 1000) + timedelta(days=36_500)
    ids = []
    for i in range(5):
        chat, buyer, _ = await new_chat(storage)
        moment = when + timedelta(milliseconds=i)
        receipt, _ = await reports.create_report(filed(chat, buyer, when=moment))
        ids.append(receipt.id)
    seen: list[str] = []
    cursor = None
    while len(seen) < 5:
        page = await reports.list_reports("open", 2, cursor)
        seen += [r.id for r in page.reports]
        assert all(r.snapshot is None for r in page.reports)
        cursor = page.next_cursor
        assert cursor is not None
    assert seen[:5] == list(reversed(ids))

    resolved = await reports.resolve_report(ids[0], "actioned", "warned", at(300))
    assert resolved is not None
    report, changed = resolved
    assert changed
    assert (report.status, report.resolution, report.note) == ("resolved", "actioned", "warned")
    assert report.resolved_at == at(300)
    assert report.snapshot is not None
    again = await reports.resolve_report(ids[0], "dismissed", None, at(400))
    assert again is not None
    assert not again[1]
    assert (again[0].resolution, again[0].resolved_at) == ("actioned", at(300))
    assert await reports.resolve_report(str(uuid.uuid4()), "dismissed", None, at(400)) is None
    assert await reports.get_report(str(uuid.uuid4())) is None
    done = await reports.list_reports("resolved", 100, None)
    assert ids[0] in [r.id for r in done.reports]
    still_open = await reports.list_reports("open", 5, None)
    assert ids[0] not in [r.id for r in still_open.reports]
    with pytest.raises(ValidationFailed):
        await reports.list_reports("open", 5, "not a cursor")
