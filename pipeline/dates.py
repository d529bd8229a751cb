"""Feed dates feedparser leaves undated: weekday and month names in other languages.

Real feeds write RFC 822 dates in their own language (`mer, 16 nov 2022 00:38:15 +0100`,
`Seg, 24 Set 2018 10:00:00 -0300`, `Di, 03 Dez 2019 ...`), or misspell the English weekday
(`Thurs, ...`). feedparser knows only English names. Here the weekday, which adds nothing to
the date, is dropped, a month name of a common language is replaced by its English
abbreviation, and feedparser parses the result. Pure functions, no locale settings involved.
"""

from __future__ import annotations

import re
import time
import unicodedata

from feedparser.datetimes import _parse_date as feedparser_date

_ENGLISH = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
            "Dec")

# Month names and abbreviations, accents removed, lower case: English, French, German,
# Spanish, Italian, Portuguese, Dutch, Swedish/Danish/Norwegian, Polish, Russian.
_MONTH_NAMES: tuple[str, ...] = (
    "jan january janv janvier januar jaenner janner januari ene enero gen gennaio janeiro "
    "sty styczen stycznia янв январь января",
    "feb february fev fevr fevrier februar februari febrero febbraio fevereiro lut luty "
    "lutego фев февр февраль февраля",
    "mar march mars marz maerz mrz marzo marco maart mrt marzec marca мар март марта",
    "apr april avr avril abr abril aprile kwi kwiecien kwietnia апр апрель апреля",
    "may mai mei mayo maggio mag maio maj май мая",
    "jun june juin juni junio giugno giu junho cze czerwiec czerwca июн июнь июня",
    "jul july juil juillet juli julio luglio lug julho lip lipiec lipca июл июль июля",
    "aug august aout augustus ago agosto sie sierpien sierpnia авг август августа",
    "sep sept september septembre septiembre set settembre setembro wrz wrzesien wrzesnia "
    "сен сент сентябрь сентября",
    "oct october okt oktober octobre octubre ott ottobre out outubro paz pazdziernik "
    "pazdziernika окт октябрь октября",
    "nov november novembre noviembre novembro lis listopad listopada ноя нояб ноябрь ноября",
    "dec december dez dezember decembre dic diciembre dicembre dezembro gru grudzien grudnia "
    "дек декабрь декабря",
)
MONTHS: dict[str, int] = {}  # folded name → month number, filled below

# `[weekday[.],] day[.] month[.] year rest` and `[weekday,] month day[,] year rest`
_WORD = r"[^\W\d_]+"
_DAY_FIRST = re.compile(rf"^\s*(?:{_WORD}\.?,?\s+)?(\d{{1,2}})\.?\s+({_WORD})\.?,?\s+"
                        rf"(\d{{2,4}})\b(.*)$")
_MONTH_FIRST = re.compile(rf"^\s*(?:{_WORD}\.?,\s*)?({_WORD})\.?\s+(\d{{1,2}}),?\s+"
                          rf"(\d{{2,4}})\b(.*)$")
_LEADING_WORD = re.compile(rf"^\s*{_WORD}\.?,\s*")


def fold(word: str) -> str:
    """Lower case without accents: `Févr` → `fevr`, `März` → `marz`, `août` → `aout`."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("ß", "ss")


MONTHS.update((fold(name), number) for number, names in enumerate(_MONTH_NAMES, 1)
              for name in names.split())


def month_number(word: str) -> int | None:
    """The month a name or abbreviation means in one of the common languages."""
    folded = fold(word).rstrip(".")
    if folded in MONTHS:
        return MONTHS[folded]
    for size in (4, 3):  # an unlisted inflection of a listed name: `septembris`, `janv.`
        if len(folded) > size and folded[:size] in MONTHS:
            return MONTHS[folded[:size]]
    return None


def english_date(raw: str) -> str | None:
    """The date with its weekday dropped and its month name in English (`16 Nov 2022
    00:38:15 +0100`), or None when it does not have that shape."""
    match = _DAY_FIRST.match(raw)
    if match:
        day, month, year, rest = match.groups()
    else:
        match = _MONTH_FIRST.match(raw)
        if not match:
            return None
        month, day, year, rest = match.groups()
    number = month_number(month)
    if number is None:
        return None
    return f"{int(day):02d} {_ENGLISH[number - 1]} {year}{rest}".strip()


def parse_date(raw: object) -> time.struct_time | None:
    """feedparser's date parser, then the localized forms above: a UTC struct_time or None."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 200:
        return None
    parsed = _feedparser(raw)
    if parsed is not None:
        return parsed
    return localized_date(raw)


def localized_date(raw: str) -> time.struct_time | None:
    """A date feedparser could not read, read again: in English, or without its weekday."""
    english = english_date(raw)
    if english is not None:
        parsed = _feedparser(english)
        if parsed is not None:
            return parsed
    without_weekday = _LEADING_WORD.sub("", raw, count=1)
    if without_weekday != raw:
        return _feedparser(without_weekday)
    return None


def _feedparser(raw: str) -> time.struct_time | None:
    try:
        parsed = feedparser_date(raw)
    except Exception:  # noqa: BLE001 - feedparser's date handlers raise on odd input
        return None
    return parsed if isinstance(parsed, time.struct_time) else None
