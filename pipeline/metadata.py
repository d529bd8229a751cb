"""Article metadata from a page: publication date, authors and language.

Pure functions over an lxml tree (the one `pipeline.extract` already parsed), so they run in
the worker processes and are tested on fixtures. Each looks at the page's signals in order
of trust and stops at the first good answer:

- date: JSON-LD `datePublished` of the article (also inside `@graph`), the publication meta
  tags, `<time datetime>` in the article's header, a full date in the URL path, then
  htmldate's heuristics. Original publication wins over modification; the page's time zone
  is kept; dates before MIN_YEAR or more than a day ahead (FUTURE_SLACK) are rejected.
- authors: JSON-LD `author` (people before organisations), author meta tags, the
  article's byline, then a link to the author's page or a "Written by" line anywhere in the
  article; normalised (no "By", no e-mail or handle, not the site's name) and
  joined with ", ".
- language: detected from the text with py3langid (its model ships in the wheel).

bench/bench_extraction.py measures each against the wcxb-dev manifest.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import chain, islice
from typing import Any
from urllib.parse import unquote

from pipeline.text import INVISIBLE
from pipeline.times import DATE_FLOOR, FUTURE_SLACK, iso

# --- dates -------------------------------------------------------------------------------

MIN_YEAR = DATE_FLOOR  # the store's sane range (pipeline.times), for pages as for feeds

ARTICLE_TYPES = frozenset({
    "article", "newsarticle", "reportagenewsarticle", "analysisnewsarticle",
    "opinionnewsarticle", "backgroundnewsarticle", "reviewnewsarticle", "blogposting",
    "socialmediaposting", "liveblogposting", "techarticle", "scholarlyarticle", "report",
    "medicalwebpage", "review", "howto", "recipe", "posting", "advertisercontentarticle",
    "satiricalarticle", "discussionforumposting", "creativework", "videoobject",
})
PAGE_TYPES = frozenset({"webpage", "itempage", "collectionpage", "aboutpage", "faqpage",
                        "qapage", "profilepage"})

# Publication meta tags (name, property or itemprop), most trusted first.
PUBLISHED_META = (
    "article:published_time", "og:article:published_time", "og:published_time",
    "datepublished", "article.published", "article_date_original", "publishdate",
    "publish-date", "publish_date", "published_date", "published-date", "pubdate",
    "parsely-pub-date", "sailthru.date", "dc.date.issued", "dcterms.issued", "dc.date.created",
    "dcterms.created", "citation_publication_date", "citation_date", "originalpublicationdate",
    "date", "dc.date", "dcterms.date", "cxenseparse:recs:publishtime", "bt:pubdate",
    "content_create_date", "displaydate", "release_date", "created",
)
_META_RANK = {name: rank for rank, name in enumerate(PUBLISHED_META)}

_ISO = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?)?")
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})?)?(?!\d)")
# 4/24/2000 (12:00:00 AM): what .NET and other US-locale templates put in datetime and
# content attributes. Month first, as those locales write it, unless the first number cannot
# be a month (24/4/2000).
_SLASHED = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/((?:19|20)\d{2})(?!\d)")
_URL_DATE = re.compile(
    r"/((?:19|20)\d{2})[/_-]?(0[1-9]|1[0-2])[/_-]?(0[1-9]|[12]\d|3[01])(?:[/_.-]|$)")
_DATEISH_CLASS = re.compile(r"publish|posted|date|time|byline|meta|dateline|entry-", re.I)
_NOT_PUBLISHED = re.compile(r"updat|modif|edit|revis|comment|expir", re.I)


def _now() -> datetime:
    return datetime.now(UTC)


def parse_date(value: object, *, now: datetime | None = None) -> str | None:
    """An ISO 8601 date from a machine-readable value, or None when absent or absurd.

    '2024-05-10T22:00:00-05:00' keeps its offset, 'Z' and '+00:00' become 'Z', a value
    without a time is a date alone ('2024-05-10'), a time without a zone stays local.
    """
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    text = str(value).strip()
    if isinstance(value, int | float) or text.isdigit() and len(text) in (10, 13):
        return _from_timestamp(float(text), now)
    match = _ISO.search(text)
    slashed = _SLASHED.match(text) if match is None else None
    if slashed is not None:
        first, second, year_text = (int(g) for g in slashed.groups())
        month, day = (second, first) if first > 12 else (first, second)
        parts: list[str | None] = [str(year_text), str(month), str(day), None]
    elif match is None:
        compact = _COMPACT.search(text)
        if compact is None:
            return None
        parts = [*compact.groups(), None]
    else:
        parts = list(match.groups())
    year, month, day = (int(p or 0) for p in parts[:3])
    try:
        day_value = date(year, month, day)
    except ValueError:
        return None
    if not _sane(day_value, now):
        return None
    if parts[3] is None:
        return day_value.isoformat()
    hour, minute, second = int(parts[3]), int(parts[4] or 0), int(parts[5] or 0)
    if hour > 23 or minute > 59 or second > 59:
        return day_value.isoformat()
    stamp = f"{day_value.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}"
    return stamp + _offset(parts[6])


def _offset(zone: str | None) -> str:
    if not zone:
        return ""
    if zone == "Z":
        return "Z"
    digits = zone[1:].replace(":", "")
    hours, minutes = digits[:2], digits[2:4] or "00"
    if int(hours) > 14 or int(minutes) > 59:
        return ""
    offset = f"{zone[0]}{hours}:{minutes}"
    return "Z" if offset in ("+00:00", "-00:00") else offset


def _from_timestamp(seconds: float, now: datetime | None) -> str | None:
    if seconds > 1e11:  # milliseconds
        seconds /= 1000
    try:
        when = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return iso(when) if _sane(when.date(), now) else None


def _sane(day: date, now: datetime | None) -> bool:
    latest = ((now or _now()) + FUTURE_SLACK).date()
    return day.year >= MIN_YEAR and day <= latest


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {k.rsplit("/", 1)[-1].lower() for k in kinds if isinstance(k, str)}


def json_ld(tree: Any) -> list[dict[str, Any]]:
    """Every JSON-LD object of the page, flattened: top-level objects and lists, `@graph`
    members, and the objects a page nests under mainEntity / mainEntityOfPage / itemListElement."""
    found: list[dict[str, Any]] = []
    for script in tree.iterfind(".//script"):
        if "ld+json" not in (script.get("type") or "").lower() or not script.text:
            continue
        data = _loads(script.text)
        if data is not None:
            found.extend(_objects(data, 0))
    return found


def _loads(text: str) -> Any:
    text = text.strip().removeprefix("<!--").removesuffix("-->").strip()
    text = text.removeprefix("//<![CDATA[").removesuffix("//]]>").strip()
    try:
        return json.loads(text, strict=False)
    except ValueError:
        pass
    try:  # a trailing semicolon or a second object after the first: keep the first
        return json.JSONDecoder(strict=False).raw_decode(text)[0]
    except ValueError:
        return None


def _objects(data: Any, depth: int) -> Iterator[dict[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for item in data:
            yield from _objects(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        for key in ("@graph", "mainEntity", "mainEntityOfPage", "hasPart", "subjectOf"):
            if isinstance(data.get(key), list | dict):
                yield from _objects(data[key], depth + 1)


def _article_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's article objects first, then its WebPage objects (less specific)."""
    articles = [o for o in objects if _types(o) & ARTICLE_TYPES]
    pages = [o for o in objects if _types(o) & PAGE_TYPES and not _types(o) & ARTICLE_TYPES]
    return articles + pages


