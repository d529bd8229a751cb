"""Counters and daily totals kept at write time, so that reading them costs nothing at any
size: `newswire status`, feed health, the several-outlets queries and the dashboards read
these instead of counting a year of articles, entries and polls.

    feed_stats       per feed: articles stored through it (articles.feed_id), entries,
                     entries that led to an article
    feed_days        per feed and UTC day: polls, failed polls, 304s, bytes, poll time, new
                     entries and articles (from the fetch log), entries and entries with an
                     article (from entries)
    cluster_outlets  per cluster and outlet: its articles (the outlet is the page's site name,
                     else the feed's name, title or URL, as the stories_by_outlets view says)
    clusters.outlets how many outlets a cluster has (cluster_outlets rows)
    outlet_days      per UTC day (of fetched_at) and outlet: its articles (migration 20)
    copy_lags        per article of a story carried by several outlets: its outlet, day, lag
                     in minutes behind the story's first copy and whether that first copy
                     was another outlet's (migration 20; see the notes above TABLES_20)

They are kept by triggers, so every write that changes what they count keeps them exact in
the same transaction, whatever writes it (a poll, an import, a write-failure row, a cluster
change, a feed renamed in the config): the single writer keeps them. Deleting fetch-log rows
leaves `feed_days` alone: that is the rolling fetch log (raw rows for `fetch_log_days`, then
only the daily totals; see `prune_fetch_log`).

`RECOUNTS` holds, for each counter, the query it summarises; `rebuild` recomputes every
counter from them (a migration's backfill, and after `repair` copied rows). The tables and
triggers of migration 20 (`TABLES_20`, `TRIGGERS_20`) are separate from migration 14's, so
that each migration creates what it created then; `create_triggers`, `drop_triggers` and
`rebuild` handle both.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlite_utils

# The outlet of an article row `x` (new or old in a trigger): as the stories_by_outlets view.
_FEED_NAME = "(SELECT coalesce(name, title, url) FROM feeds WHERE id = {x}.feed_id)"
OUTLET = "coalesce(nullif({x}.sitename, ''), " + _FEED_NAME + ")"
OUTLET_JOINED = "coalesce(nullif(a.sitename, ''), f.name, f.title, f.url)"

FETCH_COLUMNS = ("polls", "failed_polls", "not_modified", "bytes", "duration_ms",
                 "new_entries", "new_articles")
ENTRY_COLUMNS = ("entries", "entries_with_article")

TABLES = (
    """CREATE TABLE feed_stats (
        feed_id INTEGER PRIMARY KEY REFERENCES feeds(id),
        articles INTEGER NOT NULL DEFAULT 0,
        entries INTEGER NOT NULL DEFAULT 0,
        entries_with_article INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE feed_days (
        feed_id INTEGER NOT NULL REFERENCES feeds(id),
        day TEXT NOT NULL,
        polls INTEGER NOT NULL DEFAULT 0,
        failed_polls INTEGER NOT NULL DEFAULT 0,
        not_modified INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        new_entries INTEGER NOT NULL DEFAULT 0,
        new_articles INTEGER NOT NULL DEFAULT 0,
        entries INTEGER NOT NULL DEFAULT 0,
        entries_with_article INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (feed_id, day)) WITHOUT ROWID""",
    # Days across feeds, newest first: the table's page, the dashboards.
    "CREATE INDEX feed_days_day ON feed_days (day)",
    """CREATE TABLE cluster_outlets (
        cluster_id TEXT NOT NULL REFERENCES clusters(id),
        outlet TEXT NOT NULL,
        articles INTEGER NOT NULL,
        PRIMARY KEY (cluster_id, outlet)) WITHOUT ROWID""",
    "ALTER TABLE clusters ADD COLUMN outlets INTEGER NOT NULL DEFAULT 0",
)


def _article_added(x: str) -> str:
    return f"""
        INSERT INTO feed_stats (feed_id, articles) SELECT {x}.feed_id, 1
            WHERE {x}.feed_id IS NOT NULL
            ON CONFLICT (feed_id) DO UPDATE SET articles = articles + 1;
        INSERT INTO cluster_outlets (cluster_id, outlet, articles)
            SELECT {x}.cluster_id, outlet, 1 FROM (SELECT {OUTLET.format(x=x)} AS outlet)
            WHERE outlet IS NOT NULL AND {x}.cluster_id IS NOT NULL
            ON CONFLICT (cluster_id, outlet) DO UPDATE SET articles = articles + 1;
        UPDATE clusters SET outlets = (SELECT count(*) FROM cluster_outlets
                                       WHERE cluster_id = {x}.cluster_id)
            WHERE id = {x}.cluster_id;"""


def _article_removed(x: str) -> str:
    return f"""
        UPDATE feed_stats SET articles = articles - 1 WHERE feed_id = {x}.feed_id;
        UPDATE cluster_outlets SET articles = articles - 1
            WHERE cluster_id = {x}.cluster_id AND outlet = {OUTLET.format(x=x)};
        DELETE FROM cluster_outlets WHERE cluster_id = {x}.cluster_id AND articles <= 0;
        UPDATE clusters SET outlets = (SELECT count(*) FROM cluster_outlets
                                       WHERE cluster_id = {x}.cluster_id)
            WHERE id = {x}.cluster_id;"""


def _entry_changed(x: str, sign: str) -> str:
    with_article = f"({x}.article_id IS NOT NULL)"
    return f"""
        INSERT INTO feed_stats (feed_id, entries, entries_with_article)
            SELECT {x}.feed_id, {sign}1, {sign}{with_article} WHERE {x}.feed_id IS NOT NULL
            ON CONFLICT (feed_id) DO UPDATE SET entries = entries + excluded.entries,
                entries_with_article = entries_with_article + excluded.entries_with_article;
        INSERT INTO feed_days (feed_id, day, entries, entries_with_article)
            SELECT {x}.feed_id, coalesce(substr({x}.seen_at, 1, 10), ''), {sign}1,
                   {sign}{with_article} WHERE {x}.feed_id IS NOT NULL
            ON CONFLICT (feed_id, day) DO UPDATE SET entries = entries + excluded.entries,
                entries_with_article = entries_with_article + excluded.entries_with_article;"""


_FETCH_VALUES = ("1", "(new.error IS NOT NULL)", "coalesce(new.status = 304, 0)",
                 "coalesce(new.bytes, 0)", "coalesce(new.duration_ms, 0)",
                 "coalesce(new.new_entries, 0)", "coalesce(new.new_articles, 0)")

TRIGGERS = {
    "summaries_article_insert": f"AFTER INSERT ON articles BEGIN {_article_added('new')} END",
    "summaries_article_delete": f"AFTER DELETE ON articles BEGIN {_article_removed('old')} END",
    "summaries_article_update": (
        "AFTER UPDATE OF feed_id, cluster_id, sitename ON articles "
        "WHEN old.feed_id IS NOT new.feed_id OR old.cluster_id IS NOT new.cluster_id "
        "OR old.sitename IS NOT new.sitename "
        f"BEGIN {_article_removed('old')} {_article_added('new')} END"),
    "summaries_entry_insert": f"AFTER INSERT ON entries BEGIN {_entry_changed('new', '')} END",
    "summaries_entry_delete": f"AFTER DELETE ON entries BEGIN {_entry_changed('old', '-')} END",
    "summaries_entry_update": (
        "AFTER UPDATE OF feed_id, article_id, seen_at ON entries "
        "WHEN old.feed_id IS NOT new.feed_id OR old.article_id IS NOT new.article_id "
        "OR old.seen_at IS NOT new.seen_at "
        f"BEGIN {_entry_changed('old', '-')} {_entry_changed('new', '')} END"),
    # No delete trigger: dropping old fetch-log rows keeps their daily totals.
    "summaries_fetch_insert": (
        "AFTER INSERT ON fetches BEGIN "
        f"INSERT INTO feed_days (feed_id, day, {', '.join(FETCH_COLUMNS)}) "
        "SELECT new.feed_id, coalesce(substr(new.started_at, 1, 10), ''), "
        f"{', '.join(_FETCH_VALUES)} WHERE new.feed_id IS NOT NULL "
        "ON CONFLICT (feed_id, day) DO UPDATE SET "
        + ", ".join(f"{c} = {c} + excluded.{c}" for c in FETCH_COLUMNS) + "; END"),
    # A feed renamed (or titled by its first poll) renames the outlet of its articles that
    # have no site name: their clusters are recounted.
    "summaries_feed_renamed": (
        "AFTER UPDATE OF name, title, url ON feeds "
        "WHEN coalesce(old.name, old.title, old.url) IS NOT coalesce(new.name, new.title, "
        "new.url) BEGIN "
        "DELETE FROM cluster_outlets WHERE cluster_id IN (SELECT cluster_id FROM articles "
        "WHERE feed_id = new.id AND coalesce(sitename, '') = ''); "
        "INSERT INTO cluster_outlets (cluster_id, outlet, articles) "
        f"SELECT a.cluster_id, {OUTLET_JOINED}, count(*) "
        "FROM articles a LEFT JOIN feeds f ON f.id = a.feed_id "
        "WHERE a.cluster_id IN (SELECT cluster_id FROM articles WHERE feed_id = new.id AND "
        f"coalesce(sitename, '') = '') AND {OUTLET_JOINED} IS NOT NULL "
        "GROUP BY 1, 2; "
        "UPDATE clusters SET outlets = (SELECT count(*) FROM cluster_outlets o "
        "WHERE o.cluster_id = clusters.id) WHERE id IN (SELECT cluster_id FROM articles "
        "WHERE feed_id = new.id AND coalesce(sitename, '') = ''); END"),
}


# --- Migration 20: outlets per day, and each copy's lag behind its story's first copy ------
#
# The dashboards' "outlets compared" (30 days) ranks every copy of a story carried by several
# outlets by its lag behind the story's first copy, per outlet, for a median. Counted at read
# time that is a window over every copy of a month of stories (0.85 s at a million articles
# a year); a median has no counter to keep (adding a copy moves it by an unknown amount). So
# the writer keeps the input of the median instead: one row per copy with its lag, indexed
# by outlet and day, and the chart sorts a month of one outlet's lags (an index range, small)
# for each of the outlets it shows. Why per article and not per outlet and day: when a
# story's first copy changes (an earlier copy arrives, a merge brings one, a re-extraction
# finds a publication date, a copy is deleted) the lag of every copy of that story changes,
# and only rows keyed by article can be rewritten exactly, story by story.
#
# How it stays exact: each write that can change a story's copies (an article inserted,
# deleted, moved to another cluster, or given another outlet or time; a feed renamed)
# recomputes that story's rows from its articles with `copies` below, the very query the
# recount uses, and writes only the rows that differ (an upsert whose update is skipped
# when nothing changed). Rows of an article that leaves a story, or of a story left with
# one outlet, go. Two cheaper paths give the same rows: a copy strictly later than its
# story's first writes its own row alone (the fast path, below), and a merge recomputes
# the merged story once (`story_merged`) instead of once per article it moves. The
# triggers do not read `clusters.outlets` (kept by migration 14's triggers, whose order
# relative to these SQLite does not promise): "several outlets" is computed here, as the
# smallest outlet differing from the largest.

TABLES_20 = (
    """CREATE TABLE outlet_days (
        day TEXT NOT NULL,
        outlet TEXT NOT NULL,
        articles INTEGER NOT NULL,
        PRIMARY KEY (day, outlet)) WITHOUT ROWID""",
    """CREATE TABLE copy_lags (
        article_id TEXT PRIMARY KEY REFERENCES articles(id),
        cluster_id TEXT NOT NULL REFERENCES clusters(id),
        outlet TEXT NOT NULL,
        day TEXT NOT NULL,
        lag REAL,                 -- minutes behind the story's first copy (0: it is first)
        wire INTEGER NOT NULL     -- 1: the story's first copy is another outlet's
        ) WITHOUT ROWID""",
    # A story's rows, rewritten when it changes.
    "CREATE INDEX copy_lags_cluster ON copy_lags (cluster_id)",
    # One outlet's copies of a window of days, in lag order within a day: the chart's read.
    "CREATE INDEX copy_lags_outlet ON copy_lags (outlet, day, lag, wire)",
)

_DAY = "coalesce(substr({x}.fetched_at, 1, 10), '')"


def copies(where: str, indexed: bool = True) -> str:
    """The copy_lags rows of the clusters whose articles `a` match `where`: every article
    with an outlet of a cluster with at least two outlets, its lag behind the cluster's
    first copy (earliest publication time, else fetch time; ties by outlet) and whether that
    first copy is another outlet's. As the read-time query of "outlets compared" had it.
    `indexed` False reads the articles table in storage order (a whole-corpus recount)."""
    table = "articles a" if indexed else "articles a NOT INDEXED"
    return f"""SELECT id, cluster_id, outlet, day, lag, wire FROM (
        SELECT id, cluster_id, outlet, day,
               (julianday(at) - julianday(first_value(at) OVER story)) * 1440 AS lag,
               coalesce(outlet != first_value(outlet) OVER story, 0) AS wire,
               min(outlet) OVER cluster < max(outlet) OVER cluster AS several
        FROM (SELECT a.id, a.cluster_id, {OUTLET_JOINED} AS outlet,
                     coalesce(a.published_at, a.fetched_at) AS at, {_DAY.format(x="a")} AS day
              FROM {table} LEFT JOIN feeds f ON f.id = a.feed_id
              WHERE a.cluster_id IS NOT NULL AND ({where}))
        WINDOW story AS (PARTITION BY cluster_id ORDER BY at, outlet),
               cluster AS (PARTITION BY cluster_id))
    WHERE several AND outlet IS NOT NULL"""


_COPY_COLUMNS = ("cluster_id", "outlet", "day", "lag", "wire")


def _copies_written(where: str) -> str:
    """Upsert the copy_lags rows of the clusters matching `where`, writing only rows that
    differ."""
    columns = ", ".join(_COPY_COLUMNS)
    excluded = ", ".join(f"excluded.{c}" for c in _COPY_COLUMNS)
    return (f"INSERT INTO copy_lags (article_id, {columns}) {copies(where)} "
            f"ON CONFLICT (article_id) DO UPDATE SET ({columns}) = ({excluded}) "
            f"WHERE ({columns}) IS NOT ({excluded});")


def _one_outlet_left(cluster: str) -> str:
    """Drop the rows of `cluster` when it no longer has two outlets."""
    return (f"DELETE FROM copy_lags WHERE cluster_id = {cluster} AND NOT coalesce(("
            f"SELECT min({OUTLET_JOINED}) < max({OUTLET_JOINED}) FROM articles a "
            f"LEFT JOIN feeds f ON f.id = a.feed_id WHERE a.cluster_id = {cluster}), 0);")


def _outlet_day_added(x: str) -> str:
    return f"""
        INSERT INTO outlet_days (day, outlet, articles)
            SELECT {_DAY.format(x=x)}, outlet, 1 FROM (SELECT {OUTLET.format(x=x)} AS outlet)
            WHERE outlet IS NOT NULL
            ON CONFLICT (day, outlet) DO UPDATE SET articles = articles + 1;"""


def _outlet_day_removed(x: str) -> str:
    where = f"day = {_DAY.format(x=x)} AND outlet = {OUTLET.format(x=x)}"
    return f"""
        UPDATE outlet_days SET articles = articles - 1 WHERE {where};
        DELETE FROM outlet_days WHERE {where} AND articles <= 0;"""


# The feed's articles whose outlet is the feed (no site name of their own), per day.
_FEED_DAYS = ("SELECT {day} AS day, count(*) AS n FROM articles a WHERE a.feed_id = new.id "
              "AND coalesce(a.sitename, '') = '' GROUP BY 1").format(day=_DAY.format(x="a"))
_OLD_FEED_NAME = "coalesce(old.name, old.title, old.url)"
_NEW_FEED_NAME = "coalesce(new.name, new.title, new.url)"

# The fast path. A copy that is not its story's first changes no other copy's lag: when the
# story already has several outlets (it has rows), a copy that arrives, or is re-dated,
# strictly later than the story's first copy writes its own row alone, from the story's
# first time and outlet found by index seeks (articles_cluster_spread holds cluster_id,
# published_at, fetched_at): the story's other copies are not read, which matters for the
# stories that grow all year (a templated market report: 2,158 copies after 33 days, 46 ms
# to recompute). Anything else (an earlier or equal copy, a story that may gain or lose its
# second outlet, a copy without a time) recomputes the story.
_AT = "coalesce({x}.published_at, {x}.fetched_at)"


def _first_at(cluster: str) -> str:
    """The story's first time: the smallest publication time, or fetch time of a copy
    without one (two index seeks)."""
    return (f"min(coalesce((SELECT min(published_at) FROM articles WHERE cluster_id = "
            f"{cluster}), '~'), coalesce((SELECT min(fetched_at) FROM articles WHERE "
            f"cluster_id = {cluster} AND published_at IS NULL), '~'))")


def _first_outlet(cluster: str) -> str:
    """The first copy's outlet: the smallest (NULL first) among the copies at the first
    time, as `ORDER BY at, outlet` picks it."""
    first = _first_at(cluster)
    return (f"(SELECT o FROM (SELECT {OUTLET_JOINED} AS o FROM articles a LEFT JOIN feeds f "
            f"ON f.id = a.feed_id WHERE a.cluster_id = {cluster} AND a.published_at = {first} "
            f"UNION ALL SELECT {OUTLET_JOINED} FROM articles a LEFT JOIN feeds f "
            f"ON f.id = a.feed_id WHERE a.cluster_id = {cluster} AND a.published_at IS NULL "
            f"AND a.fetched_at = {first}) ORDER BY o LIMIT 1)")


def _later_copy(x: str) -> str:
    """Article `x` is strictly later than the first copy of its story, which has rows
    (several outlets) and no copy without a time."""
    cluster = f"{x}.cluster_id"
    return (f"(EXISTS (SELECT 1 FROM copy_lags WHERE cluster_id = {cluster}) "
            f"AND NOT EXISTS (SELECT 1 FROM articles WHERE cluster_id = {cluster} "
            f"AND published_at IS NULL AND fetched_at IS NULL) "
            f"AND {_AT.format(x=x)} > {_first_at(cluster)})")


def _own_lag(x: str) -> tuple[str, str]:
    """(lag, wire) of article `x` that is not its story's first copy."""
    cluster = f"{x}.cluster_id"
    return (f"(julianday({_AT.format(x=x)}) - julianday({_first_at(cluster)})) * 1440",
            f"coalesce({OUTLET.format(x=x)} != {_first_outlet(cluster)}, 0)")


# An article joins a story that has at most one outlet: it keeps at most one when the
# article has no outlet or another copy has its outlet (found at the first copy read, for
# a story of one outlet).
_STILL_ONE_OUTLET = (
    f"(NOT EXISTS (SELECT 1 FROM copy_lags WHERE cluster_id = new.cluster_id) AND "
    f"({OUTLET.format(x='new')} IS NULL OR EXISTS (SELECT 1 FROM articles a LEFT JOIN "
    f"feeds f ON f.id = a.feed_id WHERE a.cluster_id = new.cluster_id AND a.id != new.id "
    f"AND {OUTLET_JOINED} = {OUTLET.format(x='new')})))")

# Re-dated (or moved to another feed or site name of the same outlet) in its story, and
# neither before nor after its story's first copy: only its own row changes.
_REDATED_LATER = (
    f"(old.cluster_id IS new.cluster_id AND {OUTLET.format(x='old')} IS "
    f"{OUTLET.format(x='new')} AND {_later_copy('new')} AND "
    f"{_AT.format(x='old')} > {_first_at('new.cluster_id')})")

_CHANGED = ("(old.feed_id IS NOT new.feed_id OR old.sitename IS NOT new.sitename "
            "OR old.published_at IS NOT new.published_at "
            "OR old.fetched_at IS NOT new.fetched_at)")

TRIGGERS_20 = {
    "summaries_copies_article_insert": (
        f"AFTER INSERT ON articles BEGIN {_outlet_day_added('new')} "
        "INSERT INTO copy_lags (article_id, cluster_id, outlet, day, lag, wire) "
        f"SELECT new.id, new.cluster_id, outlet, {_DAY.format(x='new')}, "
        f"{', '.join(_own_lag('new'))} FROM (SELECT {OUTLET.format(x='new')} AS outlet) "
        f"WHERE outlet IS NOT NULL AND {_later_copy('new')}; "
        + _copies_written(f"a.cluster_id = new.cluster_id AND NOT {_later_copy('new')} "
                          f"AND NOT {_STILL_ONE_OUTLET}") + " END"),
    "summaries_copies_article_delete": (
        f"AFTER DELETE ON articles BEGIN {_outlet_day_removed('old')} "
        "DELETE FROM copy_lags WHERE article_id = old.id; "
        f"{_one_outlet_left('old.cluster_id')} "
        f"{_copies_written('a.cluster_id = old.cluster_id')} END"),
    "summaries_outlet_days_article_update": (
        "AFTER UPDATE OF feed_id, sitename, fetched_at ON articles "
        "WHEN old.feed_id IS NOT new.feed_id OR old.sitename IS NOT new.sitename "
        "OR old.fetched_at IS NOT new.fetched_at "
        f"BEGIN {_outlet_day_removed('old')} {_outlet_day_added('new')} END"),
    "summaries_copies_article_redated": (
        "AFTER UPDATE OF feed_id, sitename, published_at, fetched_at ON articles "
        f"WHEN {_CHANGED} AND {_REDATED_LATER} BEGIN "
        f"UPDATE copy_lags SET day = {_DAY.format(x='new')}, "
        f"(lag, wire) = ({', '.join(_own_lag('new'))}) WHERE article_id = new.id; END"),
    # A story's first copy is its earliest by publication (else fetch) time: those times
    # matter here, beyond what migration 14's counters watch. A merge's move of an article
    # (its cluster already forwards to the new one) is left to `story_merged`: recomputing
    # the growing story once per moved article is quadratic (a minute for a merge of 800
    # copies into 2,000), once per merge is not.
    "summaries_copies_article_update": (
        "AFTER UPDATE OF feed_id, cluster_id, sitename, published_at, fetched_at ON articles "
        f"WHEN ({_CHANGED} AND NOT {_REDATED_LATER}) "
        "OR (old.cluster_id IS NOT new.cluster_id AND (SELECT merged_into FROM clusters "
        "WHERE id = old.cluster_id) IS NOT new.cluster_id) BEGIN "
        "DELETE FROM copy_lags WHERE article_id = old.id; "
        f"{_one_outlet_left('old.cluster_id')} "
        + _copies_written("a.cluster_id = old.cluster_id "
                          "AND old.cluster_id IS NOT new.cluster_id") + " "
        f"{_copies_written('a.cluster_id = new.cluster_id')} END"),
    # A feed renamed (or titled by its first poll) renames the outlet of its articles without
    # a site name: their days move to the new name, their stories are recomputed.
    "summaries_copies_feed_renamed": (
        f"AFTER UPDATE OF name, title, url ON feeds WHEN {_OLD_FEED_NAME} IS NOT "
        f"{_NEW_FEED_NAME} BEGIN "
        f"UPDATE outlet_days SET articles = articles - m.n FROM ({_FEED_DAYS}) AS m "
        f"WHERE outlet_days.day = m.day AND outlet_days.outlet = {_OLD_FEED_NAME}; "
        f"DELETE FROM outlet_days WHERE outlet = {_OLD_FEED_NAME} AND articles <= 0 "
        f"AND day IN (SELECT day FROM ({_FEED_DAYS})); "
        f"INSERT INTO outlet_days (day, outlet, articles) SELECT day, {_NEW_FEED_NAME}, n "
        f"FROM ({_FEED_DAYS}) WHERE {_NEW_FEED_NAME} IS NOT NULL "
        "ON CONFLICT (day, outlet) DO UPDATE SET articles = articles + excluded.articles; "
        "DELETE FROM copy_lags WHERE cluster_id IN (SELECT cluster_id FROM articles "
        "WHERE feed_id = new.id AND coalesce(sitename, '') = ''); "
        + _copies_written("a.cluster_id IN (SELECT cluster_id FROM articles "
                          "WHERE feed_id = new.id AND coalesce(sitename, '') = '')")
        + " END"),
}

# What each counter summarises: (counter query, the query it summarises). Both return the
# same rows, ordered, when the counters are exact (the tests compare them). NOT INDEXED
# keeps the recounts on table scans: walking an index in key order would fetch the rows in
# random order (a migration recounts a million articles and months of polls with them).
RECOUNTS = {
    "feed_stats": (
        "SELECT feed_id, articles, entries, entries_with_article FROM feed_stats "
        "WHERE articles OR entries OR entries_with_article ORDER BY feed_id",
        "SELECT feed_id, sum(a), sum(e), sum(ea) FROM ("
        "SELECT feed_id, count(*) AS a, 0 AS e, 0 AS ea FROM articles "
        "WHERE feed_id IS NOT NULL GROUP BY feed_id UNION ALL "
        "SELECT feed_id, 0, count(*), count(article_id) FROM entries NOT INDEXED "
        "WHERE feed_id IS NOT NULL GROUP BY feed_id) GROUP BY feed_id ORDER BY feed_id"),
    "cluster_outlets": (
        "SELECT cluster_id, outlet, articles FROM cluster_outlets ORDER BY cluster_id, outlet",
        f"SELECT a.cluster_id, {OUTLET_JOINED} AS outlet, count(*) FROM articles a NOT INDEXED "
        "LEFT JOIN feeds f ON f.id = a.feed_id WHERE a.cluster_id IS NOT NULL AND "
        f"{OUTLET_JOINED} IS NOT NULL GROUP BY a.cluster_id, outlet ORDER BY 1, 2"),
    "clusters.outlets": (
        "SELECT id, outlets FROM clusters WHERE outlets > 0 ORDER BY id",
        "SELECT a.cluster_id, count(DISTINCT " + OUTLET_JOINED + ") AS n "
        "FROM articles a NOT INDEXED "
        "LEFT JOIN feeds f ON f.id = a.feed_id WHERE a.cluster_id IS NOT NULL "
        "GROUP BY a.cluster_id HAVING n > 0 ORDER BY 1"),
    "feed_days entries": (
        "SELECT feed_id, day, entries, entries_with_article FROM feed_days "
        "WHERE entries OR entries_with_article ORDER BY feed_id, day",
        "SELECT feed_id, coalesce(substr(seen_at, 1, 10), '') AS day, count(*), "
        "count(article_id) FROM entries NOT INDEXED WHERE feed_id IS NOT NULL "
        "GROUP BY feed_id, day "
        "ORDER BY feed_id, day"),
    # Only the days whose raw rows are still kept: older days live on as totals alone.
    "feed_days fetches": (
        f"SELECT feed_id, day, {', '.join(FETCH_COLUMNS)} FROM feed_days "
        "WHERE polls AND day >= coalesce((SELECT substr(min(started_at), 1, 10) "
        "FROM fetches), '9') ORDER BY feed_id, day",
        "SELECT feed_id, coalesce(substr(started_at, 1, 10), '') AS day, "
        f"{', '.join(f'sum({v})' for v in _FETCH_VALUES).replace('new.', '')} "
        "FROM fetches NOT INDEXED WHERE feed_id IS NOT NULL GROUP BY feed_id, day "
        "ORDER BY feed_id, day"),
    "outlet_days": (
        "SELECT day, outlet, articles FROM outlet_days ORDER BY day, outlet",
        f"SELECT {_DAY.format(x='a')} AS day, {OUTLET_JOINED} AS outlet, count(*) "
        "FROM articles a NOT INDEXED LEFT JOIN feeds f ON f.id = a.feed_id "
        f"WHERE {OUTLET_JOINED} IS NOT NULL GROUP BY day, outlet ORDER BY day, outlet"),
    "copy_lags": (
        f"SELECT article_id, {', '.join(_COPY_COLUMNS)} FROM copy_lags ORDER BY article_id",
        copies("true", indexed=False) + " ORDER BY id"),
}


def story_merged(db: sqlite_utils.Database, source: str, target: str) -> None:
    """The copies' lags after a merge moved every article of `source` into `target` (its
    moves were left to this: see summaries_copies_article_update), inside the caller's
    transaction. A merge only adds outlets to the target, so no row goes but the source's."""
    db.execute("DELETE FROM copy_lags WHERE cluster_id = ?", [source])
    db.execute(_copies_written("a.cluster_id = :target"), {"target": target})


def create(db: sqlite_utils.Database) -> None:
    """The summary tables and their triggers of migration 14, filled from what is stored."""
    _create(db, TABLES, TRIGGERS)
    _rebuild_14(db)


def create_20(db: sqlite_utils.Database) -> None:
    """The outlets' days and the copies' lags (migration 20), filled from what is stored."""
    _create(db, TABLES_20, TRIGGERS_20)
    _rebuild_20(db)


def _create(db: sqlite_utils.Database, tables: Iterable[str], triggers: dict[str, str]) -> None:
    for statement in tables:
        db.execute(statement)
    for name, body in triggers.items():
        db.execute(f"CREATE TRIGGER {name} {body}")


def create_triggers(db: sqlite_utils.Database) -> None:
    for name, body in {**TRIGGERS, **TRIGGERS_20}.items():
        db.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")


def drop_triggers(db: sqlite_utils.Database) -> None:
    for name in {**TRIGGERS, **TRIGGERS_20}:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")


def rebuild(db: sqlite_utils.Database) -> None:
    """Every counter recomputed from the rows it counts, inside the caller's transaction.
    The fetch-log totals of days whose raw rows are gone are kept as they are."""
    _rebuild_14(db)
    _rebuild_20(db)


def _rebuild_20(db: sqlite_utils.Database) -> None:
    db.execute("DELETE FROM outlet_days")
    db.execute("INSERT INTO outlet_days (day, outlet, articles) "
               + RECOUNTS["outlet_days"][1].replace(" ORDER BY day, outlet", ""))
    db.execute("DELETE FROM copy_lags")
    db.execute(f"INSERT INTO copy_lags (article_id, {', '.join(_COPY_COLUMNS)}) "
               + copies("true", indexed=False))


def _rebuild_14(db: sqlite_utils.Database) -> None:
    db.execute("DELETE FROM feed_stats")
    db.execute("INSERT INTO feed_stats (feed_id, articles, entries, entries_with_article) "
               + RECOUNTS["feed_stats"][1].replace(" ORDER BY feed_id", ""))
    db.execute("DELETE FROM cluster_outlets")
    db.execute("INSERT INTO cluster_outlets (cluster_id, outlet, articles) "
               + RECOUNTS["cluster_outlets"][1].replace(" ORDER BY 1, 2", ""))
    db.execute("UPDATE clusters SET outlets = 0 WHERE outlets != 0")
    db.execute("UPDATE clusters SET outlets = o.n FROM (SELECT cluster_id, count(*) AS n "
               "FROM cluster_outlets GROUP BY cluster_id) AS o WHERE clusters.id = o.cluster_id")
    # Daily totals: entries for every day; the fetch log for the days it still holds.
    db.execute("UPDATE feed_days SET entries = 0, entries_with_article = 0 "
               "WHERE entries OR entries_with_article")
    db.execute("INSERT INTO feed_days (feed_id, day, entries, entries_with_article) "
               + RECOUNTS["feed_days entries"][1].replace(" ORDER BY feed_id, day", "")
               .replace("GROUP BY feed_id, day", "GROUP BY feed_id, day HAVING true")
               + " ON CONFLICT (feed_id, day) DO UPDATE SET entries = excluded.entries, "
               "entries_with_article = excluded.entries_with_article")
    kept_from = db.execute("SELECT substr(min(started_at), 1, 10) FROM fetches").fetchone()[0]
    if kept_from is not None:
        db.execute("UPDATE feed_days SET " + ", ".join(f"{c} = 0" for c in FETCH_COLUMNS)
                   + " WHERE day >= ?", [kept_from])
        db.execute(f"INSERT INTO feed_days (feed_id, day, {', '.join(FETCH_COLUMNS)}) "
                   + RECOUNTS["feed_days fetches"][1].replace(" ORDER BY feed_id, day", "")
                   .replace("GROUP BY feed_id, day", "GROUP BY feed_id, day HAVING true")
                   + " ON CONFLICT (feed_id, day) DO UPDATE SET "
                   + ", ".join(f"{c} = excluded.{c}" for c in FETCH_COLUMNS))
    db.execute("DELETE FROM feed_days WHERE " + " AND ".join(
        f"{c} = 0" for c in FETCH_COLUMNS + ENTRY_COLUMNS))


PRUNE_CHUNK = 5000  # fetch-log rows per transaction when rolling


def feeds_with_fetches_before(db: sqlite_utils.Database, cutoff_day: str) -> list[int]:
    """The feeds with fetch-log rows older than cutoff_day (one index probe per feed)."""
    return [r[0] for r in db.execute(
        "SELECT id FROM feeds f WHERE EXISTS (SELECT 1 FROM fetches x WHERE x.feed_id = f.id "
        "AND x.started_at < ?)", [cutoff_day])]


def prune_fetches_chunk(db: sqlite_utils.Database, feed_id: int, cutoff_day: str) -> int:
    """Drop up to PRUNE_CHUNK of a feed's fetch-log rows of days before cutoff_day (whole
    UTC days: a day's totals stay exactly its rows' sums), oldest first; their daily
    totals stay in feed_days. How many went."""
    return int(db.execute(
        "DELETE FROM fetches WHERE rowid IN (SELECT rowid FROM fetches WHERE feed_id = ? "
        "AND started_at < ? ORDER BY started_at LIMIT ?)",
        [feed_id, cutoff_day, PRUNE_CHUNK]).rowcount)


def mismatches(db: sqlite_utils.Database) -> dict[str, int]:
    """For each counter, how many rows differ from the query it summarises (0: exact)."""
    found = {}
    for name, (counter, truth) in RECOUNTS.items():
        have = db.execute(counter).fetchall()
        want = db.execute(truth).fetchall()
        found[name] = len(set(have) ^ set(want))
    return found
