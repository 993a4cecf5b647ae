"""What the contact policy does to a text once the detector has read it. Pure: no I/O.

The policies (see the protocol's "Contact details"): `mask` stores and delivers the text with
every span replaced by the placeholder and keeps the text as sent for moderators; `block`
refuses the send and keeps it as an attempt; `flag` delivers it unchanged and tells
marketplace-api; `off` does not look. A text in which nothing was found is never touched.

Two cheap questions come before the detector, because most messages hold no contact detail and
the send path is hot: could the text hold one at all (`worth_scanning`), and could it be a piece
of a number split over several messages (`could_be_number_part`). Both answer "yes" whenever in
doubt; a "no" must never hide what the detector would find (a test holds them to the detector's
corpus).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from marketplace_chat.contacts import Detection, Finding, mask
from marketplace_chat.contacts.words import MESSENGER_NAME_RE, NUMBER_WORDS
from marketplace_chat.errors import ContactNotAllowed
from marketplace_chat.models import Moderation

PLACEHOLDER = "[hidden]"


class Policy(StrEnum):
    MASK = "mask"
    BLOCK = "block"
    FLAG = "flag"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The text to store and deliver, what was done to it, and the text as sent when the two
    differ (for moderators only)."""

    text: str
    moderation: Moderation | None = None
    original_text: str | None = None

    @property
    def flagged(self) -> bool:
        return self.moderation is not None and self.moderation.action == "flagged"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A send the `block` policy refuses: kept as an attempt, answered with `error()`."""

    text: str
    categories: tuple[str, ...]

    def error(self) -> ContactNotAllowed:
        return ContactNotAllowed(refusal_message(self.categories))


CATEGORY_NAMES = {
    "phone": "a phone number",
    "email": "an e-mail address",
    "link": "a link",
    "messenger": "a messenger contact",
}


def refusal_message(categories: Sequence[str]) -> str:
    """Names every category found, so the sender knows what to take out."""
    names = [f"{CATEGORY_NAMES.get(c, c)} ({c})" for c in categories]
    found = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return (
        f"text: contact details are not allowed in this chat; it contains {found}. "
        "Keep the conversation on the marketplace until the deal is made"
    )


def decide(policy: Policy, text: str, findings: Sequence[Finding]) -> Verdict | Refusal:
    """The effect of `policy` on `text` with these findings (spans of `text`)."""
    if policy is Policy.OFF or not findings:
        return Verdict(text)
    categories = Detection(tuple(findings)).categories
    if policy is Policy.BLOCK:
        return Refusal(text, categories)
    if policy is Policy.FLAG:
        return Verdict(text, Moderation("flagged", categories))
    masked = mask(text, findings, PLACEHOLDER)
    return Verdict(masked, Moderation("masked", categories), original_text=text)


# -- the cheap questions -------------------------------------------------------------------------

# Characters that cannot start or carry a contact detail on their own: letters of the two
# alphabets the detector reads, ASCII digits, spaces and the punctuation of ordinary sentences.
# Anything else (an '@', '/', '_', '#', '+', brackets, symbols, emoji, other scripts, look-alike
# and invisible characters) sends the text to the detector.
_PLAIN_RE = re.compile(r"[A-Za-zА-Яа-яЁё0-9\s!?,;:'\"().\-–—«»…’‘“”]*")
# A dot is harmless where it ends a sentence; one followed by anything but a space, the end or
# more dots ("shop.ru", "Hi.Is"), one standing alone (" . ") and one before a space and a common
# top-level domain ("youla. ru") may be part of a host.
SPACED_TLDS = (
    "ru", "com", "net", "org", "рф", "ру", "ком", "su", "io", "me", "info", "biz", "shop",
    "store", "online", "site", "ua", "by", "kz", "de", "uk", "us",
)  # fmt: skip
_RISKY_DOT_RE = re.compile(
    r"\.(?![\s.]|$)|\s\.\s|\.\s+(?:" + "|".join(SPACED_TLDS) + r")(?![a-zа-яё0-9])",
    re.IGNORECASE,
)
# "(a)" spells an at-sign; other spellings are words ("at", "собака") and listed below.
_SPELT_AT_RE = re.compile(r"\(\s*[aа]\s*\)")
_WORD_RE = re.compile(r"[a-zа-яё]+")
# A word of two or more letters ends a run of digits, unless it is made of the letters the
# detector reads as digits inside a number (Latin and Cyrillic o, Cyrillic ze).
_RUN_BREAK_RE = re.compile(r"(?![oоз]+(?![a-zа-яё]))[a-zа-яё]{2,}")
_DIGITISH = frozenset("0123456789oоз")
MIN_PHONE_DIGITS = 7
# fmt: off
_SPELLINGS = frozenset({
    "at", "собака", "собачка", "sobaka", "sobachka", "эт", "dot", "точка", "тчк", "point",
    "www", "http", "https", "ftp", "sgnl", "mailto",
})
# fmt: on
_NUMBER_WORDS = frozenset(NUMBER_WORDS)
_TRIGGER_WORDS = _NUMBER_WORDS | _SPELLINGS
# In a plain text (see _PLAIN_RE) the words are what is left between spaces once the digits and
# punctuation are spaces too: cheaper than a regular expression's findall on the hot path.
_TO_SPACES = str.maketrans(dict.fromkeys("0123456789!?,;:'\"().-–—«»…’‘“”", " "))
_DIGIT_RE = re.compile(r"[0-9]")


def _longest_digit_run(lowered: str) -> int:
    """The most digits between two words: a phone needs `MIN_PHONE_DIGITS` of them with only
    separators (or single letters) between, so "1500 for it, at 18:30" holds runs of 4."""
    return max(sum(c in _DIGITISH for c in chunk) for chunk in _RUN_BREAK_RE.split(lowered))


def worth_scanning(text: str) -> bool:
    """False only for a text the detector cannot find anything in: nothing but letters, digits,
    spaces and sentence punctuation, fewer than 7 digits between any two words, no dot inside a
    word, no spelt-out '@' or '.', no number written as words and no messenger's name."""
    if _PLAIN_RE.fullmatch(text) is None:
        return True
    lowered = text.lower().replace("ё", "е")
    if "." in text and _RISKY_DOT_RE.search(text):
        return True
    if "(" in text and _SPELT_AT_RE.search(lowered):
        return True
    if not _TRIGGER_WORDS.isdisjoint(lowered.translate(_TO_SPACES).split()):
        return True
    if _DIGIT_RE.search(text) and _longest_digit_run(lowered) >= MIN_PHONE_DIGITS:
        return True
    return MESSENGER_NAME_RE.search(lowered) is not None


