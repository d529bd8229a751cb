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
from typing import Any, Protocol

import sqlite_utils

from pipeline.boilerplate import site_of
from pipeline.config import DedupeConfig
from pipeline.dedupe import (
    Decision,
    ExactMatch,
    Member,
    canonical_claim_holds,
    canonical_member,
    canonical_url,
    decide,
    is_text_dedupe_candidate,
    keyed_by_page,
    text_hash,
)
from pipeline.messages import (
    Entry,
    EntryBatch,
    EntryPlan,
    Fingerprint,
    NewEntry,
    PollResult,
    PollSummary,
)
from pipeline.store import feeds, index, lines


class Store(Protocol):
    """What recording needs of the store (pipeline.store.database.Store)."""

    db: sqlite_utils.Database
    dedupe: DedupeConfig

    def check_scheme(self) -> None: ...

    def near_match(self, article_id: str, fingerprint: Fingerprint) -> Decision: ...


# --- planning: what the store already knows of a poll's entries ------------------------------

def known_keys(db: sqlite_utils.Database, feed_id: int, keys: Sequence[str]) -> set[str]:
    """Which of these entry keys the feed has carried before."""
    known: set[str] = set()
    for chunk in _chunks(list(keys), 500):
        known.update(r[0] for r in db.execute(
            f"SELECT entry_key FROM entries WHERE feed_id = ? AND entry_key IN "
            f"({','.join('?' * len(chunk))})", [feed_id, *chunk]))
    return known


def unseen(db: sqlite_utils.Database, feed_id: int, entries: Sequence[Entry]
           ) -> tuple[Entry, ...]:
    """The entries this feed has not carried before."""
    known = known_keys(db, feed_id, [e.key for e in entries])
    return tuple(e for e in entries if e.key not in known)


def plan_entries(db: sqlite_utils.Database, feed_id: int, entries: Sequence[Entry]
                 ) -> EntryPlan:
    """The entries this feed has not carried before, and the articles already stored under
    their links (canonical link → article id)."""
    fresh = unseen(db, feed_id, entries)
    links = sorted({canonical_url(e.link) for e in fresh if e.link})
    return EntryPlan(feed_id, fresh, articles_for_urls(db, links))


def articles_for_urls(db: sqlite_utils.Database, urls: Sequence[str]) -> dict[str, str]:
    """Canonical URL → stored article id, for the URLs already known."""
    found: dict[str, str] = {}
    for chunk in _chunks(list(urls), 500):
        found.update((r[0], r[1]) for r in db.execute(
            f"SELECT url, article_id FROM article_urls WHERE url IN "
            f"({','.join('?' * len(chunk))})", chunk))
    return found


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- recording ---------------------------------------------------------------------------------

def record(store: Store, item: PollResult | EntryBatch, now: str) -> PollSummary:
    """One poll (or entry batch) inside the caller's transaction."""
    db = store.db
    new_articles = exact = near = 0
    for entry in item.entries:
        article_id = entry.existing_article_id
        if entry.article is not None:
            kind, article_id = _add_article(store, entry, item.feed_id, now)
            new_articles += kind is not None
            exact += kind == "exact"
            near += kind == "near"
        db.execute(
            "INSERT OR IGNORE INTO entries (feed_id, entry_key, guid, link, title, "
            "published_at, article_id, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [item.feed_id, entry.key, entry.guid, entry.link, entry.title,
             entry.published_at, article_id, now])
        if article_id:
            for alias in entry.url_aliases:
                db.execute("INSERT OR IGNORE INTO article_urls (url, article_id) "
                           "VALUES (?, ?)", [alias, article_id])
    if isinstance(item, PollResult):
        feeds.after_poll(db, item, now)
        _insert(db, "fetches", fetch_row(item, new_articles))
    return PollSummary(len(item.entries), new_articles, exact, near)


