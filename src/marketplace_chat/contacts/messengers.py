"""A messenger's name next to a handle or a number: "тг ivan_petrov", "ватсап 8 916…",
"ivan_petrov в телеге". The name alone ("есть телеграм?") is not a contact detail."""

from __future__ import annotations

import re

from marketplace_chat.contacts.words import ENGLISH_WORDS, MESSENGER_NAME_RE

_FILLER = (
    r"(?:[\s:;,\-–—=>()\[\]]|\b(?:в|во|на|по|мой|моя|мне|мой\s+ник|ник|логин|id|айди|nick|"
    r"username|user|login|my|me|on|in|at|is|номер|номеру|тел|есть|пиши|пишите|напиши|"
    r"напишите|звони|звоните|стучи|стучите|добавляйся|add)\b)*"
)
_AFTER_RE = re.compile(
    rf"{_FILLER}(?:(?P<handle>@?[a-z_][a-z0-9_.]{{2,31}}[a-z0-9_])|(?P<number>[+(]?[0-9]))"
)
_CUE_RE = re.compile(r"[:=]|ник|логин|nick|username|login|user|id|айди")
_BEFORE_RE = re.compile(
    r"(?P<handle>@?[a-z_][a-z0-9_.]{2,31}[a-z0-9_])[\s:;,\-–—()\[\]]{0,4}"
    r"(?:(?:в|во|на|по|in|on|via)\s+)?[(\[]?$"
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


def find_messengers(
    view: str,
    phones: list[tuple[int, int]],
    taken: list[tuple[int, int]],
) -> list[tuple[int, int]]:
    """Spans of messenger mentions: the name, and the handle beside it when there is one.
    ``phones`` are the numbers found; ``taken`` spans (links, e-mails) hold no handle."""
    found: list[tuple[int, int]] = []
    for match in MESSENGER_NAME_RE.finditer(view):
        name = match.group()
        start, end = match.span()
        after = _AFTER_RE.match(view, end, min(len(view), end + _WINDOW))
        if after is not None:
            if after.group("number") is not None:
                at = after.start("number")
                if any(s <= at + 1 and at < e for s, e in phones):
                    found.append((start, end))
                    continue
            else:
                h_start, h_end = after.span("handle")
                if not any(s < h_end and h_start < e for s, e in taken) and _plain_handle_ok(
                    after.group("handle"), name, view[end:h_start]
                ):
                    found.append((start, h_end))
                    continue
        if any(end <= s <= end + _WINDOW and _only_filler(view[end:s]) for s, _ in phones):
            found.append((start, end))
            continue
        window = view[max(0, start - _WINDOW) : start]
        if any(
            max(0, start - _WINDOW) <= e <= start and _only_filler(view[e:start]) for _, e in phones
        ):
            found.append((start, end))
            continue
        before = _BEFORE_RE.search(window)
        if before is not None:
            h_start = max(0, start - _WINDOW) + before.start("handle")
            h_end = max(0, start - _WINDOW) + before.end("handle")
            if not any(s < h_end and h_start < e for s, e in taken) and _plain_handle_ok(
                before.group("handle"), name, ""
            ):
                found.append((h_start, end))
    return found


_ONLY_FILLER_RE = re.compile(rf"{_FILLER}\Z")


def _only_filler(text: str) -> bool:
    return _ONLY_FILLER_RE.match(text) is not None
