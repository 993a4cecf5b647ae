"""Classes of text the detector once got wrong on messages written apart from its rules: each table
holds the contact details of one class and the near misses that must stay clean."""

from __future__ import annotations

import pytest

from marketplace_chat.contacts import Category, ContactDetector


@pytest.fixture(scope="module")
def detector() -> ContactDetector:
    return ContactDetector(allowed_hosts=["market.ru"])


def _categories(detector: ContactDetector, text: str) -> tuple[Category, ...]:
    return detector.scan(text).categories


# A full stop and a space end a sentence: the numbers on either side are not one.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Дом 14/3. 25 000 в месяц, без залога", ()),
        ("Этаж 9/12. 4 500 000, ипотека", ()),
        ("Осталось 3 шт! 1 200 за каждую", ()),
        ("Звоните: 8 916 123 45 67. Спросить Олега", ("phone",)),
        ("8 . 916 . 123 . 45 . 67", ("phone",)),
        ("8.916.123.45.67", ("phone",)),
    ],
)
def test_a_sentence_end_between_numbers(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# Amounts written in words after the digits, and amounts or readings with a decimal part.
@pytest.mark.parametrize(
    "text",
    [
        "Стоимость 2 300 000 (два миллиона триста тысяч) руб.",
        "итого 4 500 000 (четыре миллиона пятьсот тысяч рублей)",
        "price 1,250,000 (one million two hundred fifty thousand dollars)",
        "Оплачено 15 990,00 руб",
        "к оплате 2.345.678,50",
        "сумма 1 234 567,89",
        "пробег по одометру 045678,9",
        "Показания электросчётчика 012345,67",
    ],
)
def test_amounts_in_words_and_decimals_are_not_phones(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ()


@pytest.mark.parametrize(
    "text",
    [
        "восемь девять один шесть один два три четыре пять шесть семь",
        "+7 916 123,45",
        "8 916 123 45,67",
        "8916123,4567",
    ],
)
def test_phones_near_the_decimal_and_word_rules(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ("phone",)


# Date ranges joined by a dash, time ranges with dots, coordinates.
@pytest.mark.parametrize(
    "text",
    [
        "Акция действует 01.03.2025-31.03.2025",
        "сезон 15.05.2024-15.09.2024, бронь заранее",
        "приём 8.30–17.30, обед 13.00-14.00",
        "склад работает 10.00 - 19.00",
        "точка: 59.938951, 30.315635",
        "координаты 43.585472 39.723098 (Сочи)",
        "lat/lon -33.868820, 151.209290",
    ],
)
def test_ranges_and_coordinates_are_not_phones(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ()


@pytest.mark.parametrize(
    "text",
    ["тел 8-916-123-45-67", "8 916 12.30 45 67", "звоните 8 916 555 12 34 с 10.00 до 19.00"],
)
def test_phones_beside_dates_and_times(detector: ContactDetector, text: str) -> None:
    assert "phone" in _categories(detector, text)


# Identifiers named by their label, with words between the label and the number.
@pytest.mark.parametrize(
    "text",
    [
        "версия 1.2.345.6789",
        "Прошивка 4.19.2023.11 стоит последняя",
        "firmware 10.4.1.2033",
        "IMEI второго слота 35 209900 176148 2",
        "штрихкод на упаковке 4601234567893",
        "серийный номер на крышке 12345678901",
        "VIN по ПТС 1234567890",
    ],
)
def test_labelled_identifiers_are_not_phones(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ()


@pytest.mark.parametrize(
    "text",
    ["версия для звонков +7 916 123 45 67", "imei не помню, звони 8 916 123 45 67"],
)
def test_a_phone_after_an_identifier_label(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ("phone",)


# Messenger names in transliterated Russian and with an apostrophe, and the words people put
# between the name and the handle ("ищи", "я", "find").
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pishi v telegu anna_flowers", ("messenger",)),
        ("ya v telegrame kak anna_flowers", ("messenger",)),
        ("vayber +375 29 123 45 67", ("messenger", "phone")),
        ("vajber 8 029 123 45 67", ("messenger", "phone")),
        ("est' vatsapu 8 916 123 45 67", ("messenger", "phone")),
        ("what’s app 8 916 123 45 67", ("messenger", "phone")),
        ("в вайбере найдите меня: kolya_sad", ("messenger",)),
        ("в телеге ищите mebel_tut_77", ("messenger",)),
        ("тг я ivan_remont", ("messenger",)),
        ("on telegram i'm jane_doe_art", ("messenger",)),
        ("find me on telegram: jane_doe_art", ("messenger",)),
        ("в телеге я не сижу", ()),
        ("ищи в телеге, если хочешь", ()),
        ("vaiber ne ustanovlen", ()),
    ],
)
def test_messenger_names_and_lookup_words(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# E-mail addresses spelt in transliteration, and one that follows "me at …".
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pishi na ivan.k sobaka yandex tochka ru", ("email",)),
        ("olga_m sobaka gmail tochka com", ("email",)),
        ("kate sobachka mail tochka ru", ("email",)),
        ("write me at jane (at) proton (dot) me", ("email",)),
        ("contact us at info (at) shop-example (dot) com", ("email",)),
        ("look at me at noon", ()),
        ("sobaka tochka ne nuzhna", ()),
    ],
)
def test_spelt_addresses(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# The copy is folded a run of plain characters at a time; what it maps back to must not change.
def test_the_copy_maps_back_around_characters_that_change() -> None:
    from marketplace_chat.contacts.normalize import normalize

    text = "Дом №5, 54 м², тел ８９１６ и\u0306 «ok»"
    norm = normalize(text)
    assert norm.text == "дом no5, 54 м2, тел 8916 й «ok»"
    no = norm.text.index("no5")
    assert norm.span(no, no + 3) == (text.index("№"), text.index("№") + 2)
    digits = norm.text.index("8916")
    assert text[slice(*norm.span(digits, digits + 4))] == "８９１６"
    short = norm.text.index("й")
    assert text[slice(*norm.span(short, short + 1))] == "и\u0306"


def test_a_phone_is_masked_exactly_in_a_long_description_with_special_characters(
    detector: ContactDetector,
) -> None:
    text = "Квартира 54 м², этаж 7/17, № дома 12. Звоните 8 916 555-12-34, Ольга. Цена 4 500 000 ₽"
    findings = detector.scan(text).findings
    assert [(f.category, text[f.start : f.end]) for f in findings] == [("phone", "8 916 555-12-34")]
