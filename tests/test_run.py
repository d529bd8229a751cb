"""The runner in process: batched writes, bounded pages in flight, the single writer, the
worker pool's recovery and laziness, and per-site boilerplate learned across runs."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from pipeline import engine, pool, run
from pipeline.config import Config, load_config
from pipeline.dedupe import article_id, entry_article_id
from pipeline.errors import EngineError
from pipeline.extract import extract_and_fingerprint
from pipeline.messages import ExtractResult, PollResult
from pipeline.run import Runner, run_once
from pipeline.store import Store, retries
from pipeline.store.lines import SITE_LINE_SINGLETON_DAYS
from pipeline.times import iso
from tests.conftest import story, write_config
from tests.newssite import NewsSite

FOOTER = ("The Example Gazette is an independent newspaper, founded in 1901 by a cooperative "
          "of printers and owned by its readers ever since.")
RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
       b"<item><title>One</title><link>http://a.example/1</link></item></channel></rss>")


def setup(site: NewsSite, tmp_path: Path) -> tuple[Config, Store]:
    config = load_config(write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")]))
    return config, Store.open(config.database)


def add_stories(site: NewsSite, names: range, footer: bool = False) -> None:
    now = datetime.now(UTC)
    for i in names:
        site.add_article(f"s{i}", f"Story {i}: headline {i}",
                         [*story(f"subject {i}"), *([FOOTER] if footer else [])],
                         now - timedelta(minutes=i))


def fault_pages(site: NewsSite, names: range, kind: str, **options: Any) -> None:
    """The same fault on the pages of the stories `add_stories` made."""
    for i in names:
        site.set_fault(f"/news/s{i}.html", kind, **options)


def test_a_big_poll_is_written_in_batches_and_resumes_after_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "ENTRY_BATCH", 3)
    with NewsSite() as site:
        add_stories(site, range(7))
        config, store = setup(site, tmp_path)
        record = store.record_batch

        def crash_before_the_poll(items: Any) -> Any:
            if any(isinstance(item, PollResult) for item in items):
                raise RuntimeError("killed")
            return record(items)

        monkeypatch.setattr(store, "record_batch", crash_before_the_poll)
        with pytest.raises(RuntimeError, match="killed"):
            asyncio.run(run_once(config, store))
        assert store.db["entries"].count == 6  # two batches of three made it
        assert store.db["fetches"].count == 0
        feed = store.feeds()[0]  # still due, old validators
        assert feed.etag is None and feed.last_polled_at is None

        monkeypatch.setattr(store, "record_batch", record)
        site.clear_log()
        report = asyncio.run(run_once(config, store))
        assert (report.new_entries, report.new_articles) == (1, 1)
        assert [r.path for r in site.requests_for("/news/")] == ["/news/s6.html"]
        assert store.db["entries"].count == 7 and store.db["articles"].count == 7
        assert store.db.execute("SELECT new_entries FROM fetches").fetchall() == [(1,)]
        store.close()


def test_all_entries_of_a_poll_are_counted_across_its_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "ENTRY_BATCH", 2)
    with NewsSite() as site:
        add_stories(site, range(5))
        config, store = setup(site, tmp_path)
        report = asyncio.run(run_once(config, store))
        assert (report.new_entries, report.new_articles) == (5, 5)
        assert store.db.execute("SELECT new_entries, new_articles FROM fetches").fetchall() \
            == [(5, 5)]
        store.close()


def test_pages_in_flight_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page holds its slot from fetched to extracted: fetched HTML never piles up."""
    monkeypatch.setattr(engine, "MAX_PAGES_IN_FLIGHT", 2)

    class Slots(asyncio.Semaphore):
        held = peak = 0

        async def acquire(self) -> Literal[True]:
            await super().acquire()
            self.held += 1
            self.peak = max(self.peak, self.held)
            return True

        def release(self) -> None:
            self.held -= 1
            super().release()

    class Counting(Runner):
        inflight = peak = 0

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            local = self.engine
            assert isinstance(local, engine.LocalEngine)
            local._pages = self.slots = Slots(engine.MAX_PAGES_IN_FLIGHT)
            fetch_page, pool_run = local.fetcher.fetch_page, local.pool.run

            async def fetched(url: str, slot: Any, *args: Any) -> Any:
                page = await fetch_page(url, slot, *args)
                self.inflight += 1  # its HTML is held from here until extracted
                self.peak = max(self.peak, self.inflight)
                return page

            async def extracted(fn: Any, *args: Any) -> Any:
                try:
                    return await pool_run(fn, *args)
                finally:
                    if fn is extract_and_fingerprint:
                        self.inflight -= 1

            local.fetcher.fetch_page = fetched  # type: ignore[method-assign]
            local.pool.run = extracted  # type: ignore[method-assign]

    with NewsSite() as site:
        add_stories(site, range(8))
        fault_pages(site, range(8), "delay", seconds=0.2)
        config, store = setup(site, tmp_path)
        store.sync_feeds(config.feeds)

        async def go() -> Counting:
            async with Counting(config, store) as runner:
                report = await runner.run_due()
            assert report.new_articles == 8
            return runner

        runner = asyncio.run(go())
        assert runner.slots.peak == 2 and runner.slots.held == 0  # the 8 pages used both
        assert runner.peak <= 2 and runner.inflight == 0
        store.close()


