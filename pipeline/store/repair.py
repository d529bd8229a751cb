"""Checking a database, and repairing a damaged one from what SQLite can still read."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import DedupeConfig
from pipeline.errors import StoreError
from pipeline.store import summaries
from pipeline.store.database import Store, writer_lock
from pipeline.times import file_stamp


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
    lock = writer_lock(path)
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
        kept = path.with_name(f"{path.name}.damaged-{file_stamp(datetime.now(UTC))}")
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
    older schema) stay empty. The counters (pipeline.store.summaries) are recounted from
    the rows that could be copied."""
    rows = 0
    with Store.open(fresh, dedupe) as store:
        db = store.db
        db.execute("PRAGMA foreign_keys = OFF")  # rows arrive table by table
        db.execute("ATTACH DATABASE ? AS damaged", [f"{damaged.resolve().as_uri()}?mode=ro"])
        tables = [r[0] for r in db.execute(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE "
            "'sqlite_%' AND name NOT LIKE 'articles_fts%' ORDER BY name")]
        with store.write():
            summaries.drop_triggers(db)  # the counters are copied, then recounted
            for table in tables:
                old = {r[1] for r in db.execute(f"PRAGMA damaged.table_info([{table}])")}
                columns = ", ".join(f"[{c.name}]" for c in db[table].columns if c.name in old)
                if not columns:
                    continue
                cursor = db.execute(f"INSERT OR REPLACE INTO main.[{table}] ({columns}) "
                                    f"SELECT {columns} FROM damaged.[{table}] NOT INDEXED")
                rows += max(cursor.rowcount, 0)
            summaries.create_triggers(db)
            summaries.rebuild(db)
        db.execute("DETACH DATABASE damaged")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return rows


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
