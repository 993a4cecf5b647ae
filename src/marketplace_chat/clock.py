"""Time, injected: the service asks a clock, and tests hand it one they can move."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current UTC time, aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
