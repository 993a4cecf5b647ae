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

# A digit next to o/о/з, or o/о after a digit and a separator; one class first, so the engine
# passes over other characters quickly.
_LETTER_ZERO_RE = re.compile(r"[0-9oоз](?:(?<=[0-9])(?:[oоз]|[ .\-][oо])|(?<=[oоз])[0-9])")
_DIGIT_RUN_RE = re.compile(r"(?<![a-zа-яё])[0-9oоз]*[0-9][0-9oоз]*(?![a-zа-яё])")
_LETTER_DIGITS = str.maketrans({"o": "0", "о": "0", "з": "3"})
# A group of zeros typed as letters on its own between digit groups: "+7 985 ООО 11 22".
_LONE_ZEROS_RE = re.compile(r"(?<=[0-9][ .\-])[oо]{1,4}(?=[ .\-][0-9])")

# Dates (12.05.2026, 2026-05-12, 12/05/26, 12.05.26) and times (18:30, 9:00:15). A date with a
# two-digit year needs dots or slashes: dashes of that shape are the tail of a phone (12-05-26).
# Every branch starts with a digit; the lookahead in front lets the engine skip other positions
# without trying each branch's lookbehinds there (several times faster on long descriptions).
_DATE_TIME_RE = re.compile(
    r"(?=[0-9])(?:"
    # The second date of a range (20.12.2023-10.01.2024) follows a year and a dash; other digits
    # and a dash before it make it the tail of a phone (8-916-12.05.26).
    r"(?<![0-9])(?<![0-9][./])(?:(?<=(?:19|20)[0-9]{2}-)|(?<![0-9]-))(?:"
    r"(?:0?[1-9]|[12][0-9]|3[01])([./-])(?:0?[1-9]|1[0-2])\1(?:19|20)[0-9]{2}"
    r"|(?:0?[1-9]|[12][0-9]|3[01])([./])(?:0?[1-9]|1[0-2])\2[0-9]{2}"
    r"|(?:19|20)[0-9]{2}(?P<ysep>[-/.])(?:0[1-9]|1[0-2])(?P=ysep)(?:0[1-9]|[12][0-9]|3[01])"
    r")(?![0-9]|[./][0-9])"
    # A day and month without the year (12.05, 15.05-17.05).
    r"|(?<![0-9])(?<![0-9][./-])(?:0?[1-9]|[12][0-9]|3[01])\.(?:0[1-9]|1[0-2])(?![0-9]|[./][0-9])"
    # Times, alone or as ranges (18:30, 9:00-18:00).
    r"|(?<![0-9])(?<![0-9][.:])(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?(?![0-9]|[.:][0-9])"
    # Times with a dot, as a range only (9.00-13.00): one alone may be two groups of a phone.
    r"|(?<![0-9])(?<![0-9][.:-])(?:[01]?[0-9]|2[0-3])\.[0-5][0-9]\s{0,2}[-–—]\s{0,2}"
    r"(?:[01]?[0-9]|2[0-3])\.[0-5][0-9](?![0-9]|[.:][0-9])"
    r")"
)
# A latitude and a longitude in decimal degrees (55.751244, 37.618423): four or more decimals each.
_COORDINATES_RE = re.compile(
    r"(?<![0-9.,])-?(?:[0-8]?[0-9]|90)\.[0-9]{4,8}\s{0,2}[,;]?\s{0,2}"
    r"-?(?:1[0-7][0-9]|[0-9]?[0-9]|180)\.[0-9]{4,8}(?![0-9])"
)

