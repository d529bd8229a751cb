"""Every row of ../shared/docs/hostile-inputs.md, through the real poll path, on loopback.

Rows and where they are tested (this file unless named):
 1-8  address guard, odd IPs, schemes, DNS rebinding, proxies, trickle, endless body, gzip
      bombs: test_fetch.py; 3 (stored links): test_parse.py
 9    redirect caps/loops: test_fetch.py; permanent redirect through a poll: test_row9_*
 10   test_row10_* (429/503 Retry-After: next_poll_at moves, failures unchanged)
 11   test_row11_* (5xx and resets back off with jitter, capped; dead feeds still probed)
 12   test_row12_* (410 stops polling and keeps data; repeated 404 backs off)
 13   test_row13_* (untrusted TLS certificate: fails closed, never retried unverified)
 14   test_row14_* (empty 200, HTML page, binary with a wrong Content-Type)
 15-22 entities, XXE, path-as-body, parser exceptions, charsets, dates, 50k items:
      test_parse.py; 19 fuzz: test_parse.py; 20 over HTTP: test_feed_corpus.py;
      21 stored dates: test_row21_25_32_*; 22 items cut before feedparser: test_row22_*
 23   test_e2e.py (ingest twice, counts stable; one article, two entries)
 24   test_parse.py; in the Datasette page: test_row30_24_*
 25   test_parse.py; stored as strict UTF-8: test_row21_25_32_*
 26   test_row26_* (30 MB page, deep nesting, PDF, binary, HTML cap, time limit, dead worker)
 27   test_row27_* (paywall, cookie wall, JavaScript wall, soft 404)
 28   test_crash.py (kill -9 at random points)
 29   test_row29_* (disk full: rollback, state unchanged, error recorded, daemon runs on)
 30   test_row30_24_* (Datasette reads during ingestion)
 31   test_row31_* (two `once` runs at once)
 32   test_row21_25_32_* (quotes, `--`, feed-supplied keys never become columns)
 33-34 export: issue 5, not here
 35   test_row35_* (workers get plain data, no SQLite connection, no database fd)
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import pickle
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import Config, load_config
from pipeline.daemon import run_daemon
from pipeline.extract import MAX_HTML_CHARS, trim_html
from pipeline.messages import PollResult
from pipeline.parse import CUT_FACTOR, cut_after_items, parse_feed
from pipeline.run import Runner, run_once
from pipeline.store import Store
from pipeline.times import parse_iso
from tests import procs
from tests.conftest import REPO, fill_site, free_port, run_cli, story, write_config
from tests.newssite import NewsSite, http_date

RSS = "/feeds/rss.xml"


# --------------------------------------------------------------------------- helpers


def make_config(tmp_path: Path, feeds: list[str], **sections: Any) -> Config:
    return load_config(write_config(tmp_path / "newswire.yaml", feeds, **sections))


def poll_times(config: Config, store: Store, feed_id: int, times: int = 1,
               between: Any = None) -> list[PollResult]:
    """Poll one feed `times` times in a row through the real Runner, whatever its schedule."""

    async def go() -> list[PollResult]:
        results = []
        async with Runner(config, store) as runner:
            for i in range(times):
                if between and i:
                    between(i)
                result, _summary = await runner.poll_and_record(store.feed(feed_id))
                results.append(result)
        return results

    return asyncio.run(go())


def feed_row(store: Store, feed_id: int = 1) -> dict[str, Any]:
    return dict(store.db["feeds"].get(feed_id))


def seconds_until(value: str | None) -> float:
    when = parse_iso(value)
    assert when is not None
    return (when - datetime.now(UTC)).total_seconds()


def count(store: Store, table: str) -> int:
    return int(store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "newswire.db")
    yield s
    s.close()


def synced(config: Config, store: Store) -> Store:
    store.sync_feeds(config.feeds)
    return store


# --------------------------------------------------------------------------- rows 9-12


def test_row9_permanent_redirect_updates_the_stored_url(site: NewsSite, tmp_path: Path,
                                                        store: Store) -> None:
    old = site.url("/old-feed.xml")
    site.set_fault("/old-feed.xml", "redirect", location=site.feed_url("rss"), code=301)
    config = make_config(tmp_path, [old])
    asyncio.run(run_once(config, store))
    row = feed_row(store)
    assert row["url"] == site.feed_url("rss") and row["config_url"] == old
    assert count(store, "articles") == 5
    store.sync_feeds(config.feeds)  # the config still names the old URL: same feed
    assert count(store, "feeds") == 1


def test_row9_redirect_loop_is_a_recorded_failure(site: NewsSite, tmp_path: Path,
                                                  store: Store) -> None:
    site.set_fault("/a.xml", "redirect", location="/b.xml")
    site.set_fault("/b.xml", "redirect", location="/a.xml")
    config = make_config(tmp_path, [site.url("/a.xml")])
    report = asyncio.run(run_once(config, store))
    assert report.failed == 1
    row = feed_row(store)
    assert row["last_error"] == "redirect loop" and row["consecutive_failures"] == 1
    assert len(site.requests_for("/a.xml")) == 1  # no hammering around the loop


@pytest.mark.parametrize("code", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_row10_retry_after_moves_next_poll_and_is_not_a_failure(
        site: NewsSite, tmp_path: Path, store: Store, code: int, form: str) -> None:
    config = make_config(tmp_path, [site.feed_url("rss")])
    synced(config, store)
    site.set_fault(RSS, "status", code=500, times=1)
    retry = "7200" if form == "seconds" else http_date(datetime.now(UTC) + timedelta(hours=2))

    def throttle(_i: int) -> None:
        site.set_fault(RSS, "status", code=code, headers={"Retry-After": retry}, times=1)

    first, second = poll_times(config, store, 1, times=2, between=throttle)
    assert first.error == "HTTP 500" and first.consecutive_failures == 1
    assert second.status == code and second.error is None
    row = feed_row(store)
    assert row["consecutive_failures"] == 1  # unchanged by the throttle
    assert row["last_error"] is None and row["last_status"] == code
    assert 7200 - 120 <= seconds_until(row["next_poll_at"]) <= 7200 + 5
    statuses = store.db.execute("SELECT status, error FROM fetches ORDER BY id").fetchall()
    assert statuses == [(500, "HTTP 500"), (code, None)]


def test_row10_throttle_without_retry_after_backs_off(site: NewsSite, tmp_path: Path,
                                                      store: Store) -> None:
    config = make_config(tmp_path, [site.feed_url("rss")])
    synced(config, store)
    site.set_fault(RSS, "status", code=429)
    (result,) = poll_times(config, store, 1)
    assert result.error == "HTTP 429" and feed_row(store)["consecutive_failures"] == 1
    # Backed off as a failure: the interval doubled, with the schedule's jitter (x0.75-1.25).
    interval = config.schedule.interval
    assert 2 * interval * 0.75 - 5 <= seconds_until(result.next_poll_at) <= 2 * interval * 1.25


@pytest.mark.parametrize("fault", [{"kind": "status", "code": 500}, {"kind": "close"},
                                   {"kind": "status", "code": 404}],
                         ids=["500", "reset", "404"])
def test_row11_12_failures_back_off_exponentially_then_recover(
        site: NewsSite, tmp_path: Path, store: Store, fault: dict[str, Any]) -> None:
    config = make_config(tmp_path, [site.feed_url("rss")], schedule={"interval": "10m"})
    synced(config, store)
    options = {k: v for k, v in fault.items() if k != "kind"}
    site.set_fault(RSS, fault["kind"], **options)
    results = poll_times(config, store, 1, times=4)
    waits = [seconds_until(r.next_poll_at) for r in results]
    assert [r.consecutive_failures for r in results] == [1, 2, 3, 4]
    for n, wait in enumerate(waits, start=1):  # 10 min x 2^n, jitter within +-25 %
        assert 600 * 2 ** n * 0.75 - 5 <= wait <= 600 * 2 ** n * 1.25 + 1, (n, waits)
    assert waits == sorted(waits)
    assert count(store, "fetches") == 4
    site.clear_fault(RSS)
    (ok,) = poll_times(config, store, 1)
    assert ok.error is None and ok.consecutive_failures == 0
    assert feed_row(store)["last_error"] is None and count(store, "articles") == 5


def test_row11_dead_feed_is_probed_at_the_cap_never_disabled(site: NewsSite, tmp_path: Path,
                                                             store: Store) -> None:
    config = make_config(tmp_path, [site.feed_url("rss")], schedule={"max_backoff": "1h"})
    synced(config, store)
    store.db["feeds"].update(1, {"consecutive_failures": 40})  # months of failures
    site.set_fault(RSS, "status", code=502)
    (result,) = poll_times(config, store, 1)
    assert result.consecutive_failures == 41
    assert 0 < seconds_until(result.next_poll_at) <= 3600
    assert feed_row(store)["active"] == 1 and feed_row(store)["gone"] == 0


def test_row12_gone_stops_polling_and_keeps_the_data(site: NewsSite, tmp_path: Path,
                                                     store: Store) -> None:
    config = make_config(tmp_path, [site.feed_url("rss")])
    asyncio.run(run_once(config, store))
    assert count(store, "articles") == 5
    site.set_fault(RSS, "status", code=410)
    (result,) = poll_times(config, store, 1)
    assert result.gone and result.next_poll_at is None
    row = feed_row(store)
    assert row["gone"] == 1 and row["next_poll_at"] is None
    far_future = (datetime.now(UTC) + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert store.feeds(due_at=far_future) == []
    site.clear_log()
    asyncio.run(run_once(config, store))  # a later run leaves it alone
    assert site.requests_for("/feeds/") == []
    assert count(store, "articles") == 5 and count(store, "entries") == 5


# --------------------------------------------------------------------------- row 13


class TLSServer:
    """HTTPS on 127.0.0.1 with a certificate from a CA nobody trusts (made by trustme)."""

    def __init__(self, body: bytes, content_type: str = "application/rss+xml") -> None:
        trustme = pytest.importorskip("trustme")
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.attempts = 0
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> Any:
                outer.attempts += 1  # a TCP connection, before the TLS handshake
                return super().get_request()

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def trusted_get(self, path: str) -> bytes:
        """A client that does trust the CA: proves the server itself works."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        with urllib.request.urlopen(self.url + path, context=context, timeout=5) as response:
            return response.read()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_row13_untrusted_certificate_fails_closed(site: NewsSite, tmp_path: Path,
                                                  store: Store) -> None:
    body = urllib.request.urlopen(site.url(RSS), timeout=5).read()
    tls = TLSServer(body)
    try:
        config = make_config(tmp_path, [tls.url + "/feed.xml"])
        report = asyncio.run(run_once(config, store))
        assert report.failed == 1
        error = feed_row(store)["last_error"]
        assert "CERTIFICATE_VERIFY_FAILED" in error or "certificate verify failed" in error
        assert tls.attempts >= 1 and tls.requests == 0  # tried, and never sent a request
        assert count(store, "entries") == 0
        assert tls.trusted_get("/feed.xml") == body and tls.requests == 1
    finally:
        tls.close()


