"""Recording polls: entries, articles, clusters, evidence, the fetch log and the feed's new
state, written together; and the reads that plan a poll's pages.

Each `PollResult` (with its entries) is written in one transaction by the writer
(pipeline.store.writer), so a crash at any point loses nothing and doubles nothing: a poll is
recorded whole or not at all, and then simply happens again. What a new article is (an
original, an exact or a near copy) is decided by `pipeline.dedupe.decide` from what is read
here; this module only reads the evidence and writes the outcome.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

import sqlite_utils

from pipeline.boilerplate import site_of
from pipeline.config import DedupeConfig
from pipeline.dedupe import (
    Decision,
    ExactMatch,
    Thresholds,
    canonical_claim_holds,
    canonical_member,
    canonical_url,
    decide,
    guid_key,
    is_near_copy,
    is_text_dedupe_candidate,
    keyed_by_page,
    text_hash,
    unseen_key,
)
from pipeline.messages import (
    EXACT,
    FROM_FEED,
    NEAR,
    OWN_FEED,
    ArchiveLocation,
    Article,
    Entry,
    EntryBatch,
    EntryPlan,
    Fingerprint,
    NewEntry,
    PollResult,
    PollSummary,
    Revision,
    RevisionBatch,
    StoredArticle,
)
from pipeline.store import feeds, index, lines, merges, retries, versions
from pipeline.store.schema import ARCHIVE_COLUMNS
from pipeline.text import word_count


class Store(Protocol):
    """What recording needs of the store (pipeline.store.database.Store)."""

    db: sqlite_utils.Database
    dedupe: DedupeConfig

    def check_scheme(self) -> None: ...

    @property
    def thresholds(self) -> Thresholds: ...

    def near_match(self, article_id: str, fingerprint: Fingerprint, text: str = "",
                   title: str = "") -> Decision: ...


# --- planning: what the store already knows of a poll's entries ------------------------------

MAX_REFETCH = 10  # pages of changed entries fetched again per poll, at most
RESTAMP_MIN = 5  # a feed whose items all have a later `updated` (5 or more): noise
IN_CHUNK = 500  # bound values in one `IN (...)` list, well under SQLite's limit

def known_keys(db: sqlite_utils.Database, feed_id: int, keys: Sequence[str]) -> set[str]:
    """Which of these entry keys the feed has carried before."""
    known: set[str] = set()
    for chunk in _chunks(list(keys), IN_CHUNK):
        known.update(r[0] for r in db.execute(
            f"SELECT entry_key FROM entries WHERE feed_id = ? AND entry_key IN "
            f"({','.join('?' * len(chunk))})", [feed_id, *chunk]))
    return known


def stored_entries(db: sqlite_utils.Database, feed_id: int, keys: Sequence[str]
                   ) -> dict[str, tuple[str | None, str | None]]:
    """Which of these entry keys the feed has carried before, with their (link, title)."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for chunk in _chunks(list(dict.fromkeys(keys)), IN_CHUNK):
        found.update((r[0], (r[1], r[2])) for r in db.execute(
            f"SELECT entry_key, link, title FROM entries WHERE feed_id = ? AND entry_key IN "
            f"({','.join('?' * len(chunk))})", [feed_id, *chunk]))
    return found


def under_guid(db: sqlite_utils.Database, feed_id: int, key: str
               ) -> dict[str, tuple[str | None, str | None]]:
    """Every entry the feed recorded under a GUID's plain key (`guid:...`) or a separate key
    of it (`guid:...|...`), with its (link, title): an index range, not a scan."""
    return {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT entry_key, link, title FROM entries WHERE feed_id = ? AND "
        "(entry_key = ? OR (entry_key >= ? AND entry_key < ?))",
        [feed_id, key, key + "|", key + "}"])}


def unseen(db: sqlite_utils.Database, feed_id: int, entries: Sequence[Entry]
           ) -> tuple[Entry, ...]:
    """The entries this feed has not carried before, each under the key to record it by
    (an item under a GUID the feed used for another item gets a key of its own:
    pipeline.dedupe.unseen_key)."""
    stored = stored_entries(db, feed_id, [e.key for e in entries])
    fresh = []
    for entry in entries:
        key = unseen_key(entry, stored)
        gkey = guid_key(entry)
        if key is not None and gkey is not None:  # recorded under another key of its GUID?
            stored.update(under_guid(db, feed_id, gkey))
            key = unseen_key(entry, stored)
        if key is not None:
            fresh.append(entry if key == entry.key else replace(entry, key=key))
    return tuple(fresh)


