"""The near-duplicate index: signatures, their LSH band rows and their anchor rows (see
pipeline.neardup), and the reads a decision makes of the corpus (`Reader`).

`neardup_signatures` holds the MinHash signature and anchors of each article in the window
(`dedupe.band_window_days`; exact copies have none: their twin is there); `neardup_bands`
(LSH) and `neardup_anchors` (the second candidate index, issue 11) index them. A signature
leaves with its band and anchor rows when the window moves past it (issue 17: at a million
articles, signatures kept forever were 0.8 KB of every article's 11 KB for the 7% a copy can
still find); widening the window recomputes the missing ones from the stored texts.
Signatures made by another MinHash scheme, or anchors by another anchor scheme, are never
mixed in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlite_utils

from pipeline import neardup
from pipeline.clusters import Cluster
from pipeline.dedupe import Candidate
from pipeline.errors import StoreError
from pipeline.messages import EXACT, Fingerprint

# A cap on the candidates read: an index bucket shared by thousands of boilerplate texts
# must not make one insert slow.
MAX_CANDIDATES = 1000
REINDEX_CHUNK = 100_000  # signatures per batch when rebuilding the band index
PRUNE_CHUNK = 2000  # signatures per transaction when pruning it


@dataclass(frozen=True)
class ReindexReport:
    signatures: int  # signatures now in the band and anchor indexes
    band_rows: int
    fingerprinted: int  # signatures computed from stored text (--from-text, a wider window)
    window_days: int
    anchor_rows: int = 0


def check_scheme(db: sqlite_utils.Database, path: Path | None) -> None:
    """Refuse to mix signatures made by another MinHash scheme (say, a new rensa), or
    anchors made by another anchor scheme."""
    for key, current, stored_any in (
            ("scheme", neardup.SCHEME, "SELECT 1 FROM neardup_signatures LIMIT 1"),
            ("anchor_scheme", neardup.ANCHOR_SCHEME,
             "SELECT 1 FROM neardup_signatures WHERE anchors IS NOT NULL LIMIT 1")):
        row = db.execute("SELECT value FROM neardup_meta WHERE key = ?", [key]).fetchone()
        if row is None or row[0] != current:
            if db.execute(stored_any).fetchone():
                what = "signatures" if key == "scheme" else "anchors"
                raise StoreError(
                    f"near-duplicate {what} in {path} were made by "
                    f"{row[0] if row else 'an unknown scheme'}, this newswire uses "
                    f"{current}: run `newswire reindex --from-text`")
            set_scheme(db, key)


def set_scheme(db: sqlite_utils.Database, key: str | None = None) -> None:
    """Record the schemes of the signatures (`scheme`) and anchors (`anchor_scheme`)."""
    for name, value in (("scheme", neardup.SCHEME), ("anchor_scheme", neardup.ANCHOR_SCHEME)):
        if key in (None, name):
            db.execute("INSERT OR REPLACE INTO neardup_meta (key, value) VALUES (?, ?)",
                       [name, value])


def anchors_blob(anchors: Sequence[int]) -> bytes:
    """Anchor keys as stored with their signature: little-endian signed 64-bit."""
    return np.asarray(anchors, dtype="<i8").tobytes()


def anchors_of(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(blob or b"", dtype="<i8")


# The newest ANCHOR_BUCKET_LIMIT + 1 holders of one anchor (more: the anchor is ignored).
_ANCHOR_BUCKET = ("SELECT * FROM (SELECT anchor, signature_id FROM neardup_anchors "
                  "WHERE anchor = ? ORDER BY signature_id DESC LIMIT ?)")


def anchor_candidates(db: sqlite_utils.Database, anchors: Sequence[int]) -> list[int]:
    """Signature ids sharing at least ANCHOR_MIN_SHARED anchors with these
    (neardup.anchor_candidates); one statement."""
    if len(anchors) < neardup.ANCHOR_MIN_SHARED:
        return []
    limit = neardup.ANCHOR_BUCKET_LIMIT + 1
    buckets: dict[int, list[int]] = {}
    for anchor, signature_id in db.execute(" UNION ALL ".join([_ANCHOR_BUCKET] * len(anchors)),
                                           [v for a in anchors for v in (a, limit)]):
        buckets.setdefault(anchor, []).append(signature_id)
    return neardup.anchor_candidates(buckets)


def candidates(db: sqlite_utils.Database, fingerprint: Fingerprint) -> list[Candidate]:
    """Indexed articles sharing a band with the fingerprint, or enough anchors, oldest
    first (at most the MAX_CANDIDATES most recent)."""
    keys = neardup.band_keys(fingerprint.signature)
    anchored = anchor_candidates(db, fingerprint.anchors)
    extra = f" UNION VALUES {','.join(['(?)'] * len(anchored))}" if anchored else ""
    rows = db.execute(
        "SELECT article_id, cluster_id, signature, shingles, numbers "
        "FROM neardup_signatures WHERE id IN (SELECT signature_id FROM neardup_bands "
        f"WHERE bucket IN ({','.join('?' * len(keys))}){extra}) ORDER BY id DESC LIMIT ?",
        [*keys, *anchored, MAX_CANDIDATES]).fetchall()
    return [Candidate(r[0], r[1], r[2], r[3], tuple((r[4] or "").split()))
            for r in reversed(rows)]


def stored_candidate(db: sqlite_utils.Database, article_id: str) -> Candidate | None:
    """A stored article's signature as a candidate: the stored one, else (an article out of
    the window, or an exact copy) one computed from its stored text; None without text."""
    row = db.execute("SELECT article_id, cluster_id, signature, shingles, numbers "
                     "FROM neardup_signatures WHERE article_id = ?", [article_id]).fetchone()
    if row is not None:
        return Candidate(row[0], row[1], row[2], row[3], tuple((row[4] or "").split()))
    stored = db.execute("SELECT cluster_id, text, title FROM articles WHERE id = ?",
                        [article_id]).fetchone()
    fingerprint = None if stored is None else neardup.fingerprint_text(stored[1], stored[2])
    if stored is None or fingerprint is None:
        return None
    return Candidate(article_id, stored[0], fingerprint.signature, fingerprint.shingles,
                     tuple(fingerprint.numbers))


class Reader:
    """What a dedupe decision reads of the corpus (pipeline.dedupe.Stored): candidates'
    texts for verification, and the clusters a merge involves."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db

    def text(self, article_id: str) -> tuple[str, str]:
        row = self.db.execute("SELECT text, title FROM articles WHERE id = ?",
                              [article_id]).fetchone()
        return (row[0] or "", row[1] or "") if row else ("", "")

    def clusters(self, ids: Collection[str]) -> Mapping[str, Cluster]:
        ids = list(ids)
        found = {r[0]: Cluster(r[0], r[1] or 0, r[2] or "") for r in self.db.execute(
            f"SELECT id, size, first_seen_at FROM clusters WHERE id IN "
            f"({','.join('?' * len(ids))})", ids)}
        return {i: found.get(i, Cluster(i, 0, "")) for i in ids}