def test_row13_article_page_with_untrusted_certificate_falls_back_to_feed(
        site: NewsSite, tmp_path: Path, store: Store) -> None:
    tls = TLSServer(b"<html><body><p>never read</p></body></html>", "text/html")
    try:
        original = site.add_article("secure", "A story on an HTTPS page", story("secure"),
                                    datetime.now(UTC), guid="secure-1")
        # The feed lists the story under an HTTPS URL whose certificate nobody trusts.
        rss = urllib.request.urlopen(site.feed_url("rss"), timeout=5).read()
        rss = rss.replace(original.url.encode(), (tls.url + "/news/secure.html").encode())
        site.route("/tls-feed.xml", rss, "application/rss+xml")
        config = make_config(tmp_path, [site.url("/tls-feed.xml")])
        asyncio.run(run_once(config, store))
        source, error, text = store.db.execute(
            "SELECT text_source, extract_error, text FROM articles WHERE url = ?",
            [tls.url + "/news/secure.html"]).fetchone()
        assert source == "feed" and "certificate" in error.lower()
        assert original.paragraphs[0] in text
        assert tls.requests == 0
    finally:
        tls.close()


# --------------------------------------------------------------------------- row 14


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b"", "application/rss+xml", "empty body"),
    (b"<!doctype html><html><head><title>Home</title></head><body><p>Welcome</p></body></html>",
     "text/html; charset=utf-8", "HTML page"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "image/png", "image/png"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n", "application/pdf",
     "application/pdf"),
], ids=["empty-200", "html-page", "png", "pdf"])
def test_row14_non_feeds_are_recorded_with_the_reason(
        site: NewsSite, tmp_path: Path, store: Store, body: bytes, content_type: str,
        reason: str) -> None:
    url = site.route("/feed", body, content_type)
    config = make_config(tmp_path, [url])
    report = asyncio.run(run_once(config, store))
    assert report.failed == 1
    row = feed_row(store)
    assert reason in row["last_error"], row["last_error"]
    assert row["consecutive_failures"] == 1 and row["etag"] is None
    fetch = store.db.execute("SELECT status, bytes, error FROM fetches").fetchall()
    assert fetch == [(200, len(body), row["last_error"])]


