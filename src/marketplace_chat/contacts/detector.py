"""The contact-detail detector: one per process, built from ``CONTACT_ALLOWED_HOSTS``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import tldextract

from marketplace_chat.contacts.messengers import find_messengers, names_before
from marketplace_chat.contacts.model import Category, Detection, Finding
from marketplace_chat.contacts.normalize import Normalized, latin_view, normalize
from marketplace_chat.contacts.phones import find_phones
from marketplace_chat.contacts.web import WebFinding, find_emails, find_handles, find_links

#: How many earlier messages of one sender a split number may start in (three messages in all).
SPLIT_PARTS = 2


def _sentence_break(norm: Normalized, finding: WebFinding) -> bool:
    """A bare host whose last label the sender capitalised alone ("Hello.Is it") is two sentences
    without a space; a domain is written in one case (shop.ru, Shop.ru, SHOP.RU)."""
    if not finding.bare:
        return False
    start, end = norm.span(finding.start, finding.end)
    tld = norm.original[start:end].rsplit(".", 1)[-1]
    return len(tld) >= 2 and tld[0].isupper() and tld[1:].islower()


class ContactDetector:
    """Finds phones, e-mails, links and messenger contacts in chat text.

    Pure and thread-safe after construction: no I/O, no clock. Public suffixes come from the
    snapshot bundled with ``tldextract``; it is built so that it never fetches a list nor writes a
    cache directory.
    """

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self._allowed = frozenset(
            h.strip().lower().removeprefix("www.").strip(".") for h in allowed_hosts if h.strip()
        )
        self._extract = tldextract.TLDExtract(
            suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
        )
        self.suffix_of = lru_cache(maxsize=8192)(self._suffix_of)

    def _suffix_of(self, host: str) -> str | None:
        """The public suffix ``host`` ends in, or ``None`` when it ends in none."""
        result = self._extract.extract_str(host)
        return result.suffix or None

    def scan(self, text: str) -> Detection:
        """Every contact detail in ``text``, as spans of ``text`` itself."""
        return Detection(tuple(self._findings(text)))

    def _findings(self, text: str) -> list[Finding]:
        norm = normalize(text)
        view = latin_view(norm.text)
        raw: list[tuple[Category, int, int]] = []
        emails = find_emails(view, self.suffix_of)
        raw.extend(("email", s, e) for s, e in emails)
        links, addresses = find_links(view, self.suffix_of, self._allowed, emails)
        links = [link for link in links if not _sentence_break(norm, link)]
        names = iter(names_before(view, [link.start for link in links if link.bare]))
        for link in links:
            name = next(names) if link.bare else None
            if name is None:
                raw.append((link.category, link.start, link.end))
            else:
                raw.append(("messenger", name, link.end))
        taken = emails + addresses
        raw.extend(("messenger", s, e) for s, e in find_handles(view, taken))
        phones = find_phones(norm.text, taken)
        raw.extend(("phone", s, e) for s, e in phones)
        raw.extend(("messenger", s, e) for s, e in find_messengers(view, phones, taken))
        out = []
        for category, start, end in sorted(set(raw), key=lambda r: (r[1], r[2], r[0])):
            o_start, o_end = norm.span(start, end)
            out.append(Finding(category, o_start, o_end))
        return out

    def scan_split(self, previous: Sequence[str], text: str) -> Detection:
        """A phone number spread over the sender's last messages and this one.

        ``previous`` are the same sender's earlier texts in the chat within the last 60 s, oldest
        first (only the last two are read). The findings are spans of ``text`` (the part of the
        number in this message); empty when the joined texts hold no number that the messages do
        not hold on their own."""
        parts = [*list(previous)[-SPLIT_PARTS:], text]
        if len(parts) < 2:
            return Detection()
        joined = " \n".join(parts)
        offset = len(joined) - len(text)
        own = [self._phone_spans(p) for p in parts]
        found: list[Finding] = []
        for start, end in self._phone_spans(joined):
            if end <= offset:
                continue  # wholly in earlier messages: reported when they were sent
            if start >= offset:
                continue  # wholly in this message: scan() reports it
            local = (start - offset, end - offset)
            if any(s <= local[0] and local[1] <= e for s, e in own[-1]):
                continue
            found.append(Finding("phone", 0, end - offset))
        return Detection(tuple(found))

    def _phone_spans(self, text: str) -> list[tuple[int, int]]:
        norm = normalize(text)
        view = latin_view(norm.text)
        emails = find_emails(view, self.suffix_of)
        _, addresses = find_links(view, self.suffix_of, self._allowed, emails)
        return [norm.span(s, e) for s, e in find_phones(norm.text, emails + addresses)]
