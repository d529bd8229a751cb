"""Pages tried again after they failed (`page_retries`).

An article whose page failed (a 503, a timeout, a reset connection) is stored from its
feed's own content, often a summary. Its page is tried again at the polls of that feed
RETRY_AFTER[n] seconds after the failure or the n-th failed retry, whether or not the feed
still lists the item or changed at all (a 304 poll retries too); a page that now reads
replaces the feed's text as a new version of the article (pipeline.store.versions). After
len(RETRY_AFTER) failed retries it is not tried again, nor a page whose failure would
repeat (a 404, robots.txt, a redirect loop, no text an extractor finds).
"""

from __future__ import annotations

import re
from datetime import timedelta

import sqlite_utils

from pipeline.messages import PageRetry
from pipeline.times import iso, parse_iso

RETRY_AFTER = (600.0, 3600.0, 6 * 3600.0)  # seconds after the failure: retries 1, 2, 3
PER_POLL = 10  # retries a poll takes at most; the others wait for the feed's next poll

# Failures that pass (pipeline.fetch's words for them): a server error or a refusal to serve
# now, a deadline, a connection that failed or broke. Anything else (a 404, robots.txt, a
# redirect loop, a body too large, a page with no text an extractor finds) would fail again.
_TRANSIENT = re.compile(r"^(HTTP (5\d\d|408|429)$|deadline of |network error|"
                        r"(Connect|Read|Write|Pool)(Error|Timeout)|RemoteProtocolError|"
                        r"TimeoutException)")


def worth_retrying(error: str | None) -> bool:
    """Whether a page that failed with `error` may read later."""
    return bool(error and _TRANSIENT.match(error))


def schedule(db: sqlite_utils.Database, article_id: str, feed_id: int, now: str) -> None:
    """The first retry of a new article's failed page."""
    db.execute("INSERT OR IGNORE INTO page_retries (article_id, feed_id, attempts, next_at) "
               "VALUES (?, ?, 0, ?)", [article_id, feed_id, _after(now, 0)])


def due(db: sqlite_utils.Database, feed_id: int, now: str) -> list[PageRetry]:
    """The failed pages of this feed's articles due a retry, the longest due first
    (PER_POLL of them)."""
    return [PageRetry(*row) for row in db.execute(
        "SELECT r.article_id, e.link, e.title, e.published_at, a.text FROM page_retries r "
        "JOIN entries e ON e.article_id = r.article_id AND e.feed_id = r.feed_id "
        "JOIN articles a ON a.id = r.article_id "
        "WHERE r.feed_id = ? AND r.next_at <= ? AND e.link IS NOT NULL "
        f"GROUP BY r.article_id ORDER BY r.next_at LIMIT {PER_POLL}", [feed_id, now])]


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


def forget_stale(db: sqlite_utils.Database) -> None:
    """Drop the retries no poll will take: their feed is no longer polled (removed from the
    config, gone, its line refused) or their article no longer stored. A feed polled once
    a week takes its retries at its next poll."""
    db.execute("DELETE FROM page_retries AS r WHERE NOT EXISTS (SELECT 1 FROM feeds f "
               "WHERE f.id = r.feed_id AND f.active = 1 AND f.gone = 0 "
               "AND f.config_error IS NULL) "
               "OR NOT EXISTS (SELECT 1 FROM articles a WHERE a.id = r.article_id)")


def _after(now: str, attempts: int) -> str:
    when = parse_iso(now)
    assert when is not None
    return iso(when + timedelta(seconds=RETRY_AFTER[attempts]))
