"""The database handle: opening (read-write and migrated, or read-only), the writer lock,
transactions, and the store's public interface, each method a thin call into the module that
owns its tables (feeds, polls, index, lines, queries)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from pipeline import schedule
from pipeline.config import Config, DedupeConfig, FeedConfig, ScheduleConfig
from pipeline.dedupe import Decision, Thresholds, decide
from pipeline.errors import DatabaseDamaged, LockedError, StoreError, StoreWriteError
from pipeline.messages import (
    Entry,
    EntryBatch,
    EntryPlan,
    FeedState,
    Fingerprint,
    PageRetry,
    PollResult,
    PollSummary,
    RevisionBatch,
)
from pipeline.store import (
    feeds,
    index,
    lines,
    merges,
    polls,
    queries,
    retries,
    schema,
    summaries,
)
from pipeline.store.index import ReindexReport
from pipeline.times import iso, utcnow

BUSY_TIMEOUT_MS = 30_000
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error says the file itself is damaged (retrying cannot help)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and \
        code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


class Store:
    """The database. Open with `Store.open(path)`; use as a context manager to close it."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None,
                 dedupe: DedupeConfig | None = None) -> None:
        self.db = db
        self.path = path
        self.dedupe = dedupe or DedupeConfig()
        self.readonly = False
        self.immutable = False  # read as a file nobody writes (see _open_readonly)
        self._lock_file: Any = None
        self._scheme_checked = False

    # -- opening and closing

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
        done, version = schema.applied(store.db), store.schema_version
        if schema.unknown(done) or schema.pending(done):
            store.close()
            raise StoreError(
                f"database schema {version} is newer than this newswire (migrations "
                f"{_numbers(schema.unknown(done))} unknown here); upgrade newswire"
                if schema.unknown(done)
                else f"database schema {version} is older than this newswire "
                f"(it lacks migrations {_numbers(schema.pending(done))}): run "
                "`newswire once` to upgrade it")
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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.release_lock()
        self.db.close()

    def damaged(self, exc: BaseException) -> DatabaseDamaged | None:
        """The error to stop on when exc says the file is damaged, else None."""
        return DatabaseDamaged(self.path, str(exc)) if is_damage(exc) else None

    # -- schema, lock, transactions

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply every migration this database lacks, each in its own transaction, recording
        it in the ledger (schema.LEDGER)."""
        done = schema.applied(self.db)
        if schema.unknown(done):
            raise StoreError(f"database schema {self.schema_version} is newer than this "
                             f"newswire (migrations {_numbers(schema.unknown(done))} unknown "
                             "here); upgrade newswire")
        if not self.db[schema.LEDGER].exists():
            with self.write():
                self.db.execute(schema.LEDGER_SQL)
                self.db.conn.executemany(f"INSERT INTO {schema.LEDGER} VALUES (?, ?)",
                                    [(n, utcnow()) for n in sorted(done)])
        for target in schema.pending(done):
            with self.write():
                schema.MIGRATIONS[target](self.db)
                self.db.execute(f"INSERT INTO {schema.LEDGER} VALUES (?, ?)",
                                [target, utcnow()])
                highest = max(target, self.schema_version)
                self.db.execute(f"PRAGMA user_version = {highest}")

    def acquire_lock(self) -> None:
        """Take the exclusive writer lock (a sidecar file), or raise LockedError."""
        if self.path is None or self._lock_file is not None:
            return
        self._lock_file = writer_lock(self.path)

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

    def check_scheme(self) -> None:
        """Refuse signatures of another MinHash scheme (checked once per store)."""
        if not self._scheme_checked:
            index.check_scheme(self.db, self.path)
            self._scheme_checked = True

    # -- feeds

    def sync_feeds(self, configured: Iterable[FeedConfig], now: str | None = None,
                   refused: Mapping[str, str] | None = None) -> None:
        """See pipeline.store.feeds.sync (refused: Config.refused_feeds)."""
        with self.write():
            feeds.sync(self.db, configured, now or utcnow(), refused)

    def sync_config(self, config: Config) -> None:
        """The feeds table following the config: its feeds, and its lines that do not read."""
        self.sync_feeds(config.feeds, refused=config.refused_feeds)

    def add_feed(self, url: str, name: str | None = None) -> int:
        with self.write():
            return feeds.add(self.db, url, name, utcnow())

    def source_feed(self, url: str, name: str) -> int:
        with self.write():
            return feeds.source(self.db, url, name, utcnow())

    def feeds(self, due_at: str | None = None, include_all: bool = False,
              beyond: str | None = None) -> list[FeedState]:
        return feeds.due(self.db, due_at or utcnow(), include_all, beyond)

    def due_feeds(self, config: ScheduleConfig, include_all: bool = False,
                  now: datetime | None = None) -> list[FeedState]:
        """The feeds to poll now: those due, and those a wall-clock jump left stranded
        (pipeline.schedule.stranded)."""
        now = now or datetime.now(UTC)
        candidates = self.feeds(iso(now), include_all,
                                beyond=iso(schedule.clock_error_after(config, now)))
        return [feed for feed in candidates
                if include_all or schedule.due(feed, config, now)]

    def feed(self, feed_id: int) -> FeedState:
        return feeds.get(self.db, feed_id)

    # -- planning a poll

    def known_entry_keys(self, feed_id: int, keys: Sequence[str]) -> set[str]:
        return polls.known_keys(self.db, feed_id, keys)

    def unseen_entries(self, feed_id: int, entries: Sequence[Entry]) -> tuple[Entry, ...]:
        return polls.unseen(self.db, feed_id, entries)

    def changed_entries(self, feed_id: int, entries: Sequence[Entry]
                        ) -> list[tuple[Entry, str, bool]]:
        return polls.changed(self.db, feed_id, entries)

    def page_retries(self, feed_id: int, now: str | None = None) -> list[PageRetry]:
        """See pipeline.store.retries.due."""
        return retries.due(self.db, feed_id, now or utcnow())

    def plan_entries(self, feed_id: int, entries: Sequence[Entry],
                     with_articles: bool = False) -> EntryPlan:
        """See pipeline.store.polls.plan_entries (with_articles: the stored articles'
        fields the feed's filters read)."""
        return polls.plan_entries(self.db, feed_id, entries, with_articles)

    def article_ids_for_urls(self, urls: Sequence[str]) -> dict[str, str]:
        return polls.articles_for_urls(self.db, urls)

    def site_lines(self, site: str) -> frozenset[int]:
        return lines.repeated(self.db, site)

    @property
    def thresholds(self) -> Thresholds:
        """The verification's thresholds, from the config (`dedupe.threshold`, ...)."""
        return Thresholds(self.dedupe.threshold, self.dedupe.related_threshold)

    def near_match(self, article_id: str, fingerprint: Fingerprint, text: str = "",
                   title: str = "") -> Decision:
        """The near-duplicate lookup of a new article (its fingerprint, text and title): the
        candidates of the band and anchor indexes, verified on their stored texts
        (pipeline.dedupe.decide): a near copy with the clusters its evidence merges, or an
        original with its related edges."""
        self.check_scheme()
        return decide(article_id, None, fingerprint, index.candidates(self.db, fingerprint),
                      index.Reader(self.db), text, title, self.thresholds)

    def resolve_cluster(self, cluster_id: str) -> str | None:
        """The live cluster a cluster id stands for (itself, or the cluster it was merged
        into); None for an unknown id."""
        return merges.resolve(self.db, cluster_id)

    # -- recording (the writer, pipeline.store.writer, is the one caller in a run)

    def record_batch(self, items: Sequence[PollResult | EntryBatch | RevisionBatch]
                     ) -> list[PollSummary]:
        """Write several polls (and entry batches) in one short transaction, in order.

        Each poll stays atomic (it is written whole or not at all, with its validators);
        grouping them saves a commit per poll when many feeds answer at once. Raises
        StoreWriteError when the transaction fails (nothing of the group is kept then), or
        DatabaseDamaged."""
        now = utcnow()
        try:
            with self.write():
                return [polls.record(self, item, now) for item in items]
        except sqlite3.Error as exc:
            raise self.damaged(exc) or StoreWriteError(str(exc)) from exc
        except StoreError:
            raise
        except Exception as exc:  # a value SQLite refuses (OverflowError), or a bug:
            # still the write of these items only, which the writer retries one by one
            raise StoreWriteError(f"{type(exc).__name__}: {exc}") from exc

    def record_poll(self, result: PollResult) -> PollSummary:
        return self.record_batch([result])[0]

    def record_write_failure(self, feed_id: int, started_at: str, duration_ms: int,
                             status: int | None, error: str, retry_at: str) -> None:
        """After a failed poll write: note the error and the retry time against the feed,
        leaving its validators and failure count alone. Best effort, in one transaction."""
        try:
            with self.write():
                polls.record_write_failure(self.db, feed_id, started_at, duration_ms, status,
                                           error, retry_at)
        except sqlite3.Error as exc:
            raise self.damaged(exc) or StoreWriteError(str(exc)) from exc

    # -- upkeep

    def prune_bands(self, window_days: int, now: datetime | None = None) -> int:
        """Drop the signatures indexed more than `window_days` ago (0: never) with their band
        and anchor rows. Short transactions; returns how many signatures left the index.
        Raises StoreWriteError."""
        if not window_days:
            return 0
        cutoff = iso((now or datetime.now(UTC)) - timedelta(days=window_days))
        pruned = 0
        try:
            while True:
                with self.write():
                    done = index.prune_chunk(self.db, cutoff)
                if not done:
                    return pruned
                pruned += done
        except sqlite3.Error as exc:
            raise self.damaged(exc) or StoreWriteError(
                f"pruning the near-duplicate index: {exc}") from exc

    def prune_fetch_log(self, days: int, now: datetime | None = None) -> int:
        """Roll the fetch log: drop the raw rows of the UTC days older than `days` days (0:
        never); their per-feed daily totals (feed_days) stay. Short transactions; returns
        the rows dropped. One index probe per feed when nothing is due. Raises
        StoreWriteError."""
        if not days:
            return 0
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=days)).strftime("%Y-%m-%d")
        dropped = 0
        try:
            for feed_id in summaries.feeds_with_fetches_before(self.db, cutoff):
                while True:
                    with self.write():
                        done = summaries.prune_fetches_chunk(self.db, feed_id, cutoff)
                    dropped += done
                    if done < summaries.PRUNE_CHUNK:
                        break
        except sqlite3.Error as exc:
            raise self.damaged(exc) or StoreWriteError(
                f"rolling the fetch log: {exc}") from exc
        return dropped

    def reindex(self, window_days: int, from_text: bool = False,
                now: datetime | None = None) -> ReindexReport:
        """Rebuild the near-duplicate index for the window (0: all), in one transaction:
        signatures older than it dropped, the ones its articles lack computed from their
        stored texts, then the band and anchor rows. With from_text, first recompute every
        signature in the window (and its figures and anchors). Cluster assignments never
        change."""
        cutoff = iso((now or datetime.now(UTC)) - timedelta(days=window_days)) \
            if window_days else ""
        if not from_text:
            self.check_scheme()  # from_text replaces what another scheme made
        with self.write():
            fingerprinted = index.refingerprint(self.db, cutoff, utcnow()) if from_text else 0
            signatures, band_rows, anchor_rows, computed = index.rebuild(
                self.db, cutoff, utcnow())
        self._scheme_checked = True
        return ReindexReport(signatures, band_rows, fingerprinted + computed, window_days,
                             anchor_rows)

    MAINTENANCE_EVERY = 6 * 3600.0  # seconds between the daemon's upkeep passes

    def maintenance(self, config: Config) -> None:
        """Upkeep, after each `once` and every few hours in the daemon: prune the
        near-duplicate index to its window, roll the fetch log (raw rows for
        `schedule.fetch_log_days`, then daily totals), forget lines a site showed only once
        long ago and page retries no poll will take, and checkpoint the WAL so it does not grow
        unbounded."""
        self.prune_bands(config.dedupe.band_window_days)
        self.prune_fetch_log(config.schedule.fetch_log_days)
        cutoff = iso(datetime.now(UTC) - timedelta(days=lines.SITE_LINE_SINGLETON_DAYS))
        with self.write():
            lines.forget_singletons(self.db, cutoff)
            retries.forget_stale(self.db)
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- reading for the CLI, Datasette and metrics

    def status_rows(self, dead_after: int) -> list[dict[str, Any]]:
        return queries.status_rows(self.db, dead_after)

    def health_counts(self, dead_after: int) -> dict[str, int]:
        return queries.health_counts(self.db, dead_after)

    def feed_list(self) -> list[dict[str, Any]]:
        return queries.feed_list(self.db)

    def latest_articles(self, limit: int = 20) -> list[dict[str, Any]]:
        return queries.latest_articles(self.db, limit)

    def article_columns(self) -> list[tuple[str, str]]:
        return queries.article_columns(self.db)

    def export_articles(self, since: str | None = None, include_duplicates: bool = False
                        ) -> Iterator[dict[str, Any]]:
        return queries.export_articles(self.db, since, include_duplicates)

    def archived_articles(self, since: str | None = None, after: int = 0,
                          limit: int = 200) -> list[dict[str, Any]]:
        return queries.archived_articles(self.db, since, after, limit)


def writer_lock(path: Path) -> Any:
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


def _numbers(numbers: set[int] | list[int]) -> str:
    return ", ".join(str(n) for n in sorted(numbers))
