"""The Celery engine (pipeline/celery_engine.py, pipeline/worker.py, pipeline/politeness.py):
a real redis-server started here on a free loopback port, real `newswire worker` processes,
the local news site, and the real CLI as the coordinator."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis as redis_client
from celery.states import SUCCESS

from pipeline.celery_engine import CeleryEngine
from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.extract import extract_and_fingerprint
from pipeline.messages import ExtractJob
from tests.celery_harness import RedisServer, Worker, celery_config, local_twin, wait_for_workers
from tests.conftest import REPO, run_cli, story
from tests.newssite import NewsSite

pytestmark = pytest.mark.slow


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def news() -> Iterator[NewsSite]:
    with NewsSite() as site:
        now = datetime.now(UTC)
        for i in range(12):
            site.add_article(f"story-{i}", f"Story {i}: a headline", story(f"celery topic {i}"),
                             now - timedelta(minutes=i), author=f"Reporter {i}")
        site.set_feed_items("atom", [f"story-{i}" for i in range(6, 12)])
        yield site


def corpus(db: Path) -> dict[str, Any]:
    """What must come out the same whatever the engine: articles, clusters, entries, the
    fetch log and the feeds' state (times and durations left out)."""
    with sqlite3.connect(db) as conn:
        return {
            "articles": conn.execute(
                "SELECT id, url, title, text, author, published_at, cluster_id, "
                "duplicate_of, duplicate_kind, text_source FROM articles ORDER BY id").fetchall(),
            "clusters": conn.execute("SELECT id, canonical_article_id, size FROM clusters "
                                     "ORDER BY id").fetchall(),
            "entries": conn.execute("SELECT f.url, e.entry_key, e.article_id FROM entries e "
                                    "JOIN feeds f ON f.id = e.feed_id ORDER BY 1, 2").fetchall(),
            "fetches": conn.execute("SELECT f.url, x.status, x.new_entries, x.new_articles, "
                                    "x.error FROM fetches x JOIN feeds f ON f.id = x.feed_id "
                                    "ORDER BY 1, x.id").fetchall(),
            "feeds": conn.execute("SELECT url, etag, last_status, consecutive_failures, "
                                  "last_error FROM feeds ORDER BY url").fetchall(),
        }


def every_article_once(db: Path, site: NewsSite) -> None:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT url, text FROM articles").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    urls = [url for url, _ in rows]
    assert sorted(urls) == sorted(a.url for a in site.articles)  # each exactly once
    texts = dict(rows)
    for article in site.articles:
        assert all(p in texts[article.url] for p in article.paragraphs)


# --------------------------------------------------------------------------- config


def test_engine_config_is_checked_and_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    base = "database: x.db\nfeeds: [https://a.example/f]\n"
    path.write_text(base)
    assert load_config(path).engine.kind == "local"  # the default needs no broker
    for body, key in (("engine: {kind: spark}", "engine.kind"),
                      ("engine: {kind: celery, broker: 'amqp://x'}", "engine.broker"),
                      ("engine: {kind: celery, task_timeout: 2h}", "engine.visibility_timeout"),
                      ("engine: {kind: celery, retries: 3}", "engine.retries")):
        path.write_text(base + body + "\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.key == key


# --------------------------------------------------------------------------- no workers


def test_once_without_a_worker_says_so_and_writes_nothing(news: NewsSite, redis: RedisServer,
                                                          tmp_path: Path) -> None:
    config = celery_config(tmp_path / "newswire.yaml", [news.feed_url("rss")], redis.url)
    started = time.monotonic()
    result = run_cli("once", config=config, timeout=120)
    assert result.code == 1, result
    assert "no worker answered" in result.stderr and "newswire worker" in result.stderr
    assert time.monotonic() - started < 60  # a bounded wait (engine.worker_wait: 3s)
    with sqlite3.connect(tmp_path / "newswire.db") as conn:
        assert conn.execute("SELECT count(*) FROM fetches").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM feeds WHERE last_error IS NOT NULL"
                            ).fetchone()[0] == 0  # the feeds are not blamed


def test_once_without_a_broker_says_so(news: NewsSite, tmp_path: Path) -> None:
    from tests.celery_harness import free_port

    broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    config = celery_config(tmp_path / "newswire.yaml", [news.feed_url("rss")], broker)
    result = run_cli("once", config=config, timeout=120)
    assert result.code == 1 and "cannot reach the broker" in result.stderr, result


