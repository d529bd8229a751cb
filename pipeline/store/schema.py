"""The database's shape: numbered migrations, applied in order inside write transactions.

Numbers are reserved per feature branch, so the sequence has gaps and a branch may land
after one with higher numbers. The table `schema_migrations` therefore records each migration
applied, and every migration a database lacks is applied in number order, whatever its
neighbours. `PRAGMA user_version` still holds the highest number applied. A database with a
migration this code does not know is newer than it, and refused.
"""

from __future__ import annotations

import sqlite_utils

from pipeline import neardup
from pipeline.store import summaries
from pipeline.store.lines import SITE_LINE_MIN_PAGES


def _migration_1(db: sqlite_utils.Database) -> None:
    db.table("feeds").create({
        "id": int, "url": str, "config_url": str, "name": str, "title": str, "site_url": str,
        "etag": str, "last_modified": str, "added_at": str, "last_polled_at": str,
        "last_success_at": str, "next_poll_at": str, "last_status": int,
        "consecutive_failures": int, "last_error": str, "last_warning": str,
        "interval_seconds": float, "cron": str, "current_interval": float,
        "last_unconditional_at": str, "gone": int, "active": int,
    }, pk="id", not_null={"url"}, defaults={"consecutive_failures": 0, "gone": 0, "active": 1})
    db.table("feeds").create_index(["url"], unique=True)
    db.table("feeds").create_index(["next_poll_at"])

    db.table("clusters").create({
        "id": str, "canonical_article_id": str, "size": int, "first_seen_at": str,
        "last_seen_at": str,
    }, pk="id")

    db.table("articles").create({
        "id": str, "url": str, "canonical_url": str, "title": str, "text": str,
        "author": str, "published_at": str, "fetched_at": str, "language": str,
        "sitename": str, "feed_id": int, "cluster_id": str, "duplicate_of": str,
        "duplicate_kind": str, "duplicate_score": float, "text_hash": str,
        "text_source": str, "quality": str, "extract_error": str, "description": str,
        "word_count": int,
    }, pk="id", foreign_keys=[("feed_id", "feeds", "id"), ("cluster_id", "clusters", "id")])
    db.table("articles").create_index(["text_hash"])
    db.table("articles").create_index(["cluster_id"])
    db.table("articles").create_index(["fetched_at"])
    db.table("articles").create_index(["published_at"])
    db.table("articles").enable_fts(["title", "text"], create_triggers=True,
                              tokenize="porter unicode61")

    db.table("entries").create({
        "id": int, "feed_id": int, "entry_key": str, "guid": str, "link": str, "title": str,
        "published_at": str, "article_id": str, "seen_at": str,
    }, pk="id", not_null={"feed_id", "entry_key"},
        foreign_keys=[("feed_id", "feeds", "id"), ("article_id", "articles", "id")])
    db.table("entries").create_index(["feed_id", "entry_key"], unique=True)
    db.table("entries").create_index(["article_id"])

    db.table("article_urls").create({"url": str, "article_id": str}, pk="url",
                              foreign_keys=[("article_id", "articles", "id")])

    db.table("fetches").create({
        "id": int, "feed_id": int, "started_at": str, "duration_ms": int, "status": int,
        "bytes": int, "new_entries": int, "new_articles": int, "conditional": int,
        "error": str,
    }, pk="id", foreign_keys=[("feed_id", "feeds", "id")])
    db.table("fetches").create_index(["feed_id", "started_at"])


def _migration_2(db: sqlite_utils.Database) -> None:
    """Near-duplicate index and cluster provenance.

    `neardup_signatures` keeps the articles' MinHash signatures (every one until migration
    22, the window's since); `neardup_bands` is the LSH index over the recent ones;
    `duplicate_edges` keeps the evidence for every exact, near and related match.
    """
    db.table("neardup_signatures").create({
        "id": int, "article_id": str, "cluster_id": str, "signature": bytes, "shingles": int,
        "numbers": str, "indexed_at": str, "in_index": int, "indexable": int,
    }, pk="id", not_null={"article_id", "signature", "shingles", "indexed_at"},
        foreign_keys=[("article_id", "articles", "id")])
    db.table("neardup_signatures").create_index(["article_id"], unique=True)
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
    db.table("clusters").create_index(["size"])  # the view below reads multi-member clusters only
    db.table("neardup_meta").create({"key": str, "value": str}, pk="key")
    db.table("neardup_meta").insert({"key": "scheme", "value": neardup.SCHEME})
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