def changed(db: sqlite_utils.Database, feed_id: int, entries: Sequence[Entry]
            ) -> list[tuple[Entry, str, bool]]:
    """Entries this feed carried before, with an article, that the feed now gives another
    title or a later `updated` date: (entry, article id, whether to fetch its page again).
    A first `updated` date for an entry stored without one is only noted."""
    stored: dict[str, tuple[str, str | None, str]] = {}
    for chunk in _chunks([e.key for e in entries], IN_CHUNK):
        stored.update((r[0], (r[1], r[2], r[3])) for r in db.execute(
            f"SELECT entry_key, title, updated_at, article_id FROM entries WHERE feed_id = ? "
            f"AND article_id IS NOT NULL AND entry_key IN ({','.join('?' * len(chunk))})",
            [feed_id, *chunk]))
    found = []
    for entry in entries:
        if entry.key not in stored:
            continue
        title, updated_at, article_id = stored[entry.key]
        retitled = bool(entry.title) and entry.title != title
        later = entry.updated_at is not None and updated_at is not None and \
            entry.updated_at > updated_at
        noted = entry.updated_at is not None and updated_at is None
        if retitled or later or noted:
            found.append((entry, article_id, retitled, later))
    # A feed that dates every item anew at each poll says nothing about any one of them.
    restamped = len(stored) >= RESTAMP_MIN and sum(f[3] for f in found) == len(stored)
    refetch = [(e, a, r or (later and not restamped)) for e, a, r, later in found]
    over = [i for i, f in enumerate(refetch) if f[2]][MAX_REFETCH:]  # the rest: noted only
    for i in over:
        refetch[i] = (refetch[i][0], refetch[i][1], False)
    return refetch


def plan_entries(db: sqlite_utils.Database, feed_id: int, entries: Sequence[Entry],
                 with_articles: bool = False) -> EntryPlan:
    """The entries this feed has not carried before, the articles already stored under
    their links (canonical link → article id) and, with_articles (the feed's filters read
    text, author or language), those articles' fields."""
    fresh = unseen(db, feed_id, entries)
    links = sorted({canonical_url(e.link) for e in fresh if e.link})
    stored = articles_for_urls(db, links)
    articles = stored_articles(db, sorted(set(stored.values()))) if with_articles else {}
    return EntryPlan(feed_id, fresh, stored, articles)


def stored_articles(db: sqlite_utils.Database, ids: Sequence[str]) -> dict[str, StoredArticle]:
    """What the filters read of stored articles (pipeline.filters), by id."""
    found: dict[str, StoredArticle] = {}
    for chunk in _chunks(list(ids), IN_CHUNK):
        found.update((r[0], StoredArticle(r[0], r[1] or "", r[2], r[3], r[4] or ""))
                     for r in db.execute(
            f"SELECT id, url, author, language, text FROM articles WHERE id IN "
            f"({','.join('?' * len(chunk))})", chunk))
    return found


def articles_for_urls(db: sqlite_utils.Database, urls: Sequence[str]) -> dict[str, str]:
    """Canonical URL → stored article id, for the URLs already known."""
    found: dict[str, str] = {}
    for chunk in _chunks(list(urls), IN_CHUNK):
        found.update((r[0], r[1]) for r in db.execute(
            f"SELECT url, article_id FROM article_urls WHERE url IN "
            f"({','.join('?' * len(chunk))})", chunk))
    return found


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    """`items` in lists of at most `size`, for `IN (...)` lists of bound values."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- recording ---------------------------------------------------------------------------------

def record(store: Store, item: PollResult | EntryBatch | RevisionBatch, now: str
           ) -> PollSummary:
    """One poll (or entry batch, or revisions) inside the caller's transaction."""
    db = store.db
    if isinstance(item, RevisionBatch):
        return PollSummary(revised=sum(versions.record(db, r, now) for r in item.revisions))
    new_articles = exact = near = 0
    feeds.note_site(db, item.feed_id, item.feed_link)
    for entry in item.entries:
        article_id, kind = entry.existing_article_id, None
        if entry.article is not None:
            kind, article_id = _add_article(store, entry, item.feed_id, now)
            new_articles += kind is not None
            exact += kind == EXACT
            near += kind == NEAR
        if article_id and kind is None:  # stored before, maybe through another site's feed
            _own_site_feed(db, item.feed_id, entry, article_id, now)
        cursor = db.execute(
            "INSERT OR IGNORE INTO entries (feed_id, entry_key, guid, link, title, "
            "published_at, updated_at, article_id, seen_at, filtered_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [item.feed_id, entry.key, entry.guid, entry.link, entry.title,
             entry.published_at, entry.updated_at, article_id, now, entry.filtered_by])
        if entry.tags and cursor.rowcount == 1:
            db.conn.executemany(
                "INSERT OR IGNORE INTO tags (entry_id, tag, feed_id, article_id) "
                "VALUES (?, ?, ?, ?)",
                [(cursor.lastrowid, tag, item.feed_id, article_id) for tag in entry.tags])
        if article_id:
            for alias in entry.url_aliases:
                db.execute("INSERT OR IGNORE INTO article_urls (url, article_id) "
                           "VALUES (?, ?)", [alias, article_id])
    revised = 0
    if isinstance(item, PollResult):
        revised = sum(versions.record(db, r, now) for r in item.revisions)
        feeds.after_poll(db, item, now)
        _insert(db, "fetches", fetch_row(item, new_articles))
    return PollSummary(len(item.entries), new_articles, exact, near, revised)


