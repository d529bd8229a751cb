"""Keep and block filters: which entries stay out of the corpus. Pure functions.

A rule is a regular expression searched in one field of an entry: `title`, `url`, `text`,
`author` or `language`, case-insensitively unless the rule says `case_sensitive: true`. The
global filters and the feed's own both apply:
- an entry that any block rule matches is filtered;
- a keep list (the global one, the feed's) that is not empty filters every entry none of its
  rules match.

Title and URL come with the feed item, so rules on them are decided before the page is
fetched: a blocked title or URL costs no request. Text, author and language are known once
the page is extracted (the language as the page or the feed declares it), so a keep list
that reads them is decided then. A filtered entry is recorded in `entries.filtered_by` with
the rule that filtered it; its article is not stored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from pipeline.config import FilterRule, Filters
from pipeline.messages import Article, Entry, StoredArticle

BEFORE_FETCH = frozenset({"title", "url"})  # the fields a feed item itself carries

FilterSet = tuple[str, Filters]  # (where the filters come from: "global" or "feed", filters)


@dataclass(frozen=True)
class Subject:
    """What the rules read of an entry. A field of None is not known yet (before the page
    is extracted); an empty string is known to be empty."""

    title: str
    urls: tuple[str, ...]
    text: str | None = None
    author: str | None = None
    language: str | None = None

    def values(self, field: str) -> tuple[str, ...] | None:
        if field == "title":
            return (self.title,)
        if field == "url":
            return self.urls
        value = getattr(self, field)
        return None if value is None else (value,)


def filter_sets(global_filters: Filters, feed_filters: Filters | None) -> tuple[FilterSet, ...]:
    """The filters that apply to one feed's entries, the global ones first."""
    sets = [("global", global_filters)]
    if feed_filters:
        sets.append(("feed", feed_filters))
    return tuple((scope, filters) for scope, filters in sets if filters)


def reads_articles(sets: Sequence[FilterSet]) -> bool:
    """Whether any rule reads a field only an extracted article has (text, author,
    language): then an entry whose article is already stored needs that article's fields."""
    return any(rule.field not in BEFORE_FETCH for _scope, filters in sets
               for rule in (*filters.keep, *filters.block))


def before_fetch(entry: Entry) -> Subject:
    return Subject(title=entry.title, urls=tuple(u for u in (entry.link,) if u))


def after_extract(entry: Entry, article: Article | StoredArticle) -> Subject:
    urls = tuple(dict.fromkeys(u for u in (entry.link, article.url) if u))
    return Subject(title=entry.title, urls=urls, text=article.text,
                   author=article.author or ", ".join(entry.authors),
                   language=article.language or entry.language or "")


@lru_cache(maxsize=1024)
def _compiled(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)


def matches(rule: FilterRule, subject: Subject) -> bool | None:
    """Whether the rule matches, or None when its field is not known yet."""
    values = subject.values(rule.field)
    if values is None:
        return None
    pattern = _compiled(rule.pattern, rule.case_sensitive)
    return any(pattern.search(value) for value in values)


def describe(rule: FilterRule) -> str:
    flag = "" if rule.case_sensitive else " (any case)"
    return f"{rule.field} ~ {rule.pattern}{flag}"


def verdict(sets: Sequence[FilterSet], subject: Subject) -> str | None:
    """The rule that filters the entry (as stored in `entries.filtered_by`), or None: kept,
    or not decided yet (a keep list that reads fields the subject does not know)."""
    for scope, filters in sets:
        for rule in filters.block:
            if matches(rule, subject):
                return f"{scope} block: {describe(rule)}"
    for scope, filters in sets:
        if not filters.keep:
            continue
        results = [matches(rule, subject) for rule in filters.keep]
        if any(results) or None in results:
            continue  # kept, or not decided before extraction
        rules = "; ".join(describe(rule) for rule in filters.keep)
        return f"{scope} keep: no rule matched ({rules})"
    return None
