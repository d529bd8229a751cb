"""Clusters that heal: applying a merge planned by pipeline.clusters, and resolving the ids of
merged clusters.

A merge moves every member of the source cluster (its articles and their near-duplicate
signatures) into the target, adds the source's size and seen dates to the target's, and
keeps the source's row as a forwarding address: `merged_into` names the cluster its members
went to (always a live cluster: older forwards are updated too), `merged_at` when. Every
merge is recorded in `cluster_merges` with the article whose evidence joined the two clusters
and its best match in each (their `duplicate_edges` rows hold the evidence itself). The
canonical member is then re-picked (pipeline.dedupe.canonical_member) among the merged
clusters' canonicals and the new article: each cluster's canonical is already its best
member (kept so at every insert and merge), so that is the best of the whole cluster,
without reading every member. Reading them all made each merge into a cluster of thousands
a scan of thousands: half the writer's time at 245,000 articles of the 1M benchmark build,
whose largest cluster had 37,000 members and 3,700 merges into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlite_utils

from pipeline.clusters import Merge
from pipeline.dedupe import Member, canonical_member
from pipeline.store import summaries


def apply(db: sqlite_utils.Database, merge: Merge, article_id: str, now: str) -> None:
    """Fold `merge.source` into `merge.target` on the evidence of `article_id` (the new
    article that matched both), inside the caller's transaction."""
    source, target = merge.source, merge.target
    rows = {r[0]: r[1:] for r in db.execute(
        "SELECT id, size, first_seen_at, last_seen_at FROM clusters WHERE id IN (?, ?)",
        [source, target])}
    source_size, source_first, source_last = rows[source]
    target_size, target_first, target_last = rows[target]
    # Signatures first: they are found through the articles' cluster index.
    db.execute("UPDATE neardup_signatures SET cluster_id = ? WHERE article_id IN "
               "(SELECT id FROM articles WHERE cluster_id = ?)", [target, source])
    # The source forwards before its articles move: the copies' lags are then recomputed
    # once for the merged story, not once per article moved (summaries.story_merged).
    db.execute("UPDATE clusters SET size = 0, canonical_article_id = NULL, merged_into = ?, "
               "merged_at = ? WHERE id = ?", [target, now, source])
    db.execute("UPDATE articles SET cluster_id = ? WHERE cluster_id = ?", [target, source])
    summaries.story_merged(db, source, target)
    db.execute("UPDATE clusters SET size = ?, first_seen_at = ?, last_seen_at = ? WHERE id = ?",
               [(target_size or 0) + (source_size or 0),
                _earliest(target_first, source_first), _latest(target_last, source_last),
                target])
    db.execute("UPDATE clusters SET merged_into = ? WHERE merged_into = ?", [target, source])
    db.execute(
        "INSERT INTO cluster_merges (source_id, target_id, merged_at, article_id, "
        "source_match_id, source_score, target_match_id, target_score, source_size, "
        "target_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [source, target, now, article_id, merge.article_id, merge.score,
         merge.target_article_id, merge.target_score, source_size, target_size])


def canonicals(db: sqlite_utils.Database, cluster_ids: Sequence[str]) -> list[str]:
    """The canonical members of these clusters (before a merge forgets the source's)."""
    ids = list(dict.fromkeys(cluster_ids))
    return [r[0] for r in db.execute(
        f"SELECT canonical_article_id FROM clusters WHERE id IN ({','.join('?' * len(ids))}) "
        "AND canonical_article_id IS NOT NULL", ids)]


# What pipeline.dedupe.canonical_member ranks an article by, as `member` reads it.
MEMBER_FIELDS = ("SELECT id, sitename, coalesce(nullif(canonical_url, ''), url), "
                 "coalesce(published_at, fetched_at), length(text) FROM articles")


def member(row: Sequence[Any]) -> Member:
    return Member(row[0], row[1], row[2], row[3], row[4] or 0)


def contenders_sql(count: int) -> str:
    """The ranking fields of `count` articles of a cluster, looked up by id: `+cluster_id`
    keeps SQLite from walking the cluster's index instead (which it prefers from five ids
    on: every member of a cluster of thousands, 0.13 s warm and 1.6 s cold for 78,000)."""
    return f"{MEMBER_FIELDS} WHERE +cluster_id = ? AND id IN ({','.join('?' * count)})"


def repick_canonical(db: sqlite_utils.Database, cluster_id: str, agencies: Sequence[str],
                     contenders: Sequence[str]) -> str:
    """Make the best of `contenders` (the canonicals of the clusters merged into this one,
    and its new member) canonical after a merge; returns it."""
    ids = list(dict.fromkeys(contenders))
    rows = db.execute(contenders_sql(len(ids)), [cluster_id, *ids]).fetchall()
    best = canonical_member([member(r) for r in rows], tuple(agencies))
    db.execute("UPDATE clusters SET canonical_article_id = ? WHERE id = ?", [best, cluster_id])
    return best


def resolve(db: sqlite_utils.Database, cluster_id: str) -> str | None:
    """The live cluster an id stands for: itself, or the cluster it was merged into; None
    when no cluster has that id."""
    row = db.execute("SELECT coalesce(merged_into, id) FROM clusters WHERE id = ?",
                     [cluster_id]).fetchone()
    return row[0] if row else None


def _earliest(a: str | None, b: str | None) -> str | None:
    return min(a, b) if a and b else a or b


def _latest(a: str | None, b: str | None) -> str | None:
    return max(a, b) if a and b else a or b