_SIGNATURE_COLUMNS = "article_id, cluster_id, signature, shingles, numbers, indexed_at, anchors"


def add(db: sqlite_utils.Database, article_id: str, cluster_id: str,
        fingerprint: Fingerprint, indexable: bool, now: str) -> None:
    """Keep an article's signature and anchors and add them to the band and anchor indexes,
    when indexable (an exact copy is not: its twin is there already)."""
    if not indexable:
        return
    cursor = db.execute(
        f"INSERT INTO neardup_signatures ({_SIGNATURE_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (article_id) DO NOTHING",
        [article_id, cluster_id, fingerprint.signature, fingerprint.shingles,
         " ".join(fingerprint.numbers), now, anchors_blob(fingerprint.anchors)])
    if cursor.rowcount:
        db.conn.executemany(
            "INSERT OR IGNORE INTO neardup_bands (bucket, signature_id) VALUES (?, ?)",
            [(key, cursor.lastrowid) for key in neardup.band_keys(fingerprint.signature)])
        db.conn.executemany(
            "INSERT OR IGNORE INTO neardup_anchors (anchor, signature_id) VALUES (?, ?)",
            [(key, cursor.lastrowid) for key in fingerprint.anchors])


def prune_chunk(db: sqlite_utils.Database, cutoff: str) -> int:
    """Drop up to PRUNE_CHUNK signatures indexed before cutoff, with their band and anchor
    rows; how many left the index. One empty index probe when none is due. The oldest go
    first, so whole pages of the table are freed for the new rows."""
    rows = db.execute(
        "SELECT id, signature, anchors FROM neardup_signatures WHERE indexed_at < ? "
        "ORDER BY indexed_at, id LIMIT ?", [cutoff, PRUNE_CHUNK]).fetchall()
    if not rows:
        return 0
    ids = [r[0] for r in rows]
    keys = neardup.band_keys_many(neardup.signature_matrix([r[1] for r in rows]))
    db.conn.executemany(
        "DELETE FROM neardup_bands WHERE bucket = ? AND signature_id = ?",
        ((int(key), sid) for sid, row_keys in zip(ids, keys, strict=True) for key in row_keys))
    db.conn.executemany(
        "DELETE FROM neardup_anchors WHERE anchor = ? AND signature_id = ?",
        ((int(anchor), r[0]) for r in rows for anchor in anchors_of(r[2])))
    db.conn.executemany("DELETE FROM neardup_signatures WHERE id = ?", [(sid,) for sid in ids])
    return len(rows)