# Codes that a number after them is: standards, registry and serial numbers (ГОСТ 31399-2009,
# ISBN 978-5-17-1, ИНН 7701234567), not a phone.
# Barcodes (штрихкод 4607001234567, EAN-13) and parcel tracking numbers (трек 80080012345678) too.
# The name must be a whole word: "на карту 8916…" and "в субботу 8916…" end in "ту", not in ТУ.
_CODE_BEFORE_RE = re.compile(
    r"(?<![a-zа-яё])(?P<code>гост|ту|isbn|issn|инн|огрн|огрнип|кпп|бик|окпд|оквэд|снилс|imei|vin|"
    r"s/n|sn|серийный|серийник|р/с|к/с|счет|счёт|iso|din|en|ean|ean-13|upc|gtin|штрихкод|"
    r"штрих-код|баркод|barcode|трек|трек-номер|трекномер|трек-код|tracking|track|кадастровый|"
    r"кузова|рамы|шасси|двигателя|frame|chassis|верси[яию]|version|ver|прошивк[аиу]|firmware|fw|"
    r"build|сборк[аиу]|билд)"
    r"\s{0,2}(?:р\s?|№|no\.?|n|номер|number)?[:#]?\s{0,2}$"
)
# Identifiers named a few words before the number ("штрихкод на коробке 4607…", "IMEI телефона
# 35…"): these labels name nothing a phone could be.
_CODE_NEAR_RE = re.compile(
    r"(?<![a-zа-яё])(?:штрихкод|штрих-код|баркод|barcode|ean|ean-13|upc|gtin|imei|vin|s/n|"
    r"серийный|серийник|serial)(?:\s+[a-zа-яё]{1,12}){1,3}\s{0,2}[:#-]?\s{0,2}$"
)
# Labels of ids that are not phones: an article, an order, a booking, a listing. A number after
# them is one unless it is written like a Russian phone (8916…, +7…), the shape an evasion takes.
_ID_BEFORE_RE = re.compile(
    r"(?<![a-zа-яё])(?:артикул[а-я]*|арт|sku|id|айди|заказ[а-я]*|order|бронь|брони|квитанци[яи]|"
    r"пароль|password|лот[а-я]*|объявлени[а-я]*|чек[а-я]*|накладн[а-я]*|ттн|код товара|"
    r"код заказа|смс[ -]код|код из смс|код подтверждения)\.?\s{0,2}(?:№|#|no\.?|номер|number)?"
    r"[.:#]?\s{0,2}\Z|(?:№|#|(?<![a-z])no\.?)\s{0,2}\Z"  # № reads as "no" after NFKC
)

# A bank account has 20 digits: after "счет" a shorter number may well be a phone ("переведу на
# счет по номеру 8916…").
_ACCOUNT_CODES = frozenset({"р/с", "к/с", "счет", "счёт"})
_ACCOUNT_DIGITS = 16

# Memory of a phone or a laptop, RAM/storage: 8/256, 12+256, 12/512 ГБ, 16/1tb.
_MEMORY_RE = re.compile(
    r"(?<![0-9/+])(?:1|2|3|4|6|8|12|16|18|24|32|64)[/+]"
    r"(?:16|32|64|128|256|512|1024|1 ?tb|2 ?tb|1 ?тб|2 ?тб)(?![0-9/+])"
)
# A model code around the digits: ХМ-4426-080-N, SM-A546-0123, not a phone label (тел-8916…).
_CODE_PREFIX_RE = re.compile(r"(?<![a-zа-яё0-9])(?P<word>[a-zа-яё]{1,6}[0-9]{0,6})-\Z")
_CODE_SUFFIX_RE = re.compile(r"-[a-zа-яё]{1,3}(?![a-zа-яё0-9])")
_PHONE_LABELS = frozenset({"т", "тел", "тлф", "моб", "сот", "tel", "ph", "mob", "tg", "тг"})

_SEVEN_DIGITS_RE = re.compile(r"[0-9](?:[^0-9]{0,12}[0-9]){6}")
_DIGITS_RE = re.compile(r"[0-9]+")
# Seven digits or more, no letter between any two and at most 12 other characters between
# neighbours: the stretches that can hold a phone written in digits (a superset of the runs that
# `_groups` joins, whose gaps hold separators only).
_DENSE_RE = re.compile(r"[0-9](?:[^0-9a-zа-яё]{0,12}[0-9]){6,}")
_ITEM_RE = re.compile(
    r"[0-9]+|(?<![^\W\d_])(?:"
    + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
    + r")(?![^\W\d_])"
)
_GLUE_RE = re.compile(r"(?<![^\W\d_])(?:" + "|".join(NUMBER_GLUE) + r")(?![^\W\d_])")
_DATE_HINT_RE = re.compile(r"[0-9][./:+-][0-9]")

