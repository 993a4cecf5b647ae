"""E-mail addresses, links and messenger handles, read from the Latin view of a message (look-alike
Cyrillic letters inside Latin tokens already made Latin)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from marketplace_chat.contacts.model import Category
from marketplace_chat.contacts.words import ENGLISH_WORDS, MESSENGER_NAME_RE

_LABEL = r"[a-z0-9а-яё](?:[a-z0-9а-яё-]{0,62})"
# Cyrillic letters too: заказ@пекарня.рф is an address like any other.
_LOCAL = r"[a-z0-9а-яё_%+-](?:[a-z0-9а-яё._%+-]{0,63})"

# name@host.tld, spaces allowed around the @.
_EMAIL_RE = re.compile(
    rf"(?<![a-z0-9а-яё._%+-])(?P<local>{_LOCAL})[ \t]{{0,2}}@[ \t]{{0,2}}"
    rf"(?P<host>(?:{_LABEL}\.){{1,8}}[a-zа-яё]{{2,24}})"
    r"(?![a-zа-яё0-9-])"
)

# The usual spellings: name at host dot com, name (at) host, name собака host точка ru.
_AT_STRONG = r"\s*(?:\(\s*(?:at|собака|a)\s*\)|\[\s*(?:at|собака|a)\s*\]|\{\s*at\s*\}|<at>)\s*"
_AT_WORD = r"\s+(?:at|собака|собачка|sobaka|sobachka|эт)\s+"
_DOT = (
    r"(?:\s*(?:\.|\(\s*(?:dot|точка|\.)\s*\)|\[\s*(?:dot|точка|\.)\s*\]|\{\s*dot\s*\})\s*"
    r"|\s+(?:dot|точка|тчк|tochka|tchk|point)\s+)"
)
_CYR_TLD_WORDS = {"ру": "ru", "ком": "com", "нет": "net", "орг": "org", "рф": "рф", "су": "su"}
_SPELT_TLD = r"(?P<tld>[a-z]{2,12}|ру|ком|нет|орг|рф|су)(?![a-zа-яё0-9])"
# Mail providers as they are written in Cyrillic ("собака гмейл точка ком"), and their Latin names.
_CYR_PROVIDERS = {
    "гмейл": "gmail", "гмайл": "gmail", "джимейл": "gmail", "жмейл": "gmail", "гмеил": "gmail",
    "мейл": "mail", "майл": "mail", "мэйл": "mail", "маил": "mail", "яндекс": "yandex",
    "яндэкс": "yandex", "рамблер": "rambler", "аутлук": "outlook", "хотмейл": "hotmail",
    "айклауд": "icloud", "инбокс": "inbox", "лист": "list", "бк": "bk", "яху": "yahoo",
}  # fmt: skip
_SPELT_EMAIL_RE = re.compile(
    rf"(?<![a-z0-9._%+-])(?P<local>[a-z0-9][a-z0-9._+-]{{0,63}})"
    rf"(?:(?P<strong>{_AT_STRONG})|(?P<word>{_AT_WORD})|(?P<sign>\s*@\s*))"
    rf"(?P<host>[a-z0-9][a-z0-9-]{{0,62}}|{'|'.join(_CYR_PROVIDERS)})"
    rf"(?:(?:{_DOT}[a-z0-9][a-z0-9-]{{0,62}}){{0,3}}{_DOT}{_SPELT_TLD})?"
)
_MAIL_PROVIDERS = frozenset(
    str.split(
        "gmail yandex ya mail bk list inbox rambler yahoo outlook hotmail icloud proton protonmail "
        "live me aol gmx zoho tutanota ukr"
    )
)

_UNAMBIGUOUS_PROVIDERS = frozenset(
    str.split(
        "gmail yandex rambler yahoo outlook hotmail icloud protonmail proton gmx zoho tutanota"
    )
)

# Addresses: with a scheme, from www., and bare hosts that end in a public suffix.
_URL_RE = re.compile(
    r"(?:(?:https?|ftp|tg|viber|whatsapp|signal|sgnl)://|www\.)[^\s<>\"'«»]{1,2000}"
    rf"|(?<![a-z0-9а-яё@._%+-])(?P<host>(?:{_LABEL}\.){{1,8}}[a-zа-яё]{{2,24}})(?![a-zа-яё0-9-])"
    r"(?::[0-9]{2,5})?(?:[/?#][^\s<>\"'«»]{0,2000})?"
)
# The host may be Cyrillic ("авито точка ру") when it has three letters or more; a space on one
# side of the dot is enough for a Latin host and suffix ("avito. ru", "avito .ru"), not for Russian
# words ("пришлите. РФ…" ends a sentence).
_SPACED_LINK_RE = re.compile(
    r"(?<![a-z0-9а-яё._-])(?P<host>[a-z0-9][a-z0-9-]{1,62}|[а-яё][а-яё0-9-]{2,62})"
    r"(?:\s*(?:\(\s*(?:\.|dot|точка)\s*\)|\[\s*(?:\.|dot|точка)\s*\])\s*"
    r"|\s+(?:dot|точка|тчк|tochka|tchk)\s+"
    r"|\s\.\s|(?P<half>\s\.|\.\s))"
    r"(?P<tld>ru|com|net|org|рф|ру|ком|su|io|me|info|biz|shop|store|online|site|ua|by|kz|de|uk|us)"
    r"(?![a-zа-яё0-9])"
)
# What an address holds somewhere: a scheme, www., or a dot between a host's letter or digit and a
# letter of the next label. Far cheaper than the full pattern, and most messages have none.
_URL_HINT_RE = re.compile(r"://|www\.|[a-z0-9а-яё-]\.[a-zа-яё]")
# The same for spaced-out hosts: a dot or a bracket before one of their suffixes, or a dot spelt.
_SPACED_HINT_RE = re.compile(
    r"[.)\]]\s*(?:ru|com|net|org|рф|ру|ком|su|io|me|info|biz|shop|store|online|site|ua|by|kz|de|"
    r"uk|us)(?![a-zа-яё0-9])|dot|точк|тчк|tochk|tchk"
)
_TRAILING = ".,;:!?)]}>'\"»…"

# Hosts whose links invite to a messenger chat.
_MESSENGER_HOSTS = (
    "t.me", "telegram.me", "telegram.dog", "telegram.org", "wa.me", "whatsapp.com", "whatsapp.net",
    "viber.com", "viber.click", "signal.me", "signal.group", "signal.org",
)  # fmt: skip
_MESSENGER_SCHEMES = ("tg://", "viber://", "whatsapp://", "signal://", "sgnl://")

# Endings that are public suffixes but far more often file names: photo.zip, video.mov, readme.md.
_FILE_SUFFIXES = frozenset({"zip", "mov", "md", "py", "sh", "rs", "txt", "exe"})
# Cyrillic hosts count only under these suffixes: "г.москва" is an address, not a host.
_CYRILLIC_SUFFIXES = frozenset({"рф", "рус", "сайт", "онлайн", "ком", "орг"})

# @handle: Telegram, Instagram and the like.
# "@ ivan_88": one space after the @ when the name holds a digit or an underscore, so that a lone @
# in prose ("2 шт @ 500") is not one.
_HANDLE_RE = re.compile(
    r"(?<![a-z0-9_.@])@(?: (?=[a-z_][a-z0-9_.]*[0-9_]))?"
    r"(?P<name>[a-z_][a-z0-9_]{2,31}(?:\.[a-z0-9_]+)*)"
)


@dataclass(frozen=True, slots=True)
class WebFinding:
    category: Category
    start: int
    end: int
    #: A host alone, without a scheme, www. or a path: "shop.ru".
    bare: bool = False


SuffixOf = Callable[[str], str | None]


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else url
    host = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = host.rsplit("@", 1)[-1].split(":", 1)[0]
    return host.strip(_TRAILING)


def _allowed(host: str, allowed: frozenset[str]) -> bool:
    labels = host.split(".")
    return any(".".join(labels[i:]) in allowed for i in range(len(labels)))


def _messenger_host(host: str) -> bool:
    return any(host == h or host.endswith("." + h) for h in _MESSENGER_HOSTS)


def _mention(local: str, at_sign: str) -> bool:
    """ "on insta @jane.doe.art", "me @ivan.shop": an @ set apart from the word before it, when
    that word is a messenger's name or plain English, starts a handle, not an address."""
    if not at_sign[:1].isspace() or at_sign[-1:].isspace():
        return False
    return local in ENGLISH_WORDS or MESSENGER_NAME_RE.fullmatch(local) is not None


