"""Line-level clean-up of extracted text, with what the pipeline knows beyond the page.

An extractor sees one page. The pipeline also knows the feed entry's title, and — through
the store — which lines a site repeats across its pages (newsletter boxes, "About us"
paragraphs, related-link lists). These functions are pure: worker processes get the site's
repeated lines as plain data (`line_key` values) and return the keys of the lines they saw,
which the store counts per site.

Measured on ../shared/corpus/extraction (bench/bench_extraction.py, which prints what each
rule of RULES buys): dropping a leading headline line, call-to-action and promotion lines,
closing wire credits and the datelines above the text raises both metrics on both sets;
rules that looked plausible but lowered a metric on one of them are deliberately absent:
date lines anywhere (a dated list is text), photo credits, repeated lines within a page,
lines repeating the feed summary, link-only lines, trailing lists, upper-case lines,
copyright and e-mail lines at the end.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable

from pipeline.metadata import date_spans
from pipeline.values import url_scope

_WORD = re.compile(r"\w+")
# Lines that only point elsewhere: "Related: ...", "Read more: ...", "Sign up for ...". Single
# words ("More", "Watch") only count alone or followed by a colon: as the start of a sentence
# they are ordinary text.
_CALL_TO_ACTION = re.compile(
    r"^\W*(?:related (?:stories|articles|posts?|content|coverage)|read more|read next|see more|"
    r"see also|also read|also on|more from|recommended(?: for you)?|you may also like|"
    r"you might also like|popular on|most read|most popular|trending now|sign up|"
    r"follow (?:us|him|her|them)|share (?:this|on)|click here|don't miss)\b[^.!?]{0,120}"
    r"(?:\.\.\.|…)?$"
    r"|^\W*(?:related|more|also|watch|listen|subscribe|advertisement|comments?|popular|"
    r"trending)\s*(?::.{0,160})?$", re.I)
# Promotion of the outlet's other channels: "Follow Newsbeat on Instagram", "Subscribe to
# our newsletter", "Get the latest updates in your inbox", "Have a tip? ...".
_PROMOTION = re.compile(
    r"^\W*(?:follow (?:\w+\s){0,6}on (?:twitter|facebook|instagram|x|linkedin)|subscribe to\b|"
    r"get the latest\b|sign up (?:for|to)\b|like this story|have a tip\b|"
    r"get (?:\w+\s){0,4}newsletters?\b|join our\b|download the\b)", re.I)
# ... and the newsletter box anywhere in a short line: "The best of X, delivered to your
# inbox", "Thanks for subscribing!", "Sign up for our newsletter".
_SUBSCRIPTION = re.compile(
    r"\b(?:to|in|into) your inbox\b|\bthanks? (?:you )?for (?:signing up|subscribing)\b|"
    r"\byou(?:'|’)re (?:now )?(?:subscribed|signed up)\b|"
    r"\bsign(?:ing)?[ -]up (?:now|today|here|below|for (?:our|the|free|a free)\b)|"
    r"\bsubscribe (?:now|today|here|below|for free)\b|\b(?:our|free|daily|weekly) newsletters?\b|"
    r"\berror processing your subscription\b|\bfor (?:your )?personal,? non-commercial use only\b",
    re.I)
_SUBSCRIPTION_HINTS = ("inbox", "subscri", "sign", "newsletter", "commercial")  # one is in each
MAX_PROMOTION_WORDS = 40
MAX_PROMOTION_CHARS = 1000  # 40 words never fill this many characters
# Dateline and byline lines above the text: "October 12, 2017", "By Ana Lopez | Updated
# May 2, 2025, 9:06am", "Posted on December 18, 2025 by Ana Lopez 59 Comments", "6 min read".
_READING_TIME = re.compile(r"\b\d+\s*min(?:ute)?s?\.?\s+read\b", re.I)
_METADATA_WORDS = frozenset({
    "posted", "published", "updated", "update", "last", "modified", "on", "at", "by", "in",
    "and", "min", "mins", "minute", "minutes", "read", "reading", "time", "comments",
    "comment", "am", "pm", "ago", "hour", "hours", "day", "days", "edt", "est", "pdt", "pst",
    "cdt", "cst", "gmt", "utc", "bst", "cet", "cest", "ist", "et", "pt", "submitted", "date",
    "written"})
METADATA_LINES = 3  # datelines sit among the first lines
MAX_METADATA_WORDS = 14
# Wire-story credits closing a text: "(Reporting by A; Editing by B)", "C contributed to
# this report."
_CREDITS = re.compile(
    r"^\W*(?:(?:additional\s+)?reporting by\b|editing by\b|writing by\b|compiled by\b|"
    r"(?:[\w.,'’ -]{3,200}\s)?contributed (?:to )?(?:this )?report(?:ing)?\b)", re.I)
CREDIT_LINES = 4  # credits sit among the last lines
MAX_CREDIT_WORDS = 60
MAX_CTA_WORDS = 20
MAX_KEYED_WORDS = 100  # longer lines are never boilerplate in practice: not worth counting
MAX_KEYED_LINES = 300
# Never let repeated-line filtering remove most of a text: a site whose pages are nearly
# identical (a live blog, a page that changes little) would otherwise lose its content.
MAX_SITE_FILTER_SHARE = 0.5
TITLE_LINES = 3  # a duplicated headline sits among the first lines
# A run this long of lines already in the text is the article (or a block of it) given twice;
# one repeated line, a pull quote or a refrain, is the writer's.
REPEATED_RUN = 5
REPEATED_MIN_WORDS = 3  # "Share", "Read more": short lines repeat without being copies


def site_of(url: str) -> str:
    """The site a page belongs to, for per-site statistics: host (without `www.`) and a
    port other than the scheme's default, as a feed's credentials are scoped."""
    return url_scope(url)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _key(words: list[str]) -> int:
    digest = hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def line_key(line: str) -> int:
    """A stable 64-bit key of a line's words (case and punctuation ignored)."""
    return _key(tokens(line))