def _migration_7(db: sqlite_utils.Database) -> None:
    """Feed items that could not be read, per poll (each is skipped, not the whole feed)."""
    db.execute("ALTER TABLE fetches ADD COLUMN skipped_entries INTEGER")


def _migration_8(db: sqlite_utils.Database) -> None:
    """The anchor index (issue 11), a second candidate index beside the LSH bands: each
    signature keeps its anchors (pipeline.neardup.anchor_keys) as little-endian int64 in
    `neardup_signatures.anchors`, and `neardup_anchors` indexes them for the signatures in
    the window, pruned and rebuilt with the band rows. Articles stored before have no
    anchors (NULL) until `newswire reindex --from-text`; the band index still finds them.
    `neardup_meta.anchor_scheme` names the anchors' scheme, checked like `scheme`."""
    db.execute("ALTER TABLE neardup_signatures ADD COLUMN anchors BLOB")
    db.execute("CREATE TABLE neardup_anchors (anchor INTEGER NOT NULL, signature_id INTEGER "
               "NOT NULL, PRIMARY KEY (anchor, signature_id)) WITHOUT ROWID")
    db.execute("INSERT OR REPLACE INTO neardup_meta (key, value) VALUES ('anchor_scheme', ?)",
               [neardup.ANCHOR_SCHEME])


# The view as migration 9 left it (counted at read time); migration 14 replaces it.
STORIES_BY_OUTLETS_9 = """CREATE VIEW stories_by_outlets AS
    SELECT c.id AS cluster_id, canon.title AS canonical_title,
           c.canonical_article_id, canon.url AS canonical_url,
           m.outlets_count, m.outlets, m.articles,
           m.first_seen_at, m.last_seen_at, m.first_published_at,
           (SELECT group_concat(x.id) FROM clusters x WHERE x.merged_into = c.id)
               AS merged_cluster_ids
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
    ORDER BY m.last_seen_at DESC, c.id"""


def _migration_9(db: sqlite_utils.Database) -> None:
    """Clusters that heal (issue 11; pipeline.store.merges).

    A merged cluster keeps its row as a forwarding address: `merged_into` (the live cluster
    its members went to), `merged_at`, size 0, no canonical. `cluster_merges` is the
    history: which cluster became which, when, on the evidence of which article and its
    best match in each cluster. `duplicate_edges.coverage` is the verification's aligned
    coverage of a pair whose texts were compared. The view `stories_by_outlets` lists the
    ids merged into each story (`merged_cluster_ids`). Moving articles between clusters
    updates their cluster only, so the full-text index is rewritten only when a title or
    text changes."""
    db.execute("ALTER TABLE clusters ADD COLUMN merged_into TEXT REFERENCES clusters(id)")
    db.execute("ALTER TABLE clusters ADD COLUMN merged_at TEXT")
    db.execute("CREATE INDEX clusters_merged_into ON clusters (merged_into) "
               "WHERE merged_into IS NOT NULL")
    db.execute("""CREATE TABLE cluster_merges (
        id INTEGER PRIMARY KEY,
        source_id TEXT NOT NULL REFERENCES clusters(id),  -- merged away (now forwards)
        target_id TEXT NOT NULL REFERENCES clusters(id),  -- the cluster it became
        merged_at TEXT NOT NULL,
        article_id TEXT NOT NULL REFERENCES articles(id), -- whose evidence joined them
        source_match_id TEXT REFERENCES articles(id),     -- its best match in source ...
        source_score REAL,
        target_match_id TEXT REFERENCES articles(id),     -- ... and in target
        target_score REAL,
        source_size INTEGER, target_size INTEGER)         -- before the merge""")
    db.execute("CREATE INDEX cluster_merges_source ON cluster_merges (source_id)")
    db.execute("CREATE INDEX cluster_merges_target ON cluster_merges (target_id)")
    db.execute("ALTER TABLE duplicate_edges ADD COLUMN coverage REAL")
    db.execute("DROP TRIGGER IF EXISTS articles_au")
    db.execute("""CREATE TRIGGER articles_au AFTER UPDATE OF title, text ON articles BEGIN
  INSERT INTO articles_fts (articles_fts, rowid, title, text)
      VALUES ('delete', old.rowid, old.title, old.text);
  INSERT INTO articles_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
END""")
    db.execute("DROP VIEW IF EXISTS stories_by_outlets")
    db.execute(STORIES_BY_OUTLETS_9)