def _meta_values(tree: Any) -> Iterator[tuple[str, str]]:
    """(lower-cased name, value) of every meta tag and itemprop'd element of the page."""
    for meta in tree.iterfind(".//meta"):
        value = meta.get("content")
        if value is None:
            continue
        for attr in ("property", "name", "itemprop", "http-equiv"):
            name = meta.get(attr)
            if name:
                yield name.strip().lower(), value
    for element in tree.xpath(".//*[@itemprop='datePublished' and not(self::meta)]"):
        value = element.get("datetime") or element.get("content") or element.text_content()
        if value:
            yield "datepublished", value


def meta_date(tree: Any, now: datetime | None = None) -> str | None:
    """The best-ranked publication meta tag that parses."""
    best: tuple[int, str] | None = None
    for name, value in _meta_values(tree):
        rank = _META_RANK.get(name)
        if rank is None or (best is not None and rank >= best[0]):
            continue
        parsed = parse_date(value, now=now)
        if parsed:
            best = (rank, parsed)
    return best[1] if best else None


def json_ld_date(objects: list[dict[str, Any]], now: datetime | None = None) -> str | None:
    """datePublished (else dateCreated) of the page's first article object that has one."""
    for key in ("datePublished", "dateCreated"):
        for node in _article_objects(objects):
            parsed = parse_date(node.get(key), now=now)
            if parsed:
                return parsed
    return None


def time_element_date(tree: Any, now: datetime | None = None) -> str | None:
    """`<time datetime>` in the article's header: the first one inside <article> (or <main>),
    skipping those marked as updates; outside them, only one whose class or parent's class
    says it is the publication date."""
    for scope in (".//article//time[@datetime]", ".//main//time[@datetime]"):
        for element in tree.xpath(scope):
            if _NOT_PUBLISHED.search(_context(element)):
                continue
            parsed = parse_date(element.get("datetime"), now=now)
            if parsed:
                return parsed
    for element in tree.xpath(".//time[@datetime]"):
        context = _context(element)
        if _DATEISH_CLASS.search(context) and not _NOT_PUBLISHED.search(context):
            parsed = parse_date(element.get("datetime"), now=now)
            if parsed:
                return parsed
    return None


def _context(element: Any) -> str:
    parent = element.getparent()
    names = [element.get("class"), element.get("itemprop"), element.get("id")]
    if parent is not None:
        names += [parent.get("class"), parent.get("itemprop"), parent.get("id")]
    return " ".join(n for n in names if n)