_SEPARATORS = frozenset(" \t\r\n\u00a0-‐‑‒–—―−.·•()[]{}<>/\\|_+*'\"`~:;!?…")
_MAX_GAP = 5
# A full stop (or ! ? …) right after a group and a space after it: the end of a sentence.
_SENTENCE_GAP_RE = re.compile(r"[.!?…]\s+")


@dataclass(slots=True)
class _Group:
    start: int
    end: int
    digits: str
    spelt: bool


def phone_view(text: str) -> str:
    """``text`` with the letters o/о/з read as 0/3 inside runs of digits ("8 9оо 12з"), and a
    group of o/о alone between digit groups read as zeros ("985 ооо 11 22")."""
    if not _LETTER_ZERO_RE.search(text):
        return text
    text = _DIGIT_RUN_RE.sub(lambda m: m.group().translate(_LETTER_DIGITS), text)
    return _LONE_ZEROS_RE.sub(lambda m: "0" * len(m.group()), text)


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "#" * (end - start)
    return "".join(chars)


def _gap_joins(gap: str, spelt: bool = False) -> bool:
    """Whether ``gap`` only separates two parts of one number. Between number words a comma is
    allowed too ("восемь, девять, один…"); between digits it separates a list (1500, 2000, 2500)."""
    if spelt:
        gap = gap.replace(",", " ")
    if len(gap) > _MAX_GAP and not gap.isspace():
        return False
    if len(gap) > 12:
        return False
    if ", " in gap or ",\n" in gap:
        return False
    if _SENTENCE_GAP_RE.fullmatch(gap):
        return False  # "…ул. Ковальчук 179/2. 32 000 + счётчики": one sentence ends, one starts
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


def _groups(view: str, spelt: bool, pos: int, endpos: int) -> list[list[_Group]]:
    """Runs of digit groups with only separators between them. Only digits and number words are
    read (number words only when ``spelt`` says the text has any: looking for them costs more
    than looking for digits), in ``view[pos:endpos]``; any other word between two of them is not
    a separator, so it ends the run."""
    runs: list[list[_Group]] = []
    current: list[_Group] = []
    words: list[tuple[int, int, int, str]] = []

    def append(group: _Group) -> None:
        nonlocal current
        spelt = group.spelt and current[-1].spelt if current else False
        if current and not _gap_joins(view[current[-1].end : group.start], spelt):
            runs.append(current)
            current = []
        current.append(group)

    def flush_words() -> None:
        nonlocal words, current
        if words and _AMOUNT_WORD_RE.match(view, words[-1][1]):
            # "один миллион пятьсот тысяч", "пятьсот рублей": an amount in words, which also ends
            # the digits before it ("1 500 000 (один миллион…)").
            if current:
                runs.append(current)
                current = []
        elif words:
            for group in _spelt_groups(words):
                append(group)
        words = []

    for match in (_ITEM_RE if spelt else _DIGITS_RE).finditer(view, pos, endpos):
        token = match.group()
        start, end = match.span()
        if token[0].isdigit():
            flush_words()
            glued = (start and view[start - 1].isalpha()) or (
                end < len(view) and view[end].isalpha()
            )
            if glued and _in_code(view, start, end):
                # Part of a code such as RA123456789RU or id12345678.
                if current:
                    runs.append(current)
                    current = []
                continue
            append(_Group(start, end, token, False))
            continue
        value, kind = NUMBER_WORDS[token.replace("ё", "е")]
        if words and not _gap_joins(_GLUE_RE.sub("", view[words[-1][1] : start]), spelt=True):
            flush_words()
        words.append((start, end, value, kind))
    flush_words()
    if current:
        runs.append(current)
    return runs


_WHOLE_NUMBER_RE = re.compile(r"[789][0-9]{9,10}|\+?[0-9]{11,13}")


def _in_code(view: str, start: int, end: int) -> bool:
    """Digits glued to letters (the caller checked that they are) belong to a code (RA123456789RU,
    id12345678), except a whole phone number glued to a Russian word ("звони89161234567",
    "89161234567вотсап"): codes are Latin."""
    before = start > 0 and view[start - 1].isalpha()
    after = end < len(view) and view[end].isalpha()
    if _WHOLE_NUMBER_RE.fullmatch(view, start, end) is None:
        return True
    return (before and not _is_cyrillic(view[start - 1])) or (after and not _is_cyrillic(view[end]))