def find_emails(view: str, suffix_of: SuffixOf) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    if "@" in view:
        for match in _EMAIL_RE.finditer(view):
            at_sign = view[match.end("local") : match.start("host")]
            if _mention(match.group("local"), at_sign):
                continue
            if suffix_of(match.group("host")):
                found.append(match.span())
    if not _could_spell_email(view):
        return found
    pos = 0
    while (spelt := _SPELT_EMAIL_RE.search(view, pos)) is not None:
        pos = spelt.end()
        if any(s <= spelt.start() < e for s, e in found):
            continue
        if not _spelt_email_ok(spelt, view, suffix_of):
            # "reach me at sarah (at) fastmail (dot) fm": a rejected "me at sarah" must not hide
            # the address that starts at its host.
            pos = spelt.start("host")
            continue
        found.append(spelt.span())
    return found


def _spelt_email_ok(match: re.Match[str], view: str, suffix_of: SuffixOf) -> bool:
    tld = match.group("tld")
    host = _CYR_PROVIDERS.get(match.group("host"), match.group("host"))
    if match.group("sign") is not None and _mention(match.group("local"), match.group("sign")):
        return False
    if match.group("word") is not None and (
        view.startswith("/", match.end()) or match.group("local") in ENGLISH_WORDS
    ):
        # "pics at imgur.com/a/x": a sentence about a link (an address has no path); "meet me at
        # outlook": English, not a spelt address.
        return False
    if tld is None:
        # Without a suffix only a bracketed "(at)" or «собака» before a known mail provider.
        text = match.group()
        # "ivan.petrov at gmail": the word "at" only before a provider's own name that is no
        # ordinary word ("look at mail later").
        spelt_at = match.group("word") is not None and host in _UNAMBIGUOUS_PROVIDERS
        if not (match.group("strong") or "соба" in text or "@" in text or spelt_at):
            return False
        return host in _MAIL_PROVIDERS
    suffix = _CYR_TLD_WORDS.get(tld, tld)
    return suffix == "рф" or suffix_of("x." + suffix) is not None