def url_date(url: str, now: datetime | None = None) -> str | None:
    """A full date in the URL's path (/2024/05/10/, /20240510/, /2024-05-10-)."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    match = _URL_DATE.search(path)
    if not match:
        return None
    return parse_date("-".join(match.groups()), now=now)


def htmldate_date(tree: Any, url: str, now: datetime | None = None) -> str | None:
    """htmldate's heuristics (free-text dates, the page's own patterns): the last resort."""
    from htmldate import find_date

    latest = ((now or _now()) + FUTURE_SLACK).strftime("%Y-%m-%d")
    found = find_date(tree, url=url, original_date=True, extensive_search=True,
                      max_date=latest, min_date=f"{MIN_YEAR}-01-01")
    return parse_date(found, now=now) if found else None


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")


_MONTH = (r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_WRITTEN_DATE = re.compile(
    rf"(?<![a-z]){_MONTH}\s*(\d{{1,2}})(?:st|nd|rd|th)?,?\s*((?:19|20)\d\d)(?!\d)"
    rf"|(?<!\d)(\d{{1,2}})(?:st|nd|rd|th)?\s*(?:of\s+)?{_MONTH},?\s*((?:19|20)\d\d)(?!\d)"
    r"|(?<!\d)((?:19|20)\d\d)-(\d\d)-(\d\d)(?!\d)"
    r"|(?<!\d)(\d{1,2})\.(\d{1,2})\.((?:19|20)\d\d)(?!\d)", re.I)
_UPDATE_LABEL = re.compile(r"(?:updat|modifi|revis|review|edit)\w*\W{0,3}(?:on|at)?\W{0,3}$",
                           re.I)
HEADER_BEFORE, HEADER_AFTER = 300, 1200  # characters around the headline's start
_BLOCKS = frozenset({"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
                     "section", "header", "footer", "article", "aside", "nav", "figure",
                     "figcaption", "blockquote", "table", "tr", "td", "dd", "dt", "br"})
_SPACES = re.compile(r"[^\S\n]+")
_NEWLINES = re.compile(r"\s*\n\s*")


def date_spans(text: str) -> list[tuple[int, int]]:
    """Where dates are written out in `text` ('March 3, 2025', '3rd March 2025',
    '2025-03-03', '03.03.2025'), as (start, end) character spans."""
    return [match.span() for match in _WRITTEN_DATE.finditer(text)]


def written_dates(text: str, now: datetime | None = None) -> Iterator[tuple[int, str]]:
    """(position, ISO date) of the dates written out in `text` for readers (03.04.2025 read
    day first, as most of the world writes it; `other_reading` has the month-first one)."""
    for match in _WRITTEN_DATE.finditer(text):
        g = match.groups()
        if g[0]:
            month, day, year = _month_number(g[0]), int(g[1]), int(g[2])
        elif g[3]:
            day, month, year = int(g[3]), _month_number(g[4]), int(g[5])
        elif g[6]:
            year, month, day = int(g[6]), int(g[7]), int(g[8])
        else:
            day, month, year = int(g[9]), int(g[10]), int(g[11])
        try:
            value = date(year, month, day)
        except ValueError:
            continue
        if _sane(value, now):
            yield match.start(), value.isoformat()


def other_reading(text: str, position: int, now: datetime | None = None) -> str | None:
    """The month-first reading of the numeric date written at `position` of `text` when both
    readings are dates (04.03.2025: 4 March, or April 3 as US sites write it), else None."""
    match = _WRITTEN_DATE.match(text, position)
    if match is None or not match.group(10):
        return None
    first, second, year = int(match.group(10)), int(match.group(11)), int(match.group(12))
    if first == second or first > 12 or second > 12:
        return None
    value = date(year, first, second)
    return value.isoformat() if _sane(value, now) else None


def _month_number(name: str) -> int:
    return _MONTHS.index(next(m for m in _MONTHS if m.startswith(name[:3].lower()))) + 1


_VISIBLE_TEXT = f"not({' or '.join(f'parent::{tag}' for tag in INVISIBLE)})"
# XPath, so libxml2 walks the tree: the headline, the text nodes just before it (the
# nearest first in the axis, returned in document order), and those from it on.
_FIRST_HEADLINE = "(//body//h1[normalize-space()])[1]"
_BEFORE_HEADLINE = f"preceding::text()[{_VISIBLE_TEXT}][position() <= 30]"
_FROM_HEADLINE = (f"(descendant::text() | following::text()[position() <= 150])"
                  f"[{_VISIBLE_TEXT}]")


def headline_window(tree: Any) -> str | None:
    """The visible text around the first <h1>: where pages put the byline and the date
    readers see (HEADER_BEFORE characters before the headline, HEADER_AFTER from it).
    Blocks (paragraphs, divs, list items) are separated by newlines, inline text by spaces.
    Only the nodes near the headline are visited: this runs on every page."""
    headlines = tree.xpath(_FIRST_HEADLINE)
    if not headlines:
        return None
    before = [node for node in headlines[0].xpath(_BEFORE_HEADLINE)
              if node.getparent() is not None and node.getparent().tag != "title"]
    after: list[Any] = []
    size = 0
    for node in headlines[0].xpath(_FROM_HEADLINE):
        after.append(node)
        size += len(node)
        if size > HEADER_AFTER:
            break
    return f"{_joined(before)[-HEADER_BEFORE:]}\n{_joined(after)[:HEADER_AFTER]}"


def _joined(nodes: list[Any]) -> str:
    parts = []
    for node in nodes:
        parent = node.getparent()
        block = parent is not None and parent.tag in _BLOCKS
        parts.append(("\n" if block else " ") + node)
    return _NEWLINES.sub("\n", _SPACES.sub(" ", "".join(parts))).strip()


@dataclass(frozen=True)
class ShownDate:
    """The date written by the headline, as `choose_date` weighs it."""

    day: str  # ISO day, as read (day first for 03.04.2025)
    other: str | None = None  # the month-first reading of an ambiguous numeric date
    update: bool = False  # labelled as an update ("Updated Dec 4, 2025"): no other was shown

    def readings(self) -> tuple[str, ...]:
        return (self.day, self.other) if self.other else (self.day,)


def shown_date(window: str | None, now: datetime | None = None) -> ShownDate | None:
    """The date written in the headline's window; one labelled as an update ("Updated
    Dec 4, 2025") loses to an unlabelled or 'published' one in the same window."""
    if not window:
        return None
    found = [(position, value, bool(_UPDATE_LABEL.search(window[max(0, position - 24):position])))
             for position, value in written_dates(window, now)]
    if not found:
        return None
    position, value, update = next((f for f in found if not f[2]), found[0])
    return ShownDate(value, other_reading(window, position, now), update)


