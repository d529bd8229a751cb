"""The near-duplicate index: signatures and their LSH band rows (see pipeline.neardup).

`neardup_signatures` keeps every article's MinHash signature forever (so the index can be
rebuilt); `neardup_bands` is the LSH index over the recent ones, pruned to
`dedupe.band_window_days`. Signatures made by another MinHash scheme are never mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

from pipeline import neardup
from pipeline.dedupe import Candidate
from pipeline.errors import StoreError
from pipeline.messages import Article, Fingerprint
from pipeline.neardup import Similarity

# A cap on the candidates read: an index bucket shared by thousands of boilerplate texts
# must not make one insert slow.
MAX_CANDIDATES = 1000
REINDEX_CHUNK = 100_000  # signatures per batch when rebuilding the band index
PRUNE_CHUNK = 2000  # signatures per transaction when pruning it


@dataclass(frozen=True)
class ReindexReport:
    signatures: int  # signatures now in the band index
    band_rows: int
    fingerprinted: int  # signatures recomputed from stored text (--from-text)
    window_days: int


def check_scheme(db: sqlite_utils.Database, path: Path | None) -> None:
    """Refuse to mix signatures made by another MinHash scheme (say, a new rensa)."""
    row = db.execute("SELECT value FROM neardup_meta WHERE key = 'scheme'").fetchone()
    if row is None or row[0] != neardup.SCHEME:
        if db.execute("SELECT 1 FROM neardup_signatures LIMIT 1").fetchone():
            raise StoreError(
                f"near-duplicate signatures in {path} were made by "
                f"{row[0] if row else 'an unknown scheme'}, this newswire uses "
                f"{neardup.SCHEME}: run `newswire reindex --from-text`")
        set_scheme(db)


def set_scheme(db: sqlite_utils.Database) -> None:
    db.execute("INSERT OR REPLACE INTO neardup_meta (key, value) VALUES ('scheme', ?)",
               [neardup.SCHEME])


def candidates(db: sqlite_utils.Database, fingerprint: Fingerprint) -> list[Candidate]:
    """Indexed articles sharing a band with the fingerprint, oldest first (at most the
    MAX_CANDIDATES most recent)."""
    keys = neardup.band_keys(fingerprint.signature)
    rows = db.execute(
        "SELECT article_id, cluster_id, signature, shingles, numbers "
        "FROM neardup_signatures WHERE id IN (SELECT signature_id FROM neardup_bands "
        f"WHERE bucket IN ({','.join('?' * len(keys))})) ORDER BY id DESC LIMIT ?",
        [*keys, MAX_CANDIDATES]).fetchall()
    return [Candidate(r[0], r[1], r[2], r[3], tuple((r[4] or "").split()))
            for r in reversed(rows)]


def similarity(db: sqlite_utils.Database, article_id: str,
               fingerprint: Fingerprint | None) -> Similarity | None:
    """How a fingerprint compares with a stored article's, if both exist."""
    if fingerprint is None:
        return None
    row = db.execute("SELECT signature, shingles, numbers FROM neardup_signatures "
                     "WHERE article_id = ?", [article_id]).fetchone()
    if row is None:
        return None
    jaccard = float(neardup.jaccard_many(fingerprint.signature,
                                         neardup.signature_matrix([row[0]]))[0])
    return neardup.compare(fingerprint, jaccard, row[1], tuple((row[2] or "").split()))


def add(db: sqlite_utils.Database, article_id: str, cluster_id: str,
        fingerprint: Fingerprint, indexable: bool, now: str) -> None:
    """Keep an article's signature; add it to the band index when indexable (an exact copy
    is not: its twin is there already)."""
    cursor = db.execute(
        "INSERT INTO neardup_signatures (article_id, cluster_id, signature, shingles, "
        "numbers, indexed_at, in_index, indexable) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (article_id) DO NOTHING",
        [article_id, cluster_id, fingerprint.signature, fingerprint.shingles,
         " ".join(fingerprint.numbers), now, int(indexable), int(indexable)])
    if cursor.rowcount and indexable:
        db.conn.executemany(
            "INSERT OR IGNORE INTO neardup_bands (bucket, signature_id) VALUES (?, ?)",
            [(key, cursor.lastrowid) for key in neardup.band_keys(fingerprint.signature)])