@pytest.mark.parametrize("content_type", ["text/html", "application/octet-stream", "text/plain"])
def test_row14_a_real_feed_with_a_wrong_content_type_is_still_read(
        site: NewsSite, tmp_path: Path, store: Store, content_type: str) -> None:
    body = urllib.request.urlopen(site.feed_url("rss"), timeout=5).read()
    url = site.route("/mislabelled", body, content_type)
    config = make_config(tmp_path, [url])
    report = asyncio.run(run_once(config, store))
    assert report.failed == 0 and count(store, "articles") == 5


# --------------------------------------------------------------------------- row 21, 25, 32

AWKWARD_TITLES = [
    "Robert'); DROP TABLE articles;--",
    'He said "no" -- twice; \' OR 1=1 --',
    "/* comment */ SELECT * FROM feeds WHERE 1=1; --",
]


def test_row21_25_32_feed_data_never_becomes_sql(site: NewsSite, tmp_path: Path,
                                                 store: Store) -> None:
    now = datetime.now(UTC)
    dates = ["Mon, 30 Feb 2024 10:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "yesterday"]
    items = []
    for i, title in enumerate(AWKWARD_TITLES):
        link = site.url(f"/news/awkward-{i}.html")
        site.route(f"/news/awkward-{i}.html", "<html><body><p>x</p></body></html>", "text/html")
        items.append(f"<item><title>{title.replace('&', '&amp;')}</title><link>{link}</link>"
                     f"<guid>{title.replace('&', '&amp;')}</guid>"
                     f"<description>Body {i}: it said \u0000\u0007 things.</description>"
                     f"<pubDate>{dates[i]}</pubDate>"
                     f"<x:column xmlns:x='urn:x'>evil</x:column><drop_table>1</drop_table></item>")
    body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            "<title>Quotes' \"feed\" --</title>" + "".join(items) + "</channel></rss>")
    url = site.route("/awkward.xml", body.replace("\u0000", "&#0;"), "application/rss+xml")
    columns_before = {t: store.db[t].columns_dict for t in store.db.table_names()}
    config = make_config(tmp_path, [url])
    report = asyncio.run(run_once(config, store))
    assert report.failed == 0, report.errors
    titles = sorted(r[0] for r in store.db.execute("SELECT title FROM articles"))
    assert titles == sorted(AWKWARD_TITLES)
    guids = sorted(r[0] for r in store.db.execute("SELECT guid FROM entries"))
    # feedparser resolves a GUID against the feed URL as if it were a relative URI
    assert sorted(g.removeprefix(site.base_url).lstrip("/") for g in guids) == \
        sorted(t.lstrip("/") for t in AWKWARD_TITLES)
    assert feed_row(store)["title"] == "Quotes' \"feed\" --"
    # Feed-supplied keys never become tables or columns.
    assert {t: store.db[t].columns_dict for t in store.db.table_names()} == columns_before
    # Strict UTF-8, no controls; absurd dates stored as NULL, never outside [1990, now+1d].
    for text, published in store.db.execute("SELECT text, published_at FROM articles"):
        text.encode("utf-8", "strict")
        assert "\x00" not in text and "\x07" not in text
        if published is not None:
            when = parse_iso(published)
            assert when is not None and when.year >= 1990 and when <= now + timedelta(days=1)
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --------------------------------------------------------------------------- row 22


