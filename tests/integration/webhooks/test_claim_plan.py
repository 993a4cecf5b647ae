"""A claim's cost follows what it claims, whatever the statistics say about the outbox.

Between bursts nothing is pending, and a vacuum then records the pending events' indexes as
empty; PostgreSQL believes that until the next one. A backlog that arrives meanwhile (a receiver
back after an outage) must still be claimed through the lane index and the primary key: read
from an index of every pending event instead, each claim read the whole backlog once per lane.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from marketplace_chat.storage.outbox import CLAIM, CLAIM_SCAN

pytestmark = pytest.mark.integration

LANES = 300
PER_LANE = 10
CLAIM_LANES = 64
RUN = 4

# A backlog in lanes of their own, due since 2000 (so that the claim meets it before any other
# test's pending events); written and claimed inside one transaction that is rolled back, so no
# other test ever sees it.
BACKLOG = """
INSERT INTO chat.outbox (type, lane, chat_id, data, created_at, next_attempt_at)
SELECT 'chat.created', lanes.id, lanes.id, '{}'::jsonb, $3, $3
  FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)) lanes,
       generate_series(1, $2) g
 ORDER BY g
"""


def scans(
    node: dict[str, Any], cte: str | None = None
) -> Iterator[tuple[str | None, str, str | None]]:
    """(the CTE it serves, node type, index name) of every scan of chat.outbox in a JSON plan."""
    name = node.get("Subplan Name", "")
    cte = name.removeprefix("CTE ") if name.startswith("CTE ") else cte
    if node.get("Relation Name") == "outbox" and node["Node Type"] != "ModifyTable":
        yield cte, node["Node Type"], node.get("Index Name")
    for child in node.get("Plans", []):
        yield from scans(child, cte)


async def test_a_backlog_after_a_vacuum_of_an_idle_outbox_is_claimed_by_its_lanes(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("VACUUM (ANALYZE) chat.outbox")
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(BACKLOG, LANES, PER_LANE, datetime(2000, 1, 1, tzinfo=UTC))
            token = str(uuid.uuid4())
            stmt = await conn.prepare(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {CLAIM}")
            out = await stmt.fetchval(
                now, CLAIM_LANES, token, now + timedelta(seconds=30), CLAIM_SCAN, RUN
            )
            leased = await conn.fetchval(
                "SELECT count(*) FROM chat.outbox WHERE lease_token = $1", token
            )
        finally:
            await tx.rollback()
    plan = json.loads(out)[0]["Plan"]
    used = list(scans(plan))
    assert leased == CLAIM_LANES * RUN
    # The look at what is due is the one reader of the due index (or, while the outbox is small,
    # of the table); a lane's next events come from the lane index and the candidates from the
    # primary key.
    look = {(kind, index) for cte, kind, index in used if cte == "look"}
    assert look in ({("Index Scan", "outbox_unfinished_idx")}, {("Seq Scan", None)})
    rest = {(kind, index) for cte, kind, index in used if cte != "look"}
    assert ("Index Scan", "outbox_lane_idx") in rest
    assert {index for _, index in rest} == {"outbox_lane_idx", "outbox_pkey"}
    # What it read: a few pages per claimed event, not the backlog once per lane.
    assert plan["Shared Hit Blocks"] + plan["Shared Read Blocks"] < 40 * leased