def _is_cyrillic(char: str) -> bool:
    return "а" <= char <= "я" or char == "ё"


def _is_progression(run: list[_Group]) -> bool:
    """Sizes or quantities listed in steps (40 42 44 46, 48-50-52-54), or years (2016 2017 2018)."""
    if len(run) < 3:
        return False
    years = all(len(g.digits) == 4 and "1900" <= g.digits <= "2099" for g in run)
    if not years and any(len(g.digits) > 3 for g in run):
        return False
    values = [int(g.digits) for g in run]
    steps = {b - a for a, b in pairwise(values)}
    return len(steps) == 1 and 0 < abs(next(iter(steps))) <= 10


def _is_size_list(run: list[_Group]) -> bool:
    """Three or more groups of one width (two digits or more) in equal steps: sizes, years or
    prices listed (42 44 46 48 50, 2016 2017 2018, 1500 1700 1900), whatever the numbering plan
    says of their digits."""
    if len(run) < 3:
        return False
    width = len(run[0].digits)
    if width < 2 or any(len(g.digits) != width or g.spelt for g in run):
        return False
    steps = {int(b.digits) - int(a.digits) for a, b in pairwise(run)}
    return len(steps) == 1 and 0 not in steps


def _is_measurements(run: list[_Group]) -> bool:
    """Body measurements, bust-waist-hips: 92-76-100, 100/80/105. A local number of seven digits
    is grouped 3-2-2 (123-45-67) and its last groups are not all in this span."""
    if len(run) != 3 or [len(g.digits) for g in run] == [3, 2, 2]:
        return False
    return all(not g.spelt and 50 <= int(g.digits) <= 150 for g in run)


def _is_range_pairs(run: list[_Group], view: str) -> bool:
    """Two ranges one after another: a size and a height, 52-54/182-188."""
    if len(run) != 4:
        return False
    gaps = [view[a.end : b.start].strip() for a, b in pairwise(run)]
    if gaps[0] != "-" or gaps[2] != "-" or gaps[1] not in ("/", ","):
        return False
    a, b, c, d = (int(g.digits) for g in run)
    return 0 < b - a <= 12 and 0 < d - c <= 12


def _is_dimensions(run: list[_Group], view: str) -> bool:
    """Two or three measures multiplied: 50*70*30, 200 * 60."""
    if not 2 <= len(run) <= 3:
        return False
    return all(view[a.end : b.start].strip() == "*" for a, b in pairwise(run))


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
    dash = view[a.end : b.start].strip()
    if dash not in ("-", "–", "—", "−", "/"):
        return False
    if len(a.digits) == len(b.digits) == 4 and "1900" <= a.digits < b.digits <= "2099":
        return True  # years: 2019-2021, a season 2024/2025
    if dash == "/":
        return False
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
    spelt = _maybe_spelt(view)
    if not spelt and _SEVEN_DIGITS_RE.search(view) is None:
        return []  # fewer than seven digits close together, and no number words
    view = _blank(phone_view(view), blocked)
    # Without number words a phone lies inside one dense stretch of digits: only those are read,
    # so a long description with a few short numbers costs little.
    regions = [(0, len(view))] if spelt else [m.span() for m in _DENSE_RE.finditer(view)]
    if not regions:
        return []
    if _DATE_HINT_RE.search(view):
        dates: list[tuple[int, int]] = []
        for start, end in regions:
            stop = min(len(view), end + 4)  # "16/1tb": the letters after the digits count
            dates.extend(m.span() for m in _DATE_TIME_RE.finditer(view, start, stop))
            dates.extend(m.span() for m in _MEMORY_RE.finditer(view, start, stop))
            dates.extend(m.span() for m in _COORDINATES_RE.finditer(view, start, stop))
        view = _blank(view, dates)
    runs = [run for start, end in regions for run in _groups(view, spelt, start, end)]
    found: list[tuple[int, int]] = []
    for run in runs:
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
    code = _CODE_BEFORE_RE.search(view, max(0, start - 28), start)
    if code is not None and (code["code"] not in _ACCOUNT_CODES or len(digits) >= _ACCOUNT_DIGITS):
        return False
    if not plus and _CODE_NEAR_RE.search(view, max(0, start - 48), start) is not None:
        return False
    if not plus and _is_decimal(run, view):
        return False
    if _is_code(view, start, end) or _is_dimensions(run, view):
        return False
    if _is_measurements(run) or _is_range_pairs(run, view):
        return False
    if _is_size_list(run) or _is_round_amounts(run, view) or _is_amount_range(run, view):
        return False
    if not ru_like and _ID_BEFORE_RE.search(view, max(0, start - 20), start):
        return False
    if _is_progression(run) or _is_range(run, view):
        return _looks_dialable(digits, plus)
    return not (_is_thousands(run, view) and len(digits) <= 9 and not ru_like)