def atom(entries: int) -> bytes:
    body = "".join(f"<entry><id>urn:e{i}</id><title>Entry {i}</title>"
                   f"<link href='http://example.org/{i}'/></entry>" for i in range(entries))
    return (f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            f"{body}</feed>").encode()


def test_row22_a_huge_feed_is_cut_before_feedparser_builds_every_entry() -> None:
    cut, seen = cut_after_items(atom(50_000), 500)
    assert seen == 50_000 and cut.count(b"<entry>") == 500
    parsed = parse_feed(atom(50_000), {"content-type": "application/atom+xml"}, max_entries=500)
    assert [e.title for e in parsed.entries] == [f"Entry {i}" for i in range(500)]
    assert parsed.total_entries == 50_000 and parsed.version == "atom10"
    assert parsed.warning == "only the first 500 of 50000 items read"


def test_row22_an_ordinary_large_feed_is_read_whole() -> None:
    body = atom(CUT_FACTOR * 500)  # at the threshold: not cut, so the strict parser reads it
    assert cut_after_items(body, 500) == (body, CUT_FACTOR * 500)
    parsed = parse_feed(body, {"content-type": "application/atom+xml"}, max_entries=500)
    assert len(parsed.entries) == 500 and parsed.warning is None
    assert parsed.total_entries == CUT_FACTOR * 500


