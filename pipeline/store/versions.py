"""Article versions: every title and text an article has had (`article_versions`).

The first text is recorded as version 1 only when a second one comes, so an article that
never changes costs nothing here. `articles` always shows the newest; the full-text index
follows through its triggers, and the near-duplicate signature is replaced.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from pipeline.dedupe import text_hash
from pipeline.messages import FIRST, FROM_PAGE, RETRY, PageMetadata, Revision
from pipeline.store import feeds, index, retries
from pipeline.store.schema import ARCHIVE_COLUMNS
from pipeline.text import word_count


def record(db: sqlite_utils.Database, revision: Revision, now: str) -> bool:
    """Apply one revision inside the caller's transaction; whether a version was added."""
    if revision.entry_key is not None and revision.feed_id is not None:
        db.execute("UPDATE entries SET title = coalesce(?, title), "
                   "updated_at = coalesce(?, updated_at) WHERE feed_id = ? AND entry_key = ?",
                   [revision.entry_title, revision.entry_updated_at, revision.feed_id,
                    revision.entry_key])
    row = db.execute(f"SELECT title, text, text_hash, fetched_at, {', '.join(ARCHIVE_COLUMNS)}, "
                     "url, feed_id FROM articles WHERE id = ?", [revision.article_id]).fetchone()
    if row is None:
        return False
    if revision.page is not None:
        _page_metadata(db, revision.article_id, revision.page)
    if revision.reason == RETRY:
        _retried(db, revision, now)
    title = revision.title if revision.title and _names(db, revision, row[-2], row[-1]) \
        else row[0]
    text = revision.text if revision.text else row[1]
    digest = text_hash(text) if text else None
    if title == row[0] and digest == row[2]:
        return False
    versions = db.execute("SELECT max(version) FROM article_versions WHERE article_id = ?",
                          [revision.article_id]).fetchone()[0]
    if versions is None:  # the first text becomes version 1 now that there is a second
        _insert(db, {"article_id": revision.article_id, "version": 1, "title": row[0],
                     "text": row[1], "text_hash": row[2], "created_at": row[3],
                     "reason": FIRST, "warc_file": row[4], "warc_offset": row[5],
                     "warc_length": row[6]})
        versions = 1
    archived = revision.archived
    _insert(db, {"article_id": revision.article_id, "version": versions + 1, "title": title,
                 "text": text, "text_hash": digest, "created_at": now,
                 "reason": revision.reason, "extractor": revision.extractor,
                 "warc_file": archived.file if archived else None,
                 "warc_offset": archived.offset if archived else None,
                 "warc_length": archived.length if archived else None})
    values: dict[str, Any] = {"title": title, "text": text, "text_hash": digest,
                              "word_count": word_count(text or "")}
    if archived is not None:
        values.update(zip(ARCHIVE_COLUMNS, (archived.file, archived.offset, archived.length,
                                            archived.record_id, archived.digest), strict=True))
    db.execute(f"UPDATE articles SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
               [*values.values(), revision.article_id])
    if digest != row[2] and revision.fingerprint is not None:
        index.replace(db, revision.article_id, revision.fingerprint)
    return True


def _names(db: sqlite_utils.Database, revision: Revision, url: str, owner: int | None
           ) -> bool:
    """Whether the revision's feed may retitle the article: the feed that stored it, a
    feed of the article's own site, or any feed while no feed of its site has it; not
    another site's feed (an aggregator's headline) once the site's own feed has it."""
    if revision.feed_id is None or revision.feed_id == owner or owner is None:
        return True
    return feeds.voice(db, owner, url) != feeds.OWN or \
        feeds.voice(db, revision.feed_id, url) == feeds.OWN


def _retried(db: sqlite_utils.Database, revision: Revision, now: str) -> None:
    """A failed page tried again. When it read (its metadata came with it), the error goes
    and its quality flags come; with a text, the article's text is the page's from now on
    (else the feed's text stayed the better one). Either way its retries move on."""
    read = revision.page is not None
    if read:
        db.execute("UPDATE articles SET extract_error = NULL, quality = ?, "
                   "text_source = CASE WHEN ? THEN ? ELSE text_source END WHERE id = ?",
                   [revision.quality, bool(revision.text), FROM_PAGE, revision.article_id])
    retries.tried(db, revision.article_id, read, now)


def _page_metadata(db: sqlite_utils.Database, article_id: str, page: PageMetadata) -> None:
    """What a re-extraction read from the page (no version: versions are about the text).
    The page's authors, own date and languages replace the stored ones where it gave them;
    the chosen `published_at` is only filled where there was none: the feed's date, or the
    date an earlier extraction chose, stays."""
    values = {name: value for name in ("author", "page_published_at", "language",
                                       "declared_language")
              if (value := getattr(page, name)) is not None}
    sets = [f"{name} = ?" for name in values]
    if page.published_at is not None:
        sets.append("published_at = coalesce(published_at, ?)")
        values["published_at"] = page.published_at
    if sets:
        db.execute(f"UPDATE articles SET {', '.join(sets)} WHERE id = ?",
                   [*values.values(), article_id])


def _insert(db: sqlite_utils.Database, values: dict[str, Any]) -> None:
    db.execute(f"INSERT INTO article_versions ({', '.join(values)}) "
               f"VALUES ({', '.join('?' * len(values))})", list(values.values()))