# What every spelt address holds somewhere (a superset: a bracket before "a" stands for "(at)",
# "[a]" and "{at}"); literal alternatives and one class are cheap to look for.
_SPELL_HINT_RE = re.compile(
    r"@|собак|собач|sobak|sobach|[(\[{]\s*a|(?<![a-zа-яё])(?:at|эт)(?![a-zа-яё])"
)


def _could_spell_email(view: str) -> bool:
    return _SPELL_HINT_RE.search(view) is not None


def find_links(
    view: str, suffix_of: SuffixOf, allowed: frozenset[str], skip: list[tuple[int, int]]
) -> tuple[list[WebFinding], list[tuple[int, int]]]:
    """Links to report and every address span (allowed ones included) that other detectors must
    not read digits or handles from."""
    found: list[WebFinding] = []
    spans: list[tuple[int, int]] = []
    if _URL_HINT_RE.search(view) is not None:
        for match in _URL_RE.finditer(view):
            start, end = match.span()
            if any(s < end and start < e for s, e in skip):
                continue
            text = match.group().rstrip(_TRAILING)
            end = start + len(text)
            host = _host_of(text)
            lowered = text
            bare = match.group("host") is not None
            if bare and not _bare_host_ok(host, suffix_of):
                continue
            spans.append((start, end))
            if lowered.startswith(_MESSENGER_SCHEMES) or _messenger_host(host):
                found.append(WebFinding("messenger", start, end))
            elif not _allowed(host, allowed):
                found.append(WebFinding("link", start, end, bare and text == host))
    spaced = _SPACED_HINT_RE.search(view) is not None
    for match in _SPACED_LINK_RE.finditer(view) if spaced else ():
        start, end = match.span()
        if any(s < end and start < e for s, e in skip + spans):
            continue
        tld = _CYR_TLD_WORDS.get(match.group("tld"), match.group("tld"))
        host = f"{match.group('host')}.{tld}"
        if match.group("half") is not None and not match.group().isascii():
            continue
        spans.append((start, end))
        if _messenger_host(host):
            found.append(WebFinding("messenger", start, end))
        elif not _allowed(host, allowed):
            found.append(WebFinding("link", start, end))
    return found, spans


def _bare_host_ok(host: str, suffix_of: SuffixOf) -> bool:
    suffix = suffix_of(host)
    if not suffix:
        return False
    domain = host[: -len(suffix) - 1].rsplit(".", 1)[-1]
    if not domain or domain.isdigit():
        return False
    if suffix in _FILE_SUFFIXES:
        return False
    if not host.isascii():
        return suffix in _CYRILLIC_SUFFIXES and len(domain) >= 3
    return True


def find_handles(view: str, skip: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if "@" not in view:
        return []
    return [
        m.span() for m in _HANDLE_RE.finditer(view) if not any(s <= m.start() < e for s, e in skip)
    ]