# --------------------------------------------------------------------------- row 26


def test_row26_oversized_html_loses_scripts_first_then_the_tail() -> None:
    script = "<script>" + "var x = 1;" * 300_000 + "</script>"
    story_html = "<p>The story.</p>"
    html = f"<html><head>{script}<STYLE>p{{}}</style ></head><body>{story_html}</body></html>"
    trimmed = trim_html(html)
    assert len(html) > MAX_HTML_CHARS and story_html in trimmed
    assert "var x" not in trimmed and "p{}" not in trimmed
    assert trim_html("<p>small</p><script>x</script>") == "<p>small</p><script>x</script>"
    huge = "<p>word</p>" * 1_000_000
    assert trim_html(huge) == huge[:MAX_HTML_CHARS]
    assert trim_html("<p>a</p>" * 200_000 + "<script>never closed" + "x" * 2_000_000) == \
        "<p>a</p>" * 200_000  # an unclosed script swallows the rest, as in a browser


def page_site(site: NewsSite, slug: str, body: bytes | str, content_type: str) -> str:
    """An article whose feed entry carries the full text but whose page is `body`."""
    article = site.add_article(slug, f"Story {slug}", story(slug), datetime.now(UTC),
                               guid=f"urn:{slug}")
    site.route(f"/news/{slug}.html", body, content_type)
    return article.url


def article_row(store: Store, url: str) -> dict[str, Any]:
    row = store.db.execute("SELECT text_source, extract_error, quality, text FROM articles "
                           "WHERE url = ?", [url]).fetchone()
    assert row is not None, url
    return dict(zip(("source", "error", "quality", "text"), row, strict=True))


def test_row26_huge_nested_and_binary_pages_fall_back_to_feed_content(
        tmp_path: Path, store: Store) -> None:
    with NewsSite() as site:
        huge = page_site(site, "huge", b"<html><body>" + b"<p>word </p>" * 2_700_000, "text/html")
        deep = page_site(site, "deep", "<html><body>" + "<div>" * 200_000 + "<p>deep</p>"
                         + "</div>" * 200_000 + "</body></html>", "text/html")
        pdf = page_site(site, "pdf", b"%PDF-1.7\n" + os.urandom(50_000), "application/pdf")
        binary = page_site(site, "binary", os.urandom(200_000), "text/html")
        config = make_config(tmp_path, [site.feed_url("rss")])
        report = asyncio.run(run_once(config, store))
    assert report.failed == 0
    assert len(b"<p>word </p>" * 2_700_000) > 30_000_000
    rows = {name: article_row(store, url) for name, url in
            (("huge", huge), ("deep", deep), ("pdf", pdf), ("binary", binary))}
    assert "max_bytes" in rows["huge"]["error"]
    assert "application/pdf" in rows["pdf"]["error"]
    for name, row in rows.items():
        assert row["source"] == "feed", (name, row)
        assert f"{name.capitalize()} report, part 1." in row["text"]
        row["text"].encode("utf-8", "strict")