def _migration_10(db: sqlite_utils.Database) -> None:
    """Both publication dates and both languages of an article (issue 12): the page's own
    date as written there (its offset kept), the feed item's date (UTC), and the page's
    declared `<html lang>` beside the detected `language`. `published_at` stays the chosen
    one, in UTC."""
    for column in ("page_published_at", "feed_published_at", "declared_language"):
        db.execute(f"ALTER TABLE articles ADD COLUMN {column} TEXT")


def _migration_11(db: sqlite_utils.Database) -> None:
    """Filters and tags (issue 14): an entry kept out of the corpus by a keep or block rule
    says which (`filtered_by`); the categories feeds give their items, one row per entry
    and tag (with the entry's feed and article, for faceting)."""
    db.execute("ALTER TABLE entries ADD COLUMN filtered_by TEXT")
    db.execute("CREATE INDEX entries_filtered ON entries (feed_id, filtered_by) "
               "WHERE filtered_by IS NOT NULL")
    db.execute("""CREATE TABLE tags (
        entry_id INTEGER NOT NULL REFERENCES entries(id),
        tag TEXT NOT NULL,
        feed_id INTEGER NOT NULL REFERENCES feeds(id),
        article_id TEXT REFERENCES articles(id),
        PRIMARY KEY (entry_id, tag))""")
    db.execute("CREATE INDEX tags_tag ON tags (tag)")
    db.execute("CREATE INDEX tags_article ON tags (article_id)")


def _migration_12(db: sqlite_utils.Database) -> None:
    """What a feed's or site's extraction rules did to the page (or that their body
    selector matched nothing and the general extraction was used)."""
    db.execute("ALTER TABLE articles ADD COLUMN extract_rules TEXT")


def _migration_13(db: sqlite_utils.Database) -> None:
    """Indexes for reading a big corpus (issue 17): a feed's articles (its page, the
    articles table filtered by feed, newest first), the URLs of an article (its page),
    clusters by their latest copy (the clusters table), and the articles' facet columns."""
    db.execute("CREATE INDEX IF NOT EXISTS articles_feed_published ON articles "
               "(feed_id, published_at)")
    db.execute("CREATE INDEX IF NOT EXISTS article_urls_article ON article_urls (article_id)")
    db.execute("CREATE INDEX IF NOT EXISTS clusters_last_seen ON clusters (last_seen_at)")
    # Facets asked for on demand group a covering index, not the table and its texts.
    for column in ("sitename", "language", "duplicate_kind"):
        db.execute(f"CREATE INDEX IF NOT EXISTS articles_{column} ON articles ({column})")


def _migration_14(db: sqlite_utils.Database) -> None:
    """Counters and daily totals kept by the writer (pipeline.store.summaries), filled from
    what is stored; the stories carried by several outlets read from them."""
    summaries.create(db)
    db.execute("CREATE INDEX clusters_several_outlets ON clusters (last_seen_at, id) "
               "WHERE outlets > 1")
    db.execute("DROP VIEW IF EXISTS stories_by_outlets")
    db.execute(STORIES_BY_OUTLETS)