def test_a_run_of_only_not_modified_feeds_never_starts_the_pool(tmp_path: Path) -> None:
    with NewsSite() as site:
        add_stories(site, range(2))
        config, store = setup(site, tmp_path)
        asyncio.run(run_once(config, store))

        async def again() -> dict[int, Any]:
            async with Runner(config, store) as runner:
                report = await runner.run_due(include_all=True)
                assert report.not_modified == 1
                return runner.engine.pool.pool

        assert asyncio.run(again()) is None  # no worker (and no fork server) was started
        store.close()


def test_lines_a_site_repeats_are_dropped_from_its_later_pages(tmp_path: Path) -> None:
    with NewsSite() as site:
        add_stories(site, range(4), footer=True)
        config, store = setup(site, tmp_path)
        asyncio.run(run_once(config, store))
        texts = [r["text"] for r in store.db["articles"].rows]
        assert len(texts) == 4 and all(FOOTER in text for text in texts)  # nothing known yet

        add_stories(site, range(4, 5), footer=True)
        asyncio.run(run_once(config, store, include_all=True))
        fresh = store.db["articles"].get(article_id(site.article("s4").url))
        assert FOOTER not in fresh["text"]
        assert site.article("s4").paragraphs[0] in fresh["text"]
        store.close()


def test_an_entry_without_a_link_is_stored_from_the_feed_under_its_feed_and_key(
        tmp_path: Path) -> None:
    body = " ".join(story("harbour vote"))
    with NewsSite() as site:
        feed = site.route("/nolink.xml", '<?xml version="1.0"?><rss version="2.0"><channel>'
                          "<title>T</title><item><title>No link</title>"
                          '<guid isPermaLink="false">item-7</guid>'
                          f"<description>{body}</description></item></channel></rss>",
                          "application/rss+xml")
        config = load_config(write_config(tmp_path / "newswire.yaml", [feed]))
        store = Store.open(config.database)
        report = asyncio.run(run_once(config, store))
        assert report.new_articles == 1, report.errors
        (key,) = [r["entry_key"] for r in store.db["entries"].rows]
        (row,) = list(store.db["articles"].rows)
        assert row["id"] == entry_article_id(feed, key)
        assert (row["url"], row["text_source"]) == ("", "feed")
        assert row["text"].startswith(story("harbour vote")[0][:40])
        store.close()