def test_row26_extraction_time_limit_in_the_worker(tmp_path: Path, store: Store) -> None:
    big = "<html><body><article>" + "".join(
        f"<p>Paragraph {i} of a very long page, with words for the extractor.</p>"
        for i in range(120_000)) + "</article></body></html>"
    with NewsSite() as site:
        slow = page_site(site, "slow", big, "text/html")
        config = make_config(tmp_path, [site.feed_url("rss")], extract={"timeout": "0.3s"})
        asyncio.run(run_once(config, store))
    row = article_row(store, slow)
    assert row["source"] == "feed" and row["error"] == "extraction time limit exceeded", row


def test_row26_a_worker_killed_mid_extraction_loses_nothing(tmp_path: Path,
                                                           store: Store) -> None:
    """What the OOM killer does: the worker dies while it extracts one page of a poll and
    others wait in its pool. Each of them is extracted again, alone: every page's text."""
    long_page = "<html><body><article>" + "".join(
        f"<p>Paragraph {i} of a long page, with words enough for the extractor.</p>"
        for i in range(6000)) + "</article></body></html>"
    with NewsSite() as site:
        urls = [page_site(site, f"long-{i}", long_page, "text/html") for i in range(5)]
        config = make_config(tmp_path, [site.feed_url("rss")], extract={"workers": 1})
        synced(config, store)

        async def go() -> PollResult:
            async with Runner(config, store) as runner:
                pool = runner.engine.pool
                poll = asyncio.ensure_future(runner.poll_and_record(store.feed(1)))
                while len(pool.pending) < 3:  # one page extracting, two or more waiting
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)
                assert pool.pool is not None
                for pid in list(pool.pool._processes):
                    os.kill(pid, signal.SIGKILL)
                result, _summary = await poll
                return result

        result = asyncio.run(go())
    assert result.error is None
    rows = [article_row(store, url) for url in urls]
    assert [(r["source"], r["error"]) for r in rows] == [("page", None)] * 5, rows


# --------------------------------------------------------------------------- row 27


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><title>{title}</title></head><body>"
            f"<header><nav><a href='/'>Home</a></nav></header><main><article><h1>{title}</h1>"
            f"{body}</article></main><footer>(c) Site</footer></body></html>")


WALLS = {
    "paywall": "<p>{first}</p><div class='paywall'><p>Subscribe to continue reading. "
               "Already a subscriber? Sign in.</p></div>",
    "cookies": "<div class='consent'><p>We value your privacy. We and our partners use cookies "
               "to store and access information on your device. Accept all cookies to "
               "continue, or manage your cookie settings.</p><button>Accept all</button></div>",
    "javascript": "<noscript><p>Please enable JavaScript to view this page.</p></noscript>"
                  "<div id='root'><p>You need to enable JavaScript to run this app.</p></div>",
    "soft404": "<h2>Page not found</h2><p>Sorry, the page you were looking for could not be "
               "found. It may have been moved or deleted.</p>",
}


def test_row27_walls_are_flagged_and_the_feed_text_kept(site: NewsSite, tmp_path: Path,
                                                        store: Store) -> None:
    urls = {}
    for kind, template in WALLS.items():
        first = story(kind)[0]
        urls[kind] = page_site(site, kind, _page(f"Story {kind}", template.format(first=first)),
                               "text/html; charset=utf-8")
    config = make_config(tmp_path, [site.feed_url("rss")])
    asyncio.run(run_once(config, store))
    for kind, url in urls.items():
        row = article_row(store, url)
        flags = (row["quality"] or "").split(",")
        assert "wall" in flags and kind in flags, (kind, row["quality"])
        assert row["source"] == "feed"
        assert all(p in row["text"] for p in story(kind)), kind  # the better text
    # The ordinary articles of the site carry no flag.
    plain = store.db.execute("SELECT count(*) FROM articles WHERE quality IS NULL "
                             "AND text_source = 'page'").fetchone()[0]
    assert plain == 5


