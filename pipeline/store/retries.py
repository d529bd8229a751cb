"""Pages tried again after they failed (`page_retries`).

An article whose page failed (a 503, a timeout, a reset connection) is stored from its
feed's own content, often a summary. Its page is tried again at the polls of that feed
RETRY_AFTER[n] seconds after the failure or the n-th failed retry, whether or not the feed
still lists the item or changed at all (a 304 poll retries too); a page that now reads
replaces the feed's text as a new version of the article (pipeline.store.versions). After
len(RETRY_AFTER) failed retries, or when the page said it will not be there (4xx other than
408 and 429, robots.txt), it is not tried again.
"""

from __future__ import annotations

import re
from datetime import timedelta

import sqlite_utils

from pipeline.messages import PageRetry
from pipeline.times import iso, parse_iso

RETRY_AFTER = (600.0, 3600.0, 6 * 3600.0)  # seconds after the failure: retries 1, 2, 3
STALE_AFTER = timedelta(days=2)  # a retry not taken by then (its feed is no longer polled)

# Failures that trying again will not mend: the page is not there, not for us, or not text.
_FINAL = re.compile(r"^(HTTP (4(?!08|29)\d\d)|disallowed by robots\.txt|refused URL|"
                    r"not an HTML page|page is not text)")


def worth_retrying(error: str | None) -> bool:
    """Whether a page that failed with `error` may read later."""
    return bool(error) and not _FINAL.match(error or "")


def schedule(db: sqlite_utils.Database, article_id: str, feed_id: int, now: str) -> None:
    """The first retry of a new article's failed page."""
    db.execute("INSERT OR IGNORE INTO page_retries (article_id, feed_id, attempts, next_at) "
               "VALUES (?, ?, 0, ?)", [article_id, feed_id, _after(now, 0)])


def due(db: sqlite_utils.Database, feed_id: int, now: str) -> list[PageRetry]:
    """The failed pages of this feed's articles due a retry."""
    return [PageRetry(*row) for row in db.execute(
        "SELECT r.article_id, e.link, e.title, e.published_at, a.text FROM page_retries r "
        "JOIN entries e ON e.article_id = r.article_id AND e.feed_id = r.feed_id "
        "JOIN articles a ON a.id = r.article_id "
        "WHERE r.feed_id = ? AND r.next_at <= ? AND e.link IS NOT NULL "
        "GROUP BY r.article_id ORDER BY r.next_at", [feed_id, now])]


def tried(db: sqlite_utils.Database, article_id: str, read: bool, now: str) -> None:
    """A retry done: forgotten when the page read or its retries are spent, else the next
    one scheduled."""
    row = db.execute("SELECT attempts FROM page_retries WHERE article_id = ?",
                     [article_id]).fetchone()
    if row is None:
        return
    attempts = int(row[0]) + 1
    if read or attempts >= len(RETRY_AFTER):
        db.execute("DELETE FROM page_retries WHERE article_id = ?", [article_id])
    else:
        db.execute("UPDATE page_retries SET attempts = ?, next_at = ? WHERE article_id = ?",
                   [attempts, _after(now, attempts), article_id])


def forget_stale(db: sqlite_utils.Database, now: str) -> None:
    """Drop retries no poll took long after they were due (their feed is not polled)."""
    when = parse_iso(now)
    assert when is not None
    db.execute("DELETE FROM page_retries WHERE next_at < ?", [iso(when - STALE_AFTER)])


def _after(now: str, attempts: int) -> str:
    when = parse_iso(now)
    assert when is not None
    return iso(when + timedelta(seconds=RETRY_AFTER[attempts]))
