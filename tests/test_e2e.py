"""End to end: the `newswire` CLI against a small news site served from 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli, story, write_config
from tests.newssite import NewsSite

FORMATS = ("rss", "atom", "rdf", "json")


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def count(db: Path, table: str) -> int:
    return query(db, f"SELECT count(*) FROM {table}")[0][0]


def all_counts(db: Path) -> dict[str, int]:
    return {t: count(db, t) for t in ("feeds", "entries", "articles", "clusters")}


def wait_for_fetches(db: Path, n: int, timeout: float = 60) -> int:
    """Wait until the fetch log has n rows (the database may not exist yet); return the count."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        try:
            seen = count(db, "fetches")
        except sqlite3.OperationalError:  # not created or not migrated yet
            seen = 0
        if seen >= n:
            break
        time.sleep(0.1)
    return seen


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def four_feeds(site: NewsSite, tmp_path: Path) -> Path:
    return write_config(tmp_path / "newswire.yaml", [site.feed_url(f) for f in FORMATS])


def test_once_ingests_every_feed_format(site: NewsSite, four_feeds: Path) -> None:
    result = run_cli("once", config=four_feeds)
    assert result.code == 0, result.stderr
    assert "4 feeds polled: 4 updated" in result.stdout
    assert "5 new articles" in result.stdout
    db = four_feeds.parent / "newswire.db"

    feeds = query(db, "SELECT url, title, last_status, consecutive_failures, etag, "
                      "next_poll_at FROM feeds ORDER BY id")
    assert [f[0] for f in feeds] == [site.feed_url(f) for f in FORMATS]
    for _url, title, status, failures, etag, next_poll in feeds:
        assert title == "The Example Gazette"
        assert (status, failures) == (200, 0)
        assert etag
        assert next_poll > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # Every feed's five items are entries; the five stories are five articles.
    assert count(db, "entries") == 20
    per_article = query(db, "SELECT article_id, count(DISTINCT feed_id) FROM entries "
                            "GROUP BY article_id")
    assert len(per_article) == 5 and all(n == 4 for _, n in per_article)

    rows = query(db, "SELECT url, title, text, author, published_at, text_source, sitename, "
                     "cluster_id, id, duplicate_kind FROM articles")
    assert len(rows) == 5
    by_url = {r[0]: r for r in rows}
    for article in site.articles:
        url, title, text, author, published, source, sitename, cluster, aid, dup = \
            by_url[article.url]
        assert title == article.title
        assert source == "page"
        for paragraph in article.paragraphs:
            assert paragraph in text  # extracted from the page...
        assert "Most read" not in text and "All rights reserved" not in text  # ...not chrome
        # ... nor the link to another story inside it, nor its row of topics
        # (pipeline.blocks); every page carries them, trafilatura alone keeps the link.
        assert not any(other.title in text for other in site.articles if other != article)
        assert "World" not in text
        assert "\n\n" in text  # paragraphs separated by blank lines
        assert author == article.author
        assert published == article.published.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert sitename == "The Example Gazette"
        assert len(aid) == 16 and int(aid, 16) >= 0
        assert cluster == aid and dup is None
    # Each page was fetched once although four feeds carry it.
    for article in site.articles:
        assert len(site.requests_for(f"/news/{article.slug}.html")) == 1
    assert count(db, "fetches") == 4
    assert query(db, "SELECT count(*) FROM articles_fts WHERE articles_fts MATCH 'inflation'"
                 )[0][0] == 5


def test_second_run_is_conditional_and_fetches_only_new_pages(
        site: NewsSite, four_feeds: Path) -> None:
    db = four_feeds.parent / "newswire.db"
    assert run_cli("once", config=four_feeds).code == 0
    before = all_counts(db)
    site.clear_log()

    result = run_cli("once", "--all", config=four_feeds)
    assert result.code == 0, result.stderr
    assert "4 not modified" in result.stdout
    feed_requests = site.requests_for("/feeds/")
    assert len(feed_requests) == 4
    for record in feed_requests:
        assert record.headers.get("If-None-Match") or record.headers.get("If-Modified-Since")
        assert record.status == 304
    assert site.requests_for("/news/") == []
    assert all_counts(db) == before

    site.add_article("fresh", "A fresh story", story("fresh news"), datetime.now(UTC))
    site.clear_log()
    assert run_cli("once", "--all", config=four_feeds).code == 0
    assert [r.path for r in site.requests_for("/news/")] == ["/news/fresh.html"]
    after = all_counts(db)
    assert after["articles"] == before["articles"] + 1
    assert after["entries"] == before["entries"] + 4


def test_interrupted_run_then_rerun_loses_and_doubles_nothing(
        site: NewsSite, tmp_path: Path) -> None:
    # The JSON feed answers only after the run is killed (its deadline is later still), so
    # the run is killed after the other three polls were written, however slow the machine.
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url(f) for f in FORMATS],
                          fetch={"timeout": "300s"})
    db = tmp_path / "newswire.db"
    site.set_fault("/feeds/feed.json", "delay", seconds=240, times=1)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config), "once"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_fetches(db, 3) == 3
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    site.clear_fault("/feeds/feed.json")

    assert run_cli("once", config=config).code == 0  # only the JSON feed is still due
    assert count(db, "fetches") == 4
    assert run_cli("once", "--all", config=config).code == 0
    assert run_cli("once", "--all", config=config).code == 0
    assert all_counts(db) == {"feeds": 4, "entries": 20, "articles": 5, "clusters": 5}
    assert query(db, "SELECT count(*) FROM (SELECT feed_id, entry_key FROM entries "
                     "GROUP BY 1, 2 HAVING count(*) > 1)")[0][0] == 0
    assert query(db, "PRAGMA integrity_check")[0][0] == "ok"