def _migration_18(db: sqlite_utils.Database) -> None:
    """Indexes the dashboards read (issue 15), so that each chart reads a window of small
    index entries and never an article's row with its text:
    - the articles of recent days with what the charts group them by (cluster, feed, site,
      copy or not): the front page's counts, articles per site per day, outlets compared;
    - a cluster's articles with their times, feed and site: a story's spread and the lag of
      each copy (it replaces the index on cluster_id alone, a prefix of it);
    - the feeds' daily totals by day with the polls and articles the charts add up (it
      replaces the index on day alone)."""
    db.execute("CREATE INDEX articles_day_spread ON articles "
               "(fetched_at, cluster_id, feed_id, sitename, published_at, duplicate_kind)")
    db.execute("CREATE INDEX articles_cluster_spread ON articles "
               "(cluster_id, published_at, fetched_at, feed_id, sitename, duplicate_kind)")
    db.execute("DROP INDEX IF EXISTS idx_articles_cluster_id")
    db.execute("CREATE INDEX feed_days_day_totals ON feed_days "
               "(day, polls, failed_polls, not_modified, new_articles)")
    db.execute("DROP INDEX IF EXISTS feed_days_day")


# Clusters whose copies come from more than one outlet (site name, else feed name, title or
# URL), read from the clusters' counters: `ORDER BY last_seen_at DESC` (most recently seen
# first) and counting its rows are walks of the partial index clusters_several_outlets. No
# ORDER BY of its own: that would make even `count(*)` compute every row.
STORIES_BY_OUTLETS = """CREATE VIEW stories_by_outlets AS
    SELECT c.id AS cluster_id,
           (SELECT title FROM articles WHERE id = c.canonical_article_id) AS canonical_title,
           c.canonical_article_id,
           (SELECT url FROM articles WHERE id = c.canonical_article_id) AS canonical_url,
           c.outlets AS outlets_count,
           (SELECT group_concat(outlet) FROM cluster_outlets WHERE cluster_id = c.id)
               AS outlets,
           c.size AS articles, c.first_seen_at, c.last_seen_at,
           (SELECT min(published_at) FROM articles WHERE cluster_id = c.id)
               AS first_published_at,
           (SELECT group_concat(x.id) FROM clusters x WHERE x.merged_into = c.id)
               AS merged_cluster_ids
    FROM clusters c
    WHERE c.outlets > 1"""


ARCHIVE_COLUMNS = ("warc_file", "warc_offset", "warc_length", "warc_record_id", "warc_digest")


def _migration_15(db: sqlite_utils.Database) -> None:
    """Where each article's page and each parsed feed body is kept in the WARC archive
    (pipeline.archive): file, offset and length of its records, record id, payload digest."""
    for table in ("articles", "fetches"):
        for column in ARCHIVE_COLUMNS:
            kind = "INTEGER" if column in ("warc_offset", "warc_length") else "TEXT"
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _migration_16(db: sqlite_utils.Database) -> None:
    """Every text an article has had: a revision when its page changed (the feed said so,
    or a re-extraction read the archived page differently)."""
    db.execute("""CREATE TABLE article_versions (
        article_id TEXT NOT NULL REFERENCES articles(id),
        version INTEGER NOT NULL,        -- 1 for the first text stored
        title TEXT, text TEXT, text_hash TEXT,
        created_at TEXT NOT NULL,
        reason TEXT NOT NULL,            -- first | update | reextract
        extractor TEXT,                  -- pipeline.extract.EXTRACTOR (what made the text)
        warc_file TEXT, warc_offset INTEGER, warc_length INTEGER,
        PRIMARY KEY (article_id, version)) WITHOUT ROWID""")
    db.execute("ALTER TABLE entries ADD COLUMN updated_at TEXT")


def _migration_20(db: sqlite_utils.Database) -> None:
    """Articles per outlet per UTC day, and each copy's lag behind its story's first copy
    (pipeline.store.summaries, issue 15): the dashboards' articles per site and outlets
    compared read them instead of counting and ranking a month of articles. Filled from
    what is stored."""
    summaries.create_20(db)


