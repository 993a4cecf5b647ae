"""Phone numbers: 7 or more digits, written with any separators, as words, or both.

The text is read as a row of digit groups (a run of digits, or a run of number words); groups that
follow each other with only separators between them form one candidate. A candidate of 7 or more
digits is a phone unless it reads as a price, a date, a time, a list of sizes or a range.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import pairwise

import phonenumbers

from marketplace_chat.contacts.words import (
    CURRENCY_AFTER_RE,
    CURRENCY_BEFORE_RE,
    NUMBER_GLUE,
    NUMBER_WORDS,
)

MIN_DIGITS = 7

_LETTER_ZERO_RE = re.compile(r"[0-9][oоз]|[oоз][0-9]")
_DIGIT_RUN_RE = re.compile(r"(?<![a-zа-яё])[0-9oоз]*[0-9][0-9oоз]*(?![a-zа-яё])")
_LETTER_DIGITS = str.maketrans({"o": "0", "о": "0", "з": "3"})

# Dates (12.05.2026, 2026-05-12, 12/05/26, 12.05.26) and times (18:30, 9:00:15). A date with a
# two-digit year needs dots or slashes: dashes of that shape are the tail of a phone (12-05-26).
_DATE_TIME_RE = re.compile(
    r"(?<![0-9])(?<![0-9][./-])(?:"
    r"(?:0?[1-9]|[12][0-9]|3[01])([./-])(?:0?[1-9]|1[0-2])\1(?:19|20)[0-9]{2}"
    r"|(?:0?[1-9]|[12][0-9]|3[01])([./])(?:0?[1-9]|1[0-2])\2[0-9]{2}"
    r"|(?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r")(?![0-9]|[./][0-9])"
    # A day and month without the year (12.05, 15.05-17.05).
    r"|(?<![0-9])(?<![0-9][./-])(?:0?[1-9]|[12][0-9]|3[01])\.(?:0[1-9]|1[0-2])(?![0-9]|[./][0-9])"
    # Times, alone or as ranges (18:30, 9:00-18:00).
    r"|(?<![0-9])(?<![0-9][.:])(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?(?![0-9]|[.:][0-9])"
)

# Codes that a number after them is: standards, registry and serial numbers (ГОСТ 31399-2009,
# ISBN 978-5-17-1, ИНН 7701234567), not a phone.
_CODE_BEFORE_RE = re.compile(
    r"(?:гост|ту|isbn|issn|инн|огрн|огрнип|кпп|бик|окпд|оквэд|снилс|imei|vin|s/n|sn|серийный|"
    r"серийник|р/с|к/с|счет|счёт|iso|din|en)\s{0,2}(?:р\s?|№|no\.?|n)?[:#]?\s{0,2}$"
)

_SEVEN_DIGITS_RE = re.compile(r"[0-9](?:[^0-9]{0,12}[0-9]){6}")
_ITEM_RE = re.compile(
    r"[0-9]+|(?<![^\W\d_])(?:"
    + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
    + r")(?![^\W\d_])"
)
_GLUE_RE = re.compile(r"(?<![^\W\d_])(?:" + "|".join(NUMBER_GLUE) + r")(?![^\W\d_])")
_DATE_HINT_RE = re.compile(r"[0-9][./:-][0-9]")

_SEPARATORS = frozenset(" \t\r\n\u00a0-‐‑‒–—―−.·•()[]{}<>/\\|_+'\"`~:;!?…")
_MAX_GAP = 5


@dataclass(slots=True)
class _Group:
    start: int
    end: int
    digits: str
    spelt: bool


def phone_view(text: str) -> str:
    """``text`` with the letters o/о/з read as 0/3 inside runs of digits ("8 9оо 12з")."""
    if not _LETTER_ZERO_RE.search(text):
        return text
    return _DIGIT_RUN_RE.sub(lambda m: m.group().translate(_LETTER_DIGITS), text)


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "#" * (end - start)
    return "".join(chars)


def _gap_joins(gap: str) -> bool:
    if len(gap) > _MAX_GAP and not gap.isspace():
        return False
    if len(gap) > 12:
        return False
    if ", " in gap or ",\n" in gap:
        return False
    for char in gap:
        if char in _SEPARATORS or char == ",":
            continue
        if unicodedata.category(char) in ("So", "Sk") and char not in "№×":
            continue  # emoji between digits
        return False
    return True


def _spelt_groups(words: list[tuple[int, int, int, str]]) -> list[_Group]:
    """Number words in a row as digit groups: "восемьсот девяносто пять" is 895, "двадцать три"
    23, "восемь девять один" 8 9 1, "eight hundred five" 805."""
    groups: list[_Group] = []
    i = 0
    while i < len(words):
        start, end, value, kind = words[i]
        if kind == "u" and i + 1 < len(words) and words[i + 1][2] == 100 and words[i + 1][3] == "h":
            # "eight hundred": the unit counts hundreds.
            end, value, kind = words[i + 1][1], value * 100, "h"
            i += 1
        total, width = value, {"u": 1, "t": 2, "d": 2, "h": 3}[kind]
        i += 1
        if kind == "h" and i < len(words) and words[i][3] in "dtu":
            _, end, tens, tkind = words[i]
            i += 1
            if tkind == "d" and i < len(words) and words[i][3] == "u" and words[i][2] != 0:
                end, tens = words[i][1], tens + words[i][2]
                i += 1
            total += tens
        elif kind == "d" and i < len(words) and words[i][3] == "u" and words[i][2] != 0:
            end, total = words[i][1], total + words[i][2]
            i += 1
        groups.append(_Group(start, end, str(total).zfill(width), True))
    return groups


def _groups(view: str) -> list[list[_Group]]:
    """Runs of digit groups with only separators between them. Only digits and number words are
    read; any other word between two of them is not a separator, so it ends the run."""
    runs: list[list[_Group]] = []
    current: list[_Group] = []
    words: list[tuple[int, int, int, str]] = []

    def append(group: _Group) -> None:
        nonlocal current
        if current and not _gap_joins(view[current[-1].end : group.start]):
            runs.append(current)
            current = []
        current.append(group)

    def flush_words() -> None:
        nonlocal words
        if words:
            for group in _spelt_groups(words):
                append(group)
            words = []

    for match in _ITEM_RE.finditer(view):
        token = match.group()
        start, end = match.span()
        if token[0].isdigit():
            flush_words()
            if (start and view[start - 1].isalpha()) or (end < len(view) and view[end].isalpha()):
                # Part of a code such as RA123456789RU or id12345678.
                if current:
                    runs.append(current)
                    current = []
                continue
            append(_Group(start, end, token, False))
            continue
        value, kind = NUMBER_WORDS[token.replace("ё", "е")]
        if words and not _gap_joins(_GLUE_RE.sub("", view[words[-1][1] : start])):
            flush_words()
        words.append((start, end, value, kind))
    flush_words()
    if current:
        runs.append(current)
    return runs


def _is_progression(run: list[_Group]) -> bool:
    """Sizes or quantities listed in steps: 40 42 44 46, 48-50-52-54."""
    if len(run) < 3 or any(len(g.digits) > 3 for g in run):
        return False
    values = [int(g.digits) for g in run]
    steps = {b - a for a, b in pairwise(values)}
    return len(steps) == 1 and 0 < abs(next(iter(steps))) <= 10


def _is_thousands(run: list[_Group], view: str) -> bool:
    """A number grouped by thousands: 2 500 000, 1.500.000, 1'200'000."""
    if len(run) < 2 or run[0].spelt or len(run[0].digits) > 3:
        return False
    if any(len(g.digits) != 3 or g.spelt for g in run[1:]):
        return False
    gaps = {view[a.end : b.start] for a, b in pairwise(run)}
    return len(gaps) == 1 and gaps <= {" ", ".", ",", "'", "\u2009", "\u202f"}


def _is_range(run: list[_Group], view: str) -> bool:
    """Two amounts as a range: 1500-2500, 10000–15000."""
    if len(run) != 2:
        return False
    a, b = run
    if view[a.end : b.start].strip() not in ("-", "–", "—", "−"):
        return False
    if len(a.digits) == len(b.digits) == 4 and "1900" <= a.digits < b.digits <= "2099":
        return True  # years: 2019-2021
    if not (3 <= len(a.digits) <= 6 and 3 <= len(b.digits) <= 6):
        return False
    return int(a.digits) < int(b.digits) and a.digits.endswith("0") and b.digits.endswith("0")


def _looks_dialable(digits: str, plus: bool) -> bool:
    """A Russian (or, after a plus, any country's) number that the numbering plan accepts."""
    try:
        number = phonenumbers.parse(("+" if plus else "") + digits, None if plus else "RU")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def find_phones(view: str, blocked: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans of phone numbers in the normalised ``view``; ``blocked`` spans (links, e-mails,
    dates) are not read."""
    if _SEVEN_DIGITS_RE.search(view) is None and not _maybe_spelt(view):
        return []  # fewer than seven digits close together, and no number words
    view = phone_view(view)
    dates = [m.span() for m in _DATE_TIME_RE.finditer(view)] if _DATE_HINT_RE.search(view) else []
    view = _blank(view, blocked + dates)
    found: list[tuple[int, int]] = []
    for run in _groups(view):
        digits = "".join(g.digits for g in run)
        if len(digits) < MIN_DIGITS:
            continue
        start, end = run[0].start, run[-1].end
        plus = "+" in view[max(0, start - 3) : start]
        if not _is_phone(run, digits, plus, view, start, end):
            continue
        while start > 0 and view[start - 1] in "+( ":
            if view[start - 1] == " " and (start < 2 or view[start - 2] not in "+("):
                break
            start -= 1
        if end < len(view) and view[end] == ")":
            end += 1
        found.append((start, end))
    return found


def _is_phone(run: list[_Group], digits: str, plus: bool, view: str, start: int, end: int) -> bool:
    if CURRENCY_AFTER_RE.match(view, end):
        return False
    before = view[max(0, start - 16) : start]
    priced = CURRENCY_BEFORE_RE.search(before) is not None
    if all(g.spelt for g in run) and len(run) < 3:
        return not priced
    ru_like = (
        plus
        or (digits[0] in "78" and len(digits) == 11)
        or (digits[0] == "9" and len(digits) == 10)
    )
    if priced and (len(run) == 1 or _is_thousands(run, view)) and not plus:
        return False
    if _CODE_BEFORE_RE.search(before):
        return False
    if _is_progression(run) or _is_range(run, view):
        return _looks_dialable(digits, plus)
    return not (_is_thousands(run, view) and len(digits) <= 9 and not ru_like)


_SPELT_HINT_RE = re.compile(
    r"(?<![a-zа-яё])(?:"
    + "|".join(
        sorted((w for w in NUMBER_WORDS if w not in ("раз", "oh", "one")), key=len, reverse=True)
    )
    + r")(?![a-zа-яё])"
)


def _maybe_spelt(view: str) -> bool:
    return _SPELT_HINT_RE.search(view) is not None
