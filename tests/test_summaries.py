"""Counters and daily totals kept by the writer (pipeline.store.summaries): each stays equal
to the query it summarises after ingest, import, reindex, a cluster change, a feed renamed,
the fetch log rolled, a migration and a repair. (The pages and commands that read them, and
never write, are in tests/test_browse.py.)"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.config import FeedConfig, load_config
from pipeline.errors import ConfigError
from pipeline.export import import_text
from pipeline.messages import PollResult
from pipeline.store import Store, schema, summaries
from pipeline.store.repair import repair
from pipeline.times import iso
from tests.conftest import run_cli, story, write_config
from tests.newssite import NewsSite
from tests.test_neardup import T0, WIRE, Corpus, copies_of_the_wire, ingest_story_set

# The view as migration 9 defined it: counted at read time (what stories_by_outlets means).
OLD_STORIES_BY_OUTLETS = schema.STORIES_BY_OUTLETS_9.split(" AS\n", 1)[1]
NEW_ORDER = "SELECT * FROM stories_by_outlets ORDER BY last_seen_at DESC, cluster_id"


def exact(store: Store) -> None:
    assert summaries.mismatches(store.db) == {name: 0 for name in summaries.RECOUNTS}


def stories(db: sqlite3.Connection | object, sql: str) -> list[tuple]:
    """Rows of a stories-by-outlets query, the outlet list as a set (its order is free)."""
    rows = db.execute(sql).fetchall()  # type: ignore[attr-defined]
    return [(*r[:5], frozenset(r[5].split(",")), *r[6:]) for r in rows]


def old_poll(feed_id: int, started: datetime, error: str | None = None) -> PollResult:
    return PollResult(feed_id=feed_id, started_at=iso(started), duration_ms=120,
                      status=None if error else 304, bytes=0, error=error,
                      next_poll_at="2099-01-01T00:00:00Z", consecutive_failures=int(bool(error)),
                      current_interval=900.0, conditional=True)


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    c = Corpus(tmp_path / "nw.db")
    yield c
    c.store.close()


def test_counters_follow_ingest_import_reindex_and_the_rolled_fetch_log(
        corpus: Corpus, tmp_path: Path) -> None:
    store = corpus.store
    ingest_story_set(corpus)
    exact(store)
    db = store.db
    wire_cluster = db.execute("SELECT cluster_id FROM articles WHERE url LIKE "
                              "'https://global-wire-service.example/quake'").fetchone()[0]
    outlets = db.execute("SELECT count(DISTINCT sitename) FROM articles WHERE cluster_id = ?",
                         [wire_cluster]).fetchone()[0]
    assert outlets > 3
    assert db["clusters"].get(wire_cluster)["outlets"] == outlets
    assert store.status_rows(5)[0]["articles"] == db.execute(
        "SELECT count(*) FROM articles WHERE feed_id = 1").fetchone()[0] > 0
    # The view reads the counters and says what it said when it counted at read time.
    assert stories(db, NEW_ORDER) == \
        stories(db, OLD_STORIES_BY_OUTLETS) != []

    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "000_0123456789abcdef.txt").write_text("Quake copy\n\n" + "\n\n".join(WIRE))
    (seed / "001_fedcba9876543210.txt").write_text("Other\n\n" + "\n\n".join(story("x")))
    assert db.execute("SELECT count(DISTINCT outlet), count(*) FROM copy_lags").fetchone() \
        == (outlets, outlets)  # one copy of the quake per outlet
    report = asyncio.run(import_text(store, seed))
    assert report.new_articles == 2 and report.exact_duplicates == 1
    exact(store)
    assert db.execute("SELECT count(*) FROM copy_lags").fetchone()[0] == outlets + 1

    store.reindex(30)
    store.reindex(0, from_text=True)
    exact(store)

    # The fetch log rolled: raw rows of days older than the window go, their totals stay.
    now = datetime.now(UTC)
    old = (now - timedelta(days=40)).replace(hour=12, minute=0)
    store.record_batch([old_poll(2, old), old_poll(2, old + timedelta(minutes=15)),
                        old_poll(2, old + timedelta(minutes=30), error="HTTP 500")])
    day = old.strftime("%Y-%m-%d")
    totals = db.execute("SELECT polls, failed_polls, not_modified FROM feed_days "
                        "WHERE feed_id = 2 AND day = ?", [day]).fetchone()
    assert totals == (3, 1, 2)
    exact(store)
    polls = db.execute("SELECT count(*) FROM fetches").fetchone()[0]
    assert store.prune_fetch_log(30, now=now) == 3
    assert db.execute("SELECT count(*) FROM fetches").fetchone()[0] == polls - 3
    assert db.execute("SELECT polls, failed_polls, not_modified FROM feed_days "
                      "WHERE feed_id = 2 AND day = ?", [day]).fetchone() == totals
    assert store.prune_fetch_log(30, now=now) == 0  # nothing more: one probe per feed
    assert store.prune_fetch_log(0, now=now) == 0  # 0 keeps the raw log forever
    exact(store)


def test_outlets_follow_feed_names_and_cluster_changes(corpus: Corpus) -> None:
    """Without a site name the outlet is the feed's name, else its title, else its URL, as
    they are now: the first poll titles the feed, the config renames it."""
    store = corpus.store
    first = corpus.add("quake", WIRE, site="Wire")
    store.db.execute("UPDATE articles SET sitename = NULL")  # pages without og:site_name
    for i, text in enumerate(list(copies_of_the_wire().values())[:3]):
        corpus.add(f"copy-{i}", text, site=f"Outlet {i}", feed_id=2 + i % 2)
    store.db.execute("UPDATE articles SET sitename = NULL WHERE id != ?", [first])
    exact(store)
    cluster = corpus.article(first)["cluster_id"]
    names = {r[0] for r in store.db.execute(
        "SELECT outlet FROM cluster_outlets WHERE cluster_id = ?", [cluster])}
    assert names >= {"http://feeds.example/1", "http://feeds.example/2"}  # feeds 2 and 3
    with store.write():
        store.db.execute("UPDATE feeds SET title = 'Feed Two' WHERE id = 2")  # a first poll
    exact(store)
    store.sync_feeds([FeedConfig(url=f"http://feeds.example/{i}",
                                 name="Same Name" if i in (1, 2) else None)
                      for i in range(4)])
    exact(store)
    assert "Same Name" in {r[0] for r in store.db.execute(
        "SELECT outlet FROM cluster_outlets WHERE cluster_id = ?", [cluster])}

    # A cluster change (a merge moves articles): both clusters are recounted.
    other = corpus.add("other", story("harbour"), site="Elsewhere")
    with store.write():
        store.db.execute("UPDATE articles SET cluster_id = ? WHERE id = ?",
                         [cluster, other])
    exact(store)
    with store.write():
        store.db.execute("DELETE FROM duplicate_edges")
        store.db.execute("DELETE FROM neardup_signatures WHERE article_id = ?", [other])
        store.db.execute("DELETE FROM entries WHERE article_id = ?", [other])
        store.db.execute("DELETE FROM article_urls WHERE article_id = ?", [other])
        store.db.execute("DELETE FROM articles WHERE id = ?", [other])
    exact(store)


def lags(store: Store) -> dict[str, tuple]:
    """copy_lags by article: (outlet, minutes behind the first copy, 1 if that was another
    outlet's)."""
    return {r[0]: (r[1], round(r[2], 3), r[3]) for r in store.db.execute(
        "SELECT article_id, outlet, lag, wire FROM copy_lags")}


def test_copy_lags_follow_merges_earlier_copies_re_extraction_and_deletes(
        corpus: Corpus) -> None:
    """Each copy's lag behind its story's first copy: the story's rows follow a merge that
    brings an earlier copy, a copy that is earlier still, publication dates changed (what a
    re-extraction writes: a later copy's, then one earlier than the first), a copy moved
    out and a deleted one."""
    store = corpus.store
    head = corpus.add("head", WIRE[:4], site="One", published=T0 + timedelta(hours=2))
    tail = corpus.add("tail", WIRE[4:], site="Two", published=T0 + timedelta(hours=3))
    exact(store)
    assert lags(store) == {}  # two stories, one outlet each
    full = corpus.add("full", WIRE, site="Three", published=T0 + timedelta(hours=1))
    assert len({corpus.article(a)["cluster_id"] for a in (head, tail, full)}) == 1  # merged
    exact(store)
    assert lags(store) == {full: ("Three", 0.0, 0), head: ("One", 60.0, 1),
                           tail: ("Two", 120.0, 1)}
    early = corpus.add("early", WIRE[2:7], site="One", published=T0)  # One was first
    assert corpus.article(early)["cluster_id"] == corpus.article(full)["cluster_id"]
    exact(store)
    assert lags(store) == {early: ("One", 0.0, 0), full: ("Three", 60.0, 1),
                           head: ("One", 120.0, 0), tail: ("Two", 180.0, 1)}
    with store.write():  # a later copy re-dated, still later than the first: its row alone
        store.db.execute("UPDATE articles SET published_at = ? WHERE id = ?",
                         ["2025-03-04T08:30:00Z", head])
    exact(store)
    assert lags(store)[head] == ("One", 150.0, 0) and lags(store)[full] == ("Three", 60.0, 1)
    with store.write():  # the page's own date, read by a re-extraction, is earlier still
        store.db.execute("UPDATE articles SET published_at = ? WHERE id = ?",
                         ["2025-03-04T05:30:00Z", tail])
    exact(store)
    assert lags(store)[tail] == ("Two", 0.0, 0) and lags(store)[early] == ("One", 30.0, 1)
    with store.write():  # the first copy leaves the story for a cluster of its own
        store.db.execute("INSERT INTO clusters (id, size) VALUES ('solo', 1)")
        store.db.execute("UPDATE articles SET cluster_id = 'solo' WHERE id = ?", [tail])
    exact(store)
    assert set(lags(store)) == {early, full, head} and lags(store)[full] == \
        ("Three", 60.0, 1)
    # Deleted copies (the evidence and canonical rows that name them are left dangling:
    # this is about the summaries): Three's, then the story is One's alone.
    store.db.execute("PRAGMA foreign_keys = OFF")
    with store.write():
        store.db.execute("DELETE FROM articles WHERE id = ?", [full])
    exact(store)
    assert lags(store) == {}
    store.db.execute("PRAGMA foreign_keys = ON")
    assert store.db.execute("SELECT sum(articles) FROM outlet_days").fetchone()[0] == 3


def test_copy_lags_stay_exact_through_random_writes(corpus: Corpus) -> None:
    """Every path of copy_lags' triggers (a later copy's own row, a story recomputed, a
    story gaining or losing its second outlet, a merge) against the recount, after each of
    400 random writes on four stories: ties in time and outlet, copies without a publication
    time, without a site name (the feed is the outlet) or without any outlet."""
    store, rng = corpus.store, random.Random(15)
    db = store.db
    times = [None, "2025-03-04T06:00:00Z", "2025-03-04T06:30:00Z", "2025-03-04T07:00:00Z",
             "2025-03-04T09:15:00Z"]
    sites = [None, "", "One", "Two", "Three"]
    clusters = [f"c{i}" for i in range(4)]
    with store.write():
        for c in clusters:
            db.execute("INSERT INTO clusters (id, size) VALUES (?, 0)", [c])
    articles: list[str] = []
    for step in range(400):
        op = rng.choice(["insert"] * 4 + ["redate", "refetch", "resite", "move", "merge",
                                          "delete", "rename"])
        with store.write():
            if op == "insert" or not articles:
                aid = f"a{step}"
                db.execute("INSERT INTO articles (id, cluster_id, feed_id, sitename, "
                           "published_at, fetched_at) VALUES (?, ?, ?, ?, ?, ?)",
                           [aid, rng.choice(clusters), rng.choice([None, 1, 2]),
                            rng.choice(sites), rng.choice(times),
                            rng.choice(times[1:] * 5 + [None])])
                articles.append(aid)
            elif op == "redate":
                db.execute("UPDATE articles SET published_at = ? WHERE id = ?",
                           [rng.choice(times), rng.choice(articles)])
            elif op == "refetch":
                db.execute("UPDATE articles SET fetched_at = ? WHERE id = ?",
                           [rng.choice(times[1:]), rng.choice(articles)])
            elif op == "resite":
                db.execute("UPDATE articles SET sitename = ?, feed_id = ? WHERE id = ?",
                           [rng.choice(sites), rng.choice([None, 1, 2]), rng.choice(articles)])
            elif op == "move":
                db.execute("UPDATE articles SET cluster_id = ? WHERE id = ?",
                           [rng.choice(clusters), rng.choice(articles)])
            elif op == "merge":  # as pipeline.store.merges.apply moves a story
                source, target = rng.sample(clusters, 2)
                db.execute("UPDATE clusters SET merged_into = ? WHERE id = ?", [target, source])
                db.execute("UPDATE articles SET cluster_id = ? WHERE cluster_id = ?",
                           [target, source])
                summaries.story_merged(db, source, target)
                clusters[clusters.index(source)] = f"c{step}"  # a fresh story
                db.execute("INSERT INTO clusters (id, size) VALUES (?, 0)", [f"c{step}"])
            elif op == "delete":
                aid = rng.choice(articles)
                articles.remove(aid)
                db.execute("DELETE FROM articles WHERE id = ?", [aid])
            else:
                db.execute("UPDATE feeds SET name = ? WHERE id = ?",
                           [rng.choice([None, "One", "Feed X"]), rng.choice([1, 2])])
        assert summaries.mismatches(db) == {name: 0 for name in summaries.RECOUNTS}, (step, op)
    assert db.execute("SELECT count(*) FROM copy_lags").fetchone()[0] > 10


def test_a_database_from_before_is_migrated_with_its_counters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A newswire from before migrations 13 and 14, with every other (15 and 16 included: the
    # ledger applies the two it lacks, though their numbers are lower) but 18, which indexes
    # 14's daily totals for the dashboards, and 20 (outlets per day, copies' lags).
    earlier = {n: m for n, m in schema.MIGRATIONS.items() if n not in (13, 14, 18, 20)}
    monkeypatch.setattr(schema, "MIGRATIONS", earlier)
    corpus = Corpus(tmp_path / "nw.db")
    assert schema.applied(corpus.store.db) == set(earlier) and 16 in earlier
    ingest_story_set(corpus)
    corpus.store.record_batch([old_poll(1, datetime.now(UTC) - timedelta(hours=2))])
    before = stories(corpus.store.db, OLD_STORIES_BY_OUTLETS)
    counts = corpus.store.db.execute("SELECT feed_id, count(*) FROM articles GROUP BY 1 "
                                     "ORDER BY 1").fetchall()
    corpus.store.close()
    monkeypatch.undo()
    with Store.open(tmp_path / "nw.db") as store:
        assert schema.applied(store.db) == set(schema.MIGRATIONS) >= {13, 14, 20}
        exact(store)
        assert store.db.execute("SELECT count(*) FROM copy_lags").fetchone()[0] > 3
        assert stories(store.db, NEW_ORDER) == before != []
        assert [(r["id"], r["articles"]) for r in store.status_rows(5)
                if r["articles"]] == counts
        assert store.db.execute("SELECT sum(polls) FROM feed_days").fetchone()[0] == \
            store.db.execute("SELECT count(*) FROM fetches").fetchone()[0] > 0


def test_repair_recounts_the_copied_rows(corpus: Corpus, tmp_path: Path) -> None:
    ingest_story_set(corpus)
    corpus.store.record_batch([old_poll(1, datetime.now(UTC) - timedelta(days=3))])
    corpus.store.prune_fetch_log(1)  # a rolled day: only its totals remain
    rolled = corpus.store.db.execute("SELECT * FROM feed_days ORDER BY 1, 2").fetchall()
    corpus.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    corpus.store.close()
    path = tmp_path / "nw.db"
    with sqlite3.connect(path) as conn:  # damage an index: repair copies every row
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = "
                            "'articles_feed_published'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as handle:
        handle.seek((root - 1) * size)
        handle.write(b"\xff" * 64)
    report = repair(path)
    assert report.ok and report.problems, report
    with Store.open(path) as store:
        exact(store)
        assert store.db.execute("SELECT * FROM feed_days ORDER BY 1, 2").fetchall() == rolled


def test_fetch_log_days_is_a_schedule_setting(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    write_config(config, ["http://a.example/feed"])
    assert load_config(config).schedule.fetch_log_days == 30
    write_config(config, ["http://a.example/feed"], schedule={"fetch_log_days": 7})
    assert load_config(config).schedule.fetch_log_days == 7
    write_config(config, ["http://a.example/feed"], schedule={"fetch_log_days": -1})
    with pytest.raises(ConfigError, match=r"schedule\.fetch_log_days"):
        load_config(config)


def test_once_and_the_daemon_maintenance_roll_the_fetch_log(site: NewsSite,
                                                            tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")],
                          schedule={"fetch_log_days": 10})
    with Store.open(tmp_path / "newswire.db") as store:
        store.sync_feeds([FeedConfig(url=site.feed_url("rss"))])
        store.record_batch([old_poll(1, datetime.now(UTC) - timedelta(days=20))])
    assert run_cli("once", config=config).code == 0
    with Store.open(tmp_path / "newswire.db") as store:
        assert store.db.execute("SELECT count(*) FROM fetches").fetchone()[0] == 1
        assert store.db.execute("SELECT sum(polls) FROM feed_days").fetchone()[0] == 2
        store.record_batch([old_poll(1, datetime.now(UTC) - timedelta(days=20))])
        store.maintenance(load_config(config))
        assert store.db.execute("SELECT count(*) FROM fetches").fetchone()[0] == 1
        exact(store)
