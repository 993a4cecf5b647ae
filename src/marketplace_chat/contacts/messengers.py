"""A messenger's name next to a handle or a number: "тг ivan_petrov", "ватсап 8 916…",
"ivan_petrov в телеге". The name alone ("есть телеграм?") is not a contact detail."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from itertools import accumulate

from marketplace_chat.contacts.words import ENGLISH_WORDS, MESSENGER_NAME_RE

_FILLER = (
    r"(?:[\s:;,\-–—=>()\[\]]|\b(?:в|во|на|по|мой|моя|мне|мой\s+ник|ник|нику|ника|ником|логин|id|айди|nick|"
    r"username|user|login|my|me|on|in|at|is|номер|номеру|тел|есть|пиши|пишите|напиши|"
    r"напишите|звони|звоните|стучи|стучите|добавляйся|add|"
    # Who and how to look up: "в тг я ivan_p", "в телеге ищи ivan_p", "on telegram i'm ivan_p".
    r"я|меня|как|ищи|ищите|найди|найдите|найдешь|найдёшь|добавь|добавьте|добавляйтесь|под|ником|"
    r"ya|menya|kak|ishi|naidi|dobav|find|search|i'm|im|as)\b)*"
)
_AFTER_RE = re.compile(
    rf"{_FILLER}(?:(?P<handle>@?[a-z_][a-z0-9_.]{{2,31}}[a-z0-9_])|(?P<number>[+(]?[0-9]))"
)
_CUE_RE = re.compile(r"[:=]|ник|логин|nick|username|login|user|id|айди")
_BEFORE_RE = re.compile(
    r"(?P<handle>@?[a-z_][a-z0-9_.]{2,31}[a-z0-9_])[\s:;,\-–—()\[\]]{0,4}"
    r"(?:(?:в|во|на|по|in|on|via|это|мой|моя|мои|my|is|its|it's)\s+){0,3}[(\[]?$"
)
_WINDOW = 40


def _plain_handle_ok(handle: str, name: str, cue: str) -> bool:
    if handle.startswith("@"):
        return True
    if handle in ENGLISH_WORDS or MESSENGER_NAME_RE.fullmatch(handle):
        return False
    if any(c in handle for c in "0123456789_."):
        return True
    # After a Russian spelling ("тг ivanpetrov") or a cue ("telegram: ivanpetrov") a Latin word is
    # a handle; after "telegram" in an English sentence it is more often just the next word.
    return not name.isascii() or _CUE_RE.search(cue) is not None


class _Spans:
    """Spans answering "does any overlap this one" and "which lie near this one": by a plain scan
    for the few spans a message has, by bisection over sorted copies when there are many, so a
    message full of names and numbers costs no more than it is long."""

    _FEW = 16

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.spans = spans
        self.many = len(spans) > self._FEW
        if self.many:
            self.spans = sorted(spans)
            self.starts = [s for s, _ in self.spans]
            self.max_end = list(accumulate((e for _, e in self.spans), max))
            self.by_end = sorted(spans, key=lambda span: span[1])
            self.ends = [e for _, e in self.by_end]

    def overlaps(self, start: int, end: int) -> bool:
        if not self.many:
            return any(s < end and start < e for s, e in self.spans)
        i = bisect_left(self.starts, end)
        return i > 0 and self.max_end[i - 1] > start

    def near(self, start: int, end: int) -> list[tuple[int, int]]:
        """Spans starting within ``_WINDOW`` after ``end`` or ending within it before ``start``
        (a superset when there are few)."""
        if not self.many:
            return self.spans
        after = self.spans[bisect_left(self.starts, end) : bisect_right(self.starts, end + _WINDOW)]
        lo, hi = bisect_left(self.ends, start - _WINDOW), bisect_right(self.ends, start)
        return after + self.by_end[lo:hi]


def find_messengers(
    view: str,
    phones: list[tuple[int, int]],
    taken: list[tuple[int, int]],
) -> list[tuple[int, int]]:
    """Spans of messenger mentions: the name, and the handle beside it when there is one.
    ``phones`` are the numbers found; ``taken`` spans (links, e-mails) hold no handle."""
    found: list[tuple[int, int]] = []
    numbers = addresses = None
    for match in MESSENGER_NAME_RE.finditer(view):
        if numbers is None or addresses is None:
            numbers, addresses = _Spans(phones), _Spans(taken)
        name = match.group()
        start, end = match.span()
        after = _AFTER_RE.match(view, end, min(len(view), end + _WINDOW))
        if after is not None:
            if after.group("number") is not None:
                at = after.start("number")
                if numbers.overlaps(at, at + 2):
                    found.append((start, end))
                    continue
            else:
                h_start, h_end = after.span("handle")
                if not addresses.overlaps(h_start, h_end) and _plain_handle_ok(
                    after.group("handle"), name, view[end:h_start]
                ):
                    found.append((start, h_end))
                    continue
        if any(_same_clause(view, start, end, s, e) for s, e in numbers.near(start, end)):
            # "на вацап скинь фото 8 905…", "8 905… это вотсап": words between the name and the
            # number do not make the number any less an invitation to that messenger.
            found.append((start, end))
            continue
        window = view[max(0, start - _WINDOW) : start]
        before = _BEFORE_RE.search(window)
        if before is not None:
            h_start = max(0, start - _WINDOW) + before.start("handle")
            h_end = max(0, start - _WINDOW) + before.end("handle")
            if not addresses.overlaps(h_start, h_end) and _plain_handle_ok(
                before.group("handle"), name, ""
            ):
                found.append((h_start, end))
    return found


_ONLY_FILLER_RE = re.compile(rf"{_FILLER}\Z")


def names_before(view: str, starts: list[int]) -> list[int | None]:
    """For each position in ``starts``, where a messenger's name starts when the text there
    follows it with only filler between ("инст lisa.art.studio", "тг - vanya.pro": a handle
    that merely looks like a host), else ``None``. One pass over the names, whatever the count."""
    if not starts:
        return []
    names = [m.span() for m in MESSENGER_NAME_RE.finditer(view)]
    ends = [e for _, e in names]
    out: list[int | None] = []
    for start in starts:
        i = bisect_right(ends, start) - 1
        if i < 0 or start - ends[i] > _WINDOW:
            out.append(None)
            continue
        filler = _ONLY_FILLER_RE.match(view, ends[i], start) is not None
        out.append(names[i][0] if filler else None)
    return out


_SENTENCE_END_RE = re.compile(r"[.!?…](?:\s|$)|\n")
# "вотсап не пользуюсь, звони 8 905…": the messenger is turned down, the number is for calls.
_NEGATION_RE = re.compile(
    r"(?<![a-zа-яё])(?:не|нет|нету|без|никаких|никакого|no|not|don'?t|dont|without)(?![a-zа-яё])"
)
# The two words after the name: "8 905… вотсап нету".
_NEXT_WORDS_RE = re.compile(r"[^\S\n]*[a-zа-яё']*[^\S\n]*[a-zа-яё']*")


def _same_clause(view: str, start: int, end: int, p_start: int, p_end: int) -> bool:
    """A number within ``_WINDOW`` characters of the name ``view[start:end]``, with no sentence
    end between them."""
    if end <= p_start <= end + _WINDOW:
        between = view[end:p_start]
    elif start - _WINDOW <= p_end <= start:
        between = view[p_end:start]
    else:
        return False
    if _SENTENCE_END_RE.search(between) is not None or _NEGATION_RE.search(between) is not None:
        return False
    before = view[max(0, start - 12) : start]
    after = _NEXT_WORDS_RE.match(view, end)
    return _NEGATION_RE.search(before + " " + (after.group() if after else "")) is None
