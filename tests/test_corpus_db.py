"""The benchmark corpus builder (bench/corpus_db.py): its bulk path writes what the
writer's own path writes, poll by poll, and its counters are what they count."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench import corpus_db
from pipeline.dedupe import Member, canonical_member
from pipeline.store import Store, summaries

pytestmark = pytest.mark.skipif(not corpus_db.CORPUS.is_dir(),
                                reason="needs ../shared/corpus (the builder's sentences)")

END = 1_780_000_020.0  # a fixed minute: both builds simulate the same days
SHAPE = corpus_db.Shape(articles=250, feeds=24, days=6, fetch_log_days=2, poll_minutes=30)
# Every table the two paths write, in a fixed order.
TABLES = {
    "feeds": "id", "fetches": "rowid", "feed_days": "feed_id, day", "feed_stats": "feed_id",
    "articles": "id", "clusters": "id", "entries": "rowid", "cluster_outlets": "1, 2",
    "duplicate_edges": "1, 2", "neardup_signatures": "1", "neardup_bands": "1, 2",
}


def rows(path: Path, table: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY {TABLES[table]}").fetchall()


def test_the_bulk_path_writes_what_every_poll_through_the_writer_writes(
        tmp_path: Path) -> None:
    bulk, each = tmp_path / "bulk.db", tmp_path / "each.db"
    report = corpus_db.build(bulk, SHAPE, progress=False, workers=0, end=END)
    corpus_db.build(each, SHAPE, progress=False, workers=0, end=END, bulk=False)
    assert report.articles == 250 and report.polls > 24 * 48  # two days of half-hourly polls
    for table in TABLES:
        assert rows(bulk, table) == rows(each, table), table
    with Store.open(bulk) as store:
        assert summaries.mismatches(store.db) == {name: 0 for name in summaries.RECOUNTS}
        db = store.db
        # Raw polls only in the window; older days live on as daily totals of every feed.
        first_poll = db.execute("SELECT min(started_at) FROM fetches").fetchone()[0]
        assert first_poll >= "2026-05-26"  # END is 2026-05-28T20:27Z
        days = db.execute("SELECT count(DISTINCT day), min(day) FROM feed_days "
                          "WHERE polls > 0").fetchone()
        assert days[0] >= 6 and days[1] <= "2026-05-23"
        assert db.execute("SELECT count(*) FROM feeds WHERE last_polled_at IS NULL "
                          "OR next_poll_at IS NULL").fetchone()[0] == 0
        # Most articles carry the feed's date and the page's (the feed's is the one stored),
        # so that the canned query comparing them has rows to read at every size.
        dated = db.execute(
            "SELECT sum(feed_published_at IS NOT NULL AND page_published_at IS NOT NULL), "
            "sum(published_at IS NOT feed_published_at AND feed_published_at IS NOT NULL), "
            "sum(page_published_at < feed_published_at) FROM articles").fetchone()
        assert 0.7 * 250 <= dated[0] <= 0.9 * 250 and dated[1] == 0 and dated[2] > 0


def test_every_cluster_s_canonical_is_its_best_member(tmp_path: Path) -> None:
    """After inserts and merges (a merge ranks only the merged clusters' canonicals and the
    new article: pipeline.store.merges), each live cluster's canonical is the best of all
    its members, as a full ranking finds it."""
    path = tmp_path / "c.db"
    corpus_db.build(path, corpus_db.Shape(articles=1500, feeds=60, days=4, fetch_log_days=0.5),
                    progress=False, workers=0, end=END)
    with Store.open(path) as store:
        db, agencies = store.db, store.dedupe.agencies
        assert db.execute("SELECT count(*) FROM cluster_merges").fetchone()[0] > 0
        members: dict[str, list[Member]] = {}
        for row in db.execute(
                "SELECT cluster_id, id, sitename, coalesce(nullif(canonical_url, ''), url), "
                "coalesce(published_at, fetched_at), length(text) FROM articles"):
            members.setdefault(row[0], []).append(Member(row[1], row[2], row[3], row[4],
                                                         row[5] or 0))
        canonical = dict(db.execute("SELECT id, canonical_article_id FROM clusters "
                                    "WHERE merged_into IS NULL AND size > 0").fetchall())
    assert canonical.keys() == members.keys()
    assert canonical == {cluster: canonical_member(found, agencies)
                         for cluster, found in members.items()}