def _is_decimal(run: list[_Group], view: str) -> bool:
    """An amount or a reading with a decimal part: 12 490,00, 1.250.000,00, 00123,456. The part
    after the last comma or dot has at most three digits, and what comes before it is one group
    or is grouped by thousands with another mark."""
    if len(run) < 2 or len(run[-1].digits) > 3 or any(g.spelt for g in run):
        return False
    mark = view[run[-2].end : run[-1].start]
    if mark not in (",", "."):
        return False
    whole = run[:-1]
    if len(whole) == 1:
        return len(whole[0].digits) <= 6
    return _is_thousands(whole, view) and view[whole[0].end : whole[1].start] != mark


def _is_round_amounts(run: list[_Group], view: str) -> bool:
    """Round amounts: 1 000 000 000, 25 000 000 (thousands of zeros), and lists of round amounts
    (1200 1500 1800 2000)."""
    if len(run) < 2 or not run[-1].digits.endswith("00"):
        return False
    if all(g.digits == "000" for g in run[1:]) and _is_thousands(run, view):
        return True
    return all(len(g.digits) >= 3 and g.digits.endswith("00") for g in run)


_AMOUNT_GAP_RE = re.compile(r"\s+[-–—+=]\s+|\s*[–—]\s*")


def _is_amount_range(run: list[_Group], view: str) -> bool:
    """Amounts grouped by thousands on both sides of a dash or a plus: 10 000 - 15 000,
    125 000 + 35 000. A phone spaced around its dashes (8 - 916 - 123…) has no such parts."""
    if len(run) < 4 or len(run[-1].digits) != 3:
        return False
    parts: list[list[_Group]] = [[run[0]]]
    for a, b in pairwise(run):
        if _AMOUNT_GAP_RE.fullmatch(view, a.end, b.start):
            parts.append([])
        parts[-1].append(b)
    return len(parts) >= 2 and all(len(p) >= 2 and _is_thousands(p, view) for p in parts)


def _is_code(view: str, start: int, end: int) -> bool:
    """Digits joined by a hyphen to letters before or after them: a model or part number."""
    if start and view[start - 1] == "-":
        prefix = _CODE_PREFIX_RE.search(view, max(0, start - 14), start)
        if prefix is not None and prefix.group("word") not in _PHONE_LABELS:
            return True
    return view.startswith("-", end) and _CODE_SUFFIX_RE.match(view, end) is not None


# Words that may start a spelt number; "раз", "oh" and "one" alone are too common to count.
# Words after number words that make them an amount.
_AMOUNT_WORD_RE = re.compile(
    r"\s{0,2}(?:тысяч|тыщ|тыс|миллион|миллиард|млн|млрд|рубл|руб|долл|евро|thousand|million|"
    r"billion|dollars?|bucks|euros?|roubles?|rubles?)"
)
_SPELT_HINTS = frozenset(w for w in NUMBER_WORDS if w not in ("раз", "oh", "one"))
_WORD_RE = re.compile(r"[a-zа-яёіїє]+(?:['’][a-zа-яёіїє]+)*")


def _maybe_spelt(view: str) -> bool:
    """Whether any word of ``view`` is a number word: a set lookup per word, cheaper than one
    pattern with every spelling in it."""
    return not _SPELT_HINTS.isdisjoint(_WORD_RE.findall(view))