def rebuild(db: sqlite_utils.Database, cutoff: str, now: str) -> tuple[int, int, int, int]:
    """The window's signatures and their band and anchor indexes, rebuilt: the signatures
    indexed before cutoff dropped, those the window's articles lack (it was widened)
    computed from their texts, every one renumbered oldest first, then both indexes built
    from them: (signatures, band rows, anchor rows, signatures computed). Run inside one
    write transaction."""
    band_rows = anchor_rows = signatures = 0
    db.execute("DELETE FROM neardup_bands")
    db.execute("DELETE FROM neardup_anchors")
    db.execute("DELETE FROM neardup_signatures WHERE indexed_at < ?", [cutoff])
    computed = refingerprint(db, cutoff, now, every=False)
    _renumber(db)
    cursor = db.execute("SELECT id, signature, anchors FROM neardup_signatures ORDER BY id")
    while chunk := cursor.fetchmany(REINDEX_CHUNK):
        ids = np.fromiter((r[0] for r in chunk), dtype=np.int64, count=len(chunk))
        keys = neardup.band_keys_many(neardup.signature_matrix([r[1] for r in chunk]))
        pairs = np.column_stack([keys.ravel(), np.repeat(ids, neardup.BANDS)])
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]  # B-tree order
        db.conn.executemany(
            "INSERT OR IGNORE INTO neardup_bands (bucket, signature_id) VALUES (?, ?)",
            pairs.tolist())
        anchors = [anchors_of(r[2]) for r in chunk]
        holders = np.repeat(ids, [len(a) for a in anchors])
        if len(holders):
            pairs = np.column_stack([np.concatenate(anchors), holders])
            pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
            db.conn.executemany(
                "INSERT OR IGNORE INTO neardup_anchors (anchor, signature_id) VALUES (?, ?)",
                pairs.tolist())
        band_rows += len(keys) * neardup.BANDS
        anchor_rows += len(holders)
        signatures += len(chunk)
    return signatures, band_rows, anchor_rows, computed