def fetch_row(item: PollResult, new_articles: int) -> dict[str, Any]:
    """A poll's fetch-log row (`new_articles`: those its entries stored)."""
    return {
        "feed_id": item.feed_id, "started_at": item.started_at,
        "duration_ms": item.duration_ms, "status": item.status, "bytes": item.bytes,
        "new_entries": item.new_entry_count,
        "new_articles": item.batched_articles + new_articles,
        "conditional": int(item.conditional), "error": item.error,
        "skipped_entries": item.skipped_entries,
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


def _insert(db: sqlite_utils.Database, table: str, values: dict[str, Any]) -> None:
    """A plain INSERT: sqlite-utils' insert() inspects the table on every call, which costs
    more than the insert itself on the per-article path."""
    db.execute(f"INSERT INTO {table} ({', '.join(values)}) "
               f"VALUES ({', '.join('?' * len(values))})", list(values.values()))


def _add_article(store: Store, entry: NewEntry, feed_id: int, now: str
                 ) -> tuple[str | None, str]:
    """Insert the entry's article unless its id is stored; return (kind, article id).

    kind is None when the article already existed, '' for a new original, 'exact' or
    'near' for a new copy of a stored text.
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
        similarity = index.similarity(db, article.id, entry.fingerprint)
        if canonical_claim_holds(article.url, stored[0],
                                 digest is not None and digest == stored[1],
                                 similarity, store.dedupe.threshold):
            return None, article.id
        # Another page with another text claims the same canonical URL (a site pointing
        # every article at its home or section page): key this one by its own URL.
        article = keyed_by_page(article)
        if db.execute("SELECT 1 FROM articles WHERE id = ?", [article.id]).fetchone():
            return None, article.id

    decision = _decide(store, article.id, digest, article.text, entry)
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
        "word_count": len(article.text.split()),
        "claimed_canonical_url": article.claimed_canonical_url,
    })
    db.execute("UPDATE clusters SET size = size + 1, last_seen_at = ? WHERE id = ?",
               [now, decision.cluster_id])
    if decision.kind is not None:
        _update_canonical(store, decision.cluster_id, article.id)
    if entry.fingerprint is not None:
        index.add(db, article.id, decision.cluster_id, entry.fingerprint,
                  indexable=decision.kind != "exact", now=now)
    if decision.edges:
        db.conn.executemany(
            "INSERT OR IGNORE INTO duplicate_edges (article_id, other_id, kind, containment, "
            "jaccard, numbers_overlap, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(e.article_id, e.other_id, e.kind, e.containment, e.jaccard, e.numbers_overlap,
              e.note, now) for e in decision.edges])
    if article.canonical_url:
        db.execute("INSERT OR IGNORE INTO article_urls (url, article_id) VALUES (?, ?)",
                   [article.canonical_url, article.id])
    if decision.kind is None and article.line_keys:  # only originals count: copies add nothing
        lines.count(db, site_of(article.url), article.line_keys, now)
    return decision.kind or "", article.id


def _decide(store: Store, article_id: str, digest: str | None, text: str,
            entry: NewEntry) -> Decision:
    """Read the evidence for a new article (its exact twin, else its index candidates) and
    let pipeline.dedupe decide."""
    db = store.db
    exact = None
    if digest and is_text_dedupe_candidate(text):
        # duplicate_of names a stored copy with this very text (a near duplicate's own
        # duplicate_of has another text).
        row = db.execute(
            "SELECT id, CASE WHEN duplicate_kind = 'exact' THEN duplicate_of ELSE id END, "
            "cluster_id FROM articles WHERE text_hash = ? ORDER BY fetched_at, id LIMIT 1",
            [digest]).fetchone()
        if row:
            exact = ExactMatch(row[0], row[1], row[2])
    if exact is not None or entry.fingerprint is None:
        return decide(article_id, exact, entry.fingerprint, [], store.dedupe.threshold,
                      store.dedupe.related_threshold)
    return store.near_match(article_id, entry.fingerprint)


def _update_canonical(store: Store, cluster_id: str, article_id: str) -> None:
    """Make the new member canonical if it ranks first (pipeline.dedupe.canonical_member)."""
    rows = store.db.execute(
        "SELECT id, sitename, coalesce(nullif(canonical_url, ''), url), "
        "coalesce(published_at, fetched_at), length(text) FROM articles "
        "WHERE id IN (?, (SELECT canonical_article_id FROM clusters WHERE id = ?))",
        [article_id, cluster_id]).fetchall()
    best = canonical_member([Member(r[0], r[1], r[2], r[3], r[4] or 0) for r in rows],
                            store.dedupe.agencies)
    store.db.execute("UPDATE clusters SET canonical_article_id = ? WHERE id = ?",
                     [best, cluster_id])
