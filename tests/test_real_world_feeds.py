"""Feeds as people really have them (issue 14, items 1-5 and 10): plain-text titles with angle
brackets, GUIDs shared by different items, JSON Feeds with odd versions and relative URLs,
dates in other languages, non-http links with the http URL beside them, and categories.

Each fix has its own fixture, written here; the end-to-end checks serve them from a NewsSite
on 127.0.0.1 and poll them with the real Runner.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.browse import metadata_for
from pipeline.config import load_config
from pipeline.parse import FeedParseError, ParsedFeed, parse_feed
from pipeline.run import RunReport, run_once
from pipeline.store import Store
from tests.conftest import story, write_config
from tests.newssite import NewsSite

DECL = '<?xml version="1.0" encoding="utf-8"?>'
RSS = {"content-type": "application/rss+xml; charset=utf-8"}
ATOM_TYPE = "application/atom+xml; charset=utf-8"
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def rss(items: str, extra_ns: str = "") -> str:
    return (f'{DECL}<rss version="2.0"{extra_ns}><channel><title>Fixture</title>'
            f"<link>http://example.org/</link>{items}</channel></rss>")


def atom(entries: str) -> str:
    return (f'{DECL}<feed xmlns="http://www.w3.org/2005/Atom"><title>Fixture</title>'
            f"<id>urn:fixture</id>{entries}</feed>")


def titles(parsed: ParsedFeed) -> list[str]:
    return [e.title for e in parsed.entries]


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as news:
        yield news


def poll(tmp_path: Path, feeds: list[Any], store: Store | None = None) -> tuple[Store,
                                                                                 RunReport]:
    """A pass over every feed (due or not) with the real Runner."""
    config = load_config(write_config(tmp_path / "newswire.yaml", feeds,
                                      extract={"workers": 1}))
    store = store or Store.open(config.database)
    return store, asyncio.run(run_once(config, store, include_all=True))


def page(site: NewsSite, slug: str, topic: str) -> str:
    """An article page on the site; its URL."""
    site.add_article(slug, topic.capitalize(), story(topic), NOW)
    return site.article(slug).url


# --------------------------------------------------------------------------- 1. titles


ATOM_TITLES = atom(
    '<entry><id>urn:1</id><title type="text">Use the &lt;canvas&gt; element</title></entry>'
    "<entry><id>urn:2</id><title>&lt;/example&gt;</title></entry>"  # text is Atom's default
    '<entry><id>urn:3</id><title type="text">if a &lt; b &amp;&amp; c &gt; d</title></entry>'
    '<entry><id>urn:4</id><title type="html">&lt;b&gt;Bold&lt;/b&gt; AT&amp;amp;T</title>'
    "</entry>"
    '<entry><id>urn:5</id><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
    "An <em>xhtml</em> title</div></title></entry>")

RSS_TITLES = rss("".join(
    f"<item><guid>{i}</guid><title>{title}</title></item>" for i, title in enumerate([
        "&lt;/example&gt;",  # escaped text: a closing tag of no HTML element
        "Use the &lt;canvas&gt; element",  # an element named, never closed
        "Vector&lt;T&gt; in C++",
        "&lt;b&gt;Breaking&lt;/b&gt; news",  # HTML: an element opened and closed
        "Line one&lt;br&gt;line two",  # HTML: a void element
        "AT&amp;amp;T earnings",  # escaped twice
        "&lt;script&gt;alert(1)&lt;/script&gt;Safe",
    ])))


def test_atom_text_titles_keep_their_characters() -> None:
    assert titles(parse_feed(ATOM_TITLES.encode(), {"content-type": ATOM_TYPE})) == [
        "Use the <canvas> element", "</example>", "if a < b && c > d", "Bold AT&T",
        "An xhtml title"]


def test_rss_titles_are_html_only_when_they_evidently_are() -> None:
    assert titles(parse_feed(RSS_TITLES.encode(), RSS)) == [
        "</example>", "Use the <canvas> element", "Vector<T> in C++", "Breaking news",
        "Line one line two", "AT&T earnings", "Safe"]


def test_json_feed_titles_keep_their_characters() -> None:
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [
        {"id": "1", "title": "</example>"}, {"id": "2", "title": "Use the <canvas> element"},
        {"id": "3", "title": "<i>Italic</i> headline"}]}).encode()
    assert titles(parse_feed(body, {"content-type": "application/feed+json"})) == [
        "</example>", "Use the <canvas> element", "Italic headline"]


def test_plain_text_titles_are_stored_as_written(site: NewsSite, tmp_path: Path) -> None:
    links = [page(site, f"t{i}", f"title fixture {i}") for i in range(2)]
    body = rss(f"<item><guid>a</guid><title>Use the &lt;canvas&gt; element</title>"
               f"<link>{links[0]}</link></item>"
               f"<item><guid>b</guid><title>&lt;/example&gt;</title><link>{links[1]}</link>"
               "</item>")
    url = site.route("/titles.xml", body, RSS["content-type"])
    store, report = poll(tmp_path, [url])
    with store:
        assert report.ok == 1, report.errors
        assert sorted(r[0] for r in store.db.execute("SELECT title FROM entries")) == [
            "</example>", "Use the <canvas> element"]
        assert sorted(r[0] for r in store.db.execute("SELECT title FROM articles")) == [
            "</example>", "Use the <canvas> element"]


# --------------------------------------------------------------------------- 2. shared GUIDs


def item(guid: str, title: str, link: str | None = None, body: str = "") -> str:
    return (f"<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>"
            + (f"<link>{link}</link>" if link else "")
            + f"<description>{body or title + ' body'}</description></item>")


def test_items_sharing_a_guid_are_distinct_entries() -> None:
    items = (item("same", "A", "http://example.org/a") + item("same", "B", "http://example.org/b")
             + item("same", "A", "http://example.org/a")  # a byte-identical repeat
             + item("same", "C", "http://example.org/c")
             + item("nolink", "X", body="x text") + item("nolink", "Y", body="y text")
             + item("nolink", "X", body="x text")  # a repeat again
             + item("unique", "U", "http://example.org/u"))
    parsed = parse_feed(rss(items).encode(), RSS)
    assert titles(parsed) == ["A", "B", "C", "X", "Y", "U"]
    keys = [e.key for e in parsed.entries]
    assert len(set(keys)) == 6
    assert keys[0] == "guid:same|link:http://example.org/a"
    assert keys[3].startswith("guid:nolink|hash:")
    assert keys[5] == "guid:unique"  # a GUID used once keeps its plain key


def test_same_guid_same_link_is_one_item_unless_title_and_content_differ() -> None:
    same_story = item("g", "Headline", "http://example.org/a", "Text") + \
        item("g", "Headline, updated", "http://example.org/a", "Text")
    assert titles(parse_feed(rss(same_story).encode(), RSS)) == ["Headline"]
    live = item("g", "Morning update", "http://example.org/live", "Morning text") + \
        item("g", "Evening update", "http://example.org/live", "Evening text")
    parsed = parse_feed(rss(live).encode(), RSS)
    assert titles(parsed) == ["Morning update", "Evening update"]
    assert len({e.key for e in parsed.entries}) == 2


def test_shared_guids_end_to_end_and_across_polls(site: NewsSite, tmp_path: Path) -> None:
    a, b, c = (page(site, s, f"guid story {s}") for s in ("a", "b", "c"))
    url = site.route("/shared.xml", rss(item("same", "A", a) + item("same", "B", b)
                                        + item("same", "A", a)), RSS["content-type"])
    store, report = poll(tmp_path, [url])
    assert report.ok == 1, report.errors
    assert store.db.execute("SELECT count(*) FROM entries").fetchone()[0] == 2
    assert store.db.execute("SELECT count(*) FROM articles").fetchone()[0] == 2

    # Polled again, with one more item under the GUID: only that one is new.
    site.route("/shared.xml", rss(item("same", "C", c) + item("same", "A", a)
                                  + item("same", "B", b)), RSS["content-type"])
    store, report = poll(tmp_path, [url], store)
    with store:
        assert report.new_entries == 1
        assert sorted(r[0] for r in store.db.execute("SELECT title FROM entries")) == \
            ["A", "B", "C"]


def test_a_guid_used_alone_then_shared_is_not_doubled(site: NewsSite, tmp_path: Path) -> None:
    x, y = page(site, "x", "transition x"), page(site, "y", "transition y")
    url = site.route("/grow.xml", rss(item("g2", "X", x)), RSS["content-type"])
    store, report = poll(tmp_path, [url])
    assert store.db.execute("SELECT entry_key FROM entries").fetchall() == [("guid:g2",)]
    site.route("/grow.xml", rss(item("g2", "Y", y) + item("g2", "X", x)), RSS["content-type"])
    store, report = poll(tmp_path, [url], store)
    with store:
        assert report.new_entries == 1  # Y; X was recorded under its plain GUID before
        assert sorted(r[0] for r in store.db.execute("SELECT title FROM entries")) == ["X", "Y"]


def test_a_guid_reused_for_another_item_later_is_a_new_entry(site: NewsSite,
                                                             tmp_path: Path) -> None:
    one, two = page(site, "one", "reused one"), page(site, "two", "reused two")
    url = site.route("/reuse.xml", rss(item("1", "First story", one)), RSS["content-type"])
    store, _ = poll(tmp_path, [url])
    site.route("/reuse.xml", rss(item("1", "Second story", two)), RSS["content-type"])
    store, report = poll(tmp_path, [url], store)
    assert report.new_entries == 1 and report.new_articles == 1
    # ... and a corrected link under the same GUID and title is the same entry.
    site.route("/reuse.xml", rss(item("1", "Second story", two + "?fixed=1")),
               RSS["content-type"])
    store, report = poll(tmp_path, [url], store)
    with store:
        assert report.new_entries == 0
        assert store.db.execute("SELECT count(*) FROM entries").fetchone()[0] == 2


# --------------------------------------------------------------------------- 3. JSON Feed


@pytest.mark.parametrize(("version", "expected"), [
    ("1.0", "json1"), ("1.1", "json11"), ("1", "json1"), ("v1.1", "json11"),
    ("https://jsonfeed.org/version/1", "json1"), ("http://jsonfeed.org/version/1.1/", "json11"),
    (None, "json1"), (1.1, "json11"),
])
def test_json_feed_version_spellings(version: object, expected: str) -> None:
    data: dict[str, Any] = {"title": "J", "items": [{"id": "1", "title": "One"}]}
    if version is not None:
        data["version"] = version
    parsed = parse_feed(json.dumps(data).encode(), {"content-type": "application/json"})
    assert parsed.version == expected and titles(parsed) == ["One"]


def test_a_json_document_that_is_not_a_feed_says_so() -> None:
    for body in (b'{"data": [1, 2]}', b'{"version": "1.1", "items": []}', b"[]"):
        with pytest.raises(FeedParseError, match="a JSON document, not a JSON Feed") as info:
            parse_feed(body, {"content-type": "application/json"})
        assert "well-formed" not in str(info.value)


def test_json_feed_relative_urls_resolved_against_the_feed_url() -> None:
    body = json.dumps({"version": "1.0", "title": "J", "home_page_url": "/",
                       "items": [{"id": "1", "url": "/news/one.html"},
                                 {"id": "2", "external_url": "../elsewhere/two.html"},
                                 {"id": "3", "url": "javascript:alert(1)",
                                  "external_url": "three.html"},
                                 {"id": "4", "url": "https://other.example/four"}]}).encode()
    parsed = parse_feed(body, {}, "http://example.org/feeds/json/feed.json")
    assert [e.link for e in parsed.entries] == [
        "http://example.org/news/one.html", "http://example.org/feeds/elsewhere/two.html",
        "http://example.org/feeds/json/three.html", "https://other.example/four"]
    assert parsed.link == "http://example.org/"


def test_json_feed_with_a_bare_version_and_relative_urls_end_to_end(site: NewsSite,
                                                                    tmp_path: Path) -> None:
    page(site, "rel", "relative json")
    body = json.dumps({"version": "1.0", "title": "Bare", "items": [
        {"id": "r1", "url": "../news/rel.html", "title": "Relative",
         "content_text": "short"}]})
    url = site.route("/feeds/bare.json", body, "application/json")
    store, report = poll(tmp_path, [url])
    with store:
        assert report.ok == 1, report.errors
        assert store.db.execute("SELECT url, text_source FROM articles").fetchall() == [
            (site.article("rel").url, "page")]


# --------------------------------------------------------------------------- 4. dates

LOCALIZED_DATES = [
    ("mer, 16 nov 2022 00:38:15 +0100", "2022-11-15T23:38:15Z"),  # French
    ("Seg, 24 Set 2018 10:00:00 -0300", "2018-09-24T13:00:00Z"),  # Portuguese
    ("Di, 03 Dez 2019 10:00:00 +0100", "2019-12-03T09:00:00Z"),  # German
    ("Mo, 4. März 2019 10:00:00 +0100", "2019-03-04T09:00:00Z"),  # German, full name
    ("vie, 18 mar 2022 10:00:00 +0100", "2022-03-18T09:00:00Z"),  # Spanish: mar = March here
    ("jeu., 3 févr. 2022 12:00:00 +0100", "2022-02-03T11:00:00Z"),  # French, dotted
    ("gio, 12 giu 2018 10:00:00 +0200", "2018-06-12T08:00:00Z"),  # Italian
    ("wo, 15 mei 2019 08:00:00 +0200", "2019-05-15T06:00:00Z"),  # Dutch
    ("Пн, 14 мая 2018 10:00:00 +0300", "2018-05-14T07:00:00Z"),  # Russian
    ("śr, 9 paź 2019 10:00:00 +0200", "2019-10-09T08:00:00Z"),  # Polish
    ("tor, 7 okt 2021 10:00:00 +0200", "2021-10-07T08:00:00Z"),  # Swedish
    ("Thurs, 16 Nov 2022 00:38:15 GMT", "2022-11-16T00:38:15Z"),  # a weekday misspelled
]


@pytest.mark.parametrize(("raw", "expected"), LOCALIZED_DATES)
def test_localized_dates_are_read(raw: str, expected: str) -> None:
    body = rss(f"<item><guid>1</guid><title>t</title><pubDate>{raw}</pubDate></item>")
    (entry,) = parse_feed(body.encode(), RSS, now=NOW).entries
    assert (entry.published_at, entry.published_raw) == (expected, raw)


def test_localized_dates_in_json_and_atom() -> None:
    body = json.dumps({"version": "1.1", "title": "J", "items": [
        {"id": "1", "date_published": "mer, 16 nov 2022 00:38:15 +0100"}]}).encode()
    assert parse_feed(body, {}, now=NOW).entries[0].published_at == "2022-11-15T23:38:15Z"
    doc = atom("<entry><id>urn:1</id><title>t</title>"
               "<updated>Seg, 24 Set 2018 10:00:00 -0300</updated></entry>")
    assert parse_feed(doc.encode(), {}, now=NOW).entries[0].published_at == \
        "2018-09-24T13:00:00Z"


def test_localized_dates_stored(site: NewsSite, tmp_path: Path) -> None:
    link = page(site, "dated", "dated story")
    url = site.route("/dated.xml", rss(
        f"<item><guid>1</guid><title>t</title><link>{link}</link>"
        f"<pubDate>{LOCALIZED_DATES[0][0]}</pubDate></item>"), RSS["content-type"])
    store, report = poll(tmp_path, [url])
    with store:
        assert store.db.execute("SELECT published_at FROM entries").fetchone()[0] == \
            LOCALIZED_DATES[0][1]


# --------------------------------------------------------------------------- 5. links

FEEDBURNER = ' xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0"'


def link_fixture(base: str) -> str:
    return rss(
        f'<item><guid isPermaLink="false">1</guid><title>One</title>'
        f'<link uri="at://did:plc:abc/app.bsky.feed.post/1">{base}/news/one.html</link></item>'
        f'<item><guid isPermaLink="false">2</guid><title>Two</title>'
        f"<link>at://did:plc:abc/app.bsky.feed.post/2</link>"
        f"<feedburner:origLink>{base}/news/two.html</feedburner:origLink></item>"
        f"<item><guid>{base}/news/three.html</guid><title>Three</title>"
        f"<link>at://did:plc:abc/app.bsky.feed.post/3</link></item>"
        f'<item><guid isPermaLink="false">4</guid><title>Four</title>'
        f"<link>at://did:plc:abc/app.bsky.feed.post/4</link></item>"
        f'<item><guid isPermaLink="false">5</guid><title>Five</title>'
        f'<link href="gemini://capsule.example/5">/news/five.html</link></item>',
        FEEDBURNER)


def test_an_http_url_beside_a_non_http_link_is_kept() -> None:
    base = "http://example.org"
    parsed = parse_feed(link_fixture(base).encode(), RSS, base + "/feed.xml")
    assert [e.link for e in parsed.entries] == [
        f"{base}/news/one.html", f"{base}/news/two.html", f"{base}/news/three.html", None,
        f"{base}/news/five.html"]


def test_non_http_links_end_to_end(site: NewsSite, tmp_path: Path) -> None:
    for slug in ("one", "two", "three", "five"):
        page(site, slug, f"link story {slug}")
    url = site.route("/links.xml", link_fixture(site.base_url), RSS["content-type"])
    store, report = poll(tmp_path, [url])
    with store:
        assert report.ok == 1, report.errors
        assert sorted(r[0] for r in store.db.execute(
            "SELECT url FROM articles WHERE url != ''")) == sorted(
            site.article(s).url for s in ("one", "two", "three", "five"))


# --------------------------------------------------------------------------- 10. tags


def test_categories_are_stored_as_tags_and_facetable(site: NewsSite, tmp_path: Path) -> None:
    one, two = page(site, "cat-one", "category one"), page(site, "cat-two", "category two")
    rss_url = site.route("/cats.xml", rss(
        f"<item><guid>1</guid><title>One</title><link>{one}</link>"
        "<category>Politics</category><category domain='x'>Europe</category></item>"
        f"<item><guid>2</guid><title>Two</title><link>{two}</link>"
        "<category>Politics</category></item>"), RSS["content-type"])
    atom_url = site.route("/cats.atom", atom(
        f'<entry><id>urn:a1</id><title>One</title><link href="{one}"/>'
        '<category term="Politics" label="Politik"/><category term="Energy"/></entry>'),
        ATOM_TYPE)
    json_url = site.route("/cats.json", json.dumps({"version": "1.1", "title": "J", "items": [
        {"id": "j2", "url": two, "title": "Two", "tags": ["Sport", "Politics"]}]}),
        "application/feed+json")
    store, report = poll(tmp_path, [rss_url, atom_url, json_url])
    with store:
        assert report.ok == 3, report.errors
        rows = store.db.execute(
            "SELECT f.url, e.title, t.tag, t.article_id = e.article_id FROM tags t "
            "JOIN entries e ON e.id = t.entry_id JOIN feeds f ON f.id = t.feed_id "
            "ORDER BY f.id, e.title, t.tag").fetchall()
        assert rows == [
            (rss_url, "One", "Europe", 1), (rss_url, "One", "Politics", 1),
            (rss_url, "Two", "Politics", 1),
            (atom_url, "One", "Energy", 1), (atom_url, "One", "Politics", 1),
            (json_url, "Two", "Politics", 1), (json_url, "Two", "Sport", 1)]
        db = store.path
    assert db is not None
    facets = asyncio.run(_datasette_facets(db, "tags", "tag"))
    assert facets == {"Politics": 4, "Europe": 1, "Energy": 1, "Sport": 1}


async def _datasette_facets(db: Path, table: str, column: str) -> dict[str, int]:
    """The facet counts Datasette shows for a column with the shipped metadata (no server:
    Datasette's own in-process client)."""
    from datasette.app import Datasette

    datasette = Datasette([str(db)], metadata=metadata_for(db, 5))
    response = await datasette.client.get(f"/{db.stem}/{table}.json?_facet={column}")
    assert response.status_code == 200, response.text
    results = response.json()["facet_results"]
    results = results.get("results", results)  # the shape differs between Datasette versions
    return {r["value"]: r["count"] for r in results[column]["results"]}