def header_date(window: str | None, now: datetime | None = None) -> str | None:
    """The day of `shown_date`."""
    shown = shown_date(window, now)
    return shown.day if shown else None


# --- authors -----------------------------------------------------------------------------

AUTHOR_META = ("author", "article:author", "og:article:author", "parsely-author",
               "sailthru.author", "dc.creator", "dcterms.creator", "byl", "citation_author",
               "cxenseparse:author", "author_name", "authors")
_AUTHOR_META_RANK = {name: rank for rank, name in enumerate(AUTHOR_META)}
PERSON_TYPES = frozenset({"person"})
MAX_NAME_WORDS = 6
# Characters of a byline: an author-marked element may also hold a date and a role; a line
# found anywhere else holds the label and the names alone (longer: a sentence mentioning one).
MAX_MARKED_BYLINE = 120
MAX_BYLINE = 80
MAX_AUTHORS = 8
# "By", "Written by", "Reporting by" and the like before a name.
_BY = re.compile(r"^\W*(?:(?:written|posted|published|reported|reporting|words|text|story|"
                 r"article|photos?|video|compiled|authored|created)\s+)?(?:by|from)\b\W*", re.I)
_GLUED_BY = re.compile(r"^\W*by(?=[A-Z])")  # "byAna Lopez" from joined element texts
_LABEL = re.compile(r"^\W*(?:authors?|writers?|written|posted|byline|reporter|words|text)"
                    r"\s*[:|-]\s*", re.I)
# A second role ends the byline: "A; editing by B", "A, reviewed by B", "A | Updated ..."
_MONTH_WORD = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
_BYLINE_END = re.compile(
    r"[;|•·]|\s[-–—]\s|,?\s+(?:additional|editing|edited|reviewed|fact[- ]checked|"
    r"medically|updated|published|posted|illustrat|photograph|graphics|contribut|with\s+"
    r"reporting)\b"
    r"|\s\d{1,2}[:/.]\d"  # a time or a numeric date
    rf"|\s(?:on|at)\s+(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\b|{_MONTH_WORD}\b|\d)"  # on May 5
    rf"|(?:\s\d{{1,2}}(?:st|nd|rd|th)?)?\s{_MONTH_WORD}\.?,?\s+\d",  # 4 August 2010, Dec. 4
    re.I)
_ROLE = re.compile(
    r"(?:^|,?\s+)(?:is\s+an?\b.*|(?:the\s+)?(?:senior|chief|staff|contributing|associate|managing|"
    r"executive|deputy|political|national|foreign|business|tech(?:nology)?|science|sports?|"
    r"health|editor|writer|reporter|correspondent|columnist|contributor|journalist|"
    r"freelance|special|ap|reuters|afp)\b.*)$", re.I)
_SPLIT = re.compile(r"\s*(?:,|;|&|\band\b|\bund\b|\bet\b|\by\b|\be\b)\s*", re.I)
_SPLIT_LISTS = re.compile(r"\s*[,;]\s*")
# Lower-case words a name can hold ("Ludwig van Beethoven"); any other makes it a phrase.
_PARTICLES = frozenset({"van", "de", "der", "den", "von", "da", "del", "della", "di", "du",
                        "dos", "das", "la", "le", "bin", "al", "el", "ibn", "y", "e", "zu"})
_STOP_WORDS = frozenset({
    "updated", "update", "published", "posted", "author", "authors", "posts", "written",
    "reviewed", "insights", "read", "min", "minutes", "share", "comments", "comment",
    "admin", "by", "from", "contact", "follow", "view", "profile", "more", "all", "about",
    "editorial", "last", "on", "at", "in", "of", "for", "the", "home", "news", "bio", "full",
    "name", "sponsored", "promoted", "advertisement", "partner",
    *_MONTHS, "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec", "mon", "tue", "wed", "thu", "fri", "sat", "sun", "monday", "tuesday",
    "wednesday", "thursday", "friday", "saturday", "sunday", "today", "yesterday"})
# Words of a phrase, not of a name written in lower case.
_PHRASE_WORDS = frozenset({"a", "an", "the", "to", "of", "in", "on", "at", "for", "with", "this",
                           "that", "your", "my", "our", "you", "we", "it", "is", "be", "no",
                           "not", "and", "or", "here", "now", "up", "out", "new", "see", "us"})
