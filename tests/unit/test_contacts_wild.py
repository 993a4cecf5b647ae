"""Contact details as buyers and sellers write them outside any template: each table is one class of
spelling, with messages that hold a contact detail and near misses that hold none."""

from __future__ import annotations

import pytest

from marketplace_chat.contacts import Category, ContactDetector


@pytest.fixture(scope="module")
def detector() -> ContactDetector:
    return ContactDetector(allowed_hosts=["market.ru"])


def _categories(detector: ContactDetector, text: str) -> tuple[Category, ...]:
    return detector.scan(text).categories


# A messenger's name in the same sentence as a number, with other words between them.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("в вайбер кидай фотки 8 916 555 12 34", ("messenger", "phone")),
        ("+7 903 111 22 44 это ватсап, звонки не беру", ("messenger", "phone")),
        ("в телеге найдете по номеру 89035551234", ("messenger", "phone")),
        ("telegram only: +1 415 555 0132", ("messenger", "phone")),
        ("вотсап не пользуюсь, звоните 8 903 555 12 34", ("phone",)),
        ("вотсапа нет. 8 903 555 12 34 только звонки", ("phone",)),
        ("8 903 555 12 34, только звонки, никаких вотсапов", ("phone",)),
        ("8 903 555 12 34 вайбера нету", ("phone",)),
        ("8 903 555 12 34 (не телеграм)", ("phone",)),
        ("звоните 8 903 555 12 34, телеграм тот же", ("messenger", "phone")),
    ],
)
def test_a_messenger_name_near_a_number(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# Inflections and short forms of messenger names, Instagram and Discord with a handle.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("напиши мне в тележку petr_master", ("messenger",)),
        ("ищи в телеге по нику Kirill_Wood", ("messenger",)),
        ("тгшка kirill_wood", ("messenger",)),
        ("inst: flowers_by_ann", ("messenger",)),
        ("в инсте flowers_by_ann", ("messenger",)),
        ("discord: wood_master_77", ("messenger",)),
        ("wats app 8 903 555 12 34", ("messenger", "phone")),
        ("инсты нет, пишите тут", ()),
        ("в тележку влезет три коробки", ()),
    ],
)
def test_messenger_names_as_they_are_spelt(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# A handle right after a messenger's name may look like a host (Instagram allows dots).
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("инст anna.flowers.shop", ("messenger",)),
        ("тг — petr.pro", ("messenger",)),
        ("insta: cakes.by.mary", ("messenger",)),
        ("сайт anna-flowers.shop", ("link",)),
        ("в инсте ссылка flowers.shop/catalog", ("link",)),
    ],
)
def test_a_host_like_handle_after_a_messenger_name(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# An @ set apart from an English word or a messenger's name starts a handle, not an address.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("find me on insta @mary.cakes.art", ("messenger",)),
        ("follow me @anna.flowers.shop", ("messenger",)),
        ("пиши на petr @mail.ru", ("email",)),
        ("petr_1990 @gmail.com", ("email",)),
        ("@ petr_1990 в телеге", ("messenger",)),
        ("2 шт @ 500 р", ()),
        ("@ всем спасибо", ()),
    ],
)
def test_an_at_sign_with_a_space(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# E-mails spelt with Cyrillic mail providers, Cyrillic names, words glued to brackets.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("petr собака яндекс точка ру", ("email",)),
        ("petr собачка гмейл точка ком", ("email",)),
        ("petr собака мейл", ("email",)),  # «собака» before a mail provider is enough
        ("продажи@цветы-москва.рф", ("email",)),
        ("petr(собака)yandex(точка)ru", ("email",)),
        ("petr[собака]mail[точка]ru", ("email",)),
        ("собака породы лайка, 2 года", ()),
    ],
)
def test_spelt_emails(detector: ContactDetector, text: str, expected: tuple[Category, ...]) -> None:
    assert _categories(detector, text) == expected


