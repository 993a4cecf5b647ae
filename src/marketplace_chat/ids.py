"""Time-ordered ids (UUIDv7, RFC 9562) for the messages every send inserts.

A message id of random bits only (UUIDv4) puts each new row at a random place in the id index:
once the table holds millions of messages nearly every insert touches a page that no recent
insert touched, which is a read from disk when the index outgrows memory and, on its first write
after each checkpoint, a whole page in the WAL. The first 48 bits of a UUIDv7 are the Unix time
in milliseconds, so new ids land at the index's right edge; the other 74 are random, from the
operating system's CSPRNG, so ids stay unique and unguessable. The time they reveal is the
message's `createdAt`, which everyone who can read the message sees anyway.
"""

from __future__ import annotations

import os
from datetime import datetime

_VERSION = 0x7 << 76  # bits 76-79 of the 128
_VARIANT = 0x2 << 62  # bits 62-63: RFC 9562's variant, binary 10
_RANDOM_MASK = (1 << 80) - 1 & ~(0xF << 76) & ~(0x3 << 62)
_TIME_MASK = (1 << 48) - 1


class TimeOrderedIds:
    """UUIDv7 strings. The random bits come from the OS in blocks, one read for every
    `PER_READ` ids instead of one each (a system call per id was half of `uuid4`'s cost)."""

    PER_READ = 256
    _BYTES = 10  # 80 bits read per id, of which 74 are kept

    __slots__ = ("_block", "_next")

    def __init__(self) -> None:
        self._block = b""
        self._next = 0

    def new(self, at: datetime) -> str:
        """An id whose time part is `at` (an aware datetime) to the millisecond."""
        start = self._next
        if start + self._BYTES > len(self._block):
            self._block = os.urandom(self._BYTES * self.PER_READ)
            start = 0
        self._next = start + self._BYTES
        random = int.from_bytes(self._block[start : self._next], "big")
        millis = int(at.timestamp() * 1000) & _TIME_MASK
        h = f"{millis << 80 | random & _RANDOM_MASK | _VERSION | _VARIANT:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