def test_entries_without_a_link_each_keep_their_own_article_in_every_feed(
        tmp_path: Path) -> None:
    """Every link-less entry of a feed had one id (the canonical feed URL dropped the
    `#entry=` fragment), and the later ones, refused as another text under that id, were
    keyed by their empty page URL: one article for every feed's, holding the first feed's
    text (the review's reproduction: 6 entries, 3 articles)."""
    def linkless(site: NewsSite, path: str, name: str) -> str:
        items = "".join(
            f"<item><title>{name} notice {i}</title><guid isPermaLink='false'>{name}-{i}"
            f"</guid><description>{' '.join(story(f'{name} notice {i}'))}</description>"
            "</item>" for i in range(3))
        return site.route(path, f"<?xml version='1.0'?><rss version='2.0'><channel><title>"
                          f"{name}</title>{items}</channel></rss>", "application/rss+xml")

    with NewsSite() as site:
        feeds = [linkless(site, "/a.xml", "Alpha"), linkless(site, "/b.xml", "Beta")]
        config = load_config(write_config(tmp_path / "newswire.yaml", feeds))
        store = Store.open(config.database)
        report = asyncio.run(run_once(config, store))
        rows = store.db.execute(
            "SELECT e.title, a.text, a.feed_id = e.feed_id FROM entries e "
            "JOIN articles a ON a.id = e.article_id ORDER BY e.title").fetchall()
        store.close()
    assert report.new_articles == 6
    assert len(rows) == 6 and all(own for _, _, own in rows)
    for title, text, _ in rows:
        assert text.startswith(story(title)[0][:40]), (title, text[:60])


def test_a_cron_run_forgets_lines_a_site_showed_once_long_ago(tmp_path: Path) -> None:
    """`once` does the daemon's upkeep too: without it, every line of every page stays in
    site_lines for ever on a cron install."""
    with NewsSite() as site:
        add_stories(site, range(4), footer=True)
        config, store = setup(site, tmp_path)
        asyncio.run(run_once(config, store))
        fresh = store.db.execute("SELECT count(*) FROM site_lines WHERE pages = 1"
                                 ).fetchone()[0]
        assert fresh > 0
        long_ago = iso(datetime.now(UTC) - timedelta(days=SITE_LINE_SINGLETON_DAYS + 1))
        store.db.execute("UPDATE site_lines SET last_seen = ?", [long_ago])
        store.db.conn.commit()
        repeated = store.db.execute("SELECT count(*) FROM site_lines WHERE pages > 1"
                                    ).fetchone()[0]
        assert repeated > 0  # the footer

        asyncio.run(run_once(config, store))  # nothing new to poll
        assert store.db.execute("SELECT count(*) FROM site_lines WHERE pages = 1"
                                ).fetchone()[0] == 0
        assert store.db.execute("SELECT count(*) FROM site_lines").fetchone()[0] == repeated
        store.close()


def test_compressed_pages_are_decoded_in_the_worker_and_bombs_stop_at_max_bytes(
        tmp_path: Path) -> None:
    import gzip
    import urllib.request

    with NewsSite() as site:
        add_stories(site, range(2))
        with urllib.request.urlopen(site.article("s0").url) as response:  # noqa: S310
            html = response.read()
        site.set_fault("/news/s0.html", "body", body=gzip.compress(html),
                       content_type="text/html; charset=utf-8",
                       headers={"Content-Encoding": "gzip"})
        site.set_fault("/news/s1.html", "gzip_bomb", size=64 << 20,
                       content_type="text/html; charset=utf-8")
        config = load_config(write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")],
                                          fetch={"max_bytes": 2_000_000}))
        store = Store.open(config.database)
        asyncio.run(run_once(config, store))
        rows = {r["url"]: r for r in store.db["articles"].rows}
        good, bomb = rows[site.article("s0").url], rows[site.article("s1").url]
        assert good["text_source"] == "page" and good["extract_error"] is None
        assert site.article("s0").paragraphs[1] in good["text"]
        assert bomb["text_source"] == "feed" and "max_bytes" in bomb["extract_error"]
        store.close()