def line_keys(lines: Iterable[str]) -> tuple[int, ...]:
    """Keys of the distinct countable lines of a text, in order (at most MAX_KEYED_LINES)."""
    seen: dict[int, None] = {}
    for line in lines:
        words = tokens(line)
        if 0 < len(words) <= MAX_KEYED_WORDS:
            seen.setdefault(_key(words), None)
            if len(seen) >= MAX_KEYED_LINES:
                break
    return tuple(seen)


def is_headline(line: str, titles: Iterable[str]) -> bool:
    """Whether a line repeats a known title (the feed's or the page's), allowing for a
    site suffix on the title (" - Site Name") and a word or two of difference."""
    words = tokens(line)
    if not words:
        return False
    for title in titles:
        known = tokens(title)
        if not known:
            continue
        if words == known:
            return True
        if len(words) < 3 or len(words) > len(known) + 2:
            continue
        vocabulary = set(known)
        if sum(w in vocabulary for w in words) >= 0.9 * len(words):
            return True
    return False


def is_call_to_action(line: str) -> bool:
    return bool(_CALL_TO_ACTION.match(line)) and len(_WORD.findall(line)) <= MAX_CTA_WORDS


def is_promotion(line: str) -> bool:
    # Cheap tests first: this runs on every line of every page, and a case-insensitive
    # search through a long paragraph costs more than the rest of clean_lines together.
    if len(line) > MAX_PROMOTION_CHARS or len(line.split()) > 2 * MAX_PROMOTION_WORDS:
        return False
    if not _PROMOTION.match(line):
        lowered = line.lower()
        if not any(hint in lowered for hint in _SUBSCRIPTION_HINTS) or \
                not _SUBSCRIPTION.search(line):
            return False
    return len(_WORD.findall(line)) <= MAX_PROMOTION_WORDS


def is_metadata(line: str, names: Collection[str] = ()) -> bool:
    """Whether a line is only a dateline or byline: a date or a reading time, or one of the
    authors' names, with nothing left beside them but labels ("By", "Updated", "min read"),
    numbers and the names (one other word is allowed beside a date)."""
    words = _WORD.findall(line)
    if not words or len(words) > MAX_METADATA_WORDS:
        return False
    spans = date_spans(line)
    dated = bool(spans or _READING_TIME.search(line))
    for start, end in reversed(spans):
        line = f"{line[:start]} {line[end:]}"
    known = {word for name in names for word in tokens(name)}
    left = [word for word in tokens(line) if not word.isdigit() and word not in _METADATA_WORDS]
    rest = [word for word in left if word not in known]
    if dated:
        return len(rest) <= 1
    return bool(left) and not rest  # "By Ana Lopez"


def is_credit(line: str) -> bool:
    return bool(_CREDITS.match(line)) and len(_WORD.findall(line)) <= MAX_CREDIT_WORDS


def drop_repeated_runs(lines: list[str]) -> list[str]:
    """The lines without the runs of REPEATED_RUN or more consecutive lines that each repeat
    an earlier line of the text (of REPEATED_MIN_WORDS words or more): a page that carries
    its article twice (a mobile or print copy, a preview before the full text) gives it
    once."""
    seen: set[str] = set()
    repeats = []
    for line in lines:
        key = " ".join(line.lower().split())
        repeats.append(key in seen and len(key.split()) >= REPEATED_MIN_WORDS)
        seen.add(key)
    dropped: set[int] = set()
    start = 0
    while start < len(lines):
        end = start
        while end < len(lines) and repeats[end]:
            end += 1
        if end - start >= REPEATED_RUN:
            dropped.update(range(start, end))
        start = end + 1
    return [line for number, line in enumerate(lines) if number not in dropped]


# The line rules of clean_lines, in the order bench/bench_extraction.py's ablation adds them.
RULES = ("headline", "call-to-action", "promotion", "credits", "metadata", "repeats")


def clean_lines(lines: list[str], titles: Collection[str] = (),
                site_lines: Collection[int] = (), authors: Collection[str] = (),
                rules: Collection[str] = RULES) -> list[str]:
    """The lines worth keeping: no repeated headline or dateline near the top, no
    call-to-action or promotion lines, no wire credits among the last lines, no block given
    a second time, and none of the site's repeated lines (unless that would remove most of
    the text). `authors` are the names the page or the feed credits (a byline line holds
    them); `rules` (a subset of RULES) is for measuring what each rule buys."""
    kept: list[str] = []
    texts = [text for line in lines if (text := line.strip())]
    last = len(texts) - CREDIT_LINES
    for position, text in enumerate(texts, 1):
        if not ("headline" in rules and position <= TITLE_LINES and is_headline(text, titles)
                or "metadata" in rules and position <= METADATA_LINES
                and is_metadata(text, authors)
                or "call-to-action" in rules and is_call_to_action(text)
                or "promotion" in rules and is_promotion(text)
                or "credits" in rules and position > last and is_credit(text)):
            kept.append(text)
    if "repeats" in rules:
        kept = drop_repeated_runs(kept)
    if site_lines:
        filtered = [line for line in kept if line_key(line) not in site_lines]
        total = sum(len(line.split()) for line in kept)
        left = sum(len(line.split()) for line in filtered)
        if left >= (1 - MAX_SITE_FILTER_SHARE) * total:
            kept = filtered
    return kept
