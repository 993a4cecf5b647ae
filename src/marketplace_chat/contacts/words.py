"""Vocabularies the detectors share: numbers written as words, messenger names, currency and
English words that are not handles."""

from __future__ import annotations

import re

# Value and kind of each number word: "u" a unit (0-9), "t" a teen (10-19), "d" tens (20-90),
# "h" hundreds (100-900). Russian in its common forms (ё written as е), and English.
NUMBER_WORDS: dict[str, tuple[int, str]] = {}


def _add(kind: str, value: int, *spellings: str) -> None:
    for spelling in spellings:
        NUMBER_WORDS[spelling] = (value, kind)


_add("u", 0, "ноль", "нуль", "ноля", "нуля", "zero", "oh", "nought")
_add("u", 1, "один", "одна", "одно", "одну", "раз", "one")
_add("u", 2, "два", "две", "two")
_add("u", 3, "три", "three")
_add("u", 4, "четыре", "четыри", "four")
_add("u", 5, "пять", "five")
_add("u", 6, "шесть", "шест", "six")
_add("u", 7, "семь", "seven")
_add("u", 8, "восемь", "восем", "eight")
_add("u", 9, "девять", "девять", "nine")
_add("t", 10, "десять", "ten")
_add("t", 11, "одиннадцать", "одинадцать", "eleven")
_add("t", 12, "двенадцать", "twelve")
_add("t", 13, "тринадцать", "thirteen")
_add("t", 14, "четырнадцать", "fourteen")
_add("t", 15, "пятнадцать", "fifteen")
_add("t", 16, "шестнадцать", "sixteen")
_add("t", 17, "семнадцать", "seventeen")
_add("t", 18, "восемнадцать", "eighteen")
_add("t", 19, "девятнадцать", "nineteen")
_add("d", 20, "двадцать", "twenty")
_add("d", 30, "тридцать", "thirty")
_add("d", 40, "сорок", "forty", "fourty")
_add("d", 50, "пятьдесят", "fifty")
_add("d", 60, "шестьдесят", "sixty")
_add("d", 70, "семьдесят", "seventy")
_add("d", 80, "восемьдесят", "eighty")
_add("d", 90, "девяносто", "ninety")
_add("h", 100, "сто", "hundred")
_add("h", 200, "двести")
_add("h", 300, "триста")
_add("h", 400, "четыреста")
_add("h", 500, "пятьсот")
_add("h", 600, "шестьсот")
_add("h", 700, "семьсот")
_add("h", 800, "восемьсот")
_add("h", 900, "девятьсот")

# Words that join numbers without ending one ("eight hundred AND five"): skipped inside a run of
# number words only.
NUMBER_GLUE = frozenset({"and", "и"})

# Messenger names, Latin and Russian, with the inflections buyers write ("в телеге", "по вотсапу").
MESSENGER_NAME_RE = re.compile(
    r"(?<![a-zа-яё0-9_])(?:"
    r"telegram+|telega|teleg|tlgrm|tg|тг|тгм|"
    r"телеграм+[а-я]*|телега|телеге|телегу|телеги|телегой|телегр[а-я]*|"
    r"whats ?app|whatsap+|watsap+|watsup|vatsap+|"
    r"ват[сc]ап+[а-я]*|вот[сc]ап+[а-я]*|вацап+[а-я]*|воцап+[а-я]*|ватсап+[а-я]*|вотс|ватс|вотсик|"
    r"viber|вайбер[а-я]*|вибер[а-я]*|"
    r"signal|сигнал[а-я]{0,2}|"
    r"wechat|вичат|skype|скайп[а-я]*"
    r")(?![a-zа-яё0-9_])"
)

# Spans that follow a number and make it a price, a quantity or a measure.
CURRENCY_AFTER_RE = re.compile(
    r"\s{0,2}(?:₽|\$|€|£|¥|₸|₴|р\b|р\.|руб|рубл|тыс|т\.р|тр\b|k\b|к\b|кк\b|млн|usd|eur|rub|долл|"
    r"бакс|евро|грн|тенге|сум|byn|kzt|uah|dollars?|bucks|%|шт|штук|кг|гр\b|г\b|мм|см|м\b|мл|л\b|"
    r"km|км|kg|pcs|items?|lbs?)"
)
CURRENCY_BEFORE_RE = re.compile(
    r"(?:[$€£¥₽₸₴]|usd|eur|rub|цена|цену|цены|стоит|стоимость|бюджет|price|cost|total|итого|сумма|"
    r"за|от|до|по)\s{0,2}[:=-]?\s{0,2}$"
)

# Common English words that follow a messenger's name and are not a handle ("my telegram is down").
ENGLISH_WORDS = frozenset(
    str.split(
        """
    a about above after again all also am an and any app are as at available be because been before
    being below between both but by can cannot chat contact could did do does doing down during each
    else ever few for from further group had has have having he her here hers him his how i if in
    instead into is it its just later let like me message messages messenger more most my no nor not
    now number of off ok okay on once only or other our ours out over own please pls call
    same she should so some such than thanks thank that the their them then there these they this
    those through to too under until up us use using very via voice was we were what when where
    which
    while who whom why will with would write yes you your yours account accounts better channel does
    direct dm free hi hello here info link me mine msg name new nick notifications official phone
    profile send sent text texting tell there today tomorrow username works work number numbers only
    group chats any anyway either neither also here there back soon find reach add added
    """
    )
)
