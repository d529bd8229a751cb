"""Reading for the CLI, Datasette and metrics: read-only queries, never a write."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlite_utils

from pipeline.messages import FROM_PAGE
from pipeline.schedule import THROTTLING, Health


def health_sql(dead_after: int, feed: str = "f", config_errors: bool = True) -> str:
    """A feed's `Health` as an SQL expression over its row (alias `feed`), the one decision
    that `status`, the Datasette feed-health query and the metrics all read. Without
    `config_errors`, the health its polls give it (`status` judges the config's lines from
    the file itself, pipeline.feedlist.as_configured)."""
    throttling = ", ".join(str(code) for code in sorted(THROTTLING))
    misconfigured = (f"WHEN {feed}.config_error IS NOT NULL THEN '{Health.MISCONFIGURED}' "
                     if config_errors else "")
    return (f"CASE WHEN NOT {feed}.active THEN '{Health.INACTIVE}' "
            f"{misconfigured}"
            f"WHEN {feed}.gone THEN '{Health.GONE}' "
            f"WHEN {feed}.last_polled_at IS NULL THEN '{Health.NEW}' "
            f"WHEN {feed}.consecutive_failures = 0 AND {feed}.last_status IN ({throttling}) "
            f"AND {feed}.last_error IS NULL THEN '{Health.THROTTLED}' "
            f"WHEN {feed}.consecutive_failures = 0 THEN '{Health.OK}' "
            f"WHEN {feed}.consecutive_failures < {int(dead_after)} THEN '{Health.FAILING}' "
            f"ELSE '{Health.DEAD}' END")


def status_rows(db: sqlite_utils.Database, dead_after: int) -> list[dict[str, Any]]:
    return list(db.query(f"""
        SELECT f.id, coalesce(f.name, f.title, f.url) AS name, f.url, f.config_url,
               f.active, f.gone, {health_sql(dead_after, config_errors=False)} AS health,
               f.last_polled_at, f.next_poll_at, f.last_status, f.consecutive_failures,
               f.last_error, f.current_interval, f.interval_seconds, f.cron,
               coalesce(s.articles, 0) AS articles, coalesce(s.entries, 0) AS entries
        FROM feeds f LEFT JOIN feed_stats s ON s.feed_id = f.id ORDER BY f.id"""))


def health_counts(db: sqlite_utils.Database, dead_after: int) -> dict[str, int]:
    """How many polled feeds are in each health (import sources left out)."""
    return {row[0]: row[1] for row in db.execute(
        f"SELECT {health_sql(dead_after)} AS health, count(*) FROM feeds f "
        f"WHERE f.active = 1 OR f.config_url IS NOT NULL GROUP BY health")}


def feed_list(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """The polled feeds (config and `add`; not import sources), oldest first: url,
    config_url, name, title, site_url, active."""
    return list(db.query("SELECT url, config_url, name, title, site_url, active FROM feeds "
                         "WHERE active = 1 OR config_url IS NOT NULL ORDER BY id"))


def latest_articles(db: sqlite_utils.Database, limit: int = 20) -> list[dict[str, Any]]:
    """The newest articles (by publication, then fetch time), newest first."""
    return list(db.query("SELECT id, title, text_source, text FROM articles "
                         "ORDER BY coalesce(published_at, fetched_at) DESC, id LIMIT ?",
                         [limit]))


def article_columns(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    """The articles table's columns in order, with their declared SQLite types."""
    return [(column.name, column.type) for column in db.table("articles").columns]


def archived_articles(db: sqlite_utils.Database, since: str | None = None,
                      after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """Up to `limit` articles extracted from an archived page, in the order they were stored,
    after rowid `after`: what `reextract` reads again, a page at a time (a text taken from
    the feed stays as it is)."""
    return list(db.query("""
        SELECT rowid, id, url, title, text_hash, published_at, feed_published_at,
               page_published_at, author, language, declared_language, warc_file,
               warc_offset, warc_length, warc_record_id, warc_digest FROM articles
        WHERE rowid > :after AND warc_file IS NOT NULL AND text_source = :page
          AND (:since IS NULL OR fetched_at >= :since)
        ORDER BY rowid LIMIT :limit""",
        {"since": since, "after": after, "limit": limit, "page": FROM_PAGE}))


def export_articles(db: sqlite_utils.Database, since: str | None = None,
                    include_duplicates: bool = False) -> Iterator[dict[str, Any]]:
    """Articles in the order they entered the corpus, with their feed, cluster and every
    entry that carried them (`seen_in`, JSON). By default only each cluster's canonical
    article; `since` keeps articles fetched at or after that ISO time."""
    return db.query("""
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
