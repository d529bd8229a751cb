"""Feed rows: the feed list following the config, the schedule, and each poll's effect on
its feed (state, validators, URL after a permanent redirect)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlite_utils

from pipeline.config import FeedConfig
from pipeline.dedupe import speaks_for
from pipeline.messages import FeedState, PollResult
from pipeline.schedule import polled_ok


def sync(db: sqlite_utils.Database, feeds: Iterable[FeedConfig], now: str,
         refused: Mapping[str, str] | None = None) -> None:
    """Make the feeds table follow the config: add new feeds, update names and overrides,
    deactivate feeds no longer listed (their data stays). A feed whose line does not read
    (`refused`: URL to error) stays listed with its error, unpolled. Writes only what
    changed."""
    wanted: dict[str, dict[str, Any]] = {url: {"config_error": error}
                                         for url, error in (refused or {}).items()}
    for feed in feeds:
        wanted[feed.url] = {"name": feed.name, "interval_seconds": feed.interval,
                            "cron": feed.cron, "config_error": None}
    rows = list(db.table("feeds").rows)
    by_config = {r["config_url"] or r["url"]: r for r in rows}
    by_url = {r["url"]: r for r in rows}
    kept: set[int] = set()
    for url, settings in wanted.items():
        values = {**settings, "active": 1, "config_url": url}
        # Found by the URL the config gave it, else by where it lives now: a config line
        # changed to the URL a permanent redirect led to still names the same feed.
        row = by_config.get(url) or by_url.get(url)
        if row is None:
            db.table("feeds").insert({"url": url, "added_at": now, "next_poll_at": now,
                                      **values})
        else:
            kept.add(row["id"])
            if any(row[key] != value for key, value in values.items()):
                db.table("feeds").update(row["id"], values)
    for row in rows:
        if row["id"] not in kept and row["active"] and row["config_url"]:
            db.table("feeds").update(row["id"], {"active": 0})


def add(db: sqlite_utils.Database, url: str, name: str | None, now: str) -> int:
    """Add one feed (not from the config); returns its id. Idempotent."""
    existing = db.execute("SELECT id FROM feeds WHERE url = ?", [url]).fetchone()
    if existing:  # a feed the config once listed is the database's own from now on
        db.table("feeds").update(existing[0], {"active": 1, "config_url": None})
        return int(existing[0])
    return _new_feed(db, {"url": url, "name": name, "added_at": now, "next_poll_at": now,
                          "active": 1})


def source(db: sqlite_utils.Database, url: str, name: str, now: str) -> int:
    """The feed row that records where imported articles came from (e.g. a directory):
    inactive, never due, its entries the provenance of every imported file. Idempotent."""
    row = db.execute("SELECT id FROM feeds WHERE url = ?", [url]).fetchone()
    if row:
        return int(row[0])
    return _new_feed(db, {"url": url, "name": name, "added_at": now, "active": 0})


def _new_feed(db: sqlite_utils.Database, row: dict[str, Any]) -> int:
    feed_id = db.table("feeds").insert(row).last_pk
    assert feed_id is not None
    return int(feed_id)


def due(db: sqlite_utils.Database, due_at: str, include_all: bool,
        beyond: str | None) -> list[FeedState]:
    """Active feeds; only those due at `due_at` unless include_all. With `beyond`, also the
    feeds scheduled later than that time (pipeline.schedule: a clock error)."""
    sql = "SELECT * FROM feeds WHERE active = 1 AND config_error IS NULL"
    params: list[Any] = []
    if not include_all:
        sql += " AND gone = 0 AND next_poll_at IS NOT NULL AND (next_poll_at <= ?"
        params.append(due_at)
        if beyond is not None:
            sql += " OR next_poll_at > ?"
            params.append(beyond)
        sql += ")"
    sql += " ORDER BY next_poll_at, id"
    return [state(row) for row in db.query(sql, params)]


def get(db: sqlite_utils.Database, feed_id: int) -> FeedState:
    return state(db.table("feeds").get(feed_id))


def state(row: dict[str, Any]) -> FeedState:
    return FeedState(
        id=row["id"], url=row["url"], name=row["name"], etag=row["etag"],
        last_modified=row["last_modified"], next_poll_at=row["next_poll_at"],
        last_polled_at=row["last_polled_at"],
        consecutive_failures=row["consecutive_failures"] or 0,
        interval_seconds=row["interval_seconds"], cron=row["cron"],
        current_interval=row["current_interval"],
        last_unconditional_at=row["last_unconditional_at"], gone=bool(row["gone"]),
        config_url=row["config_url"],
    )


def after_poll(db: sqlite_utils.Database, result: PollResult, now: str) -> None:
    """The feed's state after a poll, written in the poll's own transaction: validators
    change only with a successful poll recorded with them."""
    values: dict[str, Any] = {
        "last_polled_at": result.started_at, "last_status": result.status,
        "last_error": result.error, "last_warning": result.warning,
        "next_poll_at": result.next_poll_at,
        "consecutive_failures": result.consecutive_failures,
        "current_interval": result.current_interval, "gone": int(result.gone),
    }
    if polled_ok(result.status, result.error):
        values["last_success_at"] = now
        if result.status == 200:
            values["etag"] = result.etag
            values["last_modified"] = result.last_modified
            if not result.conditional:
                values["last_unconditional_at"] = result.started_at
    if result.feed_title:
        values["title"] = result.feed_title
    if result.new_url:
        taken = db.execute("SELECT id FROM feeds WHERE url = ? AND id != ?",
                           [result.new_url, result.feed_id]).fetchone()
        if not taken:
            values["url"] = result.new_url
    db.execute(f"UPDATE feeds SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
               [*values.values(), result.feed_id])


def note_site(db: sqlite_utils.Database, feed_id: int, link: str | None) -> None:
    """The site the feed says it is of (its `<link>`), as its entries are written: whether
    it speaks for their articles (`voice`) is known from its first batch."""
    if link:
        db.execute("UPDATE feeds SET site_url = ? WHERE id = ? AND site_url IS NOT ?",
                   [link, feed_id, link])


# How a feed stands to an article (voice): a feed of the article's own site, another
# site's feed (an aggregator's), or the record of an import or a backfill (never polled:
# inactive, and in no config).
OWN, OTHER, SOURCE = "own", "other", "source"


def voice(db: sqlite_utils.Database, feed_id: int, article_url: str) -> str:
    """OWN, OTHER or SOURCE (pipeline.dedupe.speaks_for decides between the first two)."""
    row = db.execute("SELECT url, site_url, active, config_url FROM feeds WHERE id = ?",
                     [feed_id]).fetchone()
    if row is None or not row[2] and row[3] is None:
        return SOURCE
    return OWN if speaks_for(row[0], row[1], article_url) else OTHER


def write_failed(db: sqlite_utils.Database, feed_id: int, error: str, retry_at: str) -> None:
    """After a poll's write failed: the error and the retry time, nothing else."""
    db.execute("UPDATE feeds SET last_error = ?, next_poll_at = ? WHERE id = ?",
               [error, retry_at, feed_id])