# "X at host/path" in English is a sentence about a link: an e-mail address has no path.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see the photos at flickr.com/photos/petr", ("link",)),
        ("my store at ebay.com/str/petrwood", ("link",)),
        ("write to petr at gmail.com", ("email",)),
    ],
)
def test_at_before_a_link_with_a_path(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# Phones with separators and spellings beyond the usual ones.
@pytest.mark.parametrize(
    "text",
    [
        "8*903*555*12*34",
        "звони: восемь, девять, ноль, три, пять, пять, пять, один, два, три, четыре",
        "8 903 ООО 12 34",
        "+7 903 555 оо 34 вечером",
        "8.903.ооо.12.34",
    ],
)
def test_phones_in_unusual_spellings(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ("phone",)


# Numbers that are years, memory sizes, dimensions or model codes.
@pytest.mark.parametrize(
    "text",
    [
        "на машины 2014 2015 2016 годов",
        "2019, 2020, 2021 подходят",
        "сезон 2025/2026, новая коллекция",
        "Galaxy S24 2024 12/256 как новый",
        "ноут 16/512 и 16/1tb",
        "коробка 60*40*40",
        "полка 120 * 30 * 25",
        "пылесос Bosch BGS-4122-050-R",
        "деталь SM-5531-207",
        "раз, два, три, четыре, пять, шесть, семь: считаем коробки",
    ],
)
def test_numbers_that_are_not_phones(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ()


@pytest.mark.parametrize("text", ["тел-8 903 555 12 34", "тг-89035551234"])
def test_a_phone_label_joined_by_a_hyphen_is_no_model_code(
    detector: ContactDetector, text: str
) -> None:
    assert "phone" in _categories(detector, text)


# A code's name must be a whole word before the digits: many Russian words end in "ту" (ТУ).
@pytest.mark.parametrize(
    "text",
    [
        "звони в субботу 8 903 555 12 34",
        "скинь на карту 89035551234",
        "напиши на почту или звони 89035551234",
        "переведу на счет по номеру 8 903 555 12 34",
    ],
)
def test_a_phone_after_a_word_ending_like_a_code(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ("phone",)


@pytest.mark.parametrize(
    "text",
    [
        "штрихкод 4601234567890",
        "EAN-13: 4601234567890",
        "трек 80081234567890",
        "трек-номер 1234567890 сдэк",
        "р/с 40702810900000012345",
        "по ТУ 9213-001-12345678",
        "размеры 40 42 44 46 48",
        "рост 152 158 164 170",
        "Redmi Note 13 8+256",
        "по 2500 3000 3500 в зависимости от размера",
        "модели 2020 2022 2024 есть",
    ],
)
def test_codes_size_lists_and_memory_are_not_phones(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("юла точка ру", ("link",)),
        ("цветочки точка рф", ("link",)),
        ("wa 8 903 555 12 34", ("messenger", "phone")),
        ("точка выдачи на Ленина", ()),
    ],
)
def test_spelt_cyrillic_hosts_and_short_messenger_names(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "параметры 94-72-102",
        "ог/от/об 100/80/105",
        "размер 46-48/170-176",
        "номер кузова ZZT240-0123456",
        "номер рамы 7654321",
        "кадастровый номер 50:21:0010203:456",
        "поставка 2026/05/12",
        "выпуск 2025.03.01",
    ],
)
def test_measurements_vehicle_codes_and_dates_are_not_phones(
    detector: ContactDetector, text: str
) -> None:
    assert _categories(detector, text) == ()


@pytest.mark.parametrize("text", ["звоните 123-45-67", "тел 987-65-43 вечером"])
def test_a_local_number_is_no_measurement(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ("phone",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("petr_wood - это мой тг", ("messenger",)),
        ("petr_wood это мой телеграм", ("messenger",)),
        ("petr.wood at gmail", ("email",)),
        ("petr.wood at yandex", ("email",)),
        ("I'll look at mail later", ()),
        ("meet me at outlook point", ()),
    ],
)
def test_a_handle_before_the_name_and_at_before_a_provider(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# Glued and misspelt forms.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("восимь дивять ноль три адин два три читыре пять шесть сем", ("phone",)),
        ("набери89035551234", ("phone",)),
        ("89035551234вацап", ("messenger", "phone")),
        ("вайбер89035551234", ("messenger", "phone")),
        ("тг@petr_wood", ("messenger",)),
        ("my ig is petr.wood.art", ("messenger",)),
        ("petr(a)mail.ru", ("email",)),
        ("petr[a]yandex.ru", ("email",)),
        ("petr@пекарня.рф", ("email",)),
        ("id1234567890", ()),  # a Latin code keeps its digits
        ("RA123456789RU", ()),
        ("сем раз отмерь, один отрежь", ()),
    ],
)
def test_glued_and_misspelt_forms(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# Amounts: round, listed, as a range or a sum of thousands.
@pytest.mark.parametrize(
    "text",
    [
        "1200 1500 1800 2000 смотря какой",
        "1 000 000 000",
        "бюджет 20 000 - 35 000",
        "90 000 + 15 000 за установку",
    ],
)
def test_amounts_are_not_phones(detector: ContactDetector, text: str) -> None:
    assert _categories(detector, text) == ()


# Ids after their label (article, order, booking, listing…) are not phones, unless the number is
# written like a Russian phone number, the shape an evasion takes.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("артикул 123456789", ()),
        ("арт. 1234567", ()),
        ("заказ №12345678 пришел", ()),
        ("номер заказа 87654321", ()),
        ("№ 12345678", ()),
        ("объявление 1234567890", ()),
        ("бронь 7654321 на субботу", ()),
        ("код из смс 1234 5678", ()),
        ("артикул 89031234567", ("phone",)),
        ("заказ № +7 903 123 45 67", ("phone",)),
        ("код города 495 123 45 67", ("phone",)),
        ("номер 1234567", ("phone",)),
    ],
)
def test_ids_after_their_label(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


# Numbers as words in Ukrainian, and Russian typed in Latin letters.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("нуль шість сім дев'ять вісім сім шість п'ять чотири три два", ("phone",)),
        ("нуль шість сім дев’ять вісім сім шість пять чотири три два", ("phone",)),
        ("vosem devyat nol tri odin dva tri chetyre pyat shest sem", ("phone",)),
        ("сім днів на тиждень, з дев'ятої", ()),
        ("dva tri sem", ()),
    ],
)
def test_number_words_in_ukrainian_and_latin_letters(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("заходи на youla. ru", ("link",)),
        ("drom .ru там тоже", ("link",)),
        ("доставка везде. РФ и СНГ", ()),
        ("отправлю все. ru-версия книги", ()),
    ],
)
def test_a_space_on_one_side_of_the_dot(
    detector: ContactDetector, text: str, expected: tuple[Category, ...]
) -> None:
    assert _categories(detector, text) == expected
