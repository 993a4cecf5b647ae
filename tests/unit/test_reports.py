"""The rules of reports on in-memory collaborators: who may file, what is validated, whom a
report is about, and how moderators' requests are checked; plus the wire shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
import pytest

from marketplace_chat import wire
from marketplace_chat.errors import Forbidden, NotFound, ValidationFailed
from marketplace_chat.models import BlockState, Report, ReportReceipt
from marketplace_chat.payloads import MAX_REPORT_COMMENT, ReportCreate, parse
from marketplace_chat.reports import ReportRef, ReportResolve, Reports, ReportsQuery
from marketplace_chat.storage.base import NewReport, ReportPage

from .fakes import new_user_id
from .test_service import World, build


class MemoryReports:
    def __init__(self) -> None:
        self.filed: list[NewReport] = []

    async def create_report(self, report: NewReport) -> tuple[ReportReceipt, bool]:
        for old in self.filed:
            same = (old.reporter_id, old.chat_id, old.message_id)
            if same == (report.reporter_id, report.chat_id, report.message_id):
                return ReportReceipt(old.id, old.created_at), False
        self.filed.append(report)
        return ReportReceipt(report.id, report.created_at), True

    async def list_reports(self, status: str, limit: int, before: str | None) -> ReportPage:
        return ReportPage([], None)

    async def get_report(self, report_id: str) -> Report | None:
        return None

    async def resolve_report(
        self, report_id: str, resolution: str, note: str | None, now: datetime
    ) -> tuple[Report, bool] | None:
        return None


@pytest.fixture
def world() -> World:
    return build()


@pytest.fixture
def store() -> MemoryReports:
    return MemoryReports()


@pytest.fixture
def reports(world: World, store: MemoryReports) -> Reports:
    return Reports(store, world.service, world.clock)


def report(chat_id: str, **fields: Any) -> ReportCreate:
    return parse(ReportCreate, {"chatId": chat_id, "reason": "spam", **fields})


async def test_a_participant_files_a_report_about_the_other_participant(
    world: World, store: MemoryReports, reports: Reports
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    chat, _ = await world.storage.create_chat(buyer, seller, None, buyer, world.clock.now())
    receipt, created = await reports.file(seller, report(chat.id, comment="  rude  "))
    assert created
    assert receipt.created_at == world.clock.now()
    [filed] = store.filed
    assert (filed.reporter_id, filed.reported_user_id, filed.comment) == (seller, buyer, "rude")
    again, created = await reports.file(seller, report(chat.id, comment="again"))
    assert (again, created) == (receipt, False)


async def test_a_blank_comment_is_no_comment(
    world: World, store: MemoryReports, reports: Reports
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    chat, _ = await world.storage.create_chat(buyer, seller, None, buyer, world.clock.now())
    await reports.file(buyer, report(chat.id, comment="   "))
    assert store.filed[0].comment is None


async def test_only_participants_of_an_existing_chat_may_report(
    world: World, store: MemoryReports, reports: Reports
) -> None:
    buyer, seller = new_user_id(), new_user_id()
    chat, _ = await world.storage.create_chat(buyer, seller, None, buyer, world.clock.now())
    with pytest.raises(Forbidden):
        await reports.file(new_user_id(), report(chat.id))
    with pytest.raises(NotFound):
        await reports.file(buyer, report(str(uuid.uuid4())))
    assert store.filed == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"reason": "boring"}, "reason"),
        ({"reason": None}, "reason"),
        ({"comment": "x" * (MAX_REPORT_COMMENT + 1)}, "comment"),
        ({"comment": "\U0001f600" * (MAX_REPORT_COMMENT + 1)}, "comment"),
        ({"comment": "nul\x00"}, "comment"),
        ({"comment": "lone \ud800"}, "comment"),
        ({"comment": 5}, "comment"),
        ({"messageId": "not-a-uuid"}, "messageId"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_report_payloads_are_validated_by_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed, match=rf"^{field}: "):
        report(str(uuid.uuid4()), **fields)


def test_a_comment_of_1000_code_points_is_accepted_however_many_bytes() -> None:
    p = report(str(uuid.uuid4()), comment="\U0001f600" * MAX_REPORT_COMMENT)
    assert p.comment is not None
    assert len(p.comment) == MAX_REPORT_COMMENT


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (ReportsQuery, {"status": "closed"}, "status"),
        (ReportsQuery, {"limit": 0}, "limit"),
        (ReportsQuery, {"limit": 101}, "limit"),
        (ReportsQuery, {"limit": "5"}, "limit"),
        (ReportRef, {"id": "nope"}, "id"),
        (ReportResolve, {}, "resolution"),
        (ReportResolve, {"resolution": "ignored"}, "resolution"),
        (ReportResolve, {"resolution": "dismissed", "note": "x" * 2001}, "note"),
    ],
)
def test_moderators_requests_are_validated_by_field(
    model: Any, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed, match=rf"^{field}: "):
        parse(model, data)


async def test_an_unknown_report_is_not_found(reports: Reports) -> None:
    ref = ReportRef(id=str(uuid.uuid4()))
    with pytest.raises(NotFound):
        await reports.get(ref)
    with pytest.raises(NotFound):
        await reports.resolve(ref, ReportResolve(resolution="dismissed"))


# -- wire shapes -------------------------------------------------------------------------------

AT = datetime.fromisoformat("2026-11-26T01:10:32.123456+00:00")


def holds(model: type[wire.Out], body: dict[str, Any]) -> None:
    parsed = model.model_validate_json(orjson.dumps(body))
    assert parsed.model_dump(by_alias=True, mode="json", exclude_unset=True) == body


def sample_report(**changes: Any) -> Report:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "chat_id": str(uuid.uuid4()),
        "message_id": None,
        "reporter_id": 7,
        "reported_user_id": 8,
        "reason": "contact",
        "comment": None,
        "status": "open",
        "resolution": None,
        "note": None,
        "resolved_at": None,
        "created_at": AT,
    }
    return Report(**{**fields, **changes})


def test_block_and_report_answers_match_their_wire_models() -> None:
    holds(wire.BlockState, BlockState(7, True).to_wire())
    holds(wire.BlockedUsers, {"userIds": [7, 8]})
    holds(wire.ReportReceipt, ReportReceipt(str(uuid.uuid4()), AT).to_wire())
    holds(wire.Report, sample_report().to_wire())
    resolved = sample_report(
        message_id=str(uuid.uuid4()),
        comment="x",
        status="resolved",
        resolution="actioned",
        note="warned",
        resolved_at=AT,
    )
    holds(wire.Report, resolved.to_wire())
    snapshot = {
        "messageId": None,
        "takenAt": "2026-11-26T01:10:32.123Z",
        "messages": [
            {
                "id": str(uuid.uuid4()),
                "seq": 1,
                "senderId": 8,
                "text": "call me",
                "createdAt": "2026-11-26T01:10:30.000Z",
                "editedAt": None,
                "deletedAt": "2026-11-26T01:10:31.000Z",
            }
        ],
    }
    holds(wire.ReportWithSnapshot, sample_report(snapshot=snapshot).to_wire())
    holds(wire.ReportsPage, {"reports": [sample_report().to_wire()], "nextCursor": None})