def test_a_feed_with_many_slow_pages_leaves_room_for_the_others(tmp_path: Path) -> None:
    """One feed takes at most engine.PAGES_PER_FEED places: its 20 pages that each take two
    seconds to answer held every place the host allowed (12 here, as pages on as many hosts
    would hold the 32 of engine.MAX_PAGES_IN_FLIGHT), and another feed's pages waited."""
    assert engine.PAGES_PER_FEED < 12
    with NewsSite() as slow, NewsSite(site_name="Quick") as quick:
        now = datetime.now(UTC)
        for i in range(20):
            slow.add_article(f"s{i}", f"Slow {i}", story(f"slow {i}"), now)
            slow.set_fault(f"/news/s{i}.html", "delay", seconds=2.0)
        for i in range(3):
            quick.add_article(f"q{i}", f"Quick {i}", story(f"quick {i}"), now)
        quick.set_fault("/feeds/rss.xml", "delay", seconds=0.5)  # the slow pages ask first
        config = load_config(write_config(
            tmp_path / "newswire.yaml", [slow.feed_url("rss"), quick.feed_url("rss")],
            fetch={"per_host_concurrency": 12}))
        store = Store.open(config.database)
        store.sync_feeds(config.feeds)
        seen: list[Any] = []

        async def go() -> None:
            async with Runner(config, store, trace=seen.append) as runner:
                await runner.run_due()

        asyncio.run(go())
        done = [m for m in seen if isinstance(m, PollResult)]
        assert [r.feed_id for r in done] == [2, 1]  # the quick feed first ...
        quick_done = seen.index(done[0])
        slow_pages = [m for m in seen[:quick_done] if isinstance(m, ExtractResult)
                      and m.article.url.startswith(slow.base_url)]
        assert slow_pages == []  # ... before any slow page came back
        assert store.db["articles"].count == 23
        store.close()


def test_a_feed_whose_names_never_resolve_leaves_the_resolver_to_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lookups ran in asyncio's default pool (CPUs + 4 threads: 6 here): one feed's names
    whose lookups outlast the fetch deadline held every thread, and the other feeds' pages
    timed out waiting for theirs."""
    import socket
    import time

    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".stuck.test"):  # a name server that answers after the deadline
            time.sleep(6)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real("127.0.0.1" if host == "quick.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with NewsSite() as stuck, NewsSite(site_name="Quick") as quick:
        items = "".join(f"<item><title>Stuck {i}</title><link>http://s{i}.stuck.test/{i}"
                        f"</link><description>{' '.join(story(f'stuck {i}'))}</description>"
                        "</item>" for i in range(8))
        feed = stuck.route("/stuck.xml", '<?xml version="1.0"?><rss version="2.0"><channel>'
                           f"<title>S</title>{items}</channel></rss>", "application/rss+xml")
        quick.base_url = quick.base_url.replace("127.0.0.1", "quick.test")  # a name to look up
        now = datetime.now(UTC)
        for i in range(3):
            quick.add_article(f"q{i}", f"Quick {i}", story(f"quick {i}"), now)
        quick.set_fault("/feeds/rss.xml", "delay", seconds=0.5)  # the stuck names ask first
        config = load_config(write_config(
            tmp_path / "newswire.yaml", [feed, quick.feed_url("rss")],
            fetch={"respect_robots": False}))  # (one lookup per page, not two)
        store = Store.open(config.database)
        store.sync_feeds(config.feeds)

        async def go() -> None:
            async with Runner(config, store) as runner:
                await runner.engine.pool.run(os.getpid)  # parsing starts at once
                await runner.run_due()

        asyncio.run(go())
    quick_rows = store.db.execute("SELECT text_source, extract_error FROM articles "
                                  "WHERE feed_id = 2").fetchall()
    assert quick_rows == [("page", None)] * 3
    store.close()


def test_a_write_that_fails_outside_sqlite_is_that_feeds_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recording a poll can raise more than sqlite3.Error (a value SQLite refuses raises
    OverflowError; a bug anything): it used to leave the pass, unrecorded, with every other
    feed's poll."""
    from pipeline.store import feeds as feed_rows

    with NewsSite() as site, NewsSite(site_name="Other") as other:
        add_stories(site, range(2))
        now = datetime.now(UTC)
        for i in range(2):
            other.add_article(f"o{i}", f"Other {i}", story(f"other {i}"), now)
        config = load_config(write_config(tmp_path / "newswire.yaml",
                                          [site.feed_url("rss"), other.feed_url("rss")]))
        store = Store.open(config.database)
        after_poll = feed_rows.after_poll

        def refused(db: Any, result: PollResult, when: str) -> None:
            if result.feed_id == 1:
                raise OverflowError("Python int too large to convert to SQLite INTEGER")
            after_poll(db, result, when)

        monkeypatch.setattr(feed_rows, "after_poll", refused)
        report = asyncio.run(run_once(config, store))
        assert report.feeds == 2 and report.failed == 1, report
        logged = dict(store.db.execute("SELECT feed_id, error FROM fetches"))
        assert logged[2] is None and "OverflowError" in logged[1]  # each poll in the log
        feeds = {r["id"]: r for r in store.db["feeds"].rows}
        assert "OverflowError" in feeds[1]["last_error"]
        assert feeds[2]["last_error"] is None and feeds[2]["last_polled_at"]
        assert store.db.execute("SELECT count(*) FROM articles WHERE feed_id = 2"
                                ).fetchone()[0] == 2
        store.close()