def test_the_daemon_without_a_worker_logs_and_keeps_trying(news: NewsSite, redis: RedisServer,
                                                           tmp_path: Path) -> None:
    config = celery_config(tmp_path / "newswire.yaml", [news.feed_url("rss")], redis.url,
                           schedule={"tick": "1s"})
    daemon = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                               "daemon"], cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    time.sleep(12)
    worker = Worker(config)  # a worker arrives: the daemon's next pass uses it
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with sqlite3.connect(tmp_path / "newswire.db") as conn:
                if conn.execute("SELECT count(*) FROM articles").fetchone()[0] == 12:
                    break
            time.sleep(0.5)
    finally:
        daemon.terminate()
        _out, err = daemon.communicate(timeout=60)
        worker.stop()
    assert daemon.returncode == 0, err
    assert err.count("poll pass skipped: no worker answered") >= 2  # retried, tick by tick
    assert "Traceback" not in err
    every_article_once(tmp_path / "newswire.db", news)


# --------------------------------------------------------------------------- workers


def test_a_worker_needs_no_database_and_never_creates_it(news: NewsSite, redis: RedisServer,
                                                         tmp_path: Path) -> None:
    config = celery_config(tmp_path / "worker.yaml", [news.feed_url("rss")], redis.url)
    config.write_text(config.read_text().replace("database: newswire.db",
                                                 "database: nowhere/at/all.db"))
    coordinator = celery_config(tmp_path / "newswire.yaml", [news.feed_url("rss")], redis.url)
    worker = Worker(config)
    try:
        wait_for_workers(redis.url, 1)
        result = run_cli("once", config=coordinator, timeout=300)
        assert result.code == 0, result
    finally:
        worker.stop()
    assert not (tmp_path / "nowhere").exists()
    every_article_once(tmp_path / "newswire.db", news)


def test_local_and_celery_engines_store_the_same_corpus(news: NewsSite, redis: RedisServer,
                                                        tmp_path: Path) -> None:
    news.set_feed_items("rss", [f"story-{i}" for i in range(8)])  # 6 and 7 in both feeds
    feeds = [news.feed_url("rss"), news.feed_url("atom")]
    config = celery_config(tmp_path / "celery.yaml", feeds, redis.url)
    local = local_twin(config, tmp_path / "local.yaml", "local.db")
    assert run_cli("once", config=local).code == 0
    workers = [Worker(config), Worker(config)]
    try:
        wait_for_workers(redis.url, 2)
        result = run_cli("once", config=config, timeout=300)
        assert result.code == 0, result
    finally:
        for worker in workers:
            worker.stop()
    celery, local = corpus(tmp_path / "newswire.db"), corpus(tmp_path / "local.db")
    # Two feeds carry stories 6 and 7: which poll stores them first is a race in either
    # engine, so the fetch log is compared without the per-poll count of new articles.
    for rows in (celery["fetches"], local["fetches"]):
        rows[:] = [row[:3] + row[4:] for row in rows]
    assert celery == local
    every_article_once(tmp_path / "newswire.db", news)


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(news: NewsSite, redis: RedisServer,
                                                           tmp_path: Path) -> None:
    for article in news.articles:
        news.set_fault(f"/news/{article.slug}.html", "delay", seconds=1.0, times=1)
    config = celery_config(tmp_path / "newswire.yaml", [news.feed_url("rss")], redis.url,
                           fetch={"per_host_concurrency": 4})
    doomed, survivor = Worker(config), Worker(config)
    try:
        wait_for_workers(redis.url, 2)
        coordinator = subprocess.Popen([sys.executable, "-m", "pipeline", "--config",
                                        str(config), "once"], cwd=REPO,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        news.wait_for_requests("/news/", 2, timeout=60)  # pages are in the workers' hands
        doomed.kill()
        out, err = coordinator.communicate(timeout=300)
        assert coordinator.returncode == 0, err
        assert "(try 1 of 4)" in err  # the dead worker's task was sent again
    finally:
        survivor.stop()
    every_article_once(tmp_path / "newswire.db", news)


def test_redis_restarted_mid_run_loses_and_doubles_nothing(news: NewsSite, redis: RedisServer,
                                                           tmp_path: Path) -> None:
    for article in news.articles:
        news.set_fault(f"/news/{article.slug}.html", "delay", seconds=1.5, times=1)
    config = celery_config(tmp_path / "newswire.yaml", [news.feed_url("rss")], redis.url)
    worker = Worker(config)
    try:
        wait_for_workers(redis.url, 1)
        coordinator = subprocess.Popen([sys.executable, "-m", "pipeline", "--config",
                                        str(config), "once"], cwd=REPO,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        news.wait_for_requests("/news/", 1, timeout=60)
        redis.stop()  # its queues and results are gone (no persistence)
        time.sleep(2)
        redis.start()  # same port
        out, err = coordinator.communicate(timeout=300)
        assert coordinator.returncode == 0, err
        assert "(try 1 of 4)" in err  # lost tasks were sent again
    finally:
        worker.stop()
    every_article_once(tmp_path / "newswire.db", news)


def test_the_coordinator_killed_and_restarted_loses_and_doubles_nothing(
        news: NewsSite, redis: RedisServer, tmp_path: Path) -> None:
    for article in news.articles:
        news.set_fault(f"/news/{article.slug}.html", "delay", seconds=1.0, times=1)
    config = celery_config(tmp_path / "newswire.yaml", [news.feed_url("rss")], redis.url)
    worker = Worker(config)
    try:
        wait_for_workers(redis.url, 1)
        first = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                                  "once"], cwd=REPO, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        news.wait_for_requests("/news/", 2, timeout=60)
        first.kill()  # SIGKILL: no chance to write anything more
        first.wait()
        result = run_cli("once", config=config, timeout=300)  # the feed is still due
        assert result.code == 0, result
    finally:
        worker.stop()
    every_article_once(tmp_path / "newswire.db", news)
    with sqlite3.connect(tmp_path / "newswire.db") as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 12


# --------------------------------------------------------------------------- politeness


class CountingSite:
    """Serves a feed of 10 pages, each slow, and records the most requests in flight."""

    def __init__(self) -> None:
        self.active = self.peak = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with outer.lock:
                    outer.active += 1
                    outer.peak = max(outer.peak, outer.active)
                try:
                    time.sleep(0.3)
                    body, kind = outer.render(self.path)
                    self.send_response(200 if body else 404)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with outer.lock:
                        outer.active -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def render(self, path: str) -> tuple[bytes, str]:
        if path == "/feed.xml":
            items = "".join(f"<item><title>Page {i}</title><link>{self.base}/p{i}.html</link>"
                            f"<guid>p{i}</guid></item>" for i in range(10))
            return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>C</title>'
                    f"{items}</channel></rss>").encode(), "application/rss+xml"
        if path.startswith("/p"):
            text = " ".join(story(f"polite {path}"))
            return f"<html><body><article><p>{text}</p></article></body></html>".encode(), \
                "text/html"
        return b"", "text/plain"


