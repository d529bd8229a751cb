"""The daemon reads its config again when the file changes or on SIGHUP (pipeline.daemon),
driven through the CLI against news sites on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from pipeline import daemon as daemon_module
from pipeline.config import ConfigWatch, load_config
from pipeline.run import Runner
from pipeline.store import Store
from tests.conftest import REPO, fill_site, free_port, run_cli, write_config
from tests.newssite import NewsSite


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _holds(check):
        assert time.monotonic() < deadline, f"waited {timeout:g}s for {what}"
        time.sleep(0.1)


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except sqlite3.OperationalError:  # the database is not created or migrated yet
        return False


@contextmanager
def daemon(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`newswire daemon` on `config`, its log in `log`; stopped with SIGTERM at the end."""
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                                    "daemon"], cwd=REPO, stdout=sink, stderr=sink,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def polls_of(db: Path, url: str) -> int:
    return query(db, "SELECT count(*) FROM fetches JOIN feeds ON feeds.id = feed_id "
                     "WHERE feeds.url = ?", (url,))[0][0]


def test_a_feed_added_while_the_daemon_runs_is_polled_with_its_settings(
        site: NewsSite, tmp_path: Path) -> None:
    """`newswire add --block ...` writes the config and the database at once; the running
    daemon must poll the new feed with its filter (it used to poll it with no settings at
    all, storing what the user had blocked, until a restart)."""
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")],
                          schedule={"tick": "0.5s"})
    db = tmp_path / "newswire.db"
    with NewsSite() as other, daemon(config, tmp_path / "daemon.log") as process:
        fill_site(other, 4)
        other.add_article("sponsored-1", "Sponsored: a word from our partners",
                          ["Buy now. " * 40], other.articles[0].published)
        wait_for(lambda: polls_of(db, site.feed_url("rss")) >= 1, "the first feed's poll")

        added = run_cli("add", other.feed_url("rss"), "--block", "title=^sponsored",
                        config=config, timeout=60)
        assert added.code == 0, added.stderr
        wait_for(lambda: polls_of(db, other.feed_url("rss")) >= 1, "the added feed's poll")

        entries = query(db, "SELECT link, filtered_by, article_id FROM entries "
                            "JOIN feeds ON feeds.id = feed_id WHERE feeds.url = ?",
                        (other.feed_url("rss"),))
        assert len(entries) == 5
        blocked = [e for e in entries if e[1]]
        assert [e[0] for e in blocked] == [other.url("/news/sponsored-1.html")]
        assert blocked[0][2] is None  # no article for the blocked entry
        assert all(e[2] for e in entries if not e[1])  # the others stored
        assert process.poll() is None
    log = (tmp_path / "daemon.log").read_text()
    assert "config reloaded" in log and "added=1" in log


def metric(port: int, name: str) -> float:
    """One unlabelled value of the daemon's /metrics."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_config_edited_under_the_daemon_applies_at_once_and_a_broken_one_changes_nothing(
        site: NewsSite, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")],
                          schedule={"tick": "0.5s"}, metrics={"port": port})
    db, log = tmp_path / "newswire.db", tmp_path / "daemon.log"
    data = yaml.safe_load(config.read_text())
    taken = "newswire_config_last_reload_successful"
    with NewsSite() as other, daemon(config, log) as process:
        fill_site(other, 3)
        wait_for(lambda: polls_of(db, site.feed_url("rss")) >= 1, "the first poll")

        # A file that does not read: the daemon says so and runs on the config it had.
        config.write_text("feeds: [unclosed\n", encoding="utf-8")
        assert metric(port, taken) == 1
        wait_for(lambda: "config not reloaded" in log.read_text(), "the refusal")
        assert "invalid YAML" in log.read_text()
        assert query(db, "SELECT active FROM feeds") == [(1,)]
        assert metric(port, taken) == 0  # what an alert on failed reloads reads

        # Fixed, with a second feed, a broken feed line and a database the daemon cannot
        # switch to while it runs: the feed is polled, the line shown against its feed,
        # the database change waits for a restart.
        broken = other.url("/feeds/broken.xml")
        data["feeds"] += [{"url": other.feed_url("atom")},
                          {"url": broken, "interval": "soon"}]
        data["database"] = "elsewhere.db"
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        wait_for(lambda: polls_of(db, other.feed_url("atom")) >= 1, "the new feed's poll")
        assert query(db, "SELECT config_error FROM feeds WHERE url = ?", (broken,))[0][0] \
            .startswith("config feeds[2].interval")
        assert "database changed; restart the daemon to apply" in log.read_text()
        assert not (tmp_path / "elsewhere.db").exists()
        assert metric(port, taken) == 1

        # SIGHUP reads the file again even when it did not change.
        reloads = log.read_text().count("config reloaded")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: log.read_text().count("config reloaded") > reloads, "SIGHUP's reload")
        assert process.poll() is None
    assert process.returncode == 0, log.read_text()


def test_an_edit_while_the_daemon_reads_the_config_is_read_at_the_next_tick(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`newswire add` writing the file while a reload parses it: the reload runs on what it
    read, and the next look sees the newer file (the review's reproduction: the watch took
    the newer file for read, and its feeds waited for the next edit)."""
    feeds = [f"http://127.0.0.1:9/{name}.xml" for name in "abcd"]
    path = write_config(tmp_path / "newswire.yaml", feeds[:1])
    config = load_config(path)
    watch = ConfigWatch(config)
    write_config(path, feeds[:2])
    assert watch.changed()

    def read_then_edited(config_path: Path) -> object:
        read = load_config(config_path)
        write_config(path, feeds)  # lands while the daemon is busy with what it read
        return read

    monkeypatch.setattr(daemon_module, "load_config", read_then_edited)
    store = Store.open(config.database)
    runner = Runner(config, store)  # its config is all a reload touches
    asyncio.run(daemon_module._reload(runner, store, watch, scheduler=None))
    assert [f.url for f in runner.config.feeds] == feeds[:2]
    assert watch.changed() and not watch.changed()
    store.close()


def test_an_opml_file_written_after_the_config_names_it_is_read(
        site: NewsSite, tmp_path: Path) -> None:
    """The config names `opml: more.opml` before the file exists: that reload is refused
    (and said once), and the file written next is read at a tick, though no watched file
    changed (the review's reproduction: the OPML feed was never polled)."""
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")],
                          schedule={"tick": "0.5s"})
    db, log = tmp_path / "newswire.db", tmp_path / "daemon.log"
    with NewsSite() as other, daemon(config, log) as process:
        fill_site(other, 2)
        wait_for(lambda: polls_of(db, site.feed_url("rss")) >= 1, "the first poll")
        data = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump({**data, "opml": "more.opml"}, sort_keys=False),
                          encoding="utf-8")
        wait_for(lambda: "config not reloaded" in log.read_text(), "the refusal")
        time.sleep(1.5)  # three ticks: the refusal is not logged again
        (tmp_path / "more.opml").write_text(
            '<?xml version="1.0"?><opml version="2.0"><head/><body>'
            f'<outline text="Other" xmlUrl="{other.feed_url("rss")}"/></body></opml>',
            encoding="utf-8")
        wait_for(lambda: polls_of(db, other.feed_url("rss")) >= 1, "the OPML feed's poll")
        assert process.poll() is None
    assert log.read_text().count("config not reloaded") == 1
