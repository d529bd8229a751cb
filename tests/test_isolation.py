"""One feed never harms another (../shared/docs/hostile-inputs.md rows 36-40).

Each test puts a hostile or faulty feed, host or database next to a healthy feed in the same
run and checks both that the fault is recorded against its own feed and that the healthy
feed is stored in full.

- values that do not parse (Unicode digits, absurd magnitudes) in headers, robots.txt and
  feed hints: test_unparseable_*; every header and hint at once, fuzzed through real polls:
  test_fuzzed_*; the failure boundary around a poll, in the daemon: test_a_poll_that_raises_*
- a feed line of the config that does not read: test_a_broken_feed_line_*
- another site's feed listing a site's article (an aggregator): test_another_sites_feed_*
- a damaged database: test_damaged_index_*
- read-only commands: test_read_commands_*
- canonical collisions: test_canonical_*
- cookies: test_cookies_*
- daemon shutdown: test_sigterm_*
- a slow host: test_a_slow_host_*; a slow poll in the daemon: test_a_slow_poll_*
- wall-clock jumps: test_clock_jump_* (faketime from apt, skipped when absent)
- deflate read in one-byte chunks: test_deflate_*
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from pipeline import engine, run
from pipeline.backfill import Filters, backfill_sitemap
from pipeline.config import load_config
from pipeline.fetch import decode_body
from pipeline.run import Runner, run_once
from pipeline.store import Store
from pipeline.store.summaries import RECOUNTS
from pipeline.times import parse_iso
from tests.conftest import (
    REPO,
    fill_site,
    resolve_to_loopback,
    run_cli,
    run_daemon_for,
    slow_beside_quick,
    story,
    write_config,
)
from tests.newssite import NewsSite

RSS = "/feeds/rss.xml"


# --------------------------------------------------------------------------- helpers


def count(db: Path, sql: str, *params: Any) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def feed_row(db: Path, url: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM feeds WHERE config_url = ? OR url = ?",
                           [url, url]).fetchone()
    assert row is not None, url
    return dict(row)


def stored_in_full(db: Path, site: NewsSite) -> bool:
    """Every article of the healthy site is stored with its page's whole text."""
    with sqlite3.connect(db) as conn:
        texts = {url: text for url, text in conn.execute("SELECT url, text FROM articles")}
    return all(a.url in texts and all(p in texts[a.url] for p in a.paragraphs)
               for a in site.articles)


def feed_with(site: NewsSite, channel_extra: str) -> bytes:
    """The site's RSS feed with extra elements in its channel (hints such as <ttl>)."""
    with urllib.request.urlopen(site.feed_url("rss")) as response:
        body = response.read().decode("utf-8")
    body = body.replace('<rss version="2.0"', '<rss version="2.0" '
                        'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"', 1)
    return body.replace("<channel>", "<channel>" + channel_extra, 1).encode("utf-8")


@pytest.fixture
def healthy() -> Iterator[NewsSite]:
    with NewsSite(site_name="The Healthy Herald") as news:
        for i in range(3):
            news.add_article(f"healthy-{i}", f"Healthy story {i}", story(f"healthy {i}"),
                             datetime.now(UTC) - timedelta(hours=i + 1))
        yield news


# --------------------------------------------------------------------------- values