# What may stand between the pieces of a number: spaces and the separators phones are written with.
_EDGE_STRIP = " \t\n\r.,;:!?-–—()[]+/_\"'«»"


def _numberish_word(word: str) -> bool:
    return word.lower().replace("ё", "е") in _NUMBER_WORDS


def starts_like_number(text: str) -> bool:
    """Whether the text may continue a number from the sender's previous message: it begins,
    after separators, with a digit (of any script) or a number word."""
    rest = text.lstrip(_EDGE_STRIP)
    if not rest:
        return False
    if rest[0].isdigit():
        return True
    match = _WORD_RE.match(rest.lower())
    return match is not None and _numberish_word(match.group())


def ends_like_number(text: str) -> bool:
    """Whether a number may go on from the end of the text into the next message."""
    rest = text.rstrip(_EDGE_STRIP)
    if not rest:
        return False
    if rest[-1].isdigit():
        return True
    words = _WORD_RE.findall(rest[-20:].lower())
    return bool(words) and rest[-1].isalpha() and _numberish_word(words[-1])


def could_be_number_part(text: str) -> bool:
    """Whether the text may be a piece of a phone number split over messages: it begins or ends
    (after separators) with a digit of any script or a number word in Russian or English. Only
    such texts pay the split check's Redis round trip."""
    return starts_like_number(text) or ends_like_number(text)