def prune_chunk(db: sqlite_utils.Database, cutoff: str) -> int:
    """Drop the band rows of up to PRUNE_CHUNK signatures indexed before cutoff (the
    signatures stay); how many left the index. One empty index probe when none is due."""
    rows = db.execute(
        "SELECT id, signature FROM neardup_signatures WHERE in_index = 1 AND "
        "indexed_at < ? ORDER BY indexed_at, id LIMIT ?", [cutoff, PRUNE_CHUNK]).fetchall()
    if not rows:
        return 0
    ids = [r[0] for r in rows]
    keys = neardup.band_keys_many(neardup.signature_matrix([r[1] for r in rows]))
    db.conn.executemany(
        "DELETE FROM neardup_bands WHERE bucket = ? AND signature_id = ?",
        ((int(key), sid) for sid, row_keys in zip(ids, keys, strict=True) for key in row_keys))
    db.conn.executemany("UPDATE neardup_signatures SET in_index = 0 WHERE id = ?",
                        [(sid,) for sid in ids])
    return len(rows)


def rebuild(db: sqlite_utils.Database, cutoff: str) -> tuple[int, int]:
    """The band index rebuilt from the indexable signatures indexed at or after cutoff:
    (signatures, band rows). Run inside one write transaction."""
    band_rows = signatures = 0
    db.execute("DELETE FROM neardup_bands")
    db.execute("UPDATE neardup_signatures SET in_index = 0 WHERE in_index = 1")
    cursor = db.execute("SELECT id, signature FROM neardup_signatures WHERE indexable = 1 "
                        "AND indexed_at >= ? ORDER BY id", [cutoff])
    while chunk := cursor.fetchmany(REINDEX_CHUNK):
        ids = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
        keys = neardup.band_keys_many(neardup.signature_matrix([r[1] for r in chunk]))
        pairs = np.column_stack([keys.ravel(), np.repeat(ids, neardup.BANDS)])
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]  # B-tree order
        db.conn.executemany(
            "INSERT OR IGNORE INTO neardup_bands (bucket, signature_id) VALUES (?, ?)",
            pairs.tolist())
        band_rows += len(pairs)
        signatures += len(chunk)
    db.execute("UPDATE neardup_signatures SET in_index = 1 WHERE indexable = 1 "
               "AND indexed_at >= ?", [cutoff])
    return signatures, band_rows


def refingerprint(db: sqlite_utils.Database, now: str) -> int:
    """Recompute every stored article's signature from its text and title (after a change
    of MinHash scheme, or for articles stored before clustering existed). Run inside one
    write transaction; leaves the band index to `rebuild`."""
    count = 0
    cursor = db.execute("SELECT id, cluster_id, text, title, fetched_at, duplicate_kind "
                        "FROM articles ORDER BY fetched_at, id")
    while chunk := cursor.fetchmany(1000):
        for article_id, cluster_id, text, title, fetched_at, kind in chunk:
            fingerprint = neardup.fingerprint_article(Article(
                id=article_id, url="", canonical_url="", title=title or "", text=text or "",
                author=None, published_at=None, language=None, sitename=None,
                text_source=""))
            if fingerprint is None:
                continue
            db.execute(
                "INSERT INTO neardup_signatures (article_id, cluster_id, signature, "
                "shingles, numbers, indexed_at, in_index, indexable) "
                "VALUES (?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (article_id) DO UPDATE "
                "SET signature = excluded.signature, shingles = excluded.shingles, "
                "numbers = excluded.numbers",
                [article_id, cluster_id, fingerprint.signature, fingerprint.shingles,
                 " ".join(fingerprint.numbers), fetched_at or now, int(kind != "exact")])
            count += 1
    set_scheme(db)
    return count


def replace(db: sqlite_utils.Database, article_id: str, fingerprint: Fingerprint) -> None:
    """A stored article's new signature (its text changed): its band rows follow."""
    row = db.execute("SELECT id, signature, in_index FROM neardup_signatures "
                     "WHERE article_id = ?", [article_id]).fetchone()
    if row is None:
        return
    signature_id, old, in_index = row
    if in_index:
        db.conn.executemany("DELETE FROM neardup_bands WHERE bucket = ? AND signature_id = ?",
                            [(key, signature_id) for key in neardup.band_keys(old)])
        db.conn.executemany(
            "INSERT OR IGNORE INTO neardup_bands (bucket, signature_id) VALUES (?, ?)",
            [(key, signature_id) for key in neardup.band_keys(fingerprint.signature)])
    db.execute("UPDATE neardup_signatures SET signature = ?, shingles = ?, numbers = ? "
               "WHERE id = ?", [fingerprint.signature, fingerprint.shingles,
                                " ".join(fingerprint.numbers), signature_id])
