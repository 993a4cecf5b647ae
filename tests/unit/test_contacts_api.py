"""The public shape of the contact detector that the send path builds against."""

from __future__ import annotations

import pytest

from marketplace_chat.contacts import ContactDetector, Detection, Finding, mask


@pytest.fixture(scope="module")
def detector() -> ContactDetector:
    return ContactDetector(allowed_hosts=["market.ru"])


def test_a_clean_message_is_a_false_detection(detector: ContactDetector) -> None:
    detection = detector.scan("Добрый день, размер 44-46 есть? Цена 15 000 ₽")
    assert detection == Detection(())
    assert not detection
    assert detection.categories == ()


def test_categories_are_distinct_and_in_a_fixed_order(detector: ContactDetector) -> None:
    detection = detector.scan("ватсап +7 916 123-45-67, почта ivan@mail.ru, ещё 8 903 111 22 33")
    assert detection
    assert detection.categories == ("email", "messenger", "phone")


def test_findings_are_spans_of_the_original_text(detector: ContactDetector) -> None:
    text = "звоните 8 (916) 123-45-67 вечером"
    (finding,) = detector.scan(text).findings
    assert finding == Finding("phone", 8, 25)
    assert text[finding.start : finding.end] == "8 (916) 123-45-67"
    assert mask(text, [finding]) == "звоните [hidden] вечером"
