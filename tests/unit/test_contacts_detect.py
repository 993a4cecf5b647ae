"""What the contact detector finds and what it lets through, evasions included."""

from __future__ import annotations

import pytest

from marketplace_chat.contacts import ContactDetector, mask


@pytest.fixture(scope="module")
def detector() -> ContactDetector:
    return ContactDetector(allowed_hosts=["market.ru", "cdn.market-static.com"])


FOUND = [
    # phones, with every kind of separator, words, look-alikes and invisible characters
    ("звоните 8 (916) 123-45-67", "phone"),
    ("+79161234567", "phone"),
    ("8.916.123.45.67", "phone"),
    ("8 9 1 6 1 2 3 4 5 6 7", "phone"),
    ("8_916_123_45_67", "phone"),
    ("8/916/123/45/67", "phone"),
    ("8 – 916 – 123 – 45 – 67", "phone"),
    ("+7\u00a0916\u00a0123\u00a045\u00a067", "phone"),
    ("8\u200b9\u200b1\u200b6\u200b1234567", "phone"),
    ("８９１６１２３４５６７", "phone"),
    ("8️⃣9️⃣1️⃣6️⃣1️⃣2️⃣3️⃣4️⃣5️⃣6️⃣7️⃣", "phone"),
    ("8🔥916🔥123🔥45🔥67", "phone"),
    ("8 9ОО 123 45 67", "phone"),
    ("8 9оЗ 123 45 67", "phone"),
    ("восемь девять один шесть один два три четыре пять шесть семь", "phone"),
    ("восемь девятьсот шестнадцать сто двадцать три сорок пять шестьдесят семь", "phone"),
    ("eight nine one six one two three four five six seven", "phone"),
    ("8 девятьсот шестнадцать 123 45 67", "phone"),
    ("городской 123-45-67", "phone"),
    ("+375 29 123-45-67", "phone"),
    ("call +1 (415) 555-0132", "phone"),
    ("8 (((916))) 123 45 67", "phone"),
    # e-mails
    ("ivan.petrov@gmail.com", "email"),
    ("ivan.petrov @ gmail.com", "email"),
    ("ivan at gmail dot com", "email"),
    ("ivan (at) gmail", "email"),
    ("ivan [at] yandex [dot] ru", "email"),
    ("ivan собака mail точка ру", "email"),
    ("ivan собака mail.ru", "email"),
    ("іvаn@mаіl.ru", "email"),
    ("ｉｖａｎ＠ｍａｉｌ．ｒｕ", "email"),
    ("IVAN@MAIL.RU", "email"),
    # links
    ("https://shop.example.org/item?id=5", "link"),
    ("смотрите shop-msk.ru", "link"),
    ("www.shop.ru", "link"),
    ("магазин-одежды.рф", "link"),
    ("best-price.рф", "link"),
    ("shop точка ру", "link"),
    ("shop dot com", "link"),
    ("shop(.)ru", "link"),
    ("аvitо.ru/item/55", "link"),
    ("Avito.ru", "link"),
    ("market.ru.evil.com/x", "link"),
    ("notmarket.ru", "link"),
    # messengers
    ("пишите @ivan_petrov", "messenger"),
    ("t.me/ivan_petrov", "messenger"),
    ("т.mе/ivan_petrov", "messenger"),
    ("https://wa.me/79161234567", "messenger"),
    ("viber://chat?number=%2B79161234567", "messenger"),
    ("тг ivan_petrov", "messenger"),
    ("в телеге: vasya_shop", "messenger"),
    ("ivan_petrov в телеге", "messenger"),
    ("my telegram: ivanpetrov", "messenger"),
    ("ватсап 8 916 123 45 67", "messenger"),
    ("вацап +7 916 123 45 67", "messenger"),
    ("Telegram восемь девять один шесть один два три четыре пять шесть семь", "messenger"),
]


@pytest.mark.parametrize(("text", "category"), FOUND)
def test_a_contact_detail_is_found(detector: ContactDetector, text: str, category: str) -> None:
    assert category in detector.scan(text).categories


PASSES = [
    "Цена 15 000 ₽",
    "1500 руб",
    "$25",
    "2 500 000 руб.",
    "продам за 1 250 000",
    "1.500.000 рублей",
    "от 1500 до 2500 руб",
    "1500-2500",
    "12.05.2026",
    "12.05.2026 в 18:30",
    "Выдача 12.05.2026-18:30",
    "с 10 до 19",
    "до 20:00",
    "пн-пт 9:00-18:00, сб 10:00-16:00",
    "Отправлю 12.05, придёт 15.05-17.05",
    "размер 44-46",
    "180x200",
    "180х200х30",
    "S/M/L",
    "размеры 42 44 46 48",
    "46-48-50-52",
    "артикул 123456",
    "заказ №4521",
    "order #452178",
    "трек RA123456789RU",
    "125009, Москва, ул. Тверская, д. 7, кв. 15",
    "ул. Ленина 15/2, подъезд 3, этаж 5",
    "г.Москва, ул.Ленина, д.5",
    "5 шт по 1500",
    "пробег 120 000 км",
    "2019-2021 года",
    "ГОСТ 31399-2009",
    "Есть телеграм?",
    "telegram",
    "can we talk on telegram?",
    "Telegram is fine but let's stay here",
    "сигнал пропал, напишу позже",
    "у меня собака, шерсть будет?",
    "I'm at home now",
    "Hello.Is it available?",
    "Ок.Жду",
    "т.е. завтра?",
    "файл archive.zip не открылся",
    "смотрите на сайте market.ru",
    "https://market.ru/product/12345678",
    "https://www.market.ru/catalog?size=42",
    "m.market.ru/p/998877",
    "https://cdn.market-static.com/img/1234567.jpg",
    ":-)) ^_^ ¯\\_(ツ)_/¯ <3",
    "Спасибо, всё получила!",
    "iPhone 15 Pro Max 256 ГБ",
    "скидка 15%, итого 12 990",
]


@pytest.mark.parametrize("text", PASSES)
def test_an_ordinary_message_passes(detector: ContactDetector, text: str) -> None:
    assert detector.scan(text).findings == ()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("звоните 8 (916) 123-45-67 вечером", "звоните [hidden] вечером"),
        ("почта ivan@mail.ru, жду", "почта [hidden], жду"),
        ("тг @ivan_p или t.me/ivan_p", "[hidden] или [hidden]"),
        # NFKC changes these characters' length: the span still covers exactly what was typed.
        ("тел ８９１６１２３４５６７ ок", "тел [hidden] ок"),
        ("тел 8\u200b9\u200b1\u200b6\u200b1234567 ок", "тел [hidden] ок"),
        ("тел 8️⃣9️⃣1️⃣6️⃣1️⃣2️⃣3️⃣4️⃣5️⃣6️⃣7️⃣ ок", "тел [hidden] ок"),
        ("ﬁle ｉｖａｎ＠ｍａｉｌ．ｒｕ ок", "ﬁle [hidden] ок"),
    ],
)
def test_masking_hides_the_span_in_the_original(
    detector: ContactDetector, text: str, masked: str
) -> None:
    assert mask(text, detector.scan(text).findings) == masked


def test_a_number_named_as_a_messenger_is_masked_once(detector: ContactDetector) -> None:
    text = "ватсап: 89161234567"
    detection = detector.scan(text)
    assert detection.categories == ("messenger", "phone")
    assert mask(text, detection.findings) == "[hidden]: [hidden]"
