from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from marketplace_chat.ids import TimeOrderedIds

AT = datetime(2026, 12, 3, 18, 30, 15, 123456, tzinfo=UTC)


def test_an_id_is_a_uuidv7_whose_time_is_the_given_one_to_the_millisecond() -> None:
    made = TimeOrderedIds().new(AT)
    parsed = uuid.UUID(made)
    assert str(parsed) == made
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert datetime.fromtimestamp((parsed.int >> 80) / 1000, UTC) == AT.replace(microsecond=123000)


def test_ids_are_unique_and_follow_time_across_many_reads_of_randomness() -> None:
    ids = TimeOrderedIds()
    made = [ids.new(AT + timedelta(milliseconds=n // 3)) for n in range(10 * ids.PER_READ)]
    assert len(set(made)) == len(made)
    # Ids of later milliseconds sort after earlier ones: the index grows at its right edge.
    prefixes = [m[:13] for m in made]
    assert prefixes == sorted(prefixes)
    assert len(set(prefixes)) == len(made) // 3 + (len(made) % 3 > 0)


def test_the_random_part_differs_between_ids_of_the_same_millisecond() -> None:
    ids = TimeOrderedIds()
    tails = {uuid.UUID(ids.new(AT)).int & ((1 << 74) - 1) for _ in range(1000)}
    assert len(tails) == 1000
