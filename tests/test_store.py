"""The store: schema, WAL, migrations, one atomic transaction per poll, exact dedupe, FTS."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.boilerplate import line_key
from pipeline.config import DedupeConfig, FeedConfig, ScheduleConfig
from pipeline.dedupe import article_id
from pipeline.errors import LockedError, StoreError, StoreWriteError
from pipeline.messages import Article, EntryBatch, NewEntry, PollResult
from pipeline.store import Store
from pipeline.store.schema import SCHEMA_VERSION
from pipeline.times import utcnow

BODY = ("Rescue teams searched through the night for survivors after the earthquake struck "
        "the coastal region, officials said on Monday, adding that the death toll was likely "
        "to rise as crews reached remote villages.\n\nAid agencies appealed for blankets.")


def make_article(url: str, text: str = BODY, title: str = "Quake strikes") -> Article:
    return Article(id=article_id(url), url=url, canonical_url=url, title=title, text=text,
                   author=None, published_at=None, language="en", sitename="Site",
                   text_source="page")


def entry(key: str, url: str | None = None, article: Article | None = None,
          existing: str | None = None) -> NewEntry:
    return NewEntry(key=key, guid=key, link=url, title="t", published_at=None,
                    article=article, existing_article_id=existing,
                    url_aliases=(url,) if url else ())


def poll(feed_id: int, *entries: NewEntry, status: int = 200, etag: str | None = "e1",
         error: str | None = None) -> PollResult:
    return PollResult(feed_id=feed_id, started_at=utcnow(), duration_ms=5, status=status,
                      bytes=100, error=error, next_poll_at="2099-01-01T00:00:00Z",
                      consecutive_failures=0 if error is None else 1, current_interval=900.0,
                      etag=etag, last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
                      feed_title="Feed", entries=entries)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "sub" / "nw.db")
    s.sync_feeds([FeedConfig(url="http://a.example/feed"), FeedConfig(url="http://b.example/f")])
    yield s
    s.close()


def test_schema_wal_and_version(store: Store, tmp_path: Path) -> None:
    assert store.schema_version == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for table in ("feeds", "entries", "articles", "clusters", "fetches", "articles_fts"):
        assert store.db[table].exists()
    columns = set(store.db["articles"].columns_dict)
    assert {"id", "url", "canonical_url", "title", "text", "author", "published_at",
            "fetched_at", "language", "sitename", "feed_id", "cluster_id", "duplicate_of",
            "duplicate_kind"} <= columns
    schema_sql = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    before = store.db.execute(schema_sql).fetchall()
    ledger = store.db.execute("SELECT * FROM schema_migrations ORDER BY number").fetchall()
    store.close()
    reopened = Store.open(tmp_path / "sub" / "nw.db")  # migrating again is a no-op
    assert reopened.db["feeds"].count == 2
    assert reopened.db.execute(schema_sql).fetchall() == before
    assert reopened.db.execute("SELECT * FROM schema_migrations ORDER BY number"
                               ).fetchall() == ledger
    reopened.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nw.db"
    sqlite3.connect(path).execute("PRAGMA user_version = 999").connection.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nw.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot use database"):
        Store.open(path)


def test_poll_is_recorded_with_validators(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    summary = store.record_poll(poll(feed.id, entry("g1", "http://a.example/1",
                                                    make_article("http://a.example/1"))))
    assert (summary.new_entries, summary.new_articles) == (1, 1)
    state = store.feed(feed.id)
    assert state.etag == "e1" and state.next_poll_at == "2099-01-01T00:00:00Z"
    assert store.known_entry_keys(feed.id, ["g1", "g2"]) == {"g1"}
    assert store.article_ids_for_urls(["http://a.example/1"]) == {
        "http://a.example/1": article_id("http://a.example/1")}
    cluster = store.db["clusters"].get(article_id("http://a.example/1"))
    assert cluster["size"] == 1


def test_a_failed_write_leaves_nothing_behind(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    good = entry("g1", "http://a.example/1", make_article("http://a.example/1"))
    broken = poll(9999, good)  # no such feed: the foreign key fails after the entry insert
    with pytest.raises(StoreWriteError) as failure:
        store.record_poll(broken)
    assert isinstance(failure.value.__cause__, sqlite3.IntegrityError)
    assert store.db["entries"].count == 0
    assert store.db["articles"].count == 0
    assert store.db["fetches"].count == 0
    assert store.feed(feed.id).etag is None  # validators untouched
    assert not store.db.conn.in_transaction


def test_failed_poll_keeps_old_validators(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    store.record_poll(poll(feed.id))
    store.record_poll(poll(feed.id, status=500, etag="new", error="HTTP 500"))
    state = store.feed(feed.id)
    assert state.etag == "e1" and state.consecutive_failures == 1


def test_same_article_in_two_feeds_is_one_article_with_two_entries(store: Store) -> None:
    a, b = store.feeds(include_all=True)
    url = "http://a.example/1"
    store.record_poll(poll(a.id, entry("g1", url, make_article(url))))
    store.record_poll(poll(b.id, entry("x9", url, existing=article_id(url))))
    store.record_poll(poll(b.id, entry("x10", url, make_article(url))))  # raced: same id
    assert store.db["articles"].count == 1
    assert store.db.execute("SELECT count(DISTINCT feed_id) FROM entries WHERE article_id = ?",
                            [article_id(url)]).fetchone()[0] == 2


def test_same_text_under_another_url_is_an_exact_duplicate(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    first, second = "http://a.example/1", "http://mirror.example/story"
    store.record_poll(poll(feed.id, entry("1", first, make_article(first))))
    shouty = make_article(second, text=BODY.upper().replace("\n\n", "   \n"), title="Other")
    summary = store.record_poll(poll(feed.id, entry("2", second, shouty)))
    assert summary.exact_duplicates == 1
    row = store.db["articles"].get(article_id(second))
    assert row["duplicate_kind"] == "exact"
    assert row["duplicate_of"] == article_id(first)
    assert row["cluster_id"] == article_id(first)
    assert store.db["clusters"].get(article_id(first))["size"] == 2
    assert store.db["clusters"].count == 1


def test_short_texts_are_not_text_deduplicated(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    for i in range(2):
        url = f"http://a.example/brief{i}"
        store.record_poll(poll(feed.id, entry(str(i), url, make_article(url, text="Updating."))))
    kinds = [r["duplicate_kind"] for r in store.db["articles"].rows]
    assert kinds == [None, None]


def test_fts_follows_inserts(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    url = "http://a.example/1"
    store.record_poll(poll(feed.id, entry("1", url, make_article(url))))
    hits = store.db.execute("SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?",
                            ["earthquakes"]).fetchall()  # porter stemming
    assert len(hits) == 1


def test_sync_feeds_deactivates_removed_feeds_and_keeps_data(store: Store) -> None:
    store.sync_feeds([FeedConfig(url="http://a.example/feed", name="A")])
    rows = {r["url"]: r for r in store.db["feeds"].rows}
    assert rows["http://a.example/feed"]["name"] == "A"
    assert rows["http://b.example/f"]["active"] == 0
    assert [f.url for f in store.feeds(include_all=True)] == ["http://a.example/feed"]


def test_permanent_redirect_updates_url_but_config_still_matches(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    result = poll(feed.id)
    moved = PollResult(**{**result.__dict__, "new_url": "http://a.example/new-feed"})
    store.record_poll(moved)
    assert store.feed(feed.id).url == "http://a.example/new-feed"
    store.sync_feeds([FeedConfig(url="http://a.example/feed"),
                      FeedConfig(url="http://b.example/f")])
    assert store.db["feeds"].count == 2


def test_a_config_line_changed_to_where_the_feed_moved_names_the_same_feed(
        store: Store) -> None:
    """It inserted a second row with the moved feed's URL: a UNIQUE error that stopped
    every feed of the run (and the daemon at its start)."""
    feed = store.feeds(include_all=True)[0]
    store.record_poll(PollResult(**{**poll(feed.id).__dict__,
                                    "new_url": "http://a.example/new-feed"}))
    store.sync_feeds([FeedConfig(url="http://a.example/new-feed", name="A"),
                      FeedConfig(url="http://b.example/f")])
    rows = [(r["id"], r["url"], r["config_url"], r["active"], r["name"])
            for r in store.db["feeds"].rows]
    assert (feed.id, "http://a.example/new-feed", "http://a.example/new-feed", 1, "A") in rows
    assert len(rows) == 2 and all(active for *_, active, _name in rows)


def test_due_feeds(store: Store) -> None:
    a, b = store.feeds(include_all=True)
    store.record_poll(poll(a.id))  # next poll in 2099
    assert [f.id for f in store.feeds()] == [b.id]


def test_writer_lock(tmp_path: Path) -> None:
    first = Store.open(tmp_path / "nw.db")
    second = Store.open(tmp_path / "nw.db")
    first.acquire_lock()
    with pytest.raises(LockedError, match="another newswire process"):
        second.acquire_lock()
    first.close()
    second.acquire_lock()  # released with the first
    second.close()


def test_several_polls_in_one_transaction_each_whole(store: Store) -> None:
    a, b = store.feeds(include_all=True)
    urls = ["http://a.example/1", "http://b.example/2"]
    summaries = store.record_batch([
        poll(a.id, entry("g1", urls[0], make_article(urls[0]))),
        poll(b.id, entry("g2", urls[1], make_article(urls[1], text=BODY + " Second."))),
        poll(b.id, status=304, etag=None)])
    assert [(s.new_entries, s.new_articles) for s in summaries] == [(1, 1), (1, 1), (0, 0)]
    assert store.db["fetches"].count == 3 and store.db["articles"].count == 2
    assert store.feed(a.id).etag == "e1" and store.feed(b.id).etag == "e1"


def test_a_failing_poll_fails_its_whole_group(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    with pytest.raises(StoreWriteError):
        store.record_batch([poll(feed.id), poll(9999)])
    assert store.db["fetches"].count == 0 and store.feed(feed.id).etag is None


def test_entry_batches_before_the_poll_leave_the_feed_due_until_the_poll(store: Store) -> None:
    """A big poll is written in batches; validators and schedule only come with the last."""
    feed = store.feeds(include_all=True)[0]
    first = [entry(f"g{i}", f"http://a.example/{i}", make_article(
        f"http://a.example/{i}", text=f"{BODY} Number {i}.")) for i in range(3)]
    summary = store.record_batch([EntryBatch(feed.id, tuple(first))])[0]
    assert (summary.new_entries, summary.new_articles) == (3, 3)
    # A crash here: the entries are in, the feed is untouched and still due.
    assert store.known_entry_keys(feed.id, ["g0", "g1", "g2"]) == {"g0", "g1", "g2"}
    state = store.feed(feed.id)
    assert state.etag is None and state.last_polled_at is None
    assert feed.id in [f.id for f in store.feeds()]
    assert store.db["fetches"].count == 0
    last = entry("g3", "http://a.example/3", make_article("http://a.example/3"))
    result = PollResult(**{**poll(feed.id, last).__dict__, "batched_entries": 3,
                           "batched_articles": 3})
    store.record_poll(result)
    log = store.db.execute("SELECT new_entries, new_articles FROM fetches").fetchall()
    assert log == [(4, 4)]
    assert store.feed(feed.id).etag == "e1" and feed.id not in [f.id for f in store.feeds()]


def test_lines_a_site_repeats_on_three_pages_become_its_boilerplate(store: Store) -> None:
    feed = store.feeds(include_all=True)[0]
    footer, other = line_key("About the Gazette"), line_key("Another line")
    for i in range(3):
        url = f"http://www.a.example/{i}"
        article = make_article(url, text=f"{BODY} Story {i}.")
        article = Article(**{**article.__dict__, "line_keys": (footer, other + i)})
        store.record_poll(poll(feed.id, entry(str(i), url, article)))
        assert store.site_lines("a.example") == (frozenset({footer}) if i == 2 else frozenset())
    assert store.site_lines("b.example") == frozenset()
    # An exact copy of a stored text adds nothing: the same page again is not evidence.
    url = "http://a.example/copy"
    copy = Article(**{**make_article(url, text=f"{BODY} Story 0.").__dict__,
                      "line_keys": (other,)})
    assert store.record_poll(poll(feed.id, entry("c", url, copy))).exact_duplicates == 1
    assert store.db.execute("SELECT pages FROM site_lines WHERE line_key = ?",
                            [other]).fetchone()[0] == 1


def test_maintenance_forgets_lines_seen_once_long_ago(store: Store) -> None:
    store.db.execute("INSERT INTO site_lines VALUES ('a.example', 1, 1, '2000-01-01T00:00:00Z'),"
                     " ('a.example', 2, 5, '2000-01-01T00:00:00Z'),"
                     " ('a.example', 3, 1, ?)", [utcnow()])
    store.maintenance(SimpleNamespace(dedupe=DedupeConfig(), schedule=ScheduleConfig()))
    keys = [r[0] for r in store.db.execute("SELECT line_key FROM site_lines ORDER BY 1")]
    assert keys == [2, 3]


def _database_with(path: Path, numbers: list[int], version: int) -> None:
    """A database as an older newswire left it: these migrations applied, no ledger."""
    import sqlite_utils

    from pipeline.store import schema

    conn = sqlite3.connect(path, isolation_level=None)
    for number in numbers:
        schema.MIGRATIONS[number](sqlite_utils.Database(conn))
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def test_a_version_1_database_is_migrated_across_the_gap(tmp_path: Path) -> None:
    """Migration numbers are handed out per feature, so the sequence has gaps."""
    from pipeline.store import schema

    _database_with(tmp_path / "nw.db", [1], 1)
    with Store.open(tmp_path / "nw.db") as migrated:
        assert migrated.schema_version == max(schema.MIGRATIONS) == SCHEMA_VERSION
        assert migrated.db["site_lines"].exists()
        assert schema.applied(migrated.db) == set(schema.MIGRATIONS)


def test_both_dates_and_both_languages_are_stored(store: Store) -> None:
    """Migration 10: the page's date with its offset, the feed's date and the declared
    language beside the chosen UTC date and the detected language."""
    from dataclasses import replace

    article = replace(make_article("http://a.example/dated"),
                      published_at="2024-05-11T03:00:00Z", language="de",
                      page_published_at="2024-05-10T22:00:00-05:00",
                      feed_published_at="2024-05-11T03:00:00Z", declared_language="en")
    store.record_poll(poll(1, entry("d", "http://a.example/dated", article)))
    row = store.db.execute("SELECT published_at, page_published_at, feed_published_at, "
                           "language, declared_language FROM articles").fetchone()
    assert row == ("2024-05-11T03:00:00Z", "2024-05-10T22:00:00-05:00",
                   "2024-05-11T03:00:00Z", "de", "en")


def test_a_database_from_main_before_issue_12_gains_its_columns(tmp_path: Path) -> None:
    """Migration 10 lands after 11, 12, 15 and 16: a database that has those (and the
    ledger) but not 10 still gains the issue-12 columns, and the ledger records 10."""
    from pipeline.store import schema

    path = tmp_path / "nw.db"
    before_issue_12 = [n for n in sorted(schema.MIGRATIONS) if n <= 16 and n != 10]
    _database_with(path, before_issue_12, 16)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(schema.LEDGER_SQL)
    conn.executemany(f"INSERT INTO {schema.LEDGER} VALUES (?, '2026-11-30T00:00:00Z')",
                     [(n,) for n in before_issue_12])
    conn.close()
    with sqlite3.connect(path) as before:
        columns = {row[1] for row in before.execute("PRAGMA table_info(articles)")}
        assert "page_published_at" not in columns
    with Store.open(path) as migrated:
        columns = set(migrated.db["articles"].columns_dict)
        assert {"page_published_at", "feed_published_at", "declared_language"} <= columns
        assert 10 in schema.applied(migrated.db)


def test_migrations_numbered_below_a_databases_version_are_still_applied(
        tmp_path: Path) -> None:
    """A branch may land after one with higher numbers: a database made on main with
    migrations 11 and 12 (user_version 12) still gets 8, 9, 15 and 16, and the ledger
    records each once."""
    from pipeline.store import schema

    path = tmp_path / "nw.db"
    _database_with(path, [1, 2, 5, 6, 7, 11, 12], 12)
    with pytest.raises(StoreError, match=r"older than this newswire.*lacks migrations 8, 9"):
        Store.open(path, readonly=True)
    with Store.open(path) as migrated:
        assert migrated.db["neardup_anchors"].exists()  # 8
        assert "merged_into" in migrated.db["clusters"].columns_dict  # 9
        assert migrated.db["article_versions"].exists()  # 16
        ledger = [r[0] for r in migrated.db.execute(
            "SELECT number FROM schema_migrations ORDER BY number")]
        assert ledger == sorted(schema.MIGRATIONS)
        assert migrated.schema_version == SCHEMA_VERSION
    with Store.open(path) as again:  # nothing left to apply
        assert schema.pending(schema.applied(again.db)) == []
    Store.open(path, readonly=True).close()


def test_a_database_with_a_migration_unknown_here_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nw.db"
    Store.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO schema_migrations VALUES (999, '2030-01-01T00:00:00Z')")
    conn.close()
    with pytest.raises(StoreError, match="newer than this newswire.*999"):
        Store.open(path)
    with pytest.raises(StoreError, match="newer than this newswire"):
        Store.open(path, readonly=True)


@pytest.mark.parametrize(("error", "worth"), [
    ("HTTP 503", True), ("HTTP 500", True), ("HTTP 408", True), ("HTTP 429", True),
    ("deadline of 20s exceeded", True), ("network error: [Errno 104] reset", True),
    ("ConnectError: [Errno 111] Connection refused", True), ("ReadTimeout: timed out", True),
    ("RemoteProtocolError: Server disconnected", True),
    ("extractor found no main text", False), ("HTTP 404", False), ("HTTP 410", False),
    ("HTTP 403", False), ("disallowed by robots.txt", False), ("redirect loop", False),
    ("more than 5 redirects", False), ("not an HTML page (application/pdf)", False),
    ("refused: 10.0.0.1 is a non-public address", False), (None, False), ("", False)])
def test_which_failed_pages_are_worth_retrying(error: str | None, worth: bool) -> None:
    from pipeline.store import retries

    assert retries.worth_retrying(error) is worth


def test_a_failed_page_is_retried_on_a_widening_schedule_then_forgotten(store: Store) -> None:
    """pipeline.store.retries: a new article from a failed page gets a retry due after
    RETRY_AFTER[0]; each failed retry moves it RETRY_AFTER[n] on; the last one forgets it,
    and so does the upkeep once its feed is no longer polled (however long a feed waits
    between polls, its retries wait for it)."""
    from dataclasses import replace
    from datetime import timedelta

    from pipeline.messages import RETRY, Revision
    from pipeline.store import retries
    from pipeline.times import iso, parse_iso

    failed = replace(make_article("http://a.example/1", text="A summary from the feed."),
                     text_source="feed", extract_error="HTTP 503")
    gone = replace(make_article("http://a.example/2", text="Another summary."),
                   text_source="feed", extract_error="HTTP 404")
    store.record_batch([poll(1, entry("k1", "http://a.example/1", failed),
                             entry("k2", "http://a.example/2", gone))])
    [row] = store.db.execute("SELECT article_id, attempts, next_at FROM page_retries")
    assert row[0] == failed.id and row[1] == 0  # the 404 is not retried
    start = parse_iso(row[2])
    assert start is not None
    assert store.page_retries(1, iso(start))[0].link == "http://a.example/1"
    assert store.page_retries(1, iso(start - timedelta(seconds=1))) == []
    assert store.page_retries(2, iso(start)) == []  # another feed's
    for attempt in range(1, len(retries.RETRY_AFTER)):
        store.record_batch([replace(poll(1), revisions=(
            Revision(failed.id, RETRY, feed_id=1),))])
        assert store.db.execute("SELECT attempts FROM page_retries").fetchone()[0] == attempt
    store.record_batch([replace(poll(1), revisions=(Revision(failed.id, RETRY, feed_id=1),))])
    assert store.db.execute("SELECT count(*) FROM page_retries").fetchone()[0] == 0

    other = replace(failed, id="x" * 16, url="http://a.example/3",
                    canonical_url="http://a.example/3")
    store.record_batch([poll(1, entry("k3", "http://a.example/3", other))])
    with store.write():
        retries.forget_stale(store.db)
    assert store.db.execute("SELECT count(*) FROM page_retries").fetchone()[0] == 1
    store.sync_feeds([FeedConfig(url="http://b.example/f")])  # feed 1 leaves the config
    with store.write():
        retries.forget_stale(store.db)
    assert store.db.execute("SELECT count(*) FROM page_retries").fetchone()[0] == 0


def test_a_feed_removed_from_the_config_and_added_to_the_database_stays_active(
        store: Store) -> None:
    """`newswire add --no-config` of a feed the config once listed: it is the database's
    own feed now (it kept its config URL, so the next run's sync deactivated it again, and
    the daemon held it back as listed by a config it had not read)."""
    store.sync_feeds([FeedConfig(url="https://a.example/feed")])
    store.sync_feeds([FeedConfig(url="https://b.example/feed")])
    feed_id = store.add_feed("https://a.example/feed")
    store.sync_feeds([FeedConfig(url="https://b.example/feed")])
    row = store.db.execute("SELECT active, config_url FROM feeds WHERE id = ?",
                           [feed_id]).fetchone()
    assert row == (1, None)