def _migration_21(db: sqlite_utils.Database) -> None:
    """The dates an article has from both its feed item and its page, by when it was stored
    (issue 17): the canned query comparing them reads a window of recent days from this
    index, not the rows (whose dates come after the text, on its overflow pages)."""
    db.execute("CREATE INDEX articles_dated_twice ON articles "
               "(fetched_at, feed_id, feed_published_at, page_published_at) "
               "WHERE feed_published_at IS NOT NULL AND page_published_at IS NOT NULL")


def _migration_22(db: sqlite_utils.Database) -> None:
    """Signatures are kept for the near-duplicate window only (issue 17, pipeline.store.
    index): those already out of it, and exact copies' (never indexed), go. The pages they
    held are reused by new rows; `VACUUM` gives them back to the file system."""
    db.execute("DELETE FROM neardup_signatures WHERE in_index = 0")


def _migration_23(db: sqlite_utils.Database) -> None:
    """`in_index` and `indexable` leave `neardup_signatures`: since migration 22 every
    signature kept is in the index (an exact copy keeps none), so both were always 1. The
    window's index on `indexed_at` (what pruning reads, oldest first) loses its condition."""
    db.execute("DROP INDEX neardup_signatures_in_index")
    db.execute("CREATE INDEX neardup_signatures_indexed_at ON neardup_signatures (indexed_at)")
    db.execute("ALTER TABLE neardup_signatures DROP COLUMN in_index")
    db.execute("ALTER TABLE neardup_signatures DROP COLUMN indexable")


def _migration_24(db: sqlite_utils.Database) -> None:
    """`feeds.config_error`: why the feed's config line does not read (NULL when it does).
    Such a feed keeps its row and data but is not polled until the line is fixed."""
    db.execute("ALTER TABLE feeds ADD COLUMN config_error TEXT")


def _migration_25(db: sqlite_utils.Database) -> None:
    """`page_retries`: new articles whose page failed, tried again at their feed's later
    polls (pipeline.store.retries). Articles stored before it are not retried."""
    db.execute("CREATE TABLE page_retries (article_id TEXT PRIMARY KEY, "
               "feed_id INTEGER NOT NULL, attempts INTEGER NOT NULL, next_at TEXT NOT NULL)")
    db.execute("CREATE INDEX page_retries_due ON page_retries (feed_id, next_at)")


MIGRATIONS = {1: _migration_1, 2: _migration_2, 5: _migration_5, 6: _migration_6,
              7: _migration_7, 8: _migration_8, 9: _migration_9, 10: _migration_10,
              11: _migration_11, 12: _migration_12, 13: _migration_13, 14: _migration_14,
              15: _migration_15, 16: _migration_16, 18: _migration_18,
              20: _migration_20, 21: _migration_21, 22: _migration_22, 23: _migration_23,
              24: _migration_24, 25: _migration_25}
SCHEMA_VERSION = max(MIGRATIONS)


LEDGER = "schema_migrations"
LEDGER_SQL = f"""CREATE TABLE IF NOT EXISTS {LEDGER} (
    number INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL)"""

# The migrations main had before the ledger existed: a database without the ledger has
# applied exactly those of them numbered up to its user_version.
BEFORE_LEDGER = (1, 2, 5, 6, 7, 11, 12)


def applied(db: sqlite_utils.Database) -> set[int]:
    """The migrations this database has had (read from the ledger, or inferred)."""
    if db[LEDGER].exists():
        return {int(r[0]) for r in db.execute(f"SELECT number FROM {LEDGER}")}
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    return {n for n in BEFORE_LEDGER if n <= version}


def unknown(done: set[int]) -> set[int]:
    """Migrations applied by a newer newswire than this one."""
    return done - MIGRATIONS.keys()


def pending(done: set[int]) -> list[int]:
    """The migrations a database that has had `done` still needs, in order."""
    return sorted(MIGRATIONS.keys() - done)
