"""One normalised copy of a message that every detector reads, with the way back to the original.

Senders hide contact details behind look-alike characters (fullwidth digits, Cyrillic letters in a
Latin host, zero-width spaces, keycap emoji). Detectors match on a copy where those differences are
gone; each character of the copy remembers which characters of the original it came from, so a span
found in the copy masks exactly what the sender typed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Characters that carry nothing a reader sees: zero-width spaces and joiners, soft hyphen, BOM,
# variation selectors, and the combining marks of keycap and enclosing emoji.
_DROP_CATEGORIES = frozenset({"Cf", "Me", "Mn"})

# Cyrillic letters drawn like Latin ones. Used only inside a token that already holds a Latin letter
# (a host, an address, a handle), so a Russian word is never turned into Latin.
_CYR_TO_LAT = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "һ": "h",
        "ԁ": "d", "ԛ": "q", "ԝ": "w", "г": "r", "п": "n", "и": "u", "ь": "b", "з": "3",
    }
)  # fmt: skip

# Cyrillic spellings of top-level domains, equal in length to the Latin ones, so the copy keeps its
# offsets: "shop.ру" is "shop.ru", not "shop.py".
_CYR_TLDS = {"ру": "ru", "ком": "com", "нет": "net", "орг": "org", "инфо": "info", "су": "su"}
_CYR_TLD_RE = re.compile(r"(?<=[a-z0-9][.])(ру|ком|нет|орг|инфо|су)(?![а-яёa-z0-9])")

_CYR_ONLY_TLD_RE = re.compile(r"(?<=[.])(?:рф|рус|сайт|онлайн)(?![а-яёa-z0-9])")
# Tokens end at spaces, brackets, commas, colons and @: in "oleg(собака)mail" the Russian word
# between brackets is not part of the Latin one, nor "тг" in "тг@ivan_p". A match starts only where
# a token does, and reads up to its first Latin letter without backtracking, so a Russian word is
# passed over in one step rather than retried from each of its letters.
_BOUNDARY = r"\s()\[\]{}<>,;:@\"«»"
_MIXED_TOKEN_RE = re.compile(rf"(?<![^{_BOUNDARY}])[^{_BOUNDARY}a-z]*[a-z][^{_BOUNDARY}]*")
_HAS_LATIN_RE = re.compile(r"[a-z]")
_HAS_CYRILLIC_RE = re.compile(r"[а-яёіїјѕһԁԛԝ]")


@dataclass(frozen=True, slots=True)
class Normalized:
    """``text`` is the NFKC, lower-cased copy without invisible characters; ``starts[i]`` and
    ``ends[i]`` are the original span that produced ``text[i]`` (``None``: aligned one to one)."""

    original: str
    text: str
    starts: list[int] | None
    ends: list[int] | None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of ``text[start:end]``."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        # Invisible characters right after the span (a keycap's U+FE0F U+20E3) go with it.
        stop = self.starts[end] if end < len(self.starts) else len(self.original)
        return self.starts[start], max(self.ends[end - 1], stop)


@lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """NFKC and lower case of one character, or "" for one that is not seen."""
    if unicodedata.category(char) in _DROP_CATEGORIES:
        return ""
    folded = unicodedata.normalize("NFKC", char).lower()
    if folded.isdecimal() and not folded.isascii():
        # Arabic-Indic, Devanagari and other decimal digits are digits to a reader.
        return "".join(str(unicodedata.decimal(c, 0)) for c in folded)
    return folded


# Latin, Cyrillic, general punctuation and currency signs hold no character that is dropped or is
# a non-ASCII digit (the soft hyphen, zero-width and direction marks are left out of these ranges):
# a text made only of them skips the full check below.
_UNCOMMON_RE = re.compile(
    "[^\x00-\xac\xae-\u02ff\u0400-\u0482\u048a-\u052f\u2010-\u2027\u2030-\u205f"
    "\u20a0-\u20cf\u2100-\u21ff]"
)


@lru_cache(maxsize=1)
def _unseen_re() -> re.Pattern[str]:
    """Characters dropped from the copy, and decimal digits other than ASCII ones: any of them
    means the copy cannot stay aligned with the original. Built once, on first use."""
    ranges: list[str] = []
    run_start = -1
    for code in range(0x80, 0xE01F0):
        char = chr(code)
        hit = unicodedata.category(char) in _DROP_CATEGORIES or char.isdecimal()
        if hit and run_start < 0:
            run_start = code
        elif not hit and run_start >= 0:
            ranges.append(f"{re.escape(chr(run_start))}-{re.escape(chr(code - 1))}")
            run_start = -1
    return re.compile("[" + "".join(ranges) + "]")


def _aligned_copy(text: str) -> str | None:
    """The lower-cased text when it is already the copy, character for character; ``None`` when
    the full pass is needed."""
    if text.isascii():
        return text.lower()
    if not unicodedata.is_normalized("NFKC", text):
        return None
    if _UNCOMMON_RE.search(text) is not None and _unseen_re().search(text) is not None:
        return None
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else None


# Characters that fold to themselves one to one (ASCII, the Russian alphabet, guillemets, dashes
# and the rouble sign): the full pass copies runs of them at once and folds only the others one by
# one, so a long description with one "м²" or "№" in it costs little more than one without.
_PLAIN_RUN_RE = re.compile("[\x00-\x7f\u0401\u0410-\u044f\u0451\u00ab\u00bb\u2013\u2014\u20bd]+")


def normalize(text: str) -> Normalized:
    """The copy every detector reads; aligned one to one unless the text had to change length."""
    aligned = _aligned_copy(text)
    if aligned is not None:
        return Normalized(text, aligned, None, None)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for match in _PLAIN_RUN_RE.finditer(text):
        start, end = match.span()
        _fold_into(text, pos, start, out, starts, ends)
        out.extend(match.group().lower())
        starts.extend(range(start, end))
        ends.extend(range(start + 1, end + 1))
        pos = end
    _fold_into(text, pos, len(text), out, starts, ends)
    return Normalized(text, "".join(out), starts, ends)


def _fold_into(
    text: str, pos: int, endpos: int, out: list[str], starts: list[int], ends: list[int]
) -> None:
    """Folds ``text[pos:endpos]`` character by character onto ``out``."""
    for index in range(pos, endpos):
        char = text[index]
        folded = _fold(char)
        if not folded:
            if out and unicodedata.category(char) == "Mn":
                # A combining accent that composes with the letter before it (и + ̆ = й) is kept
                # as that letter; any other is dropped.
                composed = unicodedata.normalize("NFC", out[-1] + char)
                if len(composed) == 1:
                    out[-1] = composed.lower()
                    ends[-1] = index + 1
            continue
        for piece in folded:
            out.append(piece)
            starts.append(index)
            ends.append(index + 1)


def latin_view(text: str) -> str:
    """``text`` (already normalised) with look-alike Cyrillic letters made Latin inside tokens that
    hold a Latin letter, and Cyrillic top-level domains spelt in Latin; same length as ``text``."""
    if text.isascii() or not _HAS_CYRILLIC_RE.search(text) or not _HAS_LATIN_RE.search(text):
        return text

    def fix(match: re.Match[str]) -> str:
        token = match.group()
        if not _HAS_CYRILLIC_RE.search(token):
            return token
        token = _CYR_TLD_RE.sub(lambda m: _CYR_TLDS[m.group()], token)
        latin = token.translate(_CYR_TO_LAT)
        if "." not in token:
            return latin
        # Cyrillic top-level domains stay Cyrillic: best-price.рф is not best-price.pф.
        chars = list(latin)
        for kept in _CYR_ONLY_TLD_RE.finditer(token):
            chars[kept.start() : kept.end()] = kept.group()
        return "".join(chars)

    return _MIXED_TOKEN_RE.sub(fix, text)
