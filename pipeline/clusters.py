"""Clusters that heal (issue 11): which cluster a new article joins, and which clusters merge.

An assignment used to be final: a copy that arrives before its original (a cold start, a
backfill, an import) starts a cluster of its own, and when the original comes, it can match
both clusters while joining only one. Here the new article's verified matches decide: it
joins the cluster of its best match, and every other cluster it matches *with the same
evidence as a join* (a near or exact match) merges into that one. Related edges never merge
anything.

Pure: `pipeline.dedupe.decide` turns the verified matches into a plan, with what the store
read of the clusters involved; the store then applies it (pipeline.store.merges: moves the
members, records the merge with its evidence, keeps the old id resolvable, re-picks the
canonical member).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.messages import EXACT, JOINING_KINDS, DuplicateKind


@dataclass(frozen=True)
class Match:
    """A verified match of the new article with a stored one."""

    article_id: str  # the stored article
    cluster_id: str  # its cluster now (after any earlier merge)
    kind: DuplicateKind
    score: float  # 1.0 for exact; verification's score (coverage) for near


@dataclass(frozen=True)
class Cluster:
    """What the survivor choice needs to know of a cluster."""

    id: str
    size: int
    first_seen_at: str  # ISO 8601 UTC


@dataclass(frozen=True)
class Merge:
    """One cluster folded into another, with the matches that justified it: the new article
    matched a member of each with the evidence of a join."""

    source: str  # the cluster id that goes away (it stays resolvable to `target`)
    target: str  # the surviving cluster id
    article_id: str  # the stored article of `source` the new article matched (its best)
    kind: DuplicateKind
    score: float
    target_article_id: str  # ... and its best match in `target`
    target_score: float


@dataclass(frozen=True)
class Plan:
    """What the store does with a new article."""

    cluster_id: str | None  # the cluster to join; None: the article starts its own
    duplicate_of: str | None  # the best match (the stored copy it duplicates)
    kind: DuplicateKind | None  # a joining kind for that match; None for a new cluster
    score: float | None
    merges: tuple[Merge, ...] = ()


def plan(matches: Sequence[Match], clusters: Mapping[str, Cluster]) -> Plan:
    """Join the best joining match's cluster; merge every other cluster with a joining
    match into the survivor.

    The best match is an exact one, else the highest score, ties to the earlier listed
    (the store lists candidates oldest first). The survivor among the clusters to merge
    is the largest (fewest rows to move), ties to the oldest, then the smallest id: a
    cluster id users bookmarked stays resolvable through the merge record either way.
    `clusters` is read only when there are several clusters to merge.
    """
    joining = [m for m in matches if m.kind in JOINING_KINDS]
    if not joining:
        return Plan(None, None, None, None)
    best = min(enumerate(joining), key=lambda im: (im[1].kind != EXACT, -im[1].score,
                                                   im[0]))[1]
    involved = {m.cluster_id for m in joining}
    if len(involved) == 1:
        return Plan(best.cluster_id, best.article_id, best.kind, best.score)
    survivor = min(involved, key=lambda c: (-clusters[c].size, clusters[c].first_seen_at, c))

    def strongest(cluster_id: str) -> Match:  # the evidence for a cluster: its best match
        return min((m for m in joining if m.cluster_id == cluster_id),
                   key=lambda m: (m.kind != EXACT, -m.score))

    into = strongest(survivor)
    merges = []
    for cluster_id in sorted(involved - {survivor}):
        why = strongest(cluster_id)
        merges.append(Merge(cluster_id, survivor, why.article_id, why.kind, why.score,
                            into.article_id, into.score))
    return Plan(survivor, best.article_id, best.kind, best.score, tuple(merges))