HOSTILE = {
    "retry-after-unicode-digit": "retry",
    "expires-absurd-year": "expires",
    "robots-crawl-delay-unicode-digit": "robots",
    "robots-request-rate-unicode-digit": "robots-rate",
    "ttl-unicode-digit": "<ttl>\u00b2</ttl>",
    "ttl-400-digits": f"<ttl>{'9' * 400}</ttl>",
    "update-frequency-400-digits": "<sy:updatePeriod>hourly</sy:updatePeriod>"
                                   f"<sy:updateFrequency>{'7' * 400}</sy:updateFrequency>",
    "update-frequency-unicode-digit": "<sy:updatePeriod>daily</sy:updatePeriod>"
                                      "<sy:updateFrequency>\u00b2</sy:updateFrequency>",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_unparseable_values_are_recorded_against_their_feed(
        case: str, site: NewsSite, healthy: NewsSite, tmp_path: Path) -> None:
    """Before: `once` exited 1 with a traceback and stored nothing for the healthy feed (or,
    for feed hints, the hostile feed's own entries were lost as a parse error)."""
    hostile_url = site.feed_url("rss")
    kind = HOSTILE[case]
    if kind == "retry":
        site.set_fault(RSS, "status", code=503, headers={"Retry-After": "\u00b2"})
    elif kind == "expires":
        site.set_fault(RSS, "body", body=feed_with(site, ""), content_type="application/rss+xml",
                       headers={"Expires": "Thu, 01 Jan 99999999999999999999 00:00:00 GMT"})
    elif kind == "robots":
        site.route("/robots.txt", "User-agent: *\nCrawl-delay: \u00b2\nDisallow: /private/\n")
    elif kind == "robots-rate":
        site.route("/robots.txt", "User-agent: *\nRequest-rate: \u00b9/\u00b3\n")
    else:
        site.route("/hinted.xml", feed_with(site, kind), "application/rss+xml")
        hostile_url = site.url("/hinted.xml")
    config = write_config(tmp_path / "newswire.yaml", [hostile_url, healthy.feed_url("rss")])

    result = run_cli("once", config=config)

    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    db = tmp_path / "newswire.db"
    assert stored_in_full(db, healthy)
    hostile = feed_row(db, hostile_url)
    assert count(db, "SELECT count(*) FROM fetches WHERE feed_id = ?", hostile["id"]) == 1
    if kind == "retry":  # an unusable Retry-After: an ordinary failure, backed off
        assert hostile["last_status"] == 503 and hostile["consecutive_failures"] == 1
        assert parse_iso(hostile["next_poll_at"]) > datetime.now(UTC) + timedelta(minutes=20)
    else:  # the odd value is ignored; the feed's own articles are all there
        assert hostile["last_error"] is None, hostile["last_error"]
        assert stored_in_full(db, site)


# A raw HTTP server for the fuzz test: header values go out as the UTF-8 bytes of any string,
# which http.server's send_header (Latin-1 only) cannot send.
class RawServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.responses: dict[str, tuple[int, list[tuple[str, str]], bytes]] = {}
        super().__init__(("127.0.0.1", 0), RawHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class RawHandler(http.server.BaseHTTPRequestHandler):
    server: RawServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, headers, body = self.server.responses.get(
            self.path, (404, [("Content-Type", "text/plain")], b"not found"))
        lines = [f"HTTP/1.1 {status} X".encode()]
        lines += [f"{name}: {value}".encode() for name, value in headers]
        if not any(name.lower() == "content-length" for name, _ in headers):
            lines.append(f"Content-Length: {len(body)}".encode())
        lines.append(b"Connection: close")
        self.wfile.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self.close_connection = True


def test_fuzzed_headers_robots_and_feed_hints_never_stop_a_poll(
        healthy: NewsSite, tmp_path: Path) -> None:
    """Arbitrary strings in every header the fetcher and scheduler read, in robots.txt and
    in the feed's refresh hints, through real polls (a persistent Runner, one pass per
    example): the hostile feed's poll is always recorded, the healthy feed's new article is
    always stored in full."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    server = RawServer()
    odd = st.one_of(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
                max_size=40),
        st.sampled_from(["\u00b2", "\u0663", "\u00b9\u00b2", "1\u00b2", "-5", "1e400",
                         "9" * 400, "0", "60", "Thu, 01 Jan 99999999999999999999 00:00:00 GMT",
                         "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 32 Foo 2024 99:99:99 +9999",
                         "max-age=\u00b2", "max-age=" + "9" * 400, "\u00e9tag", "W/\"x\"",
                         "http://[::1", "//[x", "http://elsewhere.invalid/feed"]),
        st.integers(min_value=-10**30, max_value=10**30).map(str),
    )
    headers = ("retry-after", "expires", "cache-control", "etag", "last-modified",
               "content-type", "location", "content-length")
    robots_fields = ("crawl-delay", "request-rate", "disallow")
    hints = ("ttl", "sy:updatePeriod", "sy:updateFrequency")

    async def resolve(host: str, port: int) -> list[str]:
        if host.endswith(".test") or host == "127.0.0.1":
            return ["127.0.0.1"]
        raise OSError(f"{host}: not resolvable in this test")  # fuzzed hosts never leave

    feed_url = f"http://fuzz.test:{server.port}/feed.xml"
    config = load_config(write_config(tmp_path / "newswire.yaml",
                                      [feed_url, healthy.feed_url("rss")],
                                      schedule={"min_interval": "1s"}))
    store = Store.open(config.database)
    store.sync_feeds(config.feeds)
    loop = asyncio.new_event_loop()
    runner = Runner(config, store, resolve)
    loop.run_until_complete(runner.__aenter__())
    examples = [0]

    @hypothesis.settings(max_examples=60, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(status=st.sampled_from([200, 200, 200, 302, 304, 429, 500, 503]),
                      header_values=st.fixed_dictionaries({h: odd for h in headers}),
                      robots=st.fixed_dictionaries({f: odd for f in robots_fields}),
                      hint_values=st.fixed_dictionaries({h: odd for h in hints}))
    def check(status: int, header_values: dict[str, str], robots: dict[str, str],
              hint_values: dict[str, str]) -> None:
        n = examples[0] = examples[0] + 1
        page = f"http://fuzz{n}.test:{server.port}/page{n}.html"
        extra = "".join(f"<{h}>{escape(v)}</{h}>" for h, v in hint_values.items())
        feed = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
                f'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>'
                f"<title>Fuzz</title>{extra}<item><title>Item {n}</title><link>{page}</link>"
                f"<description>Item {n} of the fuzzed feed.</description></item>"
                f"</channel></rss>").encode()
        sent = [(h.title(), v) for h, v in header_values.items()
                if h != "content-length" or n % 5 == 0]  # a broken length breaks framing
        if "content-type" not in header_values:
            sent.append(("Content-Type", "application/rss+xml"))
        server.responses["/feed.xml"] = (status, sent, feed)
        robots_txt = "User-agent: *\n" + "".join(f"{f}: {v}\n" for f, v in robots.items())
        server.responses["/robots.txt"] = (200, [("Content-Type", "text/plain")],
                                           robots_txt.encode("utf-8"))
        server.responses[f"/page{n}.html"] = (
            200, [("Content-Type", "text/html; charset=utf-8")],
            f"<html><body><p>{' '.join(story(f'fuzz {n}'))}</p></body></html>".encode())
        fresh = healthy.add_article(f"fresh-{n}", f"Fresh story {n}", story(f"fresh {n}"),
                                    datetime.now(UTC))

        loop.run_until_complete(runner.run_due(include_all=True))

        fuzzed = store.db.execute("SELECT id FROM feeds WHERE config_url = ?",
                                  [feed_url]).fetchone()[0]
        polls = store.db.execute("SELECT count(*) FROM fetches WHERE feed_id = ?",
                                 [fuzzed]).fetchone()[0]
        assert polls == n  # every poll recorded, whatever the values
        text = store.db.execute("SELECT text FROM articles WHERE url = ?",
                                [fresh.url]).fetchone()
        assert text is not None and all(p in text[0] for p in fresh.paragraphs), (
            store.db.execute("SELECT feed_id, status, error FROM fetches "
                             "ORDER BY id DESC LIMIT 2").fetchall(),
            store.db.execute("SELECT url, text_source, extract_error, quality FROM articles "
                             "ORDER BY rowid DESC LIMIT 3").fetchall())

    try:
        check()
    finally:
        loop.run_until_complete(runner.__aexit__(None, None, None))
        loop.close()
        store.close()
        server.shutdown()
    assert examples[0] >= 30


def test_a_poll_that_raises_is_recorded_and_backed_off_in_the_daemon(
        site: NewsSite, healthy: NewsSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The failure boundary: an exception escaping a poll (here injected, as no value
    found raises any more) is recorded against its feed with backoff; the daemon does not
    retry it every tick. Before: the poll was never recorded and repeated every tick."""
    bad = site.feed_url("rss")
    config = load_config(write_config(tmp_path / "newswire.yaml",
                                      [bad, healthy.feed_url("rss")],
                                      schedule={"tick": "0.5s", "min_interval": "1s"}))
    plan_request = run.plan_request

    def explode(feed: Any, config: Any, now: datetime, *args: Any) -> Any:
        if feed.url == bad:
            raise ValueError("a value nobody parsed")
        return plan_request(feed, config, now, *args)

    monkeypatch.setattr(run, "plan_request", explode)
    store = Store.open(config.database)

    with caplog.at_level(logging.INFO, logger="newswire"):
        run_daemon_for(config, store, 4)  # eight ticks
    row = feed_row(config.database, bad)
    assert row["consecutive_failures"] == 1
    assert row["last_error"] == "internal error: ValueError: a value nobody parsed"
    assert parse_iso(row["next_poll_at"]) > datetime.now(UTC) + timedelta(minutes=20)
    assert count(config.database, "SELECT count(*) FROM fetches WHERE feed_id = ?",
                 row["id"]) == 1
    polls = [r for r in caplog.records if r.getMessage() == "poll"
             and r.__dict__["fields"]["feed"] == bad]
    assert len(polls) == 1 and polls[0].__dict__["fields"]["outcome"] == "failed"
    assert stored_in_full(config.database, healthy)
    store.close()


def test_another_sites_feed_never_names_an_article_its_own_sites_feed_lists(
        tmp_path: Path) -> None:
    """An aggregator's feed lists a site's story under its own headline and date. Polled
    first, it stored the article, and its headline stayed the article's title for good,
    even once the site's own feed listed the story; and its later retitles ("1,500
    points") replaced the site's headline. Now the site's feed names, dates and counts the
    article from its first sighting on, and another site's feed never retitles it."""
    with NewsSite() as outlet, NewsSite() as aggregator:
        outlet.base_url = outlet.base_url.replace("127.0.0.1", "outlet.test")
        aggregator.base_url = aggregator.base_url.replace("127.0.0.1", "aggregator.test")
        fill_site(outlet, 2)
        story = outlet.article("story-1")
        listed_at = datetime.now(UTC).replace(microsecond=0)

        def listing(headline: str) -> str:
            return aggregator.route("/hot.xml", (
                '<?xml version="1.0"?><rss version="2.0"><channel><title>Hot links</title>'
                f"<link>{aggregator.url('/')}</link><item><title>{headline}</title>"
                f"<link>{story.url}</link><guid>hot-1</guid>"
                f"<pubDate>{listed_at.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
                "</item></channel></rss>"), "application/rss+xml")

        hot = listing("Story 1 (outlet.test) - 999 points")
        path = tmp_path / "newswire.yaml"
        store = None
        for feeds, headline in (([hot], None), ([hot, outlet.feed_url("rss")], None),
                                ([hot, outlet.feed_url("rss")], "Story 1 - 1,500 points")):
            if headline:
                listing(headline)
            config = load_config(write_config(path, feeds))
            store = store or Store.open(config.database)
            asyncio.run(run_once(config, store, include_all=True,
                                 resolver=resolve_to_loopback))
            row = store.db.execute(
                "SELECT a.title, a.published_at, f.url FROM articles a "
                "JOIN feeds f ON f.id = a.feed_id WHERE a.url = ?", [story.url]).fetchone()
            if len(feeds) == 1:  # only the aggregator lists it: its headline is all there is
                assert row == ("Story 1 (outlet.test) - 999 points",
                               listed_at.strftime("%Y-%m-%dT%H:%M:%SZ"), hot)
            else:
                assert row == (story.title, story.published.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               outlet.feed_url("rss"))
        assert store is not None
        versions = store.db.execute(
            "SELECT v.version, v.reason, v.title FROM article_versions v "
            "JOIN articles a ON a.id = v.article_id WHERE a.url = ? ORDER BY v.version",
            [story.url]).fetchall()
        assert versions == [(1, "first", "Story 1 (outlet.test) - 999 points"),
                            (2, "own-feed", story.title)]
        entries = store.db.execute("SELECT e.title FROM entries e JOIN feeds f ON "
                                   "f.id = e.feed_id WHERE f.url = ?", [hot]).fetchall()
        assert entries == [("Story 1 - 1,500 points",)]  # the aggregator's own record
        counts = dict(store.db.execute(
            "SELECT f.url, s.articles FROM feed_stats s JOIN feeds f ON f.id = s.feed_id"))
        assert counts == {hot: 0, outlet.feed_url("rss"): 2}
        for name, (counter, recount) in RECOUNTS.items():  # every counter still exact
            assert store.db.execute(counter).fetchall() == \
                store.db.execute(recount).fetchall(), name
        assert store.db.execute("SELECT count(*) FROM articles_fts WHERE articles_fts "
                                "MATCH '\"999 points\"'").fetchone()[0] == 0
        store.close()


def test_the_page_retries_of_an_article_follow_it_to_its_sites_feed(tmp_path: Path) -> None:
    """The aggregator stored the article when its page failed (a 503): its retries move
    with the article to the site's feed, whose settings and polls fetch the page."""
    with NewsSite() as outlet, NewsSite() as aggregator:
        outlet.base_url = outlet.base_url.replace("127.0.0.1", "outlet.test")
        aggregator.base_url = aggregator.base_url.replace("127.0.0.1", "aggregator.test")
        fill_site(outlet, 1)
        story = outlet.article("story-0")
        outlet.set_fault("/news/story-0.html", "status", code=503)
        hot = aggregator.route("/hot.xml", (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Hot links</title>'
            f"<link>{aggregator.url('/')}</link><item><title>Aggregated</title>"
            f"<link>{story.url}</link><description>{' '.join(story.paragraphs)}"
            "</description></item></channel></rss>"), "application/rss+xml")
        path = tmp_path / "newswire.yaml"
        store = None
        owners = []
        for feeds in ([hot], [hot, outlet.feed_url("rss")]):
            config = load_config(write_config(path, feeds))
            store = store or Store.open(config.database)
            asyncio.run(run_once(config, store, include_all=True,
                                 resolver=resolve_to_loopback))
            owners.append(store.db.execute(
                "SELECT f.url FROM page_retries r JOIN feeds f ON f.id = r.feed_id").fetchall())
        assert store is not None
        store.close()
    assert owners == [[(hot,)], [(outlet.feed_url("rss"),)]]


def test_a_feed_whose_parse_runs_away_is_stopped_and_recorded_alone(
        site: NewsSite, tmp_path: Path) -> None:
    """feedparser checks an `<author>` with a regular expression that takes quadratic time:
    120 KB of it held the only worker for about a minute (200 KB: minutes), and every
    feed's poll with it (the review's reproduction). The parse now has the extraction's
    time limit: the feed records it, the other feed is stored in full."""
    hostile = site.route("/runaway.xml", (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Runaway</title><item>'
        "<title>x</title><link>https://example.org/x</link><guid>g</guid><author>" +
        "a" * 120_000 + "</author></item></channel></rss>"), "application/rss+xml")
    config = write_config(tmp_path / "newswire.yaml", [hostile, site.feed_url("rss")],
                          extract={"workers": 1, "timeout": "2s"})
    result = run_cli("once", config=config, timeout=280)
    assert result.code == 0, result.stderr
    db = tmp_path / "newswire.db"
    with sqlite3.connect(db) as conn:
        errors = dict(conn.execute("SELECT url, last_error FROM feeds"))
        stored = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    assert errors[hostile] == \
        "feed parse error (application/rss+xml): feed parse time limit of 2s exceeded"
    assert errors[site.feed_url("rss")] is None and stored == 5


def test_a_servers_terminal_escapes_never_reach_the_output_or_the_database(
        site: NewsSite, tmp_path: Path) -> None:
    """A Content-Type carrying U+009B (a one-character terminal escape, CSI) went into the
    feed's error as sent: `once`, `status`, the log and `feeds.last_error` printed it, so a
    server could clear or recolour the user's terminal (the review's reproduction)."""
    hostile = site.route("/escape.xml", "<html><body>not a feed</body></html>",
                         "x/\x9b2J\x9b31mPWNED")
    config = write_config(tmp_path / "newswire.yaml", [hostile, site.feed_url("rss")])
    once = run_cli("once", config=config)
    status = run_cli("status", config=config)
    with sqlite3.connect(tmp_path / "newswire.db") as conn:
        (error,) = conn.execute("SELECT last_error FROM feeds WHERE url = ?",
                                [hostile]).fetchone()
    assert once.code == 0 and status.code == 0
    assert error.startswith("feed parse error (x/2j31mpwned")
    for text in (once.stdout, once.stderr, status.stdout, error):
        assert "\x9b" not in text


def test_a_backfill_never_takes_an_article_from_the_feed_that_stored_it(
        tmp_path: Path) -> None:
    """A sitemap of the article's own site is a record of where articles came from, not a
    feed: the aggregator's article stays the aggregator's (the review's reproduction: it
    went to the inactive backfill source, counted as "backfill: ...")."""
    with NewsSite() as outlet, NewsSite() as aggregator:
        outlet.base_url = outlet.base_url.replace("127.0.0.1", "outlet.test")
        aggregator.base_url = aggregator.base_url.replace("127.0.0.1", "aggregator.test")
        fill_site(outlet, 1)
        story = outlet.article("story-0")
        hot = aggregator.route("/hot.xml", (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Hot links</title>'
            f"<link>{aggregator.url('/')}</link><item><title>Aggregated</title>"
            f"<link>{story.url}</link><pubDate>Tue, 01 Dec 2026 10:00:00 +0000</pubDate>"
            "</item></channel></rss>"), "application/rss+xml")
        sitemap = outlet.route("/sitemap.xml", (
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{story.url}</loc></url></urlset>"), "application/xml")
        config = load_config(write_config(tmp_path / "newswire.yaml", [hot]))
        store = Store.open(config.database)
        asyncio.run(run_once(config, store, resolver=resolve_to_loopback))
        report = asyncio.run(backfill_sitemap(config, store, sitemap, Filters(),
                                              resolver=resolve_to_loopback))
        row = store.db.execute("SELECT a.title, a.published_at, f.url FROM articles a "
                               "JOIN feeds f ON f.id = a.feed_id").fetchall()
        store.close()
    assert report.sources == 1
    assert row == [("Aggregated", "2026-12-01T10:00:00Z", hot)]


def test_a_broken_feed_line_is_recorded_against_its_feed_and_the_others_run(
        site: NewsSite, healthy: NewsSite, tmp_path: Path) -> None:
    """Before: one feed line with a typo (`intervall`) made the whole config an error;
    `once` exited 2 and polled nothing, and the daemon would not start. Now that feed is
    not polled (its settings are unknown) and shows why; the others run; fixing the line
    brings it back."""
    broken = site.feed_url("rss")
    path = write_config(tmp_path / "newswire.yaml",
                        [{"url": broken, "intervall": "10m"}, healthy.feed_url("rss")])
    result = run_cli("once", config=path)
    assert result.code == 0, result.stderr
    assert "feeds[0].intervall: unknown key" in result.stderr
    assert f"{broken} is not polled until the line is fixed" in result.stderr
    assert "1 feeds polled: 1 updated" in result.stdout
    db = tmp_path / "newswire.db"
    assert stored_in_full(db, healthy)
    assert not site.requests_for(RSS)
    row = feed_row(db, broken)
    assert row["active"] == 1 and row["config_error"] == "config feeds[0].intervall: unknown key"
    status = run_cli("status", config=path)
    line = next(line for line in status.stdout.splitlines() if broken in line)
    assert "misconfigured" in line and "never" in line and "intervall: unknown key" in line

    write_config(path, [{"url": broken, "interval": "10m"}, healthy.feed_url("rss")])
    result = run_cli("once", config=path)
    assert result.code == 0 and "config error" not in result.stderr, result.stderr
    assert stored_in_full(db, site)
    assert feed_row(db, broken)["config_error"] is None


# --------------------------------------------------------------------------- the database


def damage_index(db: Path, index: str) -> None:
    """Overwrite the root page of one index with garbage, as a failing disk might."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                            [index]).fetchone()[0]
    with open(db, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(bytes([0x0D]) + os.urandom(page_size - 1))


@pytest.mark.parametrize("index", ["idx_entries_feed_id_entry_key", "idx_articles_text_hash"])
def test_damaged_index_is_exit_3_with_advice_and_repair_recovers(
        index: str, site: NewsSite, tmp_path: Path) -> None:
    """Before: `once` and `status` exited 1 with a traceback."""
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
    assert run_cli("once", config=config).code == 0
    db = tmp_path / "newswire.db"
    articles = count(db, "SELECT count(*) FROM articles")
    damage_index(db, index)
    site.add_article("later", "A later story", story("later"), datetime.now(UTC))

    result = run_cli("once", "--all", config=config)
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "damaged" in result.stderr and "newswire repair" in result.stderr
    assert ".recover" in result.stderr
    if index.startswith("idx_entries"):
        # status reads the feeds and their counters (feed_stats), never the entries: the
        # damaged index is not its concern, and it still answers.
        status = run_cli("status", config=config)
        assert status.code == 0 and "Traceback" not in status.stderr, status.stderr
        assert status.stdout.splitlines()[1].split()[-1] == str(articles)  # its articles

    repaired = run_cli("repair", config=config)
    assert repaired.code == 0 and "repaired" in repaired.stdout, repaired
    assert list(tmp_path.glob("newswire.db.damaged-*"))  # the old file is kept
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM articles_fts WHERE articles_fts MATCH "
                            "'unanimous'").fetchone()[0] == articles
    assert count(db, "SELECT count(*) FROM articles") == articles
    assert run_cli("once", "--all", config=config).code == 0
    assert count(db, "SELECT count(*) FROM articles") == articles + 1
    assert run_cli("repair", config=config).stdout.strip() == "no problems found"


def hold_write_lock(db: Path) -> subprocess.Popen[str]:
    """Another process inside a long write transaction on the database."""
    code = ("import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "c.execute(\"UPDATE feeds SET name = 'held'\")\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def serve_and_fetch(config: Path, path: str, env: dict[str, str] | None = None,
                    wrap: list[str] | None = None) -> tuple[int, str]:
    """Start `newswire serve`, fetch one page, stop it: (status, body)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [*(wrap or []), sys.executable, "-m", "pipeline", "--config", str(config),
               "serve", "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                            timeout=5) as response:
                    return response.status, response.read().decode()
            except OSError:
                if server.poll() is not None:
                    raise AssertionError(server.stderr.read() if server.stderr else "") \
                        from None
                time.sleep(0.1)
        raise AssertionError("serve did not answer")
    finally:
        server.terminate()
        server.wait(30)


def test_read_commands_never_wait_for_a_writer(site: NewsSite, tmp_path: Path) -> None:
    """Before: `status` waited 30 s for the lock (it synced the feed list), then tracebacked
    with "database is locked"."""
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
    assert run_cli("once", config=config).code == 0
    db = tmp_path / "newswire.db"
    holder = hold_write_lock(db)
    try:
        status = run_cli("status", config=config, timeout=20)  # the busy timeout is 30 s
        assert status.code == 0 and "ok" in status.stdout, status.stderr
        exported = run_cli("export", str(tmp_path / "out"), config=config, timeout=20)
        assert exported.code == 0 and len(list((tmp_path / "out").iterdir())) == 5
        opml = run_cli("export-opml", config=config, timeout=20)
        assert opml.code == 0 and site.feed_url("rss") in opml.stdout
        status_code, body = serve_and_fetch(config, "/newswire/articles.json?_shape=array")
        assert status_code == 200 and body.count('"id"') == 5
    finally:
        holder.kill()
        holder.wait()


def test_status_shows_config_changes_without_writing(site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
    assert run_cli("once", config=config).code == 0
    db = tmp_path / "newswire.db"
    before = db.stat().st_mtime_ns, count(db, "SELECT count(*) FROM feeds")
    write_config(tmp_path / "newswire.yaml", [site.feed_url("atom")])
    status = run_cli("status", config=config)
    assert status.code == 0, status.stderr
    lines = {line.split()[1]: line for line in status.stdout.splitlines()[1:] if line.strip()}
    assert set(lines) == {"inactive", "new"}  # the old feed dropped, the new one pending
    assert (db.stat().st_mtime_ns, count(db, "SELECT count(*) FROM feeds")) == before


def read_only_mount(directory: Path) -> list[str] | None:
    """A command prefix that runs a command with `directory` mounted read-only (a private
    mount namespace), or None when this machine cannot (not root, no unshare)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        return None
    script = (f"mount --bind {directory} {directory} && "
              f"mount -o remount,bind,ro {directory} {directory} && exec \"$@\"")
    return ["unshare", "-m", "sh", "-c", script, "sh"]


def test_read_commands_work_on_a_database_the_user_can_only_read(site: NewsSite,
                                                                  tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "newswire.yaml"
    write_config(config, [site.feed_url("rss")])
    text = config.read_text().replace("database: newswire.db", "database: data/newswire.db")
    config.write_text(text)
    assert run_cli("once", config=config).code == 0
    wrap = read_only_mount(data)
    if wrap is None:
        if os.geteuid() == 0:
            pytest.skip("cannot make a read-only mount here (needs unshare -m)")
        data.chmod(0o555)
        (data / "newswire.db").chmod(0o444)
        wrap = []
    command = [sys.executable, "-m", "pipeline", "--config", str(config)]
    try:
        status = subprocess.run([*wrap, *command, "status"], cwd=REPO, capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0 and "ok" in status.stdout, status.stderr
        out = tmp_path / "out"
        exported = subprocess.run([*wrap, *command, "export", str(out)], cwd=REPO,
                                  capture_output=True, text=True, timeout=60)
        assert exported.returncode == 0, exported.stderr
        assert len(list(out.iterdir())) == 5
        status_code, body = serve_and_fetch(config, "/newswire/articles.json?_shape=array",
                                            wrap=wrap)
        assert status_code == 200 and body.count('"id"') == 5
        once = subprocess.run([*wrap, *command, "once", "--all"], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert once.returncode == 3  # a writing command says it cannot write
    finally:
        data.chmod(0o755)


# --------------------------------------------------------------------------- lost articles


def test_canonical_collisions_keep_every_article(tmp_path: Path) -> None:
    """Distinct pages that all declare one canonical URL (the section page): before, one
    article was stored and the other texts were nowhere."""
    with NewsSite() as site:
        section = site.url("/news/")
        now = datetime.now(UTC)
        for i in range(4):
            site.add_article(f"s{i}", f"Story {i}", story(f"section story {i}"),
                             now - timedelta(hours=i), canonical=section)
        config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
        assert run_cli("once", config=config).code == 0
        db = tmp_path / "newswire.db"
        assert stored_in_full(db, site)
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT url, canonical_url, claimed_canonical_url "
                                "FROM articles ORDER BY url").fetchall()
        assert len(rows) == 4
        claimed = [r for r in rows if r[2] == section.rstrip("/")]  # refused claims kept
        assert len(claimed) == 3 and all(r[1] == r[0] for r in claimed)


def test_canonical_claims_still_merge_the_same_story(tmp_path: Path) -> None:
    """An AMP-like copy of a page that names the page as canonical is the same article."""
    with NewsSite() as site:
        original = site.add_article("story", "The story", story("one story"),
                                    datetime.now(UTC))
        site.add_article("story-amp", "The story", story("one story"), datetime.now(UTC),
                         canonical=original.url)
        site.set_feed_items("rss", ["story"])
        site.set_feed_items("atom", ["story-amp"])
        config = write_config(tmp_path / "newswire.yaml",
                              [site.feed_url("rss"), site.feed_url("atom")])
        assert run_cli("once", config=config).code == 0
        db = tmp_path / "newswire.db"
        assert count(db, "SELECT count(*) FROM articles") == 1
        assert count(db, "SELECT count(*) FROM entries WHERE article_id IS NOT NULL") == 2
        assert count(db, "SELECT count(*) FROM articles WHERE "
                         "claimed_canonical_url IS NOT NULL") == 0


# --------------------------------------------------------------------------- shared state


def test_cookies_never_cross_requests(healthy: NewsSite, tmp_path: Path) -> None:
    """A page that sets big cookies: before, every later request to its host (other feeds'
    pages included) carried them, until the server answered 400."""
    with NewsSite() as site:
        fill_site(site, 4)
        monster = site.add_article("cookies", "Cookie monster", story("cookie monster"),
                                   datetime.now(UTC) - timedelta(minutes=5))
        with urllib.request.urlopen(monster.url) as response:
            page = response.read()
        cookies = {"Set-Cookie": "crumbs=" + "x" * 3800 + "; Path=/"}
        site.route("/news/cookies.html", page, "text/html; charset=utf-8", cookies)
        site.set_feed_items("rss", ["cookies"])
        site.set_feed_items("atom", [a.slug for a in site.articles if a.slug != "cookies"])
        config = write_config(tmp_path / "newswire.yaml",
                              [site.feed_url("rss"), site.feed_url("atom"),
                               healthy.feed_url("rss")],
                              fetch={"per_host_concurrency": 1})
        assert run_cli("once", config=config).code == 0
        assert run_cli("once", "--all", config=config).code == 0
        db = tmp_path / "newswire.db"
        assert stored_in_full(db, site) and stored_in_full(db, healthy)
        assert [r for r in site.log if "cookie" in r.headers] == []
        assert site.requests_for("/news/cookies.html")  # the cookies were offered


# --------------------------------------------------------------------------- shutdown


def start_daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                             "daemon"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_sigterm_finishes_in_flight_polls_and_writes_them(healthy: NewsSite,
                                                          tmp_path: Path) -> None:
    """Before: SIGTERM cancelled the pass and logged a CancelledError traceback at error
    level; the in-flight poll was not written."""
    with NewsSite() as site:
        fill_site(site, 4)
        for article in site.articles:
            site.set_fault(f"/news/{article.slug}.html", "delay", seconds=1.5)
        config = write_config(tmp_path / "newswire.yaml",
                              [site.feed_url("rss"), healthy.feed_url("rss")])
        daemon = start_daemon(config)
        site.wait_for_requests(RSS, 1, timeout=60)
        time.sleep(0.5)  # its pages are being fetched (a request is logged when answered)
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=90)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err and "CancelledError" not in err
    assert "finishing in-flight polls" in err
    db = tmp_path / "newswire.db"
    assert stored_in_full(db, site) and stored_in_full(db, healthy)
    assert count(db, "SELECT count(*) FROM fetches") == 2


def test_sigterm_cancels_what_outlasts_the_grace_period_cleanly(tmp_path: Path) -> None:
    with NewsSite() as site:
        fill_site(site, 2)
        site.set_fault("/news/story-0.html", "delay", seconds=30)
        config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")],
                              schedule={"stop_grace": "1s"}, fetch={"timeout": "60s"})
        daemon = start_daemon(config)
        site.wait_for_requests(RSS, 1, timeout=60)
        site.wait_for_requests("/news/story-1.html", 1, timeout=60)  # story-0 is in flight
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=90)
    assert daemon.returncode == 0, err
    assert time.monotonic() - started < 25  # the grace period, not the 30 s page
    assert "Traceback" not in err and "CancelledError" not in err
    assert "stop grace of 1s over" in err
    db = tmp_path / "newswire.db"
    # Nothing half-recorded: the poll is either absent or whole; its feed stays due.
    assert count(db, "SELECT count(*) FROM fetches") == 0
    assert count(db, "SELECT count(*) FROM feeds WHERE next_poll_at <= ?",
                 datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")) == 1


# --------------------------------------------------------------------------- fairness


def test_a_slow_host_does_not_starve_the_others(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight trickling pages on one host, four page slots: before, the slow host's pages
    held every slot while queued for their host, and the healthy host's pages waited for
    most of them to time out."""
    monkeypatch.setattr(engine, "MAX_PAGES_IN_FLIGHT", 4)

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with NewsSite() as slow, NewsSite() as fast:
        slow.base_url = slow.base_url.replace("127.0.0.1", "slow.test")  # two hosts
        fast.base_url = fast.base_url.replace("127.0.0.1", "fast.test")
        fill_site(slow, 8)
        for i in range(3):
            fast.add_article(f"fast-{i}", f"Fast story {i}", story(f"fast {i}"),
                             datetime.now(UTC) - timedelta(hours=i))
        for article in slow.articles:
            slow.set_fault(f"/news/{article.slug}.html", "trickle", interval=0.2)
        fast.set_fault(RSS, "delay", seconds=0.5)  # the slow host's pages queue up first
        config = load_config(write_config(
            tmp_path / "newswire.yaml", [slow.feed_url("rss"), fast.feed_url("rss")],
            fetch={"timeout": "1s", "per_host_concurrency": 1}))
        store = Store.open(config.database)
        asyncio.run(run_once(config, store, resolver=resolve))
        store.close()
        slow_pages = sorted(r.time for r in slow.requests_for("/news/"))
        fast_pages = sorted(r.time for r in fast.requests_for("/news/"))
    assert len(slow_pages) == 8 and len(fast_pages) == 3
    assert fast_pages[-1] < slow_pages[2]  # served while the slow host was on its 2nd page
    assert stored_in_full(config.database, fast)


def test_a_slow_poll_does_not_hold_up_the_daemons_other_feeds(tmp_path: Path) -> None:
    """A feed whose twelve pages trickle to their deadline, one at a time on their host,
    takes about 12 s to poll; a feed due every second beside it is polled every second all
    the same. Before, the daemon polled in passes that each waited for their slowest poll:
    the quick feed was polled once in 6 s, when the slow feed's pass began."""
    with slow_beside_quick(tmp_path, 12) as (path, slow, quick):
        config = load_config(path)
        store = Store.open(config.database)
        run_daemon_for(config, store, 6, resolve_to_loopback)
        store.close()
        quick_polls = len(quick.requests_for(RSS))
        slow_pages = len(slow.requests_for("/news/"))
    assert slow_pages < 12  # the slow poll was still going when the daemon stopped
    assert quick_polls >= 4, quick_polls
    assert stored_in_full(config.database, quick)
    # The slow poll, cut by the stop's grace period, is not half-recorded: its feed stays due.
    assert count(config.database, "SELECT count(*) FROM fetches WHERE feed_id = ?",
                 feed_row(config.database, slow.feed_url("rss"))["id"]) == 0


# --------------------------------------------------------------------------- the clock


def faketime_env(offset: str) -> dict[str, str]:
    library = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                                "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1")
                    if Path(p).exists()), None)
    if library is None or shutil.which("faketime") is None:
        pytest.skip("faketime is not installed (.ci/run installs it)")
    return {"LD_PRELOAD": library, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_DONT_RESET": "1"}


def test_clock_jump_forward_and_back_does_not_strand_feeds(site: NewsSite,
                                                           tmp_path: Path) -> None:
    """Before: a feed polled while the clock read ten years ahead stayed scheduled ten years
    ahead, and was never polled again."""
    env = faketime_env("+3650d")
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
    assert run_cli("once", config=config, env=env).code == 0
    db = tmp_path / "newswire.db"
    row = feed_row(db, site.feed_url("rss"))
    assert parse_iso(row["next_poll_at"]) > datetime.now(UTC) + timedelta(days=3000)
    site.add_article("back-in-time", "Back in time", story("back in time"), datetime.now(UTC))

    result = run_cli("once", config=config)  # the clock is right again

    assert result.code == 0 and "1 feeds polled" in result.stdout, result.stdout
    row = feed_row(db, site.feed_url("rss"))
    assert parse_iso(row["next_poll_at"]) < datetime.now(UTC) + timedelta(days=2)
    assert stored_in_full(db, site)


def test_clock_jump_back_under_a_running_daemon(site: NewsSite, tmp_path: Path) -> None:
    """The daemon started ten years ahead; the clock is then set right while it runs: it
    goes on polling (APScheduler's next run time was ten years ahead too)."""
    clock = tmp_path / "clock"
    clock.write_text("+3650d\n")
    env = faketime_env("")
    del env["FAKETIME"]
    env.update({"FAKETIME_TIMESTAMP_FILE": str(clock), "FAKETIME_NO_CACHE": "1"})
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")],
                          schedule={"tick": "0.5s"})
    daemon = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                               "daemon"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    try:
        site.wait_for_requests(RSS, 1, timeout=60)
        time.sleep(1)
        clock.write_text("+0d\n")
        site.add_article("after-the-jump", "After the jump", story("after the jump"),
                         datetime.now(UTC))
        site.wait_for_requests(RSS, 2, timeout=30)  # polled again, clock back to now
        deadline = time.monotonic() + 30
        while not stored_in_full(tmp_path / "newswire.db", site):
            assert time.monotonic() < deadline, "the new article was not stored"
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "clock" in err


# --------------------------------------------------------------------------- deflate


def test_deflate_decided_from_enough_bytes() -> None:
    """Before: a zlib-wrapped body whose first chunk was one byte was read as raw deflate
    and failed."""
    text = b"<rss>" + b"news " * 2000 + b"</rss>"
    wrapped = zlib.compress(text)
    raw_compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = raw_compressor.compress(text) + raw_compressor.flush()
    from pipeline.fetch import _Decoder

    for body in (wrapped, raw):
        decoder = _Decoder("deflate", 1_000_000)
        decoder.feed(body[:1])
        decoder.feed(body[1:2])
        decoder.feed(body[2:])
        assert decoder.finish() == text
        assert decode_body(body, "deflate", 1_000_000) == text


def test_deflate_in_one_byte_first_chunk_over_http(healthy: NewsSite, tmp_path: Path) -> None:
    class Chunked(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            with urllib.request.urlopen(healthy.feed_url("rss")) as response:
                body = zlib.compress(response.read())
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Encoding", "deflate")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in (body[:1], body[1:]):
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Chunked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
        config = write_config(tmp_path / "newswire.yaml", [url])
        assert run_cli("once", config=config).code == 0
    finally:
        server.shutdown()
    row = feed_row(tmp_path / "newswire.db", url)
    assert row["last_error"] is None and row["last_status"] == 200
    assert stored_in_full(tmp_path / "newswire.db", healthy)