def test_the_daemons_pollers_never_take_a_feed_twice_and_forget_crashed_polls_pages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's queue (Runner.queue_due / keep_polling): a feed being polled is not
    queued again however many ticks come while its slow pages load; and the pages of a poll
    that crashed after extracting them, which a pass forgot at its end, are forgotten within
    two ticks (a daemon's polls never all end at once)."""
    with NewsSite() as site:
        add_stories(site, range(3))
        fault_pages(site, range(3), "delay", seconds=1.0)
        config, store = setup(site, tmp_path)
        store.sync_feeds(config.feeds)
        poll_result = run.poll_result

        def crash(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("after the pages")

        monkeypatch.setattr(run, "poll_result", crash)

        async def go() -> tuple[list[int], int, int]:
            async with Runner(config, store) as runner:
                polling = asyncio.ensure_future(runner.keep_polling())
                queued = [await runner.queue_due()]
                while not site.requests_for("/news/"):
                    queued.append(await runner.queue_due())  # the feed is still due
                    await asyncio.sleep(0.1)
                while runner.in_flight:
                    await asyncio.sleep(0.05)
                left = len(runner._page_tasks)
                for _ in range(2):
                    await runner.queue_due()
                forgotten = len(runner._page_tasks)
                runner.stop_polling()
                await polling
                return queued, left, forgotten

        queued, left, forgotten = asyncio.run(go())
        monkeypatch.setattr(run, "poll_result", poll_result)
        store.close()
    assert queued[0] == 1 and len(queued) > 1 and set(queued[1:]) == {0}
    assert len(site.requests_for("/feeds/rss.xml")) == 1
    with sqlite3.connect(config.database) as conn:
        error = conn.execute("SELECT last_error FROM feeds").fetchone()[0]
    assert error == "internal error: RuntimeError: after the pages"
    assert left == 3 and forgotten == 0


def test_the_daemon_holds_back_a_feed_listed_by_a_config_it_has_not_read(
        tmp_path: Path) -> None:
    """`newswire add` writes the config file and the database; until the daemon reads the
    file, the feed it lists is not polled (it would be, without its settings)."""
    with NewsSite() as site, NewsSite() as other:
        add_stories(site, range(1))
        add_stories(other, range(1))
        config, store = setup(site, tmp_path)
        store.sync_config(config)
        newer = load_config(write_config(
            tmp_path / "newswire.yaml", [site.feed_url("rss"),
                                         {"url": other.feed_url("rss"), "fetch_pages": False}]))
        store.sync_config(newer)  # what `newswire add` does beside the running daemon

        async def go() -> tuple[int, int]:
            async with Runner(config, store) as runner:
                before = await runner.queue_due()
                runner.config = newer  # the daemon read the file again (pipeline.daemon)
                after = await runner.queue_due()
                runner.stop_polling()
                return before, after

        before, after = asyncio.run(go())
        store.close()
    assert (before, after) == (1, 1)  # the first feed, then the one added


def test_a_feed_queued_before_a_reload_took_its_line_away_is_not_polled(
        tmp_path: Path) -> None:
    """Queued behind busy pollers, then its line changed to another URL by a reload: the
    old row (now inactive) was polled with no settings at all, its blocked entries stored
    (the review's reproduction)."""
    with NewsSite() as site:
        add_stories(site, range(3))
        path = tmp_path / "newswire.yaml"
        blocked = {"url": site.feed_url("rss"),
                   "filters": {"block": [{"field": "title", "pattern": "."}]}}
        old = load_config(write_config(path, [blocked]))
        store = Store.open(old.database)
        store.sync_config(old)
        new = load_config(write_config(path, [{**blocked, "url": site.feed_url("atom")}]))

        async def go() -> int:
            async with Runner(old, store) as runner:
                queued = await runner.queue_due()
                store.sync_config(new)  # what the daemon's reload does
                runner.config = new
                polling = asyncio.ensure_future(runner.keep_polling())
                await asyncio.sleep(0.5)
                runner.stop_polling()
                await polling
                return queued

        queued = asyncio.run(go())
        entries = store.db.execute("SELECT count(*) FROM entries").fetchone()[0]
        store.close()
    assert queued == 1
    assert entries == 0 and site.requests_for("/feeds/rss.xml") == []


def test_the_daemons_pollers_stop_when_the_engine_goes_away_during_a_stop(
        tmp_path: Path) -> None:
    """A poll that ends with EngineError (a Celery broker going away) drops the queued
    feeds; it dropped the pollers' stop marks too, when a stop had come meanwhile, and
    `keep_polling` never returned: the daemon hung on SIGTERM (the review's reproduction)."""
    class AwayEngine(engine.LocalEngine):
        async def poll_feed(self, request: Any, max_entries: int) -> Any:
            await asyncio.sleep(0.5)
            raise EngineError("the broker went away")

    config = load_config(write_config(tmp_path / "newswire.yaml",
                                      ["http://127.0.0.1:9/a.xml", "http://127.0.0.1:9/b.xml"]))
    store = Store.open(config.database)
    store.sync_feeds(config.feeds)

    async def go() -> tuple[int, int]:
        async with Runner(config, store, engine=AwayEngine(config)) as runner:
            polling = asyncio.ensure_future(runner.keep_polling())
            queued = await runner.queue_due()
            await asyncio.sleep(0.1)  # both polls in flight
            runner.stop_polling()
            await asyncio.wait_for(polling, 10)
            return queued, runner.in_flight

    assert asyncio.run(go()) == (2, 0)
    assert len(store.due_feeds(config.schedule)) == 2  # nothing recorded: both stay due
    store.close()


def test_a_page_that_failed_is_tried_again_and_then_replaces_the_feeds_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, an article whose page failed once (a 503) kept its feed's summary for ever.
    Now its page is tried again at the feed's later polls (304 ones too): when it reads,
    its text becomes the article's as a new version; a page that keeps failing is tried
    len(RETRY_AFTER) more times; a 404 is not tried again."""
    monkeypatch.setattr(retries, "RETRY_AFTER", (0.0, 0.0, 0.0))  # each poll may retry
    with NewsSite(full_content=False) as site:  # the feed has a summary only
        add_stories(site, range(3))
        site.set_fault("/news/s0.html", "status", code=503)
        site.set_fault("/news/s1.html", "status", code=404)
        site.set_fault("/news/s2.html", "status", code=503)
        config, store = setup(site, tmp_path)
        asyncio.run(run_once(config, store))

        def articles() -> dict[str, tuple[Any, ...]]:
            return {r[0].rsplit("/", 1)[-1]: r[1:] for r in store.db.execute(
                "SELECT url, text_source, extract_error, text FROM articles")}

        first = articles()
        story0 = site.article("s0")
        assert first["s0.html"][2] == story0.description
        assert {name: row[:2] for name, row in first.items()} == {
            "s0.html": ("feed", "HTTP 503"), "s1.html": ("feed", "HTTP 404"),
            "s2.html": ("feed", "HTTP 503")}
        assert store.db.execute("SELECT count(*) FROM page_retries").fetchone()[0] == 2
        site.clear_fault("/news/s0.html")
        for _ in range(4):
            asyncio.run(run_once(config, store, include_all=True))
        after = articles()
        versions = [r[0] for r in store.db.execute(
            "SELECT v.reason FROM article_versions v JOIN articles a ON a.id = v.article_id "
            "WHERE a.url LIKE '%/s0.html' ORDER BY v.version")]
        retries_left = store.db.execute("SELECT count(*) FROM page_retries").fetchone()[0]
        statuses = [r[0] for r in store.db.execute("SELECT status FROM fetches ORDER BY id")]
        store.close()
        requests = {name: len(site.requests_for(f"/news/{name}")) for name in first}
    assert after["s0.html"][:2] == ("page", None)
    assert all(p in after["s0.html"][2] for p in story0.paragraphs)
    assert versions == ["first", "retry"]
    assert after["s1.html"] == first["s1.html"] and requests["s1.html"] == 1
    assert after["s2.html"] == first["s2.html"] and requests["s2.html"] == 1 + 3
    assert requests["s0.html"] == 2 and retries_left == 0
    assert statuses == [200, 304, 304, 304, 304]  # retried whether the feed changed or not


def test_a_poll_takes_a_bounded_share_of_its_feeds_retries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A feed whose 12 pages all failed does not fetch them all again in one poll (before
    the bound, one poll could hold every page place with its retries): PER_POLL a poll, the
    longest due first, the rest at the next polls."""
    monkeypatch.setattr(retries, "RETRY_AFTER", (0.0, 0.0, 0.0))
    monkeypatch.setattr(retries, "PER_POLL", 5)
    with NewsSite(full_content=False) as site:
        add_stories(site, range(12))
        fault_pages(site, range(12), "status", code=503)
        config, store = setup(site, tmp_path)
        asyncio.run(run_once(config, store))
        site.clear_faults()
        fetched = []
        for _ in range(3):
            before = len(site.requests_for("/news/"))
            asyncio.run(run_once(config, store, include_all=True))
            fetched.append(len(site.requests_for("/news/")) - before)
        sources = {r[0] for r in store.db.execute("SELECT text_source FROM articles")}
        store.close()
    assert fetched == [5, 5, 2]
    assert sources == {"page"}


def test_a_retried_page_takes_the_title_its_feed_gave_it_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The feed retitles an entry whose page is due a retry: the page is fetched once (by
    the retry) and the article takes the new title (before, the retry kept the old one and
    the update that would have carried the new one was not fetched)."""
    monkeypatch.setattr(retries, "RETRY_AFTER", (0.0, 0.0, 0.0))
    with NewsSite(full_content=False) as site:
        published = datetime.now(UTC) - timedelta(hours=1)
        site.add_article("s0", "Old headline", story("subject 0"), published)
        site.set_fault("/news/s0.html", "status", code=503)
        config, store = setup(site, tmp_path)
        asyncio.run(run_once(config, store))
        site.clear_fault("/news/s0.html")
        site.add_article("s0", "New headline", story("subject 0"), published)
        asyncio.run(run_once(config, store, include_all=True))
        title, source = store.db.execute("SELECT title, text_source FROM articles").fetchone()
        versions = list(store.db.execute(
            "SELECT reason, title FROM article_versions ORDER BY version"))
        store.close()
        pages = len(site.requests_for("/news/s0.html"))
    assert (title, source) == ("New headline", "page")
    assert versions == [("first", "Old headline"), ("retry", "New headline")]
    assert pages == 2


def test_worker_pools_are_recycled_after_their_share_of_jobs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    def make_pool(workers: int) -> Any:
        # One generation at a time: the previous pool has finished everything it was given.
        assert all(not pool._pending_work_items for pool in made)
        made.append(ProcessPoolExecutor(1))
        return made[-1]

    monkeypatch.setattr(pool, "make_pool", make_pool)
    with NewsSite() as site:
        add_stories(site, range(5))
        config = load_config(write_config(
            tmp_path / "newswire.yaml", [site.feed_url("rss")],
            extract={"workers": 1, "max_tasks_per_worker": 2}))
        store = Store.open(config.database)
        report = asyncio.run(run_once(config, store))
        assert report.new_articles == 5
        assert len(made) == 3  # 6 jobs (a feed and five pages), two per pool
        store.close()
