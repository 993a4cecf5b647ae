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


# With the misspellings people type quickly ("адин", "дивять", "восимь").
_add("u", 0, "ноль", "нуль", "ноля", "нуля", "ноло", "zero", "oh", "nought")
_add("u", 1, "один", "одна", "одно", "одну", "адин", "одын", "раз", "one")
_add("u", 2, "два", "две", "two")
_add("u", 3, "три", "three")
_add("u", 4, "четыре", "четыри", "читыре", "чотыре", "четире", "four")
_add("u", 5, "пять", "пят", "five")
_add("u", 6, "шесть", "шест", "шэсть", "six")
_add("u", 7, "семь", "сем", "seven")
_add("u", 8, "восемь", "восем", "восимь", "васемь", "eight")
_add("u", 9, "девять", "девят", "дивять", "девеять", "nine")
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


def _apostrophes(*words: str) -> tuple[str, ...]:
    """Ukrainian spellings with the apostrophe typed as ' or ’, or left out."""
    return tuple({w.replace("'", a) for w in words for a in ("'", "’", "")})


# Ukrainian, for numbers from Ukraine: "нуль шість сім…", "вісім дев'ять…".
_add("u", 4, "чотири")
_add("u", 5, *_apostrophes("п'ять"))
_add("u", 6, "шість")
_add("u", 7, "сім")
_add("u", 8, "вісім")
_add("u", 9, *_apostrophes("дев'ять"))
_add("t", 10, "десять")
_add("t", 11, "одинадцять")
_add("t", 12, "дванадцять")
_add("t", 13, "тринадцять")
_add("t", 14, "чотирнадцять")
_add("t", 15, *_apostrophes("п'ятнадцять"))
_add("t", 16, "шістнадцять")
_add("t", 17, "сімнадцять")
_add("t", 18, "вісімнадцять")
_add("t", 19, *_apostrophes("дев'ятнадцять"))
_add("d", 20, "двадцять")
_add("d", 30, "тридцять")
_add("d", 50, *_apostrophes("п'ятдесят"))
_add("d", 60, "шістдесят")
_add("d", 70, "сімдесят")
_add("d", 80, "вісімдесят")
_add("d", 90, *_apostrophes("дев'яносто"))
_add("h", 200, "двісті")
_add("h", 400, "чотириста")
_add("h", 500, *_apostrophes("п'ятсот"))
_add("h", 600, "шістсот")
_add("h", 700, "сімсот")
_add("h", 800, "вісімсот")
_add("h", 900, *_apostrophes("дев'ятсот"))

# Russian typed in Latin letters: "vosem devyat odin…".
_add("u", 0, "nol", "nul")
_add("u", 1, "odin")
_add("u", 2, "dva", "dve")
_add("u", 3, "tri")
_add("u", 4, "chetyre", "chetire")
_add("u", 5, "pyat", "pjat", "piat")
_add("u", 6, "shest")
_add("u", 7, "sem")
_add("u", 8, "vosem")
_add("u", 9, "devyat", "devjat", "deviat")

# Words that join numbers without ending one ("eight hundred AND five"): skipped inside a run of
# number words only.
NUMBER_GLUE = frozenset({"and", "и"})

# Messenger names, Latin and Russian, with the inflections buyers write ("в телеге", "по вотсапу");
# digits may touch them ("89161234567вотсап").
# The lookahead holds the first letter of every spelling below (keep it so when adding one): other
# positions are passed over without trying each alternative.
MESSENGER_NAME_RE = re.compile(
    r"(?=[tтwvвsсdдиi])(?<![a-zа-яё_])(?:"
    # Transliterated Russian inflects the Latin names too: "v telegu", "v telegrame", "vatsapu".
    r"telegram+(?:[aeuy]|om)?|teleg[aeiuy]?|tlgrm|tg|тг|тгм|тгшк[а-я]|"
    r"телеграм+[а-я]*|телег[аеиуо][а-я]{0,2}|тележк[а-я]{1,2}|телегр[а-я]*|"
    r"what['’]?s ?ap+[aeuy]?|wats ?ap+[aeuy]?|watsup|vatsap+[aeuy]?|wa|"
    r"ват[сc]ап+[а-я]*|вот[сc]ап+[а-я]*|вацап+[а-я]*|воцап+[а-я]*|ватсап+[а-я]*|вотс|ватс|вотсик|"
    r"v(?:a[iyj]?|i)ber[aeuy]?|вайбер[а-я]*|вибер[а-я]*|"
    r"signal|сигнал[а-я]{0,2}|"
    r"wechat|вичат|skype|скайп[а-я]*|discord|дискорд[а-я]*|"
    # Instagram is not a messenger, but a handle after its name is an invitation all the same.
    r"instagram|insta|inst|ig|инстаграм+[а-я]*|инст[аеуы]?"
    r")(?![a-zа-яё_])"
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
