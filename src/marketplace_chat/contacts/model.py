"""What a scan reports: spans of the original text, each with the kind of contact detail in it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Category = Literal["phone", "email", "link", "messenger"]

#: The order `Detection.categories` lists them in, so a moderation record is the same for the
#: same message whichever detector found what first.
CATEGORY_ORDER: tuple[Category, ...] = ("email", "link", "messenger", "phone")


@dataclass(frozen=True, slots=True)
class Finding:
    """One contact detail: ``text[start:end]`` of the text that was scanned (not a normalised copy),
    so the span can be masked in what the sender wrote."""

    category: Category
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Detection:
    """Everything found in one message, ordered by position."""

    findings: tuple[Finding, ...] = ()

    @property
    def categories(self) -> tuple[Category, ...]:
        """Distinct categories in a fixed (alphabetical) order, for moderation records."""
        present = {f.category for f in self.findings}
        return tuple(c for c in CATEGORY_ORDER if c in present)

    def __bool__(self) -> bool:
        return bool(self.findings)


def mask(text: str, findings: Sequence[Finding], placeholder: str = "[hidden]") -> str:
    """``text`` with every finding replaced by ``placeholder``; overlapping or touching spans become
    one placeholder, so a number found both as a phone and in a messenger mention is hidden once."""
    spans = sorted((max(0, f.start), min(len(text), f.end)) for f in findings if f.end > f.start)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    cur_start, cur_end = spans[0]
    for start, end in spans[1:]:
        if start <= cur_end:
            cur_end = max(cur_end, end)
            continue
        out.append(text[pos:cur_start])
        out.append(placeholder)
        pos = cur_end
        cur_start, cur_end = start, end
    out.append(text[pos:cur_start])
    out.append(placeholder)
    out.append(text[cur_end:])
    return "".join(out)
