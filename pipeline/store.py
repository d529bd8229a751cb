"""Storage: the only module that speaks SQL.

SQLite in WAL mode through sqlite-utils. The database is the single source of state: the
feed list and schedule, HTTP validators, failures, every entry of every feed, the articles
and their duplicate clusters. Each feed poll is written in one `BEGIN IMMEDIATE` transaction
together with the feed's new validators, so a crash at any point loses nothing and doubles
nothing: a poll is either recorded whole or not at all, and then simply happens again.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from pipeline import neardup
from pipeline.boilerplate import site_of
from pipeline.config import DedupeConfig
from pipeline.dedupe import canonical_claim_holds, keyed_by_page, text_hash
from pipeline.extract import Article

SCHEMA_VERSION = 6
BUSY_TIMEOUT_MS = 30_000
MIN_WORDS_FOR_TEXT_DEDUPE = 25
# Near-duplicate lookups: a cap on the candidates read (an index bucket shared by thousands of
# boilerplate texts must not make one insert slow) and on the evidence kept per article.
MAX_CANDIDATES = 1000
MAX_EDGES = 20
REINDEX_CHUNK = 100_000  # signatures per batch when rebuilding the band index
PRUNE_CHUNK = 2000  # signatures per transaction when pruning it
# A line seen on this many pages of one site is that site's boilerplate (pipeline.boilerplate).
SITE_LINE_MIN_PAGES = 3
SITE_LINE_SINGLETON_DAYS = 7  # lines seen once are forgotten after this long


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


class StoreError(Exception):
    """The database cannot be used (missing directory, corrupt file, newer schema)."""


class DatabaseDamaged(StoreError):
    """SQLite found the file damaged (a page of a table or index overwritten, not a
    database at all): nothing more can be written safely until it is repaired."""

    def __init__(self, path: Path | None, detail: str) -> None:
        where = str(path) if path else "the database"
        super().__init__(
            f"{where} is damaged ({detail}); nothing more was written. "
            f"`newswire repair` copies everything readable into a fresh file and rebuilds "
            f"the indexes and the search index; if a table itself is damaged, recover what "
            f"SQLite can read with `sqlite3 {where} .recover | sqlite3 recovered.db` and "
            f"point `database:` at recovered.db. Keep a copy of the damaged file.")


_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error says the file itself is damaged (retrying cannot help)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and \
        code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


class LockedError(Exception):
    """Another newswire process holds the write lock on this database."""


class StoreWriteError(Exception):
    """A write transaction failed and was rolled back (disk full, database locked, ...)."""


@dataclass(frozen=True)
class ReindexReport:
    signatures: int  # signatures now in the band index
    band_rows: int
    fingerprinted: int  # signatures recomputed from stored text (--from-text)
    window_days: int


# --- what the store records -------------------------------------------------------------------

@dataclass(frozen=True)
class FeedState:
    """A feed row, as the scheduler and the poller need it."""

    id: int
    url: str
    name: str | None
    etag: str | None
    last_modified: str | None
    next_poll_at: str | None
    last_polled_at: str | None
    consecutive_failures: int
    interval_seconds: float | None
    cron: str | None
    current_interval: float | None
    last_unconditional_at: str | None
    gone: bool


@dataclass(frozen=True)
class NewEntry:
    """A feed item seen for the first time, and the article it belongs to (if any)."""

    key: str
    guid: str | None
    link: str | None
    title: str
    published_at: str | None
    article: Article | None = None  # freshly extracted
    existing_article_id: str | None = None  # already stored under one of its URLs
    url_aliases: tuple[str, ...] = ()  # canonical forms of every URL that led to the article
    fingerprint: Any = None  # near-duplicate signature (pipeline.neardup.Fingerprint)


@dataclass(frozen=True)
class PollResult:
    """Everything one poll of one feed produced, recorded in one transaction."""

    feed_id: int
    started_at: str
    duration_ms: int
    status: int | None
    bytes: int
    error: str | None
    next_poll_at: str | None
    consecutive_failures: int
    current_interval: float | None
    etag: str | None = None
    last_modified: str | None = None
    feed_title: str | None = None
    new_url: str | None = None  # after a permanent redirect
    gone: bool = False
    conditional: bool = False
    warning: str | None = None
    entries: tuple[NewEntry, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # A poll with many new entries is written in batches (EntryBatch) before this result,
    # which carries the last batch: these count the entries and articles already written.
    batched_entries: int = 0
    batched_articles: int = 0

    @property
    def new_entry_count(self) -> int:
        return self.batched_entries + len(self.entries)


@dataclass(frozen=True)
class EntryBatch:
    """Some of a poll's new entries, written ahead of the poll's PollResult.

    Only entries: the feed's validators and schedule change with the PollResult alone, so a
    crash between batches leaves the feed due with its old validators, and the next poll
    skips the entries already written and continues with the rest.
    """

    feed_id: int
    entries: tuple[NewEntry, ...]


@dataclass(frozen=True)
class PollSummary:
    new_entries: int
    new_articles: int
    exact_duplicates: int
    near_duplicates: int


# --- schema ---------------------------------------------------------------------------------

def _migration_1(db: sqlite_utils.Database) -> None:
    db["feeds"].create({
        "id": int, "url": str, "config_url": str, "name": str, "title": str, "site_url": str,
        "etag": str, "last_modified": str, "added_at": str, "last_polled_at": str,
        "last_success_at": str, "next_poll_at": str, "last_status": int,
        "consecutive_failures": int, "last_error": str, "last_warning": str,
        "interval_seconds": float, "cron": str, "current_interval": float,
        "last_unconditional_at": str, "gone": int, "active": int,
    }, pk="id", not_null={"url"}, defaults={"consecutive_failures": 0, "gone": 0, "active": 1})
    db["feeds"].create_index(["url"], unique=True)
    db["feeds"].create_index(["next_poll_at"])

    db["clusters"].create({
        "id": str, "canonical_article_id": str, "size": int, "first_seen_at": str,
        "last_seen_at": str,
    }, pk="id")

    db["articles"].create({
        "id": str, "url": str, "canonical_url": str, "title": str, "text": str,
        "author": str, "published_at": str, "fetched_at": str, "language": str,
        "sitename": str, "feed_id": int, "cluster_id": str, "duplicate_of": str,
        "duplicate_kind": str, "duplicate_score": float, "text_hash": str,
        "text_source": str, "quality": str, "extract_error": str, "description": str,
        "word_count": int,
    }, pk="id", foreign_keys=[("feed_id", "feeds", "id"), ("cluster_id", "clusters", "id")])
    db["articles"].create_index(["text_hash"])
    db["articles"].create_index(["cluster_id"])
    db["articles"].create_index(["fetched_at"])
    db["articles"].create_index(["published_at"])
    db["articles"].enable_fts(["title", "text"], create_triggers=True,
                              tokenize="porter unicode61")

    db["entries"].create({
        "id": int, "feed_id": int, "entry_key": str, "guid": str, "link": str, "title": str,
        "published_at": str, "article_id": str, "seen_at": str,
    }, pk="id", not_null={"feed_id", "entry_key"},
        foreign_keys=[("feed_id", "feeds", "id"), ("article_id", "articles", "id")])
    db["entries"].create_index(["feed_id", "entry_key"], unique=True)
    db["entries"].create_index(["article_id"])

    db["article_urls"].create({"url": str, "article_id": str}, pk="url",
                              foreign_keys=[("article_id", "articles", "id")])

    db["fetches"].create({
        "id": int, "feed_id": int, "started_at": str, "duration_ms": int, "status": int,
        "bytes": int, "new_entries": int, "new_articles": int, "conditional": int,
        "error": str,
    }, pk="id", foreign_keys=[("feed_id", "feeds", "id")])
    db["fetches"].create_index(["feed_id", "started_at"])


def _migration_2(db: sqlite_utils.Database) -> None:
    """Near-duplicate index and cluster provenance.

    `neardup_signatures` keeps every article's MinHash signature forever (so the index can be
    rebuilt); `neardup_bands` is the LSH index over the recent ones (pruned to a window);
    `duplicate_edges` keeps the evidence for every exact, near and related match.
    """
    db["neardup_signatures"].create({
        "id": int, "article_id": str, "cluster_id": str, "signature": bytes, "shingles": int,
        "numbers": str, "indexed_at": str, "in_index": int, "indexable": int,
    }, pk="id", not_null={"article_id", "signature", "shingles", "indexed_at"},
        foreign_keys=[("article_id", "articles", "id")])
    db["neardup_signatures"].create_index(["article_id"], unique=True)
    # Partial index: finding what to prune costs nothing when nothing is old enough.
    db.execute("CREATE INDEX neardup_signatures_in_index ON neardup_signatures (indexed_at) "
               "WHERE in_index = 1")
    db.execute("CREATE TABLE neardup_bands (bucket INTEGER NOT NULL, signature_id INTEGER "
               "NOT NULL, PRIMARY KEY (bucket, signature_id)) WITHOUT ROWID")
    db.execute("""CREATE TABLE duplicate_edges (
        article_id TEXT NOT NULL REFERENCES articles(id),
        other_id TEXT NOT NULL REFERENCES articles(id),
        kind TEXT NOT NULL,              -- exact | near | related
        containment REAL, jaccard REAL, numbers_overlap REAL,
        note TEXT, created_at TEXT,
        PRIMARY KEY (article_id, other_id)) WITHOUT ROWID""")
    db.execute("CREATE INDEX duplicate_edges_other ON duplicate_edges (other_id)")
    db["clusters"].create_index(["size"])  # the view below reads multi-member clusters only
    db["neardup_meta"].create({"key": str, "value": str}, pk="key")
    db["neardup_meta"].insert({"key": "scheme", "value": neardup.SCHEME})
    # "Stories carried by several outlets": an outlet is the page's site name, else the
    # feed's name, title or URL.
    db.execute("""CREATE VIEW stories_by_outlets AS
        SELECT c.id AS cluster_id, canon.title AS canonical_title,
               c.canonical_article_id, canon.url AS canonical_url,
               m.outlets_count, m.outlets, m.articles,
               m.first_seen_at, m.last_seen_at, m.first_published_at
        FROM clusters c
        JOIN articles canon ON canon.id = c.canonical_article_id
        JOIN (SELECT a.cluster_id, count(*) AS articles,
                     count(DISTINCT coalesce(nullif(a.sitename, ''), f.name, f.title, f.url))
                         AS outlets_count,
                     group_concat(DISTINCT coalesce(nullif(a.sitename, ''), f.name, f.title,
                                                    f.url)) AS outlets,
                     min(a.fetched_at) AS first_seen_at, max(a.fetched_at) AS last_seen_at,
                     min(a.published_at) AS first_published_at
              FROM articles a LEFT JOIN feeds f ON f.id = a.feed_id
              WHERE a.cluster_id IN (SELECT id FROM clusters WHERE size > 1)
              GROUP BY a.cluster_id) m ON m.cluster_id = c.id
        WHERE m.outlets_count > 1
        ORDER BY m.last_seen_at DESC, c.id""")


def _migration_5(db: sqlite_utils.Database) -> None:
    """Per-site line statistics for the repeated-line (boilerplate) filter."""
    db.execute("""CREATE TABLE site_lines (
        site TEXT NOT NULL, line_key INTEGER NOT NULL, pages INTEGER NOT NULL,
        last_seen TEXT NOT NULL, PRIMARY KEY (site, line_key)) WITHOUT ROWID""")
    db.execute(f"CREATE INDEX site_lines_repeated ON site_lines (site, line_key) "
               f"WHERE pages >= {SITE_LINE_MIN_PAGES}")


def _migration_6(db: sqlite_utils.Database) -> None:
    """The canonical URL a page claimed when the claim was refused (its text differs from
    the article already stored under that URL): kept as evidence of the site's markup."""
    db.execute("ALTER TABLE articles ADD COLUMN claimed_canonical_url TEXT")