_NAME_MONTHS = frozenset({"april", "may", "june", "august"})  # Tom May, June Li: with a name
_LAST_FIRST = re.compile(r"^\s*[A-Z][\w'’-]+,\s*[A-Z][\w'’.-]+\s*$")
_USERNAME = re.compile(r"^\w{2,}(?:[._]\w{2,})+$")  # a login or a template key, not a name
_EMAIL = re.compile(r"\S+@\S+\.\w+")
_HANDLE = re.compile(r"(?<!\w)@\w+")
_URLISH = re.compile(r"https?://\S+|www\.\S+|\S+\.(?:com|org|net|co\.uk)\b", re.I)
_NOT_A_NAME = re.compile(r"^(?:\w*admin|administrator|staff|editor|editors|webmaster|guest|"
                         r"anonymous|unknown|author|none|null|user|team)$", re.I)
_CREDENTIALS = re.compile(r"^(?:[A-Z][A-Za-z]{0,4}\.?){1,3}$")  # MD, PhD, RD, M.S.


def _squash(name: str) -> str:
    """Letters and digits only, case and accents folded: 'José García' → 'josegarcia'."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", name.casefold()) if ch.isalnum())


def site_names(sitename: str | None, url: str | None) -> frozenset[str]:
    """The names a site goes by (its og:site_name, its domain's label), squashed: an author
    equal to one of them is the site, not a person."""
    names = {_squash(sitename or "")}
    host = (url or "").split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    labels = [label for label in host.split(".") if label not in ("www", "blog", "m")]
    if len(labels) >= 2:
        names.add(_squash(labels[-2] if len(labels[-1]) > 2 or len(labels) < 3
                          else labels[-3]))
    return frozenset(n for n in names if n)


def normalise_authors(value: str | None, strict: bool = True) -> str | None:
    """Names from an author field or a byline, cleaned and joined with ', ':
    'By Ana Lopez and Ben Wu' → 'Ana Lopez, Ben Wu'; 'Reporting by A; editing by B' → 'A';
    'Ana Lopez, Staff Writer' → 'Ana Lopez'; e-mail addresses, @handles and URLs are dropped.
    `strict` (text from the page, not a field meant for names) also drops roles, labels,
    dates and placeholder names ('admin'), and any part with a lower-case word."""
    if not value:
        return None
    value = html.unescape(value)
    if _LAST_FIRST.match(value):  # "Roy, Aniruddha" (citation_author) → "Aniruddha Roy"
        last, first = value.split(",")
        value = f"{first.strip()} {last.strip()}"
    text = " ".join(_URLISH.sub(" ", _EMAIL.sub(" ", _HANDLE.sub(" ", value))).split())
    text = _BY.sub("", _LABEL.sub("", _GLUED_BY.sub("", text)))
    end = _BYLINE_END.search(text)
    if end:
        text = text[:end.start()]
    names: list[str] = []
    parts = _SPLIT.split(text)
    if any(_clean_name(part, strict) is None for part in parts if part.strip()):
        parts = _SPLIT_LISTS.split(text)  # "Center for Drug Evaluation and Research"
    for part in parts:
        name = _clean_name(part, strict)
        if name is None or _CREDENTIALS.match(name) and names:
            continue
        if name.casefold() not in (n.casefold() for n in names):
            names.append(name)
    return ", ".join(names[:MAX_AUTHORS]) or None


def _clean_name(part: str, strict: bool = True) -> str | None:
    name = _BY.sub("", part)
    name = (_ROLE.sub("", name) if strict else name).strip(" \t.,:;|-–—()[]\"'")
    words = name.split()
    if not words or len(words) > MAX_NAME_WORDS or strict and _NOT_A_NAME.match(name):
        return None
    if not any(ch.isalpha() for ch in name) or strict and any(ch.isdigit() for ch in name):
        return None
    if len(words) == 1 and _USERNAME.match(name):
        return None  # 'andrew.keaveney', 'page.head.extra.author'
    if not strict:
        return name
    if name.islower() and len(words) > 1:  # "ana lopez" as written (one word: a login)
        if any(word in _PHRASE_WORDS for word in words):
            return None  # "leave a reply"
        name = name.title()
        words = name.split()
    bare_words = [word.strip(".,'’").lower() for word in words]
    if all(bare in _NAME_MONTHS for bare in bare_words):
        return None  # "May", "June 2024": a date
    for word, bare in zip(words, bare_words, strict=True):
        if bare in _STOP_WORDS and bare not in _NAME_MONTHS or _USERNAME.match(word) or \
                word[0].islower() and bare not in _PARTICLES:
            return None  # a label, a date or a phrase, not a name
    if name.isupper() and len(name) > 4:
        name = name.title()  # "ANA LOPEZ"
    return name


def _names(value: Any) -> Iterator[tuple[bool, str]]:
    """(is_person, name) of a JSON-LD author value: a string, an object or a list."""
    if isinstance(value, str):
        yield True, value
    elif isinstance(value, list):
        for item in value[:MAX_AUTHORS]:
            yield from _names(item)
    elif isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, list):
            name = " ".join(n for n in name if isinstance(n, str))
        if not isinstance(name, str):
            given, family = value.get("givenName"), value.get("familyName")
            name = " ".join(n for n in (given, family) if isinstance(n, str)) or None
        if name:
            kinds = _types(value)
            yield (not kinds or bool(kinds & PERSON_TYPES)), name


def json_ld_authors(objects: list[dict[str, Any]]) -> tuple[str | None, bool]:
    """(names, whether they are people): the article's JSON-LD authors, people else (no
    person named) organisations, a publisher credited as author, which a byline may improve
    on. References by `@id` (as Yoast's @graph writes them) are looked up among the
    objects."""
    by_id = {o["@id"]: o for o in objects if isinstance(o.get("@id"), str)}
    for node in _article_objects(objects):
        value = node.get("author") or node.get("creator")
        found = list(_names(_resolve(value, by_id)))
        people = [name for person, name in found if person]
        chosen = people or [name for _, name in found]
        names = normalise_authors(", ".join(chosen), strict=False) if chosen else None
        if names:
            return names, bool(people)
    return None, False


def _resolve(value: Any, by_id: dict[str, dict[str, Any]]) -> Any:
    if isinstance(value, list):
        return [_resolve(item, by_id) for item in value[:MAX_AUTHORS]]
    if isinstance(value, dict) and "name" not in value and value.get("@id") in by_id:
        return by_id[value["@id"]]
    return value


def meta_author(tree: Any) -> str | None:
    best: tuple[int, str] | None = None
    for name, value in _meta_values(tree):
        rank = _AUTHOR_META_RANK.get(name)
        if rank is None or (best is not None and rank >= best[0]):
            continue
        if value.strip().lower().startswith(("http://", "https://", "www.")):
            continue  # article:author is often a profile URL
        found = normalise_authors(value, strict=False)
        if found:
            best = (rank, found)
    if best is None:  # Yoast's "Written by" label pair
        labels = dict(_meta_values(tree))
        if labels.get("twitter:label1", "").strip().lower() == "written by":
            return normalise_authors(labels.get("twitter:data1"), strict=False)
    return best[1] if best else None


_BYLINE_XPATH = (  # 'uthor' and 'yline' match either case of author and byline in one test
    ".//*[@rel='author' or @itemprop='author' or contains(@class, 'uthor') or "
    "contains(@class, 'yline') or contains(@data-testid, 'uthor') or "
    "contains(@data-component, 'yline')]")
_BYLINE_SKIP = re.compile(r"bio|avatar|image|img|photo|box|card|about|comment|share|social|"
                          r"follow|more|related|footer|widget|description", re.I)
_BY_TEXT = re.compile(r"(?:^|\s|\b(?:written|article|posted|words))\s*(?:By|by|BY):?\s+"
                      r"([A-Z][\w'’.-]+(?:[^\S\n]+(?:[A-Z][\w'’.-]+|and|&|,|van|de|der|von|"
                      r"da|del|la|le|bin|al)){1,12})")  # a name ends with its line


def byline_author(tree: Any) -> str | None:
    """The byline: the first author-marked element with a short text, else a 'By Name' in
    the text around the headline."""
    for element in tree.xpath(_BYLINE_XPATH)[:40]:
        marks = " ".join(filter(None, (element.get("class"), element.get("id"))))
        if _BYLINE_SKIP.search(marks) or element.tag in ("meta", "link", "body", "html",
                                                         "article", "main", "section"):
            continue
        text = " ".join(" ".join(element.itertext()).split())
        if not text or len(text) > MAX_MARKED_BYLINE:
            continue
        found = normalise_authors(text)
        if found:
            return found
    return None


def headline_byline(window: str | None) -> str | None:
    """'By Ana Lopez', 'Written by: Ana Lopez' in the text around the headline."""
    match = _BY_TEXT.search(window or "")
    return normalise_authors(match.group(1)) if match else None


# A link to the author's own page: /author/ana-lopez, /authors/ana-lopez-2/, /autor/jose.html.
_AUTHOR_PAGE = re.compile(r"/(?:authors?|writers?|contributors?|columnists?|journalists?|"
                          r"reporters?|autor(?:es)?|auteurs?)/([^/]+?)(?:-\d+)?(?:\.\w+)?/?$",
                          re.I)
# Parts of a page that name people other than the article's author: menus, comments, other
# articles' cards, credits, fact boxes (a book review's "Author: Jane Austen"). A class or id
# counts by its first word ("menu", "comment-list", "sidebar_left"; not
# "elementor-widget-container"); nav, footer and aside count outside the article only.
_ASIDE_TAGS = frozenset({"nav", "footer", "aside"})
_ASIDE_ALWAYS = frozenset({"figcaption", "dl", "table"})
_ASIDE_WORDS = frozenset({"nav", "navbar", "navigation", "menu", "comment", "comments", "respond",
                          "replies", "related", "widget", "sidebar", "secondary", "footer",
                          "breadcrumb", "breadcrumbs"})
_FIRST_WORD = re.compile(r"^[a-z]+", re.I)
# "Written by Ana Lopez", "Author: Ana Lopez" as a line of its own.
_WRITTEN_BY = re.compile(r"^\W*(?:(?:written|posted|authored|article)\s+by\b|(?:authors?|"
                         r"contributors?|writers?)\s*:)\s*:?\s*(.+)$", re.I)
# The same label alone, the name in the next element: "Written by <a>Ana</a>", <h3>Author</h3>.
_LABEL_ALONE = re.compile(r"^\W*(?:(?:written|posted|authored|article)\s+by|authors?|"
                          r"(?:contributors?|writers?)\s*:)\W*$", re.I)
# Another line of a fact box or a credits list beside the label: "Publisher: ...",
# "Directed by ...".
_OTHER_KEY = re.compile(r"^\W*(?:[^:]{2,24}:\s*\S|\w+\s+by\s)", re.I)
KEY_SIBLINGS = 12  # the lines around a label read for a fact box's other keys


def _aside(element: Any) -> bool:
    """Whether the element sits in a part of the page that is not the article's own."""
    for part in (element, *element.iterancestors()):
        if part.tag in ("body", "html"):
            return False
        if part.tag in _ASIDE_ALWAYS or part.tag in _ASIDE_TAGS and \
                next(part.iterancestors("article"), None) is None:
            return True
        marks = " ".join(filter(None, (part.get("class"), part.get("id"), part.get("role"))))
        if any((word := _FIRST_WORD.match(token)) and word.group().lower() in _ASIDE_WORDS
               for token in marks.split()):
            return True
    return False


def _short_text(element: Any) -> str | None:
    """An element's text when it is one line (≤ MAX_BYLINE characters besides spaces), else
    None; a long element is not read to its end."""
    if element is None or not _is_element(element):
        return None
    parts, size = [], 0
    for part in element.itertext():
        parts.append(part)
        size += len("".join(part.split()))
        if size > MAX_BYLINE:
            return None
    text = " ".join(" ".join(parts).split())
    return text or None


def _is_element(node: Any) -> bool:
    return isinstance(node.tag, str)  # not an HTML comment or a processing instruction


def _next_element(element: Any) -> Any:
    return next((e for e in element.itersiblings() if _is_element(e)), None)


def _first_child(element: Any) -> Any:
    return next((e for e in element.iterchildren() if _is_element(e)), None)


def _in_sentence(link: Any) -> bool:
    """Whether a link is part of a sentence about someone ("She met <a>Ben Wu</a> at the
    fair") rather than a byline ("By <a>Ana Lopez</a> | May 5")."""
    around = (link.getparent().text or "") + " " + (link.tail or "")
    return len(re.findall(r"\b[a-z]{2,}\b", around)) >= 3


def author_link(tree: Any) -> str | None:
    """The first link to an author's page whose text is the name its address spells
    ('Ana Lopez' → /author/ana-lopez): the byline of templates that mark it no other way.
    Not a link in a sentence, a menu, a comment or another article's card."""
    for link in tree.xpath("//body//a[@href]"):
        path = link.get("href").split("#", 1)[0].split("?", 1)[0]
        slug = _AUTHOR_PAGE.search(path)
        if slug is None:
            continue
        text = _short_text(link)
        if not text or _squash(text) != _squash(unquote(slug.group(1))) or \
                _in_sentence(link) or _aside(link):
            continue
        found = normalise_authors(text)
        if found:
            return found
    return None


def written_by(tree: Any) -> str | None:
    """'Written by Ana Lopez' anywhere in the article (an author box below the text, a byline
    the template does not mark): a line saying so, or a label ('Written by', 'Author')
    followed by the element that names the author. Not in comments, menus, other articles'
    cards or fact boxes."""
    for node in tree.xpath(
            f"//body/descendant::text()[{_VISIBLE_TEXT}][string-length(normalize-space()) "
            f"<= {MAX_BYLINE}][contains(., ':') or contains(translate(., 'BY', 'by'), 'by') "
            "or contains(translate(., 'AUTHOR', 'author'), 'author')]"):
        holder = node.getparent()
        if holder is None or not (_WRITTEN_BY.match(node) or _LABEL_ALONE.match(node)):
            continue
        line = holder.getparent() if node.is_tail else holder
        if line is None or _short_text(line) is None:
            continue  # a label inside a sentence: "a library written by <a>Ana</a> in C"
        found = _written_by_at(node, holder, line)
        if found and not _aside(line) and not _beside_other_keys(line):
            return found
    return None


def _written_by_at(node: Any, holder: Any, line: Any) -> str | None:
    """The names a label text node of written_by's introduces: its whole line
    ("<p>Written by <a>A</a> and <a>B</a></p>", "<strong>Author:</strong> A"), else the
    element after the label ("<h3>Author</h3> <p>A</p>")."""
    for element in (line, line.getparent()):
        text = _short_text(element)
        if text and (match := _WRITTEN_BY.match(text)):
            return normalise_authors(match.group(1))
        if text is None:
            break
    if not _LABEL_ALONE.match(node):
        return None
    following = None if node.is_tail else _first_child(holder)
    if following is None:  # "<img> Written by <span>", "<h3>Author</h3> <p>"
        following = _next_element(holder)
    if following is not None and len(following) and all(
            child.tag in ("li", "p", "div") for child in following):  # a list of names
        names = [_short_text(child) for child in following]
        return normalise_authors(", ".join(n for n in names if n)) if all(names) else None
    text = _short_text(following)
    return normalise_authors(text) if text else None


def _beside_other_keys(line: Any) -> bool:
    """Whether the label's line is one of several "Key: value" or "Role by" lines: a fact
    box or a list of credits, where "Author" is a book's and "Written by" a screenplay's.
    Only the nearest siblings are read: a page of thousands of such lines stays linear."""
    siblings = islice((e for e in chain(line.itersiblings(preceding=True), line.itersiblings())
                       if _is_element(e)), KEY_SIBLINGS)
    return any((text := _short_text(e)) and _OTHER_KEY.match(text) and
               not _WRITTEN_BY.match(text) for e in siblings)


AUTHOR_SOURCES = ("json-ld", "meta", "byline", "headline-by", "author-link", "written-by")


def author_candidates(tree: Any, objects: list[dict[str, Any]], window: str | None,
                      sources: Collection[str] = AUTHOR_SOURCES
                      ) -> Iterator[tuple[str, str, bool]]:
    """(source, names, whether they are people) from each author signal (of `sources`),
    most trusted first, computed lazily. Only JSON-LD says what kind of author it names: an
    organisation there is the publisher standing in for the writer."""
    people, names = True, None
    for source in (s for s in AUTHOR_SOURCES if s in sources):
        if source == "json-ld":
            names, people = json_ld_authors(objects)
        elif source == "meta":
            names, people = meta_author(tree), True
        elif source == "byline":
            names = byline_author(tree)
        elif source == "headline-by":
            names = headline_byline(window)
        elif source == "author-link":
            names = author_link(tree)
        elif source == "written-by":
            names = written_by(tree)
        if names:
            yield source, names, people


def page_author(tree: Any, url: str, objects: list[dict[str, Any]], window: str | None,
                sitename: str | None = None, sources: Collection[str] = AUTHOR_SOURCES
                ) -> tuple[str | None, str | None]:
    """(authors, source): the first signal naming a person other than the site itself;
    an organisation (the site's own name, or one JSON-LD types as an organisation) only
    when the page credits nobody else. `sources` is for measuring what each signal buys."""
    sites = site_names(sitename, url)
    fallback: tuple[str | None, str | None] = (None, None)
    for source, names, people in author_candidates(tree, objects, window, sources):
        persons = [n for n in names.split(", ") if _squash(n) not in sites]
        if persons and people:
            return ", ".join(persons), source
        if fallback[0] is None:
            fallback = (", ".join(persons) or names, source)
    return fallback


# --- the page's date, from all of the above ----------------------------------------------

def date_candidates(tree: Any, url: str, objects: list[dict[str, Any]], window: str | None,
                    now: datetime | None = None) -> dict[str, str | None]:
    """The publication date each machine-readable signal gives, most trusted first, and the
    date written in the headline's window."""
    return {"json-ld": json_ld_date(objects, now), "meta": meta_date(tree, now),
            "time": time_element_date(tree, now), "url": url_date(url, now),
            "header": header_date(window, now)}


def choose_date(candidates: dict[str, str | None], htmldate: Callable[[], str | None] | None,
                shown: ShownDate | None = None) -> tuple[str | None, str | None]:
    """(date, source). The date shown next to the headline wins when another signal confirms
    it (a publication field of the same day, whose time and zone are kept; else htmldate's
    own search); otherwise the most trusted publication field, then the headline's date,
    then htmldate. Measured on wcxb-dev (bench/bench_extraction.py): pages often carry
    several machine dates (first draft, re-publication), and the one readers see is the one
    a second source agrees with.

    `shown` (else candidates["header"], taken at face value) refines that: an ambiguous
    numeric date (09.10.2024) is confirmed by a field in either reading, and a date labelled
    as an update is not confirmed by a `<time>` element, which is then the update's own
    element rather than a second witness of the publication."""
    fields = [(source, value) for source, value in candidates.items()
              if source != "header" and value]
    if shown is None and candidates.get("header"):
        shown = ShownDate(str(candidates["header"]))
    if shown:
        readings = shown.readings()
        same_day = [(source, value) for source, value in fields if value[:10] in readings
                    and not (shown.update and source == "time")]
        if same_day:
            return same_day[0][1], same_day[0][0]
        if fields and htmldate is not None and (searched := (htmldate() or "")[:10]) in readings:
            return searched, "header"
    if fields:
        return fields[0][1], fields[0][0]
    if shown:
        return shown.day, "header"
    found = htmldate() if htmldate is not None else None
    return (found, "htmldate") if found else (None, None)


def page_date(tree: Any, url: str, objects: list[dict[str, Any]], window: str | None, *,
              heuristics: bool = True, now: datetime | None = None
              ) -> tuple[str | None, str | None]:
    """(date, source) of the page's publication; `heuristics=False` spares htmldate's
    whole-page search (when the feed already dates the entry)."""
    candidates = date_candidates(tree, url, objects, window, now)
    search = (lambda: htmldate_date(tree, url, now)) if heuristics else None
    return choose_date(candidates, search, shown_date(window, now))


# --- language ----------------------------------------------------------------------------

MIN_LANGUAGE_WORDS = 15  # shorter texts are guessed wrong too often: keep the declared one
LANGUAGE_SAMPLE = 1000  # characters: as sure as 3,000 on both corpus sets, at a third of the cost


def detect_language(text: str) -> str | None:
    """The text's language (ISO 639-1) by py3langid's bundled model, or None when the text
    is too short to tell."""
    if len(text.split()) < MIN_LANGUAGE_WORDS:
        return None
    import py3langid

    language, _ = py3langid.classify(text[:LANGUAGE_SAMPLE])
    return str(language)
