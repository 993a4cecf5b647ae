"""Split numbers, allowed hosts, pathological input, the offline suffix list and the corpus."""

from __future__ import annotations

import importlib.util
import os
import socket
import string
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from marketplace_chat.contacts import ContactDetector, Finding, mask

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "contacts.py"
_spec = importlib.util.spec_from_file_location("contacts_bench", _BENCH)
assert _spec is not None
assert _spec.loader is not None
bench: Any = importlib.util.module_from_spec(_spec)
sys.modules["contacts_bench"] = bench  # dataclasses look their module up while building
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def detector() -> ContactDetector:
    return ContactDetector(allowed_hosts=["market.ru", "WWW.Partner-Shop.com "])


@pytest.mark.parametrize(
    ("previous", "text", "part"),
    [
        (["8916"], "1234567", "1234567"),
        (["8 916", "123"], "45 67", "45 67"),
        (["восемь девять один шесть"], "один два три четыре пять шесть семь", None),
        (["+7 (916)"], "123-45-67 жду", "123-45-67"),
    ],
)
def test_a_number_split_over_messages_is_found_in_the_last_part(
    detector: ContactDetector, previous: list[str], text: str, part: str | None
) -> None:
    detection = detector.scan_split(previous, text)
    assert detection.categories == ("phone",)
    (finding,) = detection.findings
    if part is not None:
        assert text[finding.start : finding.end] == part


@pytest.mark.parametrize(
    ("previous", "text"),
    [
        ([], "8916"),
        (["привет"], "как дела"),
        (["8 916 123 45 67"], "жду звонка"),  # the number was whole in the earlier message
        (["размер 44"], "цена 1500"),
        (["8 916 123 45 67"], "или 8 903 765 43 21"),  # each message holds its own number
        (["89", "16"], "ок"),
        (["1", "2", "3"], "4"),  # only the last two earlier messages are read
    ],
)
def test_nothing_is_split_when_the_parts_hold_no_new_number(
    detector: ContactDetector, previous: list[str], text: str
) -> None:
    assert not detector.scan_split(previous, text)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("https://market.ru/p/1", False),
        ("https://m.market.ru/p/1", False),
        ("help.market.ru", False),
        ("partner-shop.com/catalog", False),
        ("www.partner-shop.com", False),
        ("sale.partner-shop.com", False),
        ("market.ru.evil.com", True),
        ("notmarket.ru", True),
        ("partner-shop.co", True),
    ],
)
def test_allowed_hosts_and_their_subdomains_pass(
    detector: ContactDetector, text: str, found: bool
) -> None:
    assert bool(detector.scan(text)) is found


def test_without_allowed_hosts_the_marketplace_is_a_link_too() -> None:
    assert ContactDetector().scan("market.ru").categories == ("link",)


@pytest.mark.parametrize(
    ("findings", "masked"),
    [
        ([], "abcdef"),
        ([Finding("phone", 1, 3), Finding("email", 2, 4)], "a[hidden]ef"),
        ([Finding("phone", 1, 2), Finding("link", 2, 3)], "a[hidden]def"),
        ([Finding("phone", 4, 5), Finding("link", 0, 1)], "[hidden]bcd[hidden]f"),
        ([Finding("phone", 0, 6), Finding("link", 2, 3)], "[hidden]"),
    ],
)
def test_mask_merges_overlapping_spans(findings: list[Finding], masked: str) -> None:
    assert mask("abcdef", findings) == masked


PATHOLOGICAL = [
    "a" * 100_000,
    "1" * 10_000,
    "1 " * 50_000,
    "8-" * 50_000,
    "(" * 50_000 + "8916" + ")" * 50_000,
    "((([[[{{{8}}}]]])))" * 5_000,
    "a." * 50_000,
    "a@" * 50_000,
    "@" * 100_000,
    "ivan " * 20_000 + "at",
    "x.y-" * 25_000 + ".com",
    "тг " * 30_000,
    "восемь " * 14_000,
    "aaaa@" + "b" * 100_000 + ".",
    "".join(chr(c) for c in range(0x20, 0x30000, 3)),
    "\u200b" * 100_000,
    "\u0301" * 100_000,
    "８" * 50_000,
    "инст a.b.ru " * 9_000,
    "тг и 89161234567, " * 6_000,
    "тг @ivan_p1 " * 9_000,
    "восемь, " * 14_000,
    "1*" * 50_000,
    "10 000 - " * 10_000,
    "звони89161234567" * 6_000,
    "a. ru " * 16_000,
]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=lambda t: f"{t[:12]!r}x{len(t)}")
def test_pathological_input_finishes_fast(detector: ContactDetector, text: str) -> None:
    started = time.perf_counter()
    detection = detector.scan(text)
    elapsed = time.perf_counter() - started
    assert elapsed < 3.0, f"{elapsed:.2f} s"
    for finding in detection.findings:
        assert 0 <= finding.start < finding.end <= len(text)


def test_every_printable_and_unicode_category_keeps_spans_inside_the_text(
    detector: ContactDetector,
) -> None:
    noise = string.printable + "".join(chr(c) for c in range(0x80, 0x3000, 7))
    text = noise + " 8 916 123 45 67 " + noise
    detection = detector.scan(text)
    assert "phone" in detection.categories
    assert all(0 <= f.start < f.end <= len(text) for f in detection.findings)


def test_the_suffix_list_is_read_from_the_package_without_network_or_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TLDEXTRACT_CACHE", str(tmp_path / "tld-cache"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the contact detector opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    detector = ContactDetector()
    assert detector.scan("смотри shop.ru").categories == ("link",)
    assert detector.scan("ivan@mail.co.uk").categories == ("email",)
    assert list(tmp_path.iterdir()) == []
    assert not os.path.exists(os.path.join(os.path.expanduser("~"), ".cache"))


def test_the_benchmark_measures_every_corpus_by_default() -> None:
    assert bench.DEFAULT_CORPORA == (bench.CORPUS, bench.HOLDOUT, bench.HOLDOUT2)
    assert all(path.is_file() for path in bench.DEFAULT_CORPORA)


@pytest.mark.parametrize(
    ("corpus", "positives", "negatives"),
    [(bench.CORPUS, 350, 350), (bench.HOLDOUT, 250, 300), (bench.HOLDOUT2, 200, 250)],
    ids=["template", "holdout", "holdout2"],
)
def test_each_corpus_meets_the_quality_targets(
    corpus: Path, positives: int, negatives: int
) -> None:
    samples = bench.load(corpus)
    assert sum(1 for s in samples if s.categories) >= positives
    assert sum(1 for s in samples if not s.categories) >= negatives
    quality = bench.evaluate(ContactDetector(bench.ALLOWED_HOSTS), samples)
    for q in quality:
        assert q.recall >= bench.RECALL_TARGET, q
        assert q.false_positive_rate <= bench.FALSE_POSITIVE_TARGET, q
