"""Keep and block filters (issue 14, item 9): on title, url, text, author and language, per
feed and global. A filtered entry is recorded with its rule; a blocked title or URL costs no
request; the other fields are decided after extraction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import FilterRule, Filters, load_config
from pipeline.filters import Subject, after_extract, before_fetch, filter_sets, verdict
from pipeline.messages import Article, Entry
from pipeline.run import RunReport, run_once
from pipeline.store import Store
from tests.conftest import story, write_config
from tests.newssite import NewsSite

NOW = datetime.now(UTC)


def entry(title: str = "Harbour dredging begins", link: str | None = "http://a.example/x",
          authors: tuple[str, ...] = ()) -> Entry:
    return Entry(key="k", guid=None, link=link, title=title, summary="", content="",
                 published_at=None, published_raw=None, authors=authors)


def article(text: str = "Text", author: str | None = None, language: str | None = "en",
            url: str = "http://a.example/x") -> Article:
    return Article(id="0" * 16, url=url, canonical_url=url, title="t", text=text,
                   author=author, published_at=None, language=language, sitename=None,
                   text_source="page")


def rules(kind: str, field: str, pattern: str, case_sensitive: bool = False) -> Filters:
    return Filters(**{kind: (FilterRule(field, pattern, case_sensitive),)})


# --------------------------------------------------------------------------- the decisions


def test_block_rules_on_every_field() -> None:
    e = entry(authors=("Alice Example",))
    a = article(text="The dredging of the harbour", author="Alice Example", language="en")
    for field, pattern in (("title", "dredging"), ("url", r"a\.example/x"),
                           ("text", "HARBOUR"), ("author", "^alice"), ("language", "^en$")):
        sets = filter_sets(rules("block", field, pattern), None)
        expected = f"global block: {field} ~ {pattern} (any case)"
        assert verdict(sets, after_extract(e, a)) == expected
        # title and url are decided before the page is fetched, the others after
        early = verdict(sets, before_fetch(e))
        assert early == (expected if field in ("title", "url") else None)


def test_keep_rules_on_every_field() -> None:
    e = entry()
    a = article(text="A vineyard story", author="Bob Sample", language="de")
    for field, pattern in (("title", "vineyard"), ("url", "/vineyard/"), ("text", "harbour"),
                           ("author", "alice"), ("language", "^en$")):
        sets = filter_sets(Filters(), rules("keep", field, pattern))
        assert verdict(sets, after_extract(e, a)) == \
            f"feed keep: no rule matched ({field} ~ {pattern} (any case))"
        early = verdict(sets, before_fetch(e))
        assert early == (verdict(sets, after_extract(e, a)) if field in ("title", "url")
                         else None)


def test_keep_lists_match_any_of_their_rules_and_both_lists_apply() -> None:
    keep = Filters(keep=(FilterRule("language", "^de$"), FilterRule("title", "harbour")))
    e, a = entry(), article(language="fr")
    assert verdict(filter_sets(Filters(), keep), before_fetch(e)) is None  # title matches
    assert verdict(filter_sets(Filters(), keep), after_extract(e, a)) is None
    # A global keep list and the feed's: an entry must pass both.
    both = filter_sets(rules("keep", "language", "^en$"), keep)
    assert verdict(both, after_extract(e, a)).startswith("global keep")  # type: ignore[union-attr]
    assert verdict(both, after_extract(e, article(language="en"))) is None


def test_rules_are_case_insensitive_unless_they_say_otherwise() -> None:
    subject = Subject(title="SPONSORED: a message", urls=())
    assert verdict(filter_sets(rules("block", "title", "sponsored"), None), subject)
    assert verdict(filter_sets(rules("block", "title", "sponsored", True), None),
                   subject) is None


def test_an_unknown_language_fails_a_language_keep_rule() -> None:
    sets = filter_sets(rules("keep", "language", "^en$"), None)
    assert verdict(sets, after_extract(entry(), article(language=None)))


# --------------------------------------------------------------------------- end to end

HARBOUR = "harbour-dredging"
VINEYARD = "vineyard-harvest"


def page_html(title: str, language: str, paragraphs: list[str]) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html><html lang="{language}"><head><title>{title}</title></head>'
            f'<body><main><article><h1>{title}</h1>{body}</article></main></body></html>')


@pytest.fixture
def site() -> Iterator[NewsSite]:
    """Two stories: A (harbour, English) and B (vineyard, German); their feed names their
    authors (Alice for A, Bob for B)."""
    with NewsSite() as news:
        for slug, title, lang, topic in (
                (HARBOUR, "Harbour dredging begins", "en", "harbour"),
                (VINEYARD, "Vineyard harvest ends", "de", "vineyard")):
            news.route(f"/news/{slug}.html", page_html(title, lang, story(topic)),
                       "text/html; charset=utf-8")
        yield news


def feed_body(site: NewsSite) -> str:
    items = []
    for i, (slug, title, author) in enumerate((
            (HARBOUR, "Harbour dredging begins", "Alice Example"),
            (VINEYARD, "Vineyard harvest ends", "Bob Sample"))):
        items.append(f"<item><title>{title}</title><link>{site.url(f'/news/{slug}.html')}"
                     f"</link><guid>{slug}</guid><dc:creator>{author}</dc:creator>"
                     f"<pubDate>{(NOW - timedelta(hours=i + 1)):%a, %d %b %Y %H:%M:%S +0000}"
                     "</pubDate></item>")
    return ('<?xml version="1.0"?><rss version="2.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Two stories</title>'
            + "".join(items) + "</channel></rss>")


def ingest(tmp_path: Path, feeds: list[Any], **sections: Any) -> tuple[Store, RunReport]:
    config = load_config(write_config(tmp_path / "newswire.yaml", feeds,
                                      extract={"workers": 1}, **sections))
    store = Store.open(config.database)
    return store, asyncio.run(run_once(config, store, include_all=True))


def outcomes(store: Store) -> dict[tuple[str, str], str | None]:
    """(feed's URL path, entry GUID) → filtered_by (None: kept, with its article)."""
    result = {}
    for path, guid, filtered, article in store.db.execute(
            "SELECT f.url, e.guid, e.filtered_by, e.article_id FROM entries e "
            "JOIN feeds f ON f.id = e.feed_id"):
        assert (filtered is None) == (article is not None), (path, guid)
        result[(path.rsplit("/", 1)[-1], guid.rsplit("/", 1)[-1])] = filtered
    return result


CASES = [  # field, block pattern (matches A only), keep pattern (matches A only)
    ("title", "dredging", "harbour"),
    ("url", f"/{HARBOUR}", "harbour-"),
    ("text", "harbour report", "harbour report"),
    ("author", "^alice", "Alice"),
    ("language", "^en$", "^en"),
]


def test_block_and_keep_on_each_field_per_feed(site: NewsSite, tmp_path: Path) -> None:
    feeds = []
    for field, block, keep in CASES:
        for kind, pattern in (("block", block), ("keep", keep)):
            url = site.route(f"/feeds/{kind}-{field}.xml", feed_body(site), "application/rss+xml")
            feeds.append({"url": url, "filters": {kind: [{"field": field, "pattern": pattern}]}})
    store, report = ingest(tmp_path, feeds)
    with store:
        assert report.ok == len(feeds), report.errors
        found = outcomes(store)
        for field, block, keep in CASES:
            assert found[(f"block-{field}.xml", HARBOUR)] == \
                f"feed block: {field} ~ {block} (any case)"
            assert found[(f"block-{field}.xml", VINEYARD)] is None
            assert found[(f"keep-{field}.xml", HARBOUR)] is None
            assert found[(f"keep-{field}.xml", VINEYARD)] == \
                f"feed keep: no rule matched ({field} ~ {keep} (any case))"
        # Both stories are in the corpus (each feed kept one of them), once each.
        assert store.db.execute("SELECT count(*) FROM articles").fetchone()[0] == 2


@pytest.mark.parametrize("field", ["title", "url"])
def test_no_page_is_fetched_for_a_blocked_title_or_url(site: NewsSite, tmp_path: Path,
                                                       field: str) -> None:
    pattern = dict((f, b) for f, b, _k in CASES)[field]
    url = site.route("/feeds/f.xml", feed_body(site), "application/rss+xml")
    store, report = ingest(tmp_path, [{"url": url, "filters": {
        "block": [{"field": field, "pattern": pattern}]}}])
    with store:
        assert report.ok == 1, report.errors
        assert outcomes(store)[("f.xml", HARBOUR)] == f"feed block: {field} ~ {pattern} (any case)"
        assert store.db.execute("SELECT url FROM articles").fetchall() == [
            (site.url(f"/news/{VINEYARD}.html"),)]
    assert site.requests_for(f"/news/{HARBOUR}.html") == []
    assert len(site.requests_for(f"/news/{VINEYARD}.html")) == 1


def test_global_filters_apply_to_every_feed(site: NewsSite, tmp_path: Path) -> None:
    urls = [site.route(f"/feeds/{n}.xml", feed_body(site), "application/rss+xml")
            for n in ("one", "two")]
    store, report = ingest(tmp_path, [urls[0], {"url": urls[1], "filters": {
        "keep": [{"field": "author", "pattern": "bob"}]}}],
        filters={"block": [{"field": "text", "pattern": "nothing says this"}],
                 "keep": [{"field": "language", "pattern": "^(en|de)$"}]})
    with store:
        found = outcomes(store)
        assert found[("one.xml", HARBOUR)] is None and found[("one.xml", VINEYARD)] is None
        assert found[("two.xml", HARBOUR)] == \
            "feed keep: no rule matched (author ~ bob (any case))"
        assert found[("two.xml", VINEYARD)] is None


def test_an_article_already_stored_is_filtered_by_its_stored_fields(site: NewsSite,
                                                                     tmp_path: Path) -> None:
    first = site.route("/feeds/first.xml", feed_body(site), "application/rss+xml")
    store, _ = ingest(tmp_path, [first])
    store.close()
    site.clear_log()
    second = site.route("/feeds/second.xml", feed_body(site), "application/rss+xml")
    store, report = ingest(tmp_path, [first, {"url": second, "filters": {
        "keep": [{"field": "language", "pattern": "^de$"}]}}])
    with store:
        found = outcomes(store)
        assert found[("second.xml", HARBOUR)] == \
            "feed keep: no rule matched (language ~ ^de$ (any case))"
        assert found[("second.xml", VINEYARD)] is None
    assert site.requests_for("/news/") == []  # read from the store, not fetched again
