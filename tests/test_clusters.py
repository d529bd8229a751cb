"""Clusters that heal: which cluster a new article joins and what merges (pipeline.clusters),
and the store applying it (pipeline.store.merges): history, resolvable ids, canonical."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bench.hard_syndication import hard_follow_up
from bench.syndication import templated_story
from pipeline.clusters import Cluster, Match, Merge, Plan, plan
from pipeline.config import DedupeConfig
from tests.test_neardup import T0, WIRE, Corpus

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
    assert result.merges == (Merge("b", "a", "b1", "near", 0.95, "a1", 0.7),)


def test_a_tie_in_size_keeps_the_older_cluster() -> None:
    matches = [Match("c1", "c", "near", 0.9), Match("b1", "b", "near", 0.8),
               Match("c2", "c", "near", 0.95)]
    result = plan(matches, CLUSTERS)
    assert result.cluster_id == "b"  # same size as "c", first seen earlier
    assert result.merges == (Merge("c", "b", "c2", "near", 0.95, "b1", 0.8),)  # strongest
    assert result.duplicate_of == "c2"


def test_one_cluster_needs_nothing_read_of_it() -> None:
    matches = [Match("x1", "z", "near", 0.7), Match("x2", "z", "near", 0.9)]
    assert plan(matches, {}) == Plan("z", "x2", "near", 0.9)  # "z" was never looked up


def test_several_clusters_merge_into_one_survivor() -> None:
    matches = [Match("a1", "a", "near", 0.8), Match("b1", "b", "near", 0.7),
               Match("c1", "c", "near", 0.9), Match("a2", "a", "near", 0.85)]
    result = plan(matches, CLUSTERS)
    assert result.cluster_id == "a" and result.duplicate_of == "c1"
    assert result.merges == (Merge("b", "a", "b1", "near", 0.7, "a2", 0.85),
                             Merge("c", "a", "c1", "near", 0.9, "a2", 0.85))


# --- the store: merges, their history, resolvable ids, the canonical re-picked ---------------

@pytest.fixture
def corpus(tmp_path: Path) -> Iterator[Corpus]:
    c = Corpus(tmp_path / "nw.db")
    yield c
    c.store.close()


def cluster_of(corpus: Corpus, aid: str) -> str:
    return corpus.article(aid)["cluster_id"]


def merges_of(corpus: Corpus) -> list[dict]:
    return list(corpus.store.db.query("SELECT * FROM cluster_merges ORDER BY id"))


def test_a_story_that_arrived_in_parts_heals_into_one_cluster(corpus: Corpus) -> None:
    """A cold start: two copies that share nothing arrive first (two clusters); the full
    story then matches both, joins one and merges the other into it, with its history."""
    head = corpus.add("head", WIRE[:4], site="One", published=T0 + timedelta(hours=2))
    tail = corpus.add("tail", WIRE[4:], site="Two", published=T0 + timedelta(hours=3))
    assert cluster_of(corpus, head) == head and cluster_of(corpus, tail) == tail
    full = corpus.add("full", WIRE, site="Three", published=T0 + timedelta(hours=1))
    survivor = cluster_of(corpus, full)
    assert {cluster_of(corpus, a) for a in (head, tail, full)} == {survivor}
    assert survivor in (head, tail)  # the same size: the older, then the smaller id
    gone = tail if survivor == head else head

    db = corpus.store.db
    live, merged = db["clusters"].get(survivor), db["clusters"].get(gone)
    assert live["size"] == 3 and live["merged_into"] is None
    assert live["canonical_article_id"] == full  # re-picked: the earliest published
    assert merged["merged_into"] == survivor and merged["merged_at"]
    assert merged["size"] == 0 and merged["canonical_article_id"] is None
    assert live["first_seen_at"] <= merged["first_seen_at"] <= live["last_seen_at"]
    # The history: which cluster became which, when, on what evidence.
    (record,) = merges_of(corpus)
    assert (record["source_id"], record["target_id"], record["article_id"]) == (gone, survivor,
                                                                              full)
    assert (record["source_match_id"], record["target_match_id"]) == (gone, survivor)
    assert record["merged_at"] == merged["merged_at"]
    assert record["source_size"] == record["target_size"] == 1
    assert min(record["source_score"], record["target_score"]) >= DedupeConfig().threshold
    edges = {r[0]: r[1:] for r in db.execute(
        "SELECT other_id, kind, note, coverage FROM duplicate_edges WHERE article_id = ?",
        [full])}
    assert edges[gone][:2] == ("near", "cluster merged")
    assert edges[survivor][:2] == ("near", None)
    assert edges[gone][2] == record["source_score"]
    # The near-duplicate index follows: later copies find the members in their new cluster.
    assert set(r[0] for r in db.execute("SELECT cluster_id FROM neardup_signatures")) == {
        survivor}
    late = corpus.add("late", WIRE[3:7], site="Four")
    assert cluster_of(corpus, late) == survivor and merges_of(corpus) == [record]
    # The merged id stays resolvable.
    assert corpus.store.resolve_cluster(gone) == survivor
    assert corpus.store.resolve_cluster(survivor) == survivor
    assert corpus.store.resolve_cluster("0" * 16) is None


def test_the_canonical_member_is_repicked_over_the_merged_cluster(corpus: Corpus) -> None:
    head = corpus.add("head", WIRE[:4], site="One", published=T0)
    shorter = corpus.add("head-2", WIRE[:3], site="Two", published=T0)
    agency = corpus.add("tail", WIRE[4:], site="Reuters", published=T0 + timedelta(hours=5))
    assert cluster_of(corpus, shorter) == head and cluster_of(corpus, agency) == agency
    assert corpus.store.db["clusters"].get(head)["canonical_article_id"] == head
    full = corpus.add("full", WIRE, site="Three", published=T0 + timedelta(hours=1))
    # The larger cluster survives; its canonical is now the agency's copy from the other.
    assert {cluster_of(corpus, a) for a in (head, shorter, agency, full)} == {head}
    cluster = corpus.store.db["clusters"].get(head)
    assert cluster["canonical_article_id"] == agency and cluster["size"] == 4
    (record,) = merges_of(corpus)
    assert (record["source_id"], record["source_size"], record["target_size"]) == (agency, 1,
                                                                                 2)


def test_merged_ids_forward_to_the_live_cluster_through_chained_merges(corpus: Corpus) -> None:
    a = corpus.add("a", WIRE[:2], site="One")
    b = corpus.add("b", WIRE[2:4], site="Two")
    bridge = corpus.add("ab", WIRE[:4], site="Three")  # merges a and b
    first = cluster_of(corpus, bridge)
    (gone,) = {a, b} - {first}
    c = [corpus.add(f"c{i}", part, site=f"C{i}") for i, part in enumerate(
        (WIRE[4:8], WIRE[4:7], WIRE[5:8], WIRE[4:6]))]
    assert {cluster_of(corpus, x) for x in c} == {c[0]}  # size 4: larger than a+b's 3
    full = corpus.add("full", WIRE, site="Four")
    assert {cluster_of(corpus, x) for x in (a, b, bridge, full, *c)} == {c[0]}
    history = [(m["source_id"], m["target_id"], m["article_id"]) for m in merges_of(corpus)]
    assert history == [(gone, first, bridge), (first, c[0], full)]
    # The first merged id forwards to the live cluster, not to the one it first became.
    assert corpus.store.db["clusters"].get(gone)["merged_into"] == c[0]
    assert corpus.store.resolve_cluster(gone) == corpus.store.resolve_cluster(first) == c[0]
    assert corpus.store.db["clusters"].get(c[0])["size"] == 8
    view = list(corpus.store.db.query("SELECT * FROM stories_by_outlets"))
    assert [r["cluster_id"] for r in view] == [c[0]] and view[0]["articles"] == 8
    assert set(view[0]["merged_cluster_ids"].split(",")) == {gone, first}


def test_related_evidence_merges_nothing(corpus: Corpus) -> None:
    """Templated reports share their standing text but not their figures: a third one is at
    most related to the others, so their clusters stay apart."""
    rng = random.Random(5)
    reports = [corpus.add(f"weather-{i}", templated_story("weather", rng)[1], site="Wire")
               for i in range(4)]
    assert len({cluster_of(corpus, r) for r in reports}) == 4
    assert merges_of(corpus) == []
    assert corpus.store.db.execute("SELECT count(*) FROM duplicate_edges WHERE kind = "
                                   "'related'").fetchone()[0] > 0


def test_a_follow_up_reusing_background_neither_joins_nor_merges(corpus: Corpus) -> None:
    from tests.test_verify import NEXT_DAY, STORY

    original = corpus.add("reform", STORY, site="Wire")
    copy = corpus.add("reform-copy", STORY[:6], site="Paper")
    follow_up = corpus.add("strike", hard_follow_up(STORY, NEXT_DAY, random.Random(2), 0.4),
                           site="Wire")
    assert cluster_of(corpus, copy) == original
    assert cluster_of(corpus, follow_up) == follow_up
    assert corpus.article(follow_up)["duplicate_kind"] is None and merges_of(corpus) == []


def test_a_merge_reads_its_contenders_by_id(tmp_path: Path) -> None:
    """Re-picking after a merge looks its few contenders up by id, never walking the
    cluster's index (every member of a large cluster), however many there are."""
    from pipeline.store import Store, merges

    with Store.open(tmp_path / "plan.db") as store:
        for count in (1, 5, 40):
            plan = " ".join(r[3] for r in store.db.execute(
                "EXPLAIN QUERY PLAN " + merges.contenders_sql(count),
                ["c", *(f"a{i}" for i in range(count))]))
            assert "(id=?)" in plan and "cluster" not in plan, (count, plan)