def fetch_row(item: PollResult, new_articles: int) -> dict[str, Any]:
    """A poll's fetch-log row (`new_articles`: those its entries stored)."""
    return {
        "feed_id": item.feed_id, "started_at": item.started_at,
        "duration_ms": item.duration_ms, "status": item.status, "bytes": item.bytes,
        "new_entries": item.new_entry_count,
        "new_articles": item.batched_articles + new_articles,
        "conditional": int(item.conditional), "error": item.error,
        "skipped_entries": item.skipped_entries,
        **_archive_columns(item.archived),
    }


def record_write_failure(db: sqlite_utils.Database, feed_id: int, started_at: str,
                         duration_ms: int, status: int | None, error: str,
                         retry_at: str) -> None:
    """After a failed poll write: the error, the retry time and a fetch-log row, leaving
    the feed's validators and failure count alone."""
    feeds.write_failed(db, feed_id, error, retry_at)
    _insert(db, "fetches", {"feed_id": feed_id, "started_at": started_at,
                            "duration_ms": duration_ms, "status": status, "bytes": 0,
                            "new_entries": 0, "new_articles": 0, "conditional": 0,
                            "error": error})


def _archive_columns(location: ArchiveLocation | None) -> dict[str, Any]:
    if location is None:
        return {}
    return dict(zip(ARCHIVE_COLUMNS, (location.file, location.offset, location.length,
                                      location.record_id, location.digest), strict=True))


def _insert(db: sqlite_utils.Database, table: str, values: dict[str, Any]) -> None:
    """A plain INSERT: sqlite-utils' insert() inspects the table on every call, which costs
    more than the insert itself on the per-article path."""
    db.execute(f"INSERT INTO {table} ({', '.join(values)}) "
               f"VALUES ({', '.join('?' * len(values))})", list(values.values()))


def _add_article(store: Store, entry: NewEntry, feed_id: int, now: str
                 ) -> tuple[str | None, str]:
    """Insert the entry's article unless its id is stored; return (kind, article id).

    kind is None when the article already existed, '' for a new original, 'exact' or
    'near' for a new copy of a stored text. A near copy whose evidence joins several
    clusters merges them (pipeline.store.merges) once it is stored.
    """
    db = store.db
    article = entry.article
    assert article is not None
    if entry.fingerprint is not None:
        store.check_scheme()
    digest = text_hash(article.text) if article.text else None
    stored = db.execute("SELECT url, text_hash FROM articles WHERE id = ?",
                        [article.id]).fetchone()
    if stored is not None:
        same_text = digest is not None and digest == stored[1]
        if canonical_claim_holds(article.url, stored[0], same_text, not same_text and
                                 is_near_copy(entry.fingerprint, article.text, article.title,
                                              index.stored_candidate(db, article.id),
                                              index.Reader(db), store.thresholds)):
            return None, article.id
        # Another page with another text claims the same canonical URL (a site pointing
        # every article at its home or section page): key this one by its own URL.
        article = keyed_by_page(article)
        if db.execute("SELECT 1 FROM articles WHERE id = ?", [article.id]).fetchone():
            return None, article.id

    decision = _decide(store, article.id, digest, article, entry)
    if decision.kind is None:
        db.execute("INSERT INTO clusters (id, canonical_article_id, size, first_seen_at, "
                   "last_seen_at) VALUES (?, ?, 0, ?, ?)",
                   [decision.cluster_id, article.id, now, now])
    _insert(db, "articles", {
        "id": article.id, "url": article.url, "canonical_url": article.canonical_url,
        "title": article.title, "text": article.text, "author": article.author,
        "published_at": article.published_at, "fetched_at": now,
        "language": article.language, "sitename": article.sitename, "feed_id": feed_id,
        "cluster_id": decision.cluster_id, "duplicate_of": decision.duplicate_of,
        "duplicate_kind": decision.kind, "duplicate_score": decision.score,
        "text_hash": digest, "text_source": article.text_source, "quality": article.quality,
        "extract_error": article.extract_error, "description": article.description,
        "word_count": word_count(article.text),
        "claimed_canonical_url": article.claimed_canonical_url,
        "page_published_at": article.page_published_at,
        "feed_published_at": article.feed_published_at,
        "declared_language": article.declared_language,
        "extract_rules": article.rules_note,
        **_archive_columns(entry.archived),
    })
    if article.text_source == FROM_FEED and retries.worth_retrying(article.extract_error):
        retries.schedule(db, article.id, feed_id, now)  # the page failed: try it again later
    contenders = merges.canonicals(db, [decision.cluster_id, *(
        cluster for merge in decision.merges for cluster in (merge.source, merge.target))]
    ) if decision.merges else []
    for merge in decision.merges:  # the clusters its evidence joins (clusters that heal)
        merges.apply(db, merge, article.id, now)
    db.execute("UPDATE clusters SET size = size + 1, last_seen_at = ? WHERE id = ?",
               [now, decision.cluster_id])
    if decision.merges:
        merges.repick_canonical(db, decision.cluster_id, store.dedupe.agencies,
                                [*contenders, article.id])
    elif decision.kind is not None:
        _update_canonical(store, decision.cluster_id, article.id)
    if entry.fingerprint is not None:
        index.add(db, article.id, decision.cluster_id, entry.fingerprint,
                  indexable=decision.kind != EXACT, now=now)
    if decision.edges:
        db.conn.executemany(
            "INSERT OR IGNORE INTO duplicate_edges (article_id, other_id, kind, containment, "
            "jaccard, numbers_overlap, note, created_at, coverage) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(e.article_id, e.other_id, e.kind, e.containment, e.jaccard, e.numbers_overlap,
              e.note, now, e.coverage) for e in decision.edges])
    if article.canonical_url:
        db.execute("INSERT OR IGNORE INTO article_urls (url, article_id) VALUES (?, ?)",
                   [article.canonical_url, article.id])
    if decision.kind is None and article.line_keys:  # only originals count: copies add nothing
        lines.count(db, site_of(article.url), article.line_keys, now)
    return decision.kind or "", article.id