def test_failing_page_falls_back_to_feed_content(site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
    site.set_fault("/news/story-0.html", "status", code=500)
    site.set_fault("/news/story-1.html", "close")
    assert run_cli("once", config=config).code == 0
    db = tmp_path / "newswire.db"
    rows = dict((r[0], r[1:]) for r in query(
        db, "SELECT url, text_source, extract_error, text FROM articles"))
    for slug in ("story-0", "story-1"):
        source, error, text = rows[site.article(slug).url]
        assert source == "feed"
        assert error
        assert site.article(slug).paragraphs[0] in text
    assert "500" in rows[site.article("story-0").url][1]
    assert rows[site.article("story-2").url][0] == "page"


def test_failing_feeds_are_recorded_while_others_succeed(
        site: NewsSite, tmp_path: Path) -> None:
    site.set_fault("/feeds/atom.xml", "status", code=500)
    site.route("/not-a-feed.html", b"<!doctype html><html><body><p>Hello</p></body></html>",
               "text/html")
    refused = f"http://127.0.0.1:{closed_port()}/feed.xml"
    config = write_config(tmp_path / "newswire.yaml", [
        site.feed_url("rss"), site.feed_url("atom"), site.url("/not-a-feed.html"), refused])
    result = run_cli("once", config=config)
    assert result.code == 0, result.stderr
    assert "1 updated" in result.stdout and "3 failed" in result.stdout
    db = tmp_path / "newswire.db"
    state = {r[0]: r[1:] for r in query(
        db, "SELECT url, last_status, consecutive_failures, last_error FROM feeds")}
    assert state[site.feed_url("rss")][:2] == (200, 0)
    assert state[site.feed_url("atom")][:3] == (500, 1, "HTTP 500")
    assert "HTML page" in state[site.url("/not-a-feed.html")][2]
    assert state[refused][1] == 1 and "Connect" in state[refused][2]
    assert count(db, "articles") == 5
    errors = query(db, "SELECT count(*) FROM fetches WHERE error IS NOT NULL")[0][0]
    assert errors == 3


@pytest.mark.parametrize(("text", "key"), [
    ("database: x.db\nfeeds: [{url: 'http://a.example/f'}]\nfetch: {timout: 3}\n",
     "fetch.timout"),
    ("database: x.db\nfeeds: [{url: 'ftp://a.example/f'}]\n", "feeds[0].url"),
    ("database: x.db\nfeeds: [{url: 'http://a.example/f', interval: soon}]\n",
     "feeds[0].interval"),
    ("database: x.db\nfeeds: []\n", "feeds"),
    ("feeds: [{url: 'http://a.example/f'}]\n", "database"),
    ("database: x.db\nfeeds: [{url: 'http://a.example/f'}]\nschedule: {interval: -5}\n",
     "schedule.interval"),
    ("database: x.db\nfeeds: [{name: nameless}]\n", "feeds[0].url"),
])
def test_bad_config_names_the_key_and_touches_nothing(
        tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = run_cli("once", config=config)
    assert result.code == 2
    assert str(config) in result.stderr and key in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_config_from_environment_variable(site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "env.yaml", [site.feed_url("rss")])
    result = run_cli("once", env={"NEWSWIRE_CONFIG": str(config)})
    assert result.code == 0, result.stderr
    assert count(tmp_path / "newswire.db", "articles") == 5


def test_status_lists_every_feed(site: NewsSite, tmp_path: Path) -> None:
    site.set_fault("/feeds/atom.xml", "status", code=503)
    config = write_config(tmp_path / "newswire.yaml",
                          [site.feed_url("rss"), site.feed_url("atom")])
    run_cli("once", config=config)
    result = run_cli("status", config=config)
    assert result.code == 0
    lines = [line for line in result.stdout.splitlines() if "/feeds/" in line or
             "Gazette" in line]
    assert len(lines) == 2
    ok_line = next(line for line in lines if " ok " in line)
    assert " 5 " in ok_line
    failing = next(line for line in lines if "failing" in line)
    assert "503" in failing


def start_daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                             "daemon"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_daemon_polls_stops_on_sigterm_and_refuses_a_second_instance(
        site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml",
                          [site.feed_url("rss"), site.feed_url("atom")],
                          schedule={"tick": "0.5s"})
    db = tmp_path / "newswire.db"
    daemon = start_daemon(config)
    try:
        assert wait_for_fetches(db, 2) >= 2
        assert count(db, "articles") == 5

        second = run_cli("daemon", config=config, timeout=30)
        assert second.code == 75
        assert "another newswire process" in second.stderr
        assert str(db) in second.stderr

        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err
        assert "daemon stopped" in err
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert query(db, "PRAGMA integrity_check")[0][0] == "ok"


def test_offline_feeds_record_connection_errors_and_daemon_keeps_running(
        tmp_path: Path) -> None:
    urls = [f"http://127.0.0.1:{closed_port()}/feed{i}.xml" for i in range(3)]
    config = write_config(tmp_path / "newswire.yaml", urls, schedule={"tick": "0.5s"})
    daemon = start_daemon(config)
    db = tmp_path / "newswire.db"
    try:
        assert wait_for_fetches(db, 3) >= 3
        time.sleep(1)
        assert daemon.poll() is None  # still running
        rows = query(db, "SELECT consecutive_failures, last_error, next_poll_at FROM feeds")
        assert len(rows) == 3
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for failures, error, next_poll in rows:
            assert failures == 1 and "Connect" in error
            assert next_poll > now  # backed off, not hammering
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=60)
    assert daemon.returncode == 0