def _renumber(db: sqlite_utils.Database) -> None:
    """Signature ids in the order the articles were indexed: candidates come oldest first
    and ties go to the earliest indexed copy, both read from the ids, and the signatures
    just computed for older articles were appended after the newer ones."""
    db.execute("DROP TABLE IF EXISTS temp.signatures_in_order")
    db.execute(f"CREATE TEMP TABLE signatures_in_order AS SELECT {_SIGNATURE_COLUMNS} "
               "FROM neardup_signatures ORDER BY indexed_at, id")
    db.execute("DELETE FROM neardup_signatures")
    db.execute(f"INSERT INTO neardup_signatures ({_SIGNATURE_COLUMNS}) SELECT "
               f"{_SIGNATURE_COLUMNS} FROM temp.signatures_in_order ORDER BY rowid")
    db.execute("DROP TABLE temp.signatures_in_order")


def refingerprint(db: sqlite_utils.Database, cutoff: str, now: str, every: bool = True
                  ) -> int:
    """Compute from their stored texts and titles the signatures, figures and anchors of the
    articles stored at or after cutoff ("": all; never stored: counted as now), exact copies
    aside: every one of them (after a change of MinHash or anchor scheme, or for articles
    stored before clustering or anchors existed), or only those that have none (the window
    was widened). Run inside one write transaction, before `rebuild`."""
    count = 0
    missing = "" if every else (" AND NOT EXISTS (SELECT 1 FROM neardup_signatures s "
                                "WHERE s.article_id = a.id)")
    for window in ("a.fetched_at >= :cutoff", "a.fetched_at IS NULL"):  # index ranges
        cursor = db.execute(
            "SELECT a.id, a.cluster_id, a.text, a.title, coalesce(a.fetched_at, :now) "
            f"FROM articles a WHERE {window}{missing} AND a.duplicate_kind IS NOT :exact "
            "ORDER BY a.fetched_at, a.rowid", {"now": now, "cutoff": cutoff, "exact": EXACT})
        while chunk := cursor.fetchmany(1000):
            for article_id, cluster_id, text, title, fetched_at in chunk:
                fingerprint = neardup.fingerprint_text(text, title)
                if fingerprint is None:
                    continue
                db.execute(
                    f"INSERT INTO neardup_signatures ({_SIGNATURE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (article_id) DO UPDATE "
                    "SET signature = excluded.signature, shingles = excluded.shingles, "
                    "numbers = excluded.numbers, anchors = excluded.anchors, "
                    "cluster_id = excluded.cluster_id",
                    [article_id, cluster_id, fingerprint.signature, fingerprint.shingles,
                     " ".join(fingerprint.numbers), fetched_at,
                     anchors_blob(fingerprint.anchors)])
                count += 1
    if every:
        set_scheme(db)
    return count


def replace(db: sqlite_utils.Database, article_id: str, fingerprint: Fingerprint) -> None:
    """A stored article's new signature and anchors (its text changed): its band and anchor
    rows follow."""
    row = db.execute("SELECT id, signature, anchors FROM neardup_signatures "
                     "WHERE article_id = ?", [article_id]).fetchone()
    if row is None:
        return
    signature_id, old, old_anchors = row
    db.conn.executemany("DELETE FROM neardup_bands WHERE bucket = ? AND signature_id = ?",
                        [(key, signature_id) for key in neardup.band_keys(old)])
    db.conn.executemany("DELETE FROM neardup_anchors WHERE anchor = ? AND signature_id = ?",
                        [(int(key), signature_id) for key in anchors_of(old_anchors)])
    db.conn.executemany(
        "INSERT OR IGNORE INTO neardup_bands (bucket, signature_id) VALUES (?, ?)",
        [(key, signature_id) for key in neardup.band_keys(fingerprint.signature)])
    db.conn.executemany(
        "INSERT OR IGNORE INTO neardup_anchors (anchor, signature_id) VALUES (?, ?)",
        [(key, signature_id) for key in fingerprint.anchors])
    db.execute("UPDATE neardup_signatures SET signature = ?, shingles = ?, numbers = ?, "
               "anchors = ? WHERE id = ?",
               [fingerprint.signature, fingerprint.shingles, " ".join(fingerprint.numbers),
                anchors_blob(fingerprint.anchors), signature_id])