# --------------------------------------------------------------------------- row 29


def test_row29_disk_full_rolls_back_records_the_error_and_the_daemon_runs_on(
        site: NewsSite, tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path, [site.feed_url("rss")],
                         schedule={"tick": "0.5s", "min_interval": "1s"})
    synced(config, store)
    before = feed_row(store)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 1}")

    async def go() -> dict[str, Any]:
        stop = asyncio.Event()
        daemon = asyncio.ensure_future(run_daemon(config, store, stop=stop))
        seen: dict[str, Any] = {}
        for _ in range(300):
            await asyncio.sleep(0.1)
            row = feed_row(store)
            if row["last_error"]:
                seen["failed"] = row
                break
        await asyncio.sleep(1.5)  # more ticks while the disk stays full
        seen["alive"] = not daemon.done()
        seen["after_ticks"] = feed_row(store)
        seen["articles_while_full"] = count(store, "articles")
        store.db.execute("PRAGMA max_page_count = 1073741823")  # space again
        for _ in range(300):
            await asyncio.sleep(0.1)
            if count(store, "articles") == 5:
                break
        stop.set()
        await asyncio.wait_for(daemon, 60)
        return seen

    with caplog.at_level("INFO", logger="newswire"):
        seen = asyncio.run(go())
    failed = seen["failed"]
    assert "database or disk is full" in failed["last_error"]
    for key in ("etag", "last_modified", "consecutive_failures", "last_polled_at",
                "last_unconditional_at", "url"):
        assert failed[key] == before[key], key  # the poll itself left no trace
    assert seen["alive"] and seen["articles_while_full"] == 0
    assert seen["after_ticks"]["etag"] is None
    assert any("could not record the poll" in r.getMessage() and r.levelname == "ERROR"
               for r in caplog.records)
    # Once there is space again nothing was lost.
    assert count(store, "articles") == 5 and count(store, "entries") == 5
    row = feed_row(store)
    assert row["last_error"] is None and row["etag"]
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --------------------------------------------------------------------------- rows 30 and 24