def _own_site_feed(db: sqlite_utils.Database, feed_id: int, entry: NewEntry,
                   article_id: str, now: str) -> None:
    """An article that another site's feed stored (an aggregator's, with its own headline
    and the time it listed the story), reached by a feed of the article's own site: that
    feed names, dates and counts it from now on (`articles.feed_id`), takes its page's
    retries, and another site's feed no longer retitles it (pipeline.store.versions). An
    import's or a backfill's article keeps what it came with."""
    row = db.execute("SELECT url, feed_id FROM articles WHERE id = ?", [article_id]).fetchone()
    if row is None or row[1] in (None, feed_id):
        return
    url, owner = row
    if feeds.voice(db, owner, url) != feeds.OTHER or feeds.voice(db, feed_id, url) != feeds.OWN:
        return
    db.execute("UPDATE articles SET feed_id = ?, published_at = coalesce(?, published_at), "
               "feed_published_at = coalesce(?, feed_published_at) WHERE id = ?",
               [feed_id, entry.published_at, entry.published_at, article_id])
    db.execute("UPDATE page_retries SET feed_id = ? WHERE article_id = ?", [feed_id, article_id])
    if entry.title:
        versions.record(db, Revision(article_id, OWN_FEED, title=entry.title,
                                     feed_id=feed_id), now)


def _decide(store: Store, article_id: str, digest: str | None, article: Article,
            entry: NewEntry) -> Decision:
    """Read the evidence for a new article (its exact twin, else its index candidates and
    their texts) and let pipeline.dedupe decide."""
    db = store.db
    exact = None
    if digest and is_text_dedupe_candidate(article.text):
        # duplicate_of names a stored copy with this very text (a near duplicate's own
        # duplicate_of has another text).
        row = db.execute(
            "SELECT id, CASE WHEN duplicate_kind = ? THEN duplicate_of ELSE id END, "
            "cluster_id FROM articles WHERE text_hash = ? ORDER BY fetched_at, id LIMIT 1",
            [EXACT, digest]).fetchone()
        if row:
            exact = ExactMatch(row[0], row[1], row[2])
    if exact is not None or entry.fingerprint is None:
        return decide(article_id, exact, entry.fingerprint, [], index.Reader(db))
    return store.near_match(article_id, entry.fingerprint, article.text, article.title)


def _update_canonical(store: Store, cluster_id: str, article_id: str) -> None:
    """Make the new member canonical if it ranks first (pipeline.dedupe.canonical_member)."""
    rows = store.db.execute(
        f"{merges.MEMBER_FIELDS} WHERE id IN "
        "(?, (SELECT canonical_article_id FROM clusters WHERE id = ?))",
        [article_id, cluster_id]).fetchall()
    best = canonical_member([merges.member(r) for r in rows], store.dedupe.agencies)
    store.db.execute("UPDATE clusters SET canonical_article_id = ? WHERE id = ?",
                     [best, cluster_id])
