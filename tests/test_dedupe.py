"""URL canonicalisation, article ids, exact-text fingerprints, and the decision of what a
new article is (exact, near, original; the clusters it merges)."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence

import pytest

from bench.hard_syndication import edit_throughout
from bench.syndication import edit, templated_story
from pipeline import neardup
from pipeline.clusters import Cluster
from pipeline.dedupe import (
    MAX_EDGES,
    Candidate,
    Decision,
    Edge,
    ExactMatch,
    Thresholds,
    article_id,
    canonical_url,
    decide,
    is_near_copy,
    same_site,
    speaks_for,
    text_hash,
)
from pipeline.messages import Fingerprint
from tests.conftest import story
from tests.test_neardup import WIRE


@pytest.mark.parametrize(("a", "b"), [
    ("https://Example.COM/news/story?utm_source=rss&utm_medium=feed",
     "https://example.com/news/story"),
    ("https://example.com:443/news/story/", "https://example.com/news/story"),
    ("http://example.com:80/a#comments", "http://example.com/a"),
    ("https://example.com/a?b=2&a=1&fbclid=XYZ&gclid=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/caf%C3%A9", "https://example.com/café"),
    ("https://example.com//double//slash", "https://example.com/double/slash"),
    ("https://example.com", "https://example.com/"),
])
def test_disguises_of_one_url_are_one_key(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)
    assert article_id(a) == article_id(b)


@pytest.mark.parametrize(("a", "b"), [
    ("https://example.com/a?id=1", "https://example.com/a?id=2"),
    ("https://example.com/a", "https://www.example.com/a"),
    ("http://example.com:8080/a", "http://example.com/a"),
    ("https://example.com/A", "https://example.com/a"),
])
def test_different_documents_stay_different(a: str, b: str) -> None:
    assert canonical_url(a) != canonical_url(b)


def test_article_id_shape() -> None:
    aid = article_id("https://example.com/a")
    assert len(aid) == 16 and aid == aid.lower() and int(aid, 16) >= 0


def test_text_hash_ignores_case_width_and_spacing() -> None:
    assert text_hash("Hello  World\n\nAgain") == text_hash("hello world again")
    assert text_hash("ＡＢＣ") == text_hash("abc")  # NFKC folds full-width letters
    assert text_hash("hello world") != text_hash("hello word")


def test_same_site() -> None:
    assert same_site("https://www.a.example/x", "http://a.example/y")
    assert not same_site("https://a.example/x", "https://b.example/x")


def test_a_feed_speaks_for_the_articles_of_its_own_site() -> None:
    article = "https://www.paper.example/2026/12/01/story.html"
    assert speaks_for("https://paper.example/rss", None, article)
    # A feed host of its own, whose <link> names the site.
    assert speaks_for("https://feeds.paper.example/news", "https://www.paper.example/",
                      article)
    assert not speaks_for("https://feeds.paper.example/news", None, article)
    # Any host under the domain its owner registered (the public suffix list's eTLD+1).
    assert speaks_for("http://rss.cnn.com/rss/edition.rss", "https://www.cnn.com/",
                      "https://edition.cnn.com/2026/12/01/world/story/index.html")
    assert not speaks_for("https://alice.blogspot.com/feeds/posts/default", None,
                          "https://bob.blogspot.com/2026/12/post.html")
    # An aggregator: its feed and its site are elsewhere, whatever it links to.
    assert not speaks_for("https://hot.example/rss", "https://hot.example/", article)
    assert not speaks_for("https://hot.example/rss", "javascript:alert(1)", article)


# --- what a new article is: dedupe.decide, on what a fake store gives it ----------------------

class Corpus:
    """Stored texts and clusters for `decide` (pipeline.dedupe.Stored), counting reads."""

    def __init__(self) -> None:
        self.texts: dict[str, tuple[str, str]] = {}
        self.sizes: dict[str, Cluster] = {}
        self.read: list[str] = []

    def add(self, article_id: str, cluster_id: str, paragraphs: Sequence[str],
            size: int = 1, title: str = "") -> Candidate:
        text = "\n\n".join(paragraphs)
        self.texts[article_id] = (text, title)
        self.sizes[cluster_id] = Cluster(cluster_id, size, f"2025-03-0{len(self.sizes) + 1}")
        fp = neardup.fingerprint(text, title)
        assert fp is not None
        return Candidate(article_id, cluster_id, fp.signature, fp.shingles, fp.numbers)

    def text(self, article_id: str) -> tuple[str, str]:
        self.read.append(article_id)
        return self.texts[article_id]

    def clusters(self, ids: Collection[str]) -> Mapping[str, Cluster]:
        return {i: self.sizes[i] for i in ids}


def new(paragraphs: Sequence[str], title: str = "") -> tuple[Fingerprint, str, str]:
    text = "\n\n".join(paragraphs)
    fp = neardup.fingerprint(text, title)
    assert fp is not None
    return fp, text, title


def test_an_exact_copy_is_decided_without_reading_anything() -> None:
    corpus = Corpus()
    fp, text, title = new(WIRE)
    decision = decide("n", ExactMatch("x", "o", "c"), fp, [], corpus, text, title)
    assert decision == Decision("exact", "o", 1.0, "c", (Edge("n", "o", "exact", 1.0, 1.0),))
    assert decide("n", None, fp, [], corpus, text).cluster_id == "n"  # no candidate: original
    assert corpus.read == []


def test_a_near_copy_joins_its_best_match_with_the_evidence() -> None:
    corpus = Corpus()
    candidates = [corpus.add("o", "c1", WIRE), corpus.add("s", "c2", story("harbour plan", 6))]
    fp, text, title = new(edit(WIRE[:5], random.Random(1), edits=6))
    decision = decide("n", None, fp, candidates, corpus, text, title)
    assert (decision.kind, decision.duplicate_of, decision.cluster_id) == ("near", "o", "c1")
    assert decision.merges == ()
    (edge,) = decision.edges  # the unrelated story is no evidence
    assert (edge.other_id, edge.kind, edge.note) == ("o", "near", None)
    assert edge.coverage == decision.score and Thresholds().near <= edge.coverage < 1
    assert 0 < edge.jaccard < edge.containment < 1
    # The thresholds are the config's: at a stricter one, the same copy is only related.
    strict = decide("n", None, fp, candidates, corpus, text, title, Thresholds(0.99, 0.3))
    assert strict.kind is None and strict.cluster_id == "n"
    assert [(e.kind, e.note) for e in strict.edges] == [("related",
                                                         "below duplicate threshold")]


def test_a_copy_matching_two_clusters_merges_them_into_the_larger() -> None:
    corpus = Corpus()
    candidates = [corpus.add("head", "c1", WIRE[:4]), corpus.add("tail", "c2", WIRE[4:], size=3)]
    fp, text, title = new(WIRE)
    decision = decide("n", None, fp, candidates, corpus, text, title)
    assert decision.kind == "near" and decision.cluster_id == "c2"
    (merge,) = decision.merges
    assert (merge.source, merge.target, merge.article_id, merge.target_article_id) == (
        "c1", "c2", "head", "tail")
    notes = {e.other_id: (e.kind, e.note) for e in decision.edges}
    assert notes == {"head": ("near", "cluster merged"), "tail": ("near", None)}


def test_texts_are_read_only_when_the_fingerprints_do_not_settle_a_pair() -> None:
    corpus = Corpus()
    rng = random.Random(3)
    reports = [templated_story("market", rng) for _ in range(4)]
    candidates = [corpus.add(f"m{i}", f"c{i}", paragraphs, title=title)
                  for i, (title, paragraphs) in enumerate(reports[:3])]
    candidates += [corpus.add("w1", "cw", WIRE), corpus.add("w2", "cw", WIRE[:7]),
                   corpus.add("far", "cf", story("rail strike", 8))]
    title, paragraphs = reports[3]
    fp, text, _ = new(paragraphs, title)
    decision = decide("n", None, fp, candidates, corpus, text, title)
    assert decision.kind is None  # another day's market report: never a copy
    assert corpus.read == []  # its figures differ from the others'; the rest are far apart

    corpus.read.clear()
    fp, text, title = new(WIRE[:6])
    decision = decide("n", None, fp, candidates, corpus, text, title)
    assert decision.kind == "near" and decision.cluster_id == "cw"
    assert corpus.read == ["w1"]  # one near match settles its cluster: w2 is not read


def test_is_near_copy() -> None:
    corpus = Corpus()
    stored = corpus.add("o", "c", WIRE)
    assert is_near_copy(*new(WIRE[:5]), stored, corpus)
    assert not is_near_copy(*new(story("harbour plan", 6)), stored, corpus)
    assert not is_near_copy(None, "", "", stored, corpus)
    assert not is_near_copy(*new(WIRE), None, corpus)


def test_the_evidence_of_a_join_is_kept_however_many_related_candidates() -> None:
    """Edges are capped; the near matches come first, so a join or a merge always has its
    evidence recorded, even behind many closer related candidates."""
    corpus = Corpus()
    rng = random.Random(3)
    title, paragraphs = templated_story("market", rng)
    candidates = [corpus.add(f"m{i}", f"c{i}", templated_story("market", rng)[1])
                  for i in range(2 * MAX_EDGES + 10)]  # other days' reports: related
    candidates.append(corpus.add("same", "cs", edit_throughout(paragraphs, rng, 0.25)))
    fp, text, _ = new(paragraphs, title)
    decision = decide("n", None, fp, candidates, corpus, text, title)
    assert decision.kind == "near" and decision.duplicate_of == "same"
    assert len(decision.edges) == MAX_EDGES
    assert decision.edges[0].other_id == "same" and decision.edges[0].kind == "near"
    related = decision.edges[1:]
    assert all(e.kind == "related" for e in related)
    # The related ones kept are the closest, and closer than the copy's own score.
    assert min(e.containment for e in related) > (decision.score or 0)