def test_row30_24_datasette_reads_while_ingestion_writes(tmp_path: Path) -> None:
    with NewsSite() as site:
        now = datetime.now(UTC)
        for i in range(60):
            site.add_article(f"s{i}", f"Story {i}", story(f"topic {i}"),
                             now - timedelta(minutes=i))
        site.add_article("xss", "<script>alert('x')</script>Safe headline <b>bold</b>",
                         story("scripted"), now)
        config = write_config(tmp_path / "newswire.yaml",
                              [site.feed_url(f) for f in ("rss", "atom", "rdf", "json")])
        db = tmp_path / "newswire.db"
        assert run_cli("once", config=config).code == 0  # a first batch to read
        for i in range(60, 120):
            site.add_article(f"s{i}", f"Story {i}", story(f"later {i}"), now)
        port = free_port()
        datasette = subprocess.Popen(
            [sys.executable, "-m", "datasette", "serve", str(db), "--host", "127.0.0.1",
             "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(base + "/-/versions.json", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            results: list[tuple[int, str]] = []
            stop = threading.Event()

            def read() -> None:
                paths = ["/newswire.json?sql=select+count(*)+from+articles",
                         "/newswire/articles.json?_size=50",
                         "/newswire/entries.json?_size=100",
                         "/newswire.json?sql=select+title+from+articles_fts+where+"
                         "articles_fts+match+%27report%27+limit+20"]
                i = 0
                while not stop.is_set() and len(results) < 2000:
                    try:
                        with urllib.request.urlopen(base + paths[i % 4], timeout=30) as r:
                            results.append((r.status, r.read().decode()))
                    except urllib.error.HTTPError as exc:
                        results.append((exc.code, exc.read().decode(errors="replace")))
                    i += 1

            readers = [threading.Thread(target=read) for _ in range(3)]
            for t in readers:
                t.start()
            try:
                writer = run_cli("once", "--all", config=config)
            finally:
                stop.set()
                for t in readers:
                    t.join(timeout=60)
            assert writer.code == 0, writer.stderr
            assert "locked" not in writer.stderr
            assert len(results) >= 20
            bad = [(status, body[:200]) for status, body in results if status != 200]
            assert bad == []
            assert not any("database is locked" in body for _s, body in results)
            # Row 24: the scripted title is stored as plain text and the page shows no script.
            html = urllib.request.urlopen(base + "/newswire/articles?_search=scripted",
                                          timeout=30).read().decode()
            assert "Safe headline bold" in html
            assert "<script>alert" not in html
        finally:
            datasette.terminate()
            datasette.wait(timeout=30)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM articles").fetchone()[0] == 121


# --------------------------------------------------------------------------- row 31


def test_row31_a_second_once_exits_with_a_clear_message(site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
    site.set_fault(RSS, "delay", seconds=4)
    first = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config), "once"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "newswire.db.lock"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the first run holds the lock now
            if lock.exists() and lock.read_text() == str(first.pid):
                break
            time.sleep(0.05)
        second = run_cli("once", config=config, timeout=60)
        assert second.code == 75
        assert f"another newswire process (pid {first.pid}) is writing to" in second.stderr
        assert "exiting" in second.stderr
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        assert "1 updated" in out
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert run_cli("once", "--all", config=config).code == 0  # the lock is free again


# --------------------------------------------------------------------------- row 35


def _worker_probe() -> dict[str, Any]:
    """Runs in a pool worker: what database state did it inherit?"""
    gc.collect()
    connections = sum(isinstance(o, sqlite3.Connection) for o in gc.get_objects())
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return {"connections": connections, "fds": targets, "pid": os.getpid()}


class _ClassRecorder(pickle.Unpickler):
    """Unpickles a job and notes every class it is made of."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.modules: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.modules.add(module)
        return super().find_class(module, name)


def test_row35_workers_get_plain_data_and_no_database(site: NewsSite, tmp_path: Path,
                                                      store: Store) -> None:
    config = make_config(tmp_path, [site.feed_url("rss")])
    synced(config, store)
    store.acquire_lock()
    submitted: list[tuple[Any, ...]] = []

    async def go() -> dict[str, Any]:
        async with Runner(config, store) as runner:
            real_run = runner.engine.pool.run

            async def recording(fn: Any, *args: Any) -> Any:
                submitted.append((fn, *args))
                return await real_run(fn, *args)

            runner.engine.pool.run = recording  # type: ignore[method-assign]
            await runner.poll_and_record(store.feed(1))
            return await runner.engine.pool.run(_worker_probe)

    probe = asyncio.run(go())
    assert probe["pid"] != os.getpid()
    assert probe["connections"] == 0
    db = str(store.path)
    assert not [t for t in probe["fds"] if t.startswith(db)]  # no database, WAL or lock file
    names = {call[0].__name__ for call in submitted}
    assert {"parse_response", "extract_and_fingerprint", "_worker_probe"} <= names
    for call in submitted:
        recorder = _ClassRecorder(pickle.dumps(call[1:]))
        recorder.load()
        assert not {m for m in recorder.modules
                    if m.startswith(("sqlite3", "sqlite_utils", "pipeline.store"))}
    store.release_lock()


def test_row35_killed_once_leaves_no_worker_behind(tmp_path: Path) -> None:
    with NewsSite() as site:
        fill_site(site, 12)
        for article in site.articles:
            site.set_fault(f"/news/{article.slug}.html", "delay", seconds=20)
        config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                                 "once"], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            children: list[int] = []
            # The pool's workers are forked by a fork server, a child of `once`.
            while time.monotonic() < deadline and not any(
                    b"forkserver" in procs.cmdline(p) for p in children):
                time.sleep(0.1)
                children = sorted(procs.descendants(proc.pid) - {proc.pid})
            assert children  # the parse step has started the pool
            time.sleep(0.5)
            children = sorted(procs.descendants(proc.pid) - {proc.pid})
        finally:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and [p for p in children if procs.alive(p)]:
            time.sleep(0.2)
        assert [p for p in children if procs.alive(p)] == []