def test_per_host_limits_hold_across_all_workers(redis: RedisServer, tmp_path: Path) -> None:
    site = CountingSite()
    config = celery_config(tmp_path / "newswire.yaml", [site.base + "/feed.xml"], redis.url,
                           fetch={"per_host_concurrency": 1, "respect_robots": False})
    workers = [Worker(config, concurrency=2), Worker(config, concurrency=2)]
    try:
        wait_for_workers(redis.url, 2)
        result = run_cli("once", config=config, timeout=300)
        assert result.code == 0, result
    finally:
        for worker in workers:
            worker.stop()
        site.server.shutdown()
    with sqlite3.connect(tmp_path / "newswire.db") as conn:
        assert conn.execute("SELECT count(*) FROM articles").fetchone()[0] == 10
    assert site.peak == 1  # four worker processes, one request at a time to the host


# --------------------------------------------------------------------------- collecting results


def test_results_come_by_subscription_and_missed_ones_by_the_sweep(redis: RedisServer,
                                                                  tmp_path: Path) -> None:
    """The coordinator hears a result published on its channel (with no key to look up:
    only the subscription can find it), and finds a stored result nobody published (as
    while it was reconnecting: only the sweep can find it). This test is the worker."""
    config = load_config(celery_config(tmp_path / "newswire.yaml", ["http://127.0.0.1:9/feed"],
                                       redis.url))
    text = " ".join(story("a result on its way back"))
    job = ExtractJob("http://127.0.0.1/a", f"<html><body><article><p>{text}</p></article>"
                     "</body></html>", "A result", "", None)
    expected = extract_and_fingerprint(job)  # what a worker would compute, computed here
    broker = redis_client.Redis.from_url(redis.url)

    def take_task() -> str:
        """The next task on the page queue, as a worker would take it: its id."""
        popped = broker.brpop([config.engine.page_queue], timeout=10)
        assert popped is not None, "the coordinator sent no task"
        return str(json.loads(popped[1])["headers"]["id"])

    async def scenario() -> None:
        async with CeleryEngine(config) as engine:
            backend = engine.app.backend
            for deliver in ("publish only", "store only"):
                waiting = asyncio.ensure_future(engine.extract(job))
                task_id = await asyncio.to_thread(take_task)
                key = backend.get_key_for_task(task_id)
                meta = backend.encode({"status": SUCCESS, "result": expected.to_dict(),
                                       "task_id": task_id, "traceback": None,
                                       "children": [], "date_done": None})
                if deliver == "publish only":
                    broker.publish(key, meta)
                else:
                    broker.set(key, meta)
                assert await asyncio.wait_for(waiting, 20) == expected, deliver

    asyncio.run(scenario())