MIGRATIONS = {1: _migration_1, 2: _migration_2, 5: _migration_5, 6: _migration_6}


# --- the store ------------------------------------------------------------------------------

class Store:
    """The database. Open with `Store.open(path)`; use as a context manager to close it."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None,
                 dedupe: DedupeConfig | None = None) -> None:
        self.db = db
        self.path = path
        self.dedupe = dedupe or DedupeConfig()
        self._lock_file: Any = None
        self.readonly = False
        self.immutable = False  # read as a file nobody writes (see _open_readonly)
        self._scheme_checked = False
        # Evidence found by find_near_duplicate, written by index_fingerprint once the
        # article row exists: (article id, edge rows).
        self._pending_edges: tuple[str, list[tuple[Any, ...]]] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], dedupe: DedupeConfig | None = None,
             readonly: bool = False) -> Store:
        """Open (creating and migrating if needed) the database at path.

        With readonly, open an existing database for reading only: nothing is created,
        migrated or locked, so it works while another process writes (WAL) and on a file
        the user can only read."""
        path = Path(path)
        if readonly:
            return cls._open_readonly(path, dedupe)
        if str(path) != ":memory:" and not path.parent.exists():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {path.parent}: {exc}") from None
        try:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False)
            db = sqlite_utils.Database(conn)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if str(path) != ":memory:":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            store = cls(db, None if str(path) == ":memory:" else path, dedupe)
            store.migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use database {path}: {exc}") from None
        return store

    @classmethod
    def _open_readonly(cls, path: Path, dedupe: DedupeConfig | None) -> Store:
        if not path.is_file():
            raise StoreError(f"no database at {path} yet: `newswire once` creates it")
        try:
            store = cls._connect_readonly(path, dedupe, "mode=ro")
        except sqlite3.OperationalError as exc:
            # A WAL database needs its -shm file, which a reader cannot create in a
            # directory it may only read. With no -wal file there is no writer and nothing
            # unmerged: the file can be read as it is.
            if Path(f"{path}-wal").exists():
                raise StoreError(f"cannot read database {path}: {exc}") from None
            try:
                store = cls._connect_readonly(path, dedupe, "immutable=1")
            except sqlite3.DatabaseError as again:
                raise StoreError(f"cannot read database {path}: {again}") from None
            store.immutable = True
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read database {path}: {exc}") from None
        version = store.schema_version
        if version > SCHEMA_VERSION:
            store.close()
            raise StoreError(f"database schema {version} is newer than this newswire "
                             f"({SCHEMA_VERSION}); upgrade newswire")
        if version < SCHEMA_VERSION:
            store.close()
            raise StoreError(f"database schema {version} is older than this newswire "
                             f"({SCHEMA_VERSION}): run `newswire once` to upgrade it")
        store.readonly = True
        return store

    @classmethod
    def _connect_readonly(cls, path: Path, dedupe: DedupeConfig | None, mode: str) -> Store:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True,
                               timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA query_only = 1")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return cls(sqlite_utils.Database(conn), path, dedupe)

    def damaged(self, exc: BaseException) -> DatabaseDamaged | None:
        """The error to stop on when exc says the file is damaged, else None."""
        return DatabaseDamaged(self.path, str(exc)) if is_damage(exc) else None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.release_lock()
        self.db.close()

    # -- schema and locking

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(f"database schema {version} is newer than this newswire "
                             f"({SCHEMA_VERSION}); upgrade newswire")
        # Numbers are reserved per feature branch, so the sequence may have gaps.
        for target in sorted(n for n in MIGRATIONS if version < n <= SCHEMA_VERSION):
            with self.write():
                MIGRATIONS[target](self.db)
                self.db.execute(f"PRAGMA user_version = {target}")

    def acquire_lock(self) -> None:
        """Take the exclusive writer lock (a sidecar file), or raise LockedError."""
        if self.path is None or self._lock_file is not None:
            return
        self._lock_file = _writer_lock(self.path)

    def release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """One short write transaction; sqlite-utils calls inside nest as savepoints."""
        if self.readonly:
            raise StoreError(f"{self.path} was opened read-only")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")  # can fail too (disk full): then roll back as well
        except BaseException:
            if self.db.conn.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # -- feeds

    def sync_feeds(self, feeds: Iterable[Any], now: str | None = None) -> None:
        """Make the feeds table follow the config: add new feeds, update names and
        overrides, deactivate feeds no longer listed (their data stays)."""
        now = now or utcnow()
        wanted = {f.url: f for f in feeds}
        with self.write():
            rows = {r["config_url"] or r["url"]: r for r in self.db["feeds"].rows}
            for url, feed in wanted.items():
                values = {"name": feed.name, "interval_seconds": feed.interval,
                          "cron": feed.cron, "active": 1, "config_url": url}
                if url in rows:
                    if any(rows[url][key] != value for key, value in values.items()):
                        self.db["feeds"].update(rows[url]["id"], values)  # only if changed
                else:
                    self.db["feeds"].insert({"url": url, "config_url": url, "added_at": now,
                                             "next_poll_at": now, **values})
            for url, row in rows.items():
                if url not in wanted and row["active"] and row["config_url"]:
                    self.db["feeds"].update(row["id"], {"active": 0})

    def add_feed(self, url: str, name: str | None = None) -> int:
        """Add one feed (not from the config); returns its id. Idempotent."""
        now = utcnow()
        with self.write():
            existing = self.db.execute("SELECT id FROM feeds WHERE url = ?", [url]).fetchone()
            if existing:
                self.db["feeds"].update(existing[0], {"active": 1})
                return int(existing[0])
            return int(self.db["feeds"].insert({
                "url": url, "name": name, "added_at": now, "next_poll_at": now,
                "active": 1}).last_pk)

    def source_feed(self, url: str, name: str) -> int:
        """The feed row that records where imported articles came from (e.g. a directory).

        It is inactive and has no next poll, so the scheduler never polls it; its entries
        are the provenance of every imported file. Idempotent."""
        with self.write():
            row = self.db.execute("SELECT id FROM feeds WHERE url = ?", [url]).fetchone()
            if row:
                return int(row[0])
            return int(self.db["feeds"].insert({
                "url": url, "name": name, "added_at": utcnow(), "active": 0}).last_pk)

    def feeds(self, due_at: str | None = None, include_all: bool = False,
              beyond: str | None = None) -> list[FeedState]:
        """Active feeds; only those due at `due_at` unless include_all. With `beyond`, also
        the feeds scheduled later than that time (pipeline.schedule: a clock error)."""
        sql = "SELECT * FROM feeds WHERE active = 1"
        params: list[Any] = []
        if not include_all:
            sql += " AND gone = 0 AND next_poll_at IS NOT NULL AND (next_poll_at <= ?"
            params.append(due_at or utcnow())
            if beyond is not None:
                sql += " OR next_poll_at > ?"
                params.append(beyond)
            sql += ")"
        sql += " ORDER BY next_poll_at, id"
        return [_feed_state(row) for row in self.db.query(sql, params)]

    def feed(self, feed_id: int) -> FeedState:
        return _feed_state(self.db["feeds"].get(feed_id))

    # -- what is already known

    def known_entry_keys(self, feed_id: int, keys: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for chunk in _chunks(list(keys), 500):
            marks = ",".join("?" * len(chunk))
            known.update(r[0] for r in self.db.execute(
                f"SELECT entry_key FROM entries WHERE feed_id = ? AND entry_key IN ({marks})",
                [feed_id, *chunk]))
        return known

    def article_ids_for_urls(self, urls: Sequence[str]) -> dict[str, str]:
        """Canonical URL → stored article id, for the URLs already known."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(urls), 500):
            marks = ",".join("?" * len(chunk))
            found.update((r[0], r[1]) for r in self.db.execute(
                f"SELECT url, article_id FROM article_urls WHERE url IN ({marks})", chunk))
        return found

    # -- recording a poll

    def record_poll(self, result: PollResult) -> PollSummary:
        """Write one poll (fetch log, entries, articles, clusters, feed state) atomically.

        Raises StoreWriteError when the transaction fails; nothing of the poll is kept then.
        """
        return self.record_batch([result])[0]

    def record_batch(self, items: Sequence[PollResult | EntryBatch]) -> list[PollSummary]:
        """Write several polls (and entry batches) in one short transaction, in order.

        Each poll stays atomic (it is written whole or not at all, with its validators);
        grouping them saves a commit per poll when many feeds answer at once. Raises
        StoreWriteError when the transaction fails; nothing of the group is kept then.
        """
        now = utcnow()
        try:
            with self.write():
                return [self._record(item, now) for item in items]
        except sqlite3.Error as exc:
            raise self.damaged(exc) or StoreWriteError(str(exc)) from exc

    def record_write_failure(self, feed_id: int, started_at: str, duration_ms: int,
                             status: int | None, error: str, retry_at: str) -> None:
        """After a failed poll write: note the error and the retry time against the feed,
        leaving its validators and failure count alone. Best effort, in one transaction."""
        try:
            with self.write():
                self.db.execute("UPDATE feeds SET last_error = ?, next_poll_at = ? "
                                "WHERE id = ?", [error, retry_at, feed_id])
                self.db.execute(
                    "INSERT INTO fetches (feed_id, started_at, duration_ms, status, bytes, "
                    "new_entries, new_articles, conditional, error) "
                    "VALUES (?, ?, ?, ?, 0, 0, 0, 0, ?)",
                    [feed_id, started_at, duration_ms, status, error])
        except sqlite3.Error as exc:
            raise self.damaged(exc) or StoreWriteError(str(exc)) from exc

    def _record(self, item: PollResult | EntryBatch, now: str) -> PollSummary:
        new_articles = exact = near = 0
        for entry in item.entries:
            article_id = entry.existing_article_id
            if entry.article is not None:
                kind, article_id = self._add_article(entry, item.feed_id, now)
                new_articles += kind is not None
                exact += kind == "exact"
                near += kind == "near"
            self.db.execute(
                "INSERT OR IGNORE INTO entries (feed_id, entry_key, guid, link, title, "
                "published_at, article_id, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [item.feed_id, entry.key, entry.guid, entry.link, entry.title,
                 entry.published_at, article_id, now])
            if article_id:
                for alias in entry.url_aliases:
                    self.db.execute("INSERT OR IGNORE INTO article_urls (url, article_id) "
                                    "VALUES (?, ?)", [alias, article_id])
        if isinstance(item, PollResult):
            self._update_feed(item, now)
            self._insert("fetches", {
                "feed_id": item.feed_id, "started_at": item.started_at,
                "duration_ms": item.duration_ms, "status": item.status,
                "bytes": item.bytes, "new_entries": item.new_entry_count,
                "new_articles": item.batched_articles + new_articles,
                "conditional": int(item.conditional), "error": item.error,
            })
        return PollSummary(len(item.entries), new_articles, exact, near)

    def _update_feed(self, result: PollResult, now: str) -> None:
        values: dict[str, Any] = {
            "last_polled_at": result.started_at, "last_status": result.status,
            "last_error": result.error, "last_warning": result.warning,
            "next_poll_at": result.next_poll_at,
            "consecutive_failures": result.consecutive_failures,
            "current_interval": result.current_interval, "gone": int(result.gone),
        }
        if result.error is None and result.status in (200, 304):
            values["last_success_at"] = now
            # Validators change only with a successful poll recorded in this same transaction.
            if result.status == 200:
                values["etag"] = result.etag
                values["last_modified"] = result.last_modified
                if not result.conditional:
                    values["last_unconditional_at"] = result.started_at
        if result.feed_title:
            values["title"] = result.feed_title
        if result.new_url:
            taken = self.db.execute("SELECT id FROM feeds WHERE url = ? AND id != ?",
                                    [result.new_url, result.feed_id]).fetchone()
            if not taken:
                values["url"] = result.new_url
        self.db.execute(f"UPDATE feeds SET {', '.join(f'{k} = ?' for k in values)} "
                        "WHERE id = ?", [*values.values(), result.feed_id])

    def _insert(self, table: str, values: dict[str, Any]) -> None:
        """A plain INSERT: sqlite-utils' insert() inspects the table on every call, which
        costs more than the insert itself on the per-article path."""
        self.db.execute(f"INSERT INTO {table} ({', '.join(values)}) "
                        f"VALUES ({', '.join('?' * len(values))})", list(values.values()))

    def _add_article(self, entry: NewEntry, feed_id: int, now: str) -> tuple[str | None, str]:
        """Insert the entry's article unless its id is stored; return (kind, article id).

        kind is None when the article already existed, '' for a new original, 'exact' or
        'near' for a new copy of a stored text.
        """
        article = entry.article
        assert article is not None
        digest = text_hash(article.text) if article.text else None
        stored = self.db.execute("SELECT url, text_hash FROM articles WHERE id = ?",
                                 [article.id]).fetchone()
        if stored is not None:
            similarity = self._similarity(article.id, entry.fingerprint)
            if canonical_claim_holds(article.url, stored[0],
                                     digest == stored[1] and digest is not None,
                                     similarity, self.dedupe.threshold):
                return None, article.id
            # Another page with another text claims the same canonical URL (a site pointing
            # every article at its home or section page): key this one by its own URL.
            article = keyed_by_page(article)
            if self.db.execute("SELECT 1 FROM articles WHERE id = ?",
                               [article.id]).fetchone():
                return None, article.id

        words = len(article.text.split())
        duplicate_of, kind, score = None, None, None
        if digest and words >= MIN_WORDS_FOR_TEXT_DEDUPE:
            # duplicate_of names a stored copy with this very text (a near duplicate's own
            # duplicate_of has another text).
            row = self.db.execute(
                "SELECT id, CASE WHEN duplicate_kind = 'exact' THEN duplicate_of ELSE id END, "
                "cluster_id FROM articles WHERE text_hash = ? ORDER BY fetched_at, id LIMIT 1",
                [digest]).fetchone()
            if row:
                duplicate_of, kind, score, cluster_id = row[1], "exact", 1.0, row[2]
        if kind is None and entry.fingerprint is not None:
            match = self.find_near_duplicate(entry.fingerprint, article)
            if match is not None:
                duplicate_of, kind, score, cluster_id = match
        if kind is None:
            cluster_id = article.id
            self.db.execute(
                "INSERT INTO clusters (id, canonical_article_id, size, first_seen_at, "
                "last_seen_at) VALUES (?, ?, 0, ?, ?)", [cluster_id, article.id, now, now])
        self._insert("articles", {
            "id": article.id, "url": article.url, "canonical_url": article.canonical_url,
            "title": article.title, "text": article.text, "author": article.author,
            "published_at": article.published_at, "fetched_at": now,
            "language": article.language, "sitename": article.sitename, "feed_id": feed_id,
            "cluster_id": cluster_id, "duplicate_of": duplicate_of, "duplicate_kind": kind,
            "duplicate_score": score, "text_hash": digest, "text_source": article.text_source,
            "quality": article.quality, "extract_error": article.extract_error,
            "description": article.description, "word_count": words,
            "claimed_canonical_url": article.claimed_canonical_url,
        })
        self.db.execute(
            "UPDATE clusters SET size = size + 1, last_seen_at = ? WHERE id = ?",
            [now, cluster_id])
        if kind is not None:
            self._update_canonical(cluster_id, article.id)
        if kind == "exact":
            self._write_edges([(article.id, duplicate_of, "exact", 1.0, 1.0, None, None, now)])
        if entry.fingerprint is not None:
            self.index_fingerprint(article.id, entry.fingerprint, now)
        if article.canonical_url:
            self.db.execute("INSERT OR IGNORE INTO article_urls (url, article_id) "
                            "VALUES (?, ?)", [article.canonical_url, article.id])
        if kind is None and article.line_keys:  # only originals count: copies add nothing
            self._count_site_lines(site_of(article.url), article.line_keys, now)
        return kind or "", article.id

    def _similarity(self, article_id: str, fingerprint: neardup.Fingerprint | None
                    ) -> neardup.Similarity | None:
        """How a new fingerprint compares with the stored article's, if both exist."""
        if fingerprint is None:
            return None
        row = self.db.execute("SELECT signature, shingles, numbers FROM neardup_signatures "
                              "WHERE article_id = ?", [article_id]).fetchone()
        if row is None:
            return None
        jaccard = float(neardup.jaccard_many(fingerprint.signature,
                                             neardup.signature_matrix([row[0]]))[0])
        return neardup.compare(fingerprint, jaccard, row[1], tuple((row[2] or "").split()))

    # -- per-site repeated lines (pipeline.boilerplate)

    def _count_site_lines(self, site: str, keys: Sequence[int], now: str) -> None:
        self.db.conn.executemany(
            "INSERT INTO site_lines (site, line_key, pages, last_seen) VALUES (?, ?, 1, ?) "
            "ON CONFLICT (site, line_key) DO UPDATE SET pages = pages + 1, "
            "last_seen = excluded.last_seen", [(site, key, now) for key in keys])

    def site_lines(self, site: str) -> frozenset[int]:
        """Keys of the lines seen on at least SITE_LINE_MIN_PAGES pages of the site."""
        return frozenset(r[0] for r in self.db.execute(
            f"SELECT line_key FROM site_lines WHERE site = ? "
            f"AND pages >= {SITE_LINE_MIN_PAGES}", [site]))

    # -- near duplicates and clusters (see pipeline.neardup)

    def find_near_duplicate(self, fingerprint: neardup.Fingerprint, article: Article
                            ) -> tuple[str, str, float, str] | None:
        """(duplicate_of, 'near', containment, cluster id) of the best verified match in the
        band index, or None. Every candidate at or above the related threshold becomes an
        edge (written by `index_fingerprint`, once the article row exists)."""
        self._check_scheme()
        self._pending_edges = None
        keys = neardup.band_keys(fingerprint.signature)
        rows = self.db.execute(
            "SELECT id, article_id, cluster_id, signature, shingles, numbers "
            "FROM neardup_signatures WHERE id IN (SELECT signature_id FROM neardup_bands "
            f"WHERE bucket IN ({','.join('?' * len(keys))})) ORDER BY id DESC LIMIT ?",
            [*keys, MAX_CANDIDATES]).fetchall()
        if not rows:
            return None
        rows.reverse()  # oldest first: ties go to the earliest indexed copy
        others = neardup.signature_matrix([r[3] for r in rows])
        matches = []
        for row, jaccard in zip(rows, neardup.jaccard_many(fingerprint.signature, others),
                                strict=True):
            similarity = neardup.compare(fingerprint, float(jaccard), row[4],
                                         tuple((row[5] or "").split()))
            verdict = neardup.verdict(similarity, self.dedupe.threshold,
                                      self.dedupe.related_threshold)
            if verdict is not None:
                matches.append((row, similarity, *verdict))
        if not matches:
            return None
        matches.sort(key=lambda m: (-m[1].containment, m[0][0]))
        near = [m for m in matches if m[2] == "near"]
        best = near[0] if near else None
        now = utcnow()
        edges = []
        for row, sim, kind, note in matches[:MAX_EDGES]:
            if kind == "near" and best is not None and row[2] != best[0][2]:
                note = "in another cluster"
            edges.append((article.id, row[1], kind, round(sim.containment, 4),
                          round(sim.jaccard, 4), None if sim.numbers_overlap is None
                          else round(sim.numbers_overlap, 4), note, now))
        self._pending_edges = (article.id, edges)
        if best is None:
            return None
        return best[0][1], "near", round(best[1].containment, 4), best[0][2]

    def index_fingerprint(self, article_id: str, fingerprint: neardup.Fingerprint,
                          now: str) -> None:
        """Keep the stored article's signature; add it to the band index unless the article
        is an exact copy (its twin is already there); write the evidence found for it."""
        self._check_scheme()
        row = self.db.execute("SELECT cluster_id, duplicate_kind FROM articles WHERE id = ?",
                              [article_id]).fetchone()
        if row is None:
            raise ValueError(f"article {article_id} is not stored")
        indexable = row[1] != "exact"
        cursor = self.db.execute(
            "INSERT INTO neardup_signatures (article_id, cluster_id, signature, shingles, "
            "numbers, indexed_at, in_index, indexable) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (article_id) DO NOTHING",
            [article_id, row[0], fingerprint.signature, fingerprint.shingles,
             " ".join(fingerprint.numbers), now, int(indexable), int(indexable)])
        if cursor.rowcount and indexable:
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO neardup_bands (bucket, signature_id) VALUES (?, ?)",
                [(key, cursor.lastrowid) for key in neardup.band_keys(fingerprint.signature)])
        if self._pending_edges and self._pending_edges[0] == article_id:
            self._write_edges(self._pending_edges[1])
        self._pending_edges = None

    def _write_edges(self, edges: list[tuple[Any, ...]]) -> None:
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO duplicate_edges (article_id, other_id, kind, containment, "
            "jaccard, numbers_overlap, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            edges)

    def _update_canonical(self, cluster_id: str, article_id: str) -> None:
        """Make the new member canonical if it ranks first: the agency's own copy, else the
        earliest published (first seen when undated), ties to the longest text, then id."""
        rows = self.db.execute(
            "SELECT id, sitename, coalesce(nullif(canonical_url, ''), url), "
            "coalesce(published_at, fetched_at), length(text) FROM articles "
            "WHERE id IN (?, (SELECT canonical_article_id FROM clusters WHERE id = ?))",
            [article_id, cluster_id]).fetchall()
        agencies = self.dedupe.agencies
        best = min(rows, key=lambda r: (not neardup.is_agency_copy(r[1], r[2], agencies),
                                        r[3] or "", -(r[4] or 0), r[0]))
        self.db.execute("UPDATE clusters SET canonical_article_id = ? WHERE id = ?",
                        [best[0], cluster_id])

    def _check_scheme(self) -> None:
        """Refuse to mix signatures made by another MinHash scheme (say, a new rensa)."""
        if self._scheme_checked:
            return
        row = self.db.execute("SELECT value FROM neardup_meta WHERE key = 'scheme'").fetchone()
        if row is None or row[0] != neardup.SCHEME:
            if self.db.execute("SELECT 1 FROM neardup_signatures LIMIT 1").fetchone():
                raise StoreError(
                    f"near-duplicate signatures in {self.path} were made by "
                    f"{row[0] if row else 'an unknown scheme'}, this newswire uses "
                    f"{neardup.SCHEME}: run `newswire reindex --from-text`")
            self.db.execute("INSERT OR REPLACE INTO neardup_meta (key, value) "
                            "VALUES ('scheme', ?)", [neardup.SCHEME])
        self._scheme_checked = True

    def prune_bands(self, window_days: int, now: datetime | None = None) -> int:
        """Drop the band rows of signatures indexed more than `window_days` ago (0: never);
        the signatures stay. Short transactions; returns how many signatures left the index.
        Costs one empty index probe when nothing is due. Raises StoreWriteError."""
        if not window_days:
            return 0
        try:
            return self._prune_bands(window_days, now)
        except sqlite3.Error as exc:
            raise StoreWriteError(f"pruning the near-duplicate index: {exc}") from exc

    def _prune_bands(self, window_days: int, now: datetime | None) -> int:
        cutoff = iso((now or datetime.now(UTC)) - timedelta(days=window_days))
        pruned = 0
        while True:
            with self.write():
                rows = self.db.execute(
                    "SELECT id, signature FROM neardup_signatures WHERE in_index = 1 AND "
                    "indexed_at < ? ORDER BY indexed_at, id LIMIT ?",
                    [cutoff, PRUNE_CHUNK]).fetchall()
                if not rows:
                    return pruned
                ids = [r[0] for r in rows]
                keys = neardup.band_keys_many(neardup.signature_matrix([r[1] for r in rows]))
                self.db.conn.executemany(
                    "DELETE FROM neardup_bands WHERE bucket = ? AND signature_id = ?",
                    ((int(key), sid) for sid, row_keys in zip(ids, keys, strict=True)
                     for key in row_keys))
                self.db.conn.executemany(
                    "UPDATE neardup_signatures SET in_index = 0 WHERE id = ?",
                    [(sid,) for sid in ids])
                pruned += len(rows)

    def reindex(self, window_days: int, from_text: bool = False,
                now: datetime | None = None) -> ReindexReport:
        """Rebuild the band index from the stored signatures indexed within the window
        (0: all), in one transaction. With from_text, first recompute every signature from
        the stored article text (after a change of MinHash scheme, or for articles stored
        before near-duplicate detection existed). Cluster assignments never change."""
        fingerprinted = self._fingerprint_stored_texts() if from_text else 0
        self._check_scheme()
        cutoff = iso((now or datetime.now(UTC)) - timedelta(days=window_days)) \
            if window_days else ""
        band_rows = signatures = 0
        with self.write():
            self.db.execute("DELETE FROM neardup_bands")
            self.db.execute("UPDATE neardup_signatures SET in_index = 0 WHERE in_index = 1")
            cursor = self.db.execute(
                "SELECT id, signature FROM neardup_signatures WHERE indexable = 1 AND "
                "indexed_at >= ? ORDER BY id", [cutoff])
            while chunk := cursor.fetchmany(REINDEX_CHUNK):
                ids = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
                keys = neardup.band_keys_many(neardup.signature_matrix([r[1] for r in chunk]))
                pairs = np.column_stack([keys.ravel(), np.repeat(ids, neardup.BANDS)])
                pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]  # B-tree order
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO neardup_bands (bucket, signature_id) VALUES (?, ?)",
                    pairs.tolist())
                band_rows += len(pairs)
                signatures += len(chunk)
            self.db.execute("UPDATE neardup_signatures SET in_index = 1 WHERE indexable = 1 "
                            "AND indexed_at >= ?", [cutoff])
        return ReindexReport(signatures, band_rows, fingerprinted, window_days)

    def _fingerprint_stored_texts(self) -> int:
        """Recompute the signature of every stored article from its text."""
        count = 0
        with self.write():
            cursor = self.db.execute(
                "SELECT id, cluster_id, text, title, fetched_at, duplicate_kind FROM articles "
                "ORDER BY fetched_at, id")
            while chunk := cursor.fetchmany(1000):
                for article_id, cluster_id, text, title, fetched_at, kind in chunk:
                    fp = neardup.fingerprint(text or "", title or "")
                    if fp is None:
                        continue
                    indexable = int(kind != "exact")
                    self.db.execute(
                        "INSERT INTO neardup_signatures (article_id, cluster_id, signature, "
                        "shingles, numbers, indexed_at, in_index, indexable) "
                        "VALUES (?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (article_id) DO UPDATE "
                        "SET signature = excluded.signature, shingles = excluded.shingles, "
                        "numbers = excluded.numbers",
                        [article_id, cluster_id, fp.signature, fp.shingles,
                         " ".join(fp.numbers), fetched_at or utcnow(), indexable])
                    count += 1
            self.db.execute("INSERT OR REPLACE INTO neardup_meta (key, value) "
                            "VALUES ('scheme', ?)", [neardup.SCHEME])
        self._scheme_checked = True
        return count

    def maintenance(self, config: Any) -> None:
        """Periodic upkeep for the daemon: prune the near-duplicate index to its window,
        forget lines a site showed only once long ago, and checkpoint the WAL so it does not
        grow unbounded."""
        self.prune_bands(config.dedupe.band_window_days)
        cutoff = iso(datetime.now(UTC) - timedelta(days=SITE_LINE_SINGLETON_DAYS))
        with self.write():
            self.db.execute("DELETE FROM site_lines WHERE pages = 1 AND last_seen < ?",
                            [cutoff])
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- reading for the CLI

    def latest_articles(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest articles (by publication, then fetch time), newest first."""
        return list(self.db.query(
            "SELECT id, title, text_source, text FROM articles "
            "ORDER BY coalesce(published_at, fetched_at) DESC, id LIMIT ?", [limit]))

    def status_rows(self) -> list[dict[str, Any]]:
        return list(self.db.query("""
            SELECT f.id, coalesce(f.name, f.title, f.url) AS name, f.url, f.config_url,
                   f.active, f.gone,
                   f.last_polled_at, f.next_poll_at, f.last_status, f.consecutive_failures,
                   f.last_error, f.current_interval, f.interval_seconds, f.cron,
                   (SELECT count(*) FROM articles a WHERE a.feed_id = f.id) AS articles,
                   (SELECT count(*) FROM entries e WHERE e.feed_id = f.id) AS entries
            FROM feeds f ORDER BY f.id"""))

    def feed_list(self) -> list[dict[str, Any]]:
        """The polled feeds (config and `add`; not import sources), oldest first: url,
        config_url, name, title, site_url, active."""
        return list(self.db.query(
            "SELECT url, config_url, name, title, site_url, active FROM feeds "
            "WHERE active = 1 OR config_url IS NOT NULL ORDER BY id"))

    def export_articles(self, since: str | None = None, include_duplicates: bool = False
                        ) -> Iterator[dict[str, Any]]:
        """Articles in the order they entered the corpus, with their feed, cluster and every
        entry that carried them (`seen_in`, JSON). By default only each cluster's canonical
        article; `since` keeps articles fetched at or after that ISO time."""
        return self.db.query("""
            SELECT a.*, f.url AS feed_url, coalesce(f.name, f.title) AS feed_name,
                   c.canonical_article_id AS cluster_canonical_id, c.size AS cluster_size,
                   (SELECT json_group_array(json_object(
                        'feed_url', ef.url, 'guid', e.guid, 'link', e.link,
                        'seen_at', e.seen_at))
                    FROM entries e JOIN feeds ef ON ef.id = e.feed_id
                    WHERE e.article_id = a.id) AS seen_in
            FROM articles a
            LEFT JOIN feeds f ON f.id = a.feed_id
            LEFT JOIN clusters c ON c.id = a.cluster_id
            WHERE (:since IS NULL OR a.fetched_at >= :since)
              AND (:all OR c.canonical_article_id = a.id OR c.id IS NULL)
            ORDER BY a.fetched_at, a.rowid""", {"since": since, "all": int(include_duplicates)})

    def counts(self) -> dict[str, int]:
        return {t: self.db[t].count for t in
                ("feeds", "entries", "articles", "clusters", "fetches")}


def _writer_lock(path: Path) -> Any:
    """The exclusive writer lock on a database (a sidecar file holding the pid): the open
    file, held until closed; LockedError when another process holds it."""
    lock_path = path.with_name(path.name + ".lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LockedError(f"another newswire process (pid {holder}) is writing to "
                          f"{path}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


# --- repair -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RepairReport:
    ok: bool  # the database at the path is sound now
    problems: tuple[str, ...] = ()  # what the check found
    kept: Path | None = None  # where the damaged file was moved
    rows: int = 0  # rows copied into the fresh file
    error: str | None = None  # why it could not be repaired

    def line(self) -> str:
        if self.error:
            return (f"could not repair: {self.error}. Recover what SQLite can read with "
                    f"`sqlite3 DATABASE .recover | sqlite3 recovered.db` and point "
                    f"`database:` at recovered.db")
        if not self.problems:
            return "no problems found"
        return (f"repaired: {len(self.problems)} problem(s) found "
                f"({'; '.join(self.problems[:3])}); {self.rows} rows copied into a fresh "
                f"file with rebuilt indexes; the damaged file is kept as {self.kept}")


def check(path: Path) -> tuple[str, ...]:
    """What SQLite's own checks find wrong with the file (nothing: an empty tuple)."""
    try:
        conn = sqlite3.connect(str(path), isolation_level=None)
    except sqlite3.DatabaseError as exc:
        return (str(exc),)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        if not problems and conn.execute("SELECT 1 FROM sqlite_master WHERE name = "
                                         "'articles_fts'").fetchone():
            conn.execute("INSERT INTO articles_fts (articles_fts, rank) "
                         "VALUES ('integrity-check', 1)")
        return tuple(problems)
    except sqlite3.DatabaseError as exc:
        return (str(exc),)
    finally:
        conn.close()


def repair(path: Path, dedupe: DedupeConfig | None = None) -> RepairReport:
    """Check the database; when damaged, copy every table row SQLite can read into a fresh
    file made by this newswire's migrations (indexes and the search index are rebuilt as
    the rows go in, never read from the damaged file), then swap the files, keeping the
    damaged one beside it. Runs under the writer lock."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no database at {path}")
    lock = _writer_lock(path)
    try:
        problems = check(path)
        if not problems:
            return RepairReport(ok=True)
        fresh = path.with_name(path.name + ".repairing")
        _remove_database(fresh)
        try:
            rows = _copy_readable(path, fresh, dedupe)
        except sqlite3.DatabaseError as exc:
            _remove_database(fresh)
            return RepairReport(ok=False, problems=problems, error=str(exc))
        if check(fresh):
            _remove_database(fresh)
            return RepairReport(ok=False, problems=problems,
                                error="the copy did not pass the check either")
        kept = path.with_name(f"{path.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        for suffix in ("", "-wal"):
            if Path(f"{path}{suffix}").exists():
                os.replace(f"{path}{suffix}", f"{kept}{suffix}")
        Path(f"{path}-shm").unlink(missing_ok=True)
        os.replace(fresh, path)
        return RepairReport(ok=True, problems=problems, kept=kept, rows=rows)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _copy_readable(damaged: Path, fresh: Path, dedupe: DedupeConfig | None) -> int:
    """Rows of every table of `damaged` into a new database at `fresh`; table scans only
    (NOT INDEXED), so damaged indexes are never read. Columns the damaged file lacks (an
    older schema) stay empty."""
    rows = 0
    with Store.open(fresh, dedupe) as store:
        db = store.db
        db.execute("PRAGMA foreign_keys = OFF")  # rows arrive table by table
        db.execute("ATTACH DATABASE ? AS damaged", [f"{damaged.resolve().as_uri()}?mode=ro"])
        tables = [r[0] for r in db.execute(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE "
            "'sqlite_%' AND name NOT LIKE 'articles_fts%' ORDER BY name")]
        with store.write():
            for table in tables:
                old = {r[1] for r in db.execute(f"PRAGMA damaged.table_info([{table}])")}
                columns = ", ".join(f"[{c.name}]" for c in db[table].columns if c.name in old)
                if not columns:
                    continue
                cursor = db.execute(f"INSERT OR REPLACE INTO main.[{table}] ({columns}) "
                                    f"SELECT {columns} FROM damaged.[{table}] NOT INDEXED")
                rows += max(cursor.rowcount, 0)
        db.execute("DETACH DATABASE damaged")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return rows


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _feed_state(row: dict[str, Any]) -> FeedState:
    return FeedState(
        id=row["id"], url=row["url"], name=row["name"], etag=row["etag"],
        last_modified=row["last_modified"], next_poll_at=row["next_poll_at"],
        last_polled_at=row["last_polled_at"],
        consecutive_failures=row["consecutive_failures"] or 0,
        interval_seconds=row["interval_seconds"], cron=row["cron"],
        current_interval=row["current_interval"],
        last_unconditional_at=row["last_unconditional_at"], gone=bool(row["gone"]),
    )


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
