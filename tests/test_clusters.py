"""Clusters that heal (pipeline.clusters): which cluster a new article joins, what merges."""

from __future__ import annotations

from pipeline.clusters import Cluster, Match, Merge, Plan, plan

CLUSTERS = {
    "a": Cluster("a", size=5, first_seen_at="2025-03-04T06:00:00Z"),
    "b": Cluster("b", size=2, first_seen_at="2025-03-04T05:00:00Z"),
    "c": Cluster("c", size=2, first_seen_at="2025-03-04T07:00:00Z"),
}


def test_no_joining_match_starts_a_cluster() -> None:
    assert plan([], CLUSTERS) == Plan(None, None, None, None)
    related = [Match("x1", "a", "related", 0.5), Match("x2", "b", "related", 0.55)]
    assert plan(related, CLUSTERS) == Plan(None, None, None, None)  # related merges nothing


def test_the_best_match_is_joined() -> None:
    matches = [Match("x1", "a", "near", 0.7), Match("x2", "a", "near", 0.9),
               Match("x3", "a", "related", 0.95)]
    assert plan(matches, CLUSTERS) == Plan("a", "x2", "near", 0.9)
    # Ties go to the earlier listed (the store lists candidates oldest first); exact first.
    tie = [Match("x1", "a", "near", 0.8), Match("x2", "a", "near", 0.8)]
    assert plan(tie, CLUSTERS).duplicate_of == "x1"
    exact = [Match("x1", "a", "near", 0.99), Match("x2", "a", "exact", 1.0)]
    assert plan(exact, CLUSTERS).kind == "exact"


def test_clusters_matched_with_a_joins_evidence_merge_into_the_largest() -> None:
    matches = [Match("b1", "b", "near", 0.95), Match("a1", "a", "near", 0.7),
               Match("c1", "c", "related", 0.6)]
    result = plan(matches, CLUSTERS)
    # "a" is the largest: it survives although the best match is in "b"; "c" is only related.
    assert result.cluster_id == "a" and result.duplicate_of == "b1"
    assert result.merges == (Merge("b", "a", "b1", "near", 0.95),)


def test_a_tie_in_size_keeps_the_older_cluster() -> None:
    matches = [Match("c1", "c", "near", 0.9), Match("b1", "b", "near", 0.8),
               Match("c2", "c", "near", 0.95)]
    result = plan(matches, CLUSTERS)
    assert result.cluster_id == "b"  # same size as "c", first seen earlier
    assert result.merges == (Merge("c", "b", "c2", "near", 0.95),)  # its strongest match
    assert result.duplicate_of == "c2"
