"""Wire-story clustering: fingerprints, the band index, clusters with provenance, the CLI."""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.syndication import (
    Outlet,
    add_local,
    edit,
    new_lead,
    templated_story,
    trim,
    wrap,
)
from pipeline import neardup, verify
from pipeline.config import DedupeConfig, FeedConfig, ScheduleConfig
from pipeline.dedupe import article_id
from pipeline.errors import StoreError
from pipeline.messages import Article, NewEntry, PollResult
from pipeline.store import Store, schema
from pipeline.times import iso, utcnow
from tests.conftest import REPO, run_cli, story, write_config

WIRE = (
    "A powerful earthquake struck off the northern coast early on Tuesday, shaking buildings "
    "in the regional capital and sending residents into the streets, the national seismology "
    "institute said.",
    "The quake, which the institute put at magnitude 6.4, hit at a depth of about 10 "
    "kilometres some 40 kilometres north-west of the port city, shortly before dawn when "
    "most people were still asleep.",
    "Emergency services said at least 12 people had been injured, mostly by falling glass "
    "and masonry, and that teams were checking older apartment blocks in the city centre "
    "for structural damage.",
    "Rail services along the coast were suspended while engineers inspected bridges and "
    "tunnels, and the main motorway was closed in both directions near the epicentre after "
    "a section of embankment slipped.",
    "The region sits on a fault line where two tectonic plates meet and has been hit by "
    "several damaging earthquakes over the past century, the most serious of which "
    "destroyed much of the old town.",
    "The prime minister said on social media that the government was in constant contact "
    "with local authorities and that the army had been put on standby to help with the "
    "clean-up if needed.",
    "Schools in the worst affected districts will stay closed for the rest of the week, "
    "the regional education office said, while inspectors assess whether the buildings "
    "are safe to reopen.",
    "Seismologists warned that aftershocks were likely in the coming days and urged "
    "residents to stay away from damaged buildings and to keep emergency supplies of "
    "water and food at home.",
)
WIRE_TITLE = "Strong earthquake hits northern coast, injuring 12"
T0 = datetime(2025, 3, 4, 6, 0, tzinfo=UTC)


def copies_of_the_wire() -> dict[str, tuple[str, ...]]:
    """The wire story as outlets carry it (seeded, so every run sees the same texts)."""
    rng = random.Random(3)
    return {
        "verbatim": WIRE,
        "trimmed": trim(WIRE, rng, 0.6, 0.6),
        "wrapped": wrap(WIRE, rng, "Valley Herald", "Global Wire Service"),
        "edited": edit(WIRE, rng, edits=6),
        "local": add_local(WIRE, rng, "Coastal Times"),
        "new lead": new_lead(WIRE, rng, (
            "Rescue teams pulled two people alive from a collapsed warehouse on Tuesday "
            "afternoon, hours after the earthquake struck the coast.",)),
    }


# --- fingerprints (pure) ----------------------------------------------------------------------

def test_fingerprint_is_pinned_across_processes() -> None:
    """Signatures persist: a new rensa, numpy or seed that changes them must fail here."""
    text = " ".join(f"word{i}" for i in range(40))
    fp = neardup.fingerprint(text)
    assert fp is not None and fp.shingles == 36 and len(fp.signature) == 448
    assert neardup.signature_array(fp.signature)[:4].tolist() == [
        2324621330, 3238543295, 3260291575, 3264957188]
    assert neardup.band_keys(fp.signature)[:2] == [2581077949731810729, 2737465056674909717]
    code = ("from pipeline import neardup; fp = neardup.fingerprint(' '.join(f'word{i}' for i "
            "in range(40))); print(fp.signature.hex(), neardup.band_keys(fp.signature))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=REPO, check=True, env={"PYTHONHASHSEED": "12345"})
    assert other.stdout.split(" ", 1) == [fp.signature.hex(),
                                          f"{neardup.band_keys(fp.signature)}\n"]
    assert "rensa-0.5.0" in neardup.SCHEME and "perm112" in neardup.SCHEME


def test_shingles_and_short_texts() -> None:
    assert neardup.shingles(["a", "b", "c", "d", "e", "f"]) == {"a b c d e", "b c d e f"}
    assert neardup.shingles(["a", "b"]) == {"a b"}
    assert neardup.fingerprint("Too short to compare: " * 3) is None  # 12 words < 25
    assert neardup.words("Ｆull-width ÉCOLE, Straße") == ["full", "width", "école", "strasse"]


@pytest.mark.parametrize(("text", "title", "expected"), [
    ("Quake hits coast\n\nThe body.", "Quake hits coast", "The body."),
    ("Quake hits coast | Daily Meridian\n\nThe body.", "Quake hits coast", "The body."),
    ("QUAKE HITS COAST\n\nThe body.", "Quake hits coast | Daily Meridian", "The body."),
    ("Quake hits coast, killing two people in the north of the country early on Tuesday, "
     "officials said.\n\nThe body.", "Quake hits coast",
     "Quake hits coast, killing two people in the north of the country early on Tuesday, "
     "officials said.\n\nThe body."),  # a lead that starts like the title stays
    ("Another start\n\nThe body.", "Quake hits coast", "Another start\n\nThe body."),
    ("Quake hits coast", "Quake hits coast", "Quake hits coast"),  # nothing else to keep
])
def test_body_leaves_out_a_leading_headline(text: str, title: str, expected: str) -> None:
    assert neardup.body(text, title) == expected


def test_headlines_do_not_count() -> None:
    text = "\n\n".join(WIRE)
    one = neardup.fingerprint(f"Quake strikes\n\n{text}", "Quake strikes")
    other = neardup.fingerprint(f"Buildings shake as quake hits the north\n\n{text}",
                                "Buildings shake as quake hits the north")
    assert one == other == neardup.fingerprint(text)
    # ...but their figures do: a templated report's headline carries its result.
    report = neardup.fingerprint(f"Rovers 4-1 City\n\n{text}", "Rovers 4-1 City")
    assert report is not None and report.signature == one.signature
    assert "4-1" in report.numbers and "4-1" not in one.numbers


def test_containment_survives_trimming_where_jaccard_collapses() -> None:
    full = neardup.fingerprint("\n".join(WIRE))
    half = neardup.fingerprint("\n".join(WIRE[:4]))
    assert full and half
    jaccard = float(neardup.jaccard_many(full.signature,
                                         neardup.signature_array(half.signature)[None, :])[0])
    exact_full = neardup.shingles(neardup.words("\n".join(WIRE)))
    exact_half = neardup.shingles(neardup.words("\n".join(WIRE[:4])))
    true_jaccard = len(exact_full & exact_half) / len(exact_full | exact_half)
    assert abs(jaccard - true_jaccard) < 0.15
    assert jaccard < 0.6  # Jaccard alone would call these different...
    assert neardup.containment(jaccard, full.shingles, half.shingles) >= 0.85  # ...not this
    assert neardup.containment(0.0, 100, 50) == 0.0
    assert neardup.containment(1.0, 100, 100) == 1.0
    assert neardup.containment(0.5, 0, 10) == 0.0


def test_numeric_tokens_leave_out_years_and_timestamps() -> None:
    text = ("Shares rose 2.5% to 7,512.3 (up 45) on 2026-03-04T08:35:34+00:00; Copyright 2025, "
            "final score 3-1; lows of -2 degrees.")
    assert neardup.numeric_tokens(text) == ("-2", "2.5%", "3-1", "45", "7,512.3")


@pytest.mark.parametrize(("a", "b", "expected"), [
    (("1", "2", "3"), ("1", "2", "3", "4", "5", "6"), 1.0),  # a trimmed copy's subset
    (("12", "33"), ("20", "5"), 0.0),  # a short templated report: high and low differ
    (("1", "2", "3", "4"), ("1", "2", "7", "8"), 0.5),
    (("12",), ("20",), None),  # too few numbers to judge
    ((), ("1", "2", "3"), None),  # one text has none
])
def test_numbers_overlap(a: tuple[str, ...], b: tuple[str, ...], expected: float | None) -> None:
    assert neardup.numbers_overlap(a, b) == expected


def test_verdicts() -> None:
    def sim(containment: float, numbers: float | None = None) -> neardup.Similarity:
        return neardup.Similarity(jaccard=0.5, containment=containment, numbers_overlap=numbers)

    assert neardup.verdict(sim(0.95), 0.8, 0.6) == ("near", None)
    assert neardup.verdict(sim(0.8, 0.6), 0.8, 0.6) == ("near", None)
    assert neardup.verdict(sim(0.9, 0.5), 0.8, 0.6) == ("related", "numbers differ")
    assert neardup.verdict(sim(0.7), 0.8, 0.6) == ("related", "below duplicate threshold")
    assert neardup.verdict(sim(0.95, 0.2), 0.8, 0.6) == ("related", "numbers differ")
    assert neardup.verdict(sim(0.59), 0.8, 0.6) is None


def test_band_keys() -> None:
    fp = neardup.fingerprint("\n".join(WIRE))
    assert fp is not None
    keys = neardup.band_keys(fp.signature)
    assert len(keys) == neardup.BANDS == 28 and len(set(keys)) == 28
    assert all(-2**63 <= k < 2**63 for k in keys)
    many = neardup.band_keys_many(neardup.signature_array(fp.signature)[None, :].repeat(3, 0))
    assert many.shape == (3, 28) and many[2].tolist() == keys
    # Equal values in different bands give different keys: one table holds every band.
    flat = neardup.band_keys(bytes(448))
    assert len(set(flat)) == 28
    # One changed value changes exactly the key of its band.
    changed = bytearray(fp.signature)
    changed[4 * 9] ^= 0xFF  # value 9 is in band 2 (rows 8-11)
    moved = neardup.band_keys(bytes(changed))
    assert [i for i in range(28) if moved[i] != keys[i]] == [2]
    with pytest.raises(ValueError):
        neardup.band_keys(b"short")


# --- anchors: the second candidate index (issue 11) -------------------------------------------

def test_anchors_are_pinned_across_processes() -> None:
    """Anchors would persist in the index: a change of hashing must fail here."""
    text = " ".join(f"word{i} alpha beta" for i in range(60))
    fp = neardup.fingerprint(text)
    assert fp is not None and len(fp.anchors) == 11
    assert fp.anchors[:2] == (12276709170636300, 16760850730314918)
    assert list(fp.anchors) == sorted(fp.anchors) and all(k >= 0 for k in fp.anchors)
    code = ("from pipeline import neardup; print(neardup.fingerprint(' '.join(f'word{i} alpha "
            "beta' for i in range(60))).anchors)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=REPO, check=True, env={"PYTHONHASHSEED": "54321"})
    assert other.stdout == f"{fp.anchors}\n"
    assert "w4" in neardup.ANCHOR_SCHEME and "first400" in neardup.ANCHOR_SCHEME


def test_anchors_find_rewritten_copies_whatever_their_size() -> None:
    from bench.hard_syndication import edit_throughout, rewrite_lead

    rng = random.Random(4)
    long = neardup.fingerprint("\n\n".join((*WIRE, *story("quake aftermath", 12))))
    copy = neardup.fingerprint("\n\n".join(edit_throughout(
        rewrite_lead(WIRE[:4], rng, ()), rng, 0.06)))  # its first half, rewritten
    assert long is not None and copy is not None
    assert 16 <= len(long.anchors) <= neardup.ANCHOR_KEYS  # the first 400 words' only
    jaccard = float(neardup.jaccard_many(long.signature,
                                         neardup.signature_array(copy.signature)[None, :])[0])
    assert not set(neardup.band_keys(long.signature)) & set(neardup.band_keys(copy.signature))
    assert jaccard < 0.2  # banding does not propose it...
    shared = set(long.anchors) & set(copy.anchors)
    assert len(shared) >= neardup.ANCHOR_MIN_SHARED  # ...anchors do
    unrelated = neardup.fingerprint("\n\n".join(templated_story("market", rng)[1]))
    assert unrelated is not None and not set(unrelated.anchors) & set(long.anchors)


def test_anchors_skip_stock_phrases_of_short_words() -> None:
    # Every 4-gram has fewer than two words of four letters or more: no anchor at all.
    stock = "it is one of the best of all and so on to the end of it"
    assert neardup.anchor_keys(stock.split(" ")) == ()
    assert neardup.anchor_keys(["too", "short"]) == ()


def test_anchor_candidates() -> None:
    buckets = {1: [10, 11], 2: [10, 12], 3: [11, 10], 4: list(range(100, 134)), 5: [12]}
    # 10 shares three anchors, 11 and 12 two; bucket 4 is boilerplate (over the limit).
    assert neardup.anchor_candidates(buckets) == [10, 11, 12]
    assert neardup.anchor_candidates({1: [10], 2: [11]}) == []
    assert neardup.anchor_candidates({1: [10, 10], 2: [11]}) == []  # one anchor, listed twice


@pytest.mark.parametrize(("sitename", "url", "expected"), [
    ("Reuters", None, True),
    ("REUTERS.", "https://news.example/x", True),
    ("Agence France-Presse", None, True),
    (None, "https://www.reuters.com/world/x", True),
    (None, "https://apnews.com/article/x", True),
    ("The Reuters Gazette", "https://gazette.example/x", False),  # names match whole
    (None, "https://notreuters.com/x", False),  # hosts match whole labels
    ("Daily Meridian", "https://meridian.example/a", False),
    (None, None, False),
])
def test_agency_copy(sitename: str | None, url: str | None, expected: bool) -> None:
    assert neardup.is_agency_copy(sitename, url) is expected


def test_agency_list_is_configurable() -> None:
    assert neardup.is_agency_copy("Global Wire Service", None, ("Global Wire Service",))
    assert neardup.is_agency_copy(None, "https://feeds.wire.example/a", ("wire.example",))
    assert not neardup.is_agency_copy("Reuters", None, ("Global Wire Service",))
    # The list is normalised once and kept (a merge ranks every member against it): each
    # list is its own, whatever came before it.
    assert neardup.is_agency_copy("REUTERS.", None, ["Reuters"])
    assert not neardup.is_agency_copy("Reuters", "https://www.reuters.com/a", ("AFP",))


def test_dedupe_config(tmp_path: Path) -> None:
    from pipeline.config import ConfigError, load_config

    def load(dedupe: str) -> DedupeConfig:
        path = tmp_path / "c.yaml"
        path.write_text(f"database: x.db\nfeeds: ['http://a.example/f']\ndedupe: {dedupe}\n")
        return load_config(path).dedupe

    assert load("{}") == DedupeConfig()
    assert "Reuters" in DedupeConfig().agencies
    custom = load("{agencies: [Global Wire Service, wire.example], band_window_days: 0}")
    assert custom.agencies == ("Global Wire Service", "wire.example")
    assert custom.band_window_days == 0
    for bad, key in (("{threshold: 1.5}", "dedupe.threshold"),
                     ("{threshold: 0.7, related_threshold: 0.75}", "dedupe.related_threshold"),
                     ("{agencies: Reuters}", "dedupe.agencies"),
                     ("{agencies: ['']}", "dedupe.agencies"),
                     ("{band_window_days: -1}", "dedupe.band_window_days")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load(bad)


# --- the store: clusters, provenance, index ------------------------------------------------------

class Corpus:
    """A store with a few feeds; `add` records one poll with one article."""

    def __init__(self, path: Path, dedupe: DedupeConfig | None = None) -> None:
        self.path = path
        self.dedupe = dedupe
        self.store = Store.open(path, dedupe)
        self.store.sync_feeds([FeedConfig(url=f"http://feeds.example/{i}") for i in range(4)])

    def reopen(self) -> None:
        self.store.close()
        self.store = Store.open(self.path, self.dedupe)

    def add(self, slug: str, paragraphs: tuple[str, ...] | list[str], *, site: str = "Site",
            published: datetime | None = None, title: str = "t", feed_id: int = 1,
            canonical: str | None = None) -> str:
        url = f"https://{site.lower().replace(' ', '-')}.example/{slug}"
        canonical = canonical or url
        text = "\n\n".join(paragraphs)
        article = Article(id=article_id(canonical), url=url, canonical_url=canonical,
                          title=title,
                          text=text, author=None,
                          published_at=published.strftime("%Y-%m-%dT%H:%M:%SZ")
                          if published else None,
                          language="en", sitename=site, text_source="page")
        entry = NewEntry(key=url, guid=url, link=url, title=title,
                         published_at=article.published_at, article=article,
                         url_aliases=(url,), fingerprint=neardup.fingerprint(text))
        self.store.record_poll(PollResult(
            feed_id=feed_id, started_at=utcnow(), duration_ms=1, status=200, bytes=1,
            error=None, next_poll_at="2099-01-01T00:00:00Z", consecutive_failures=0,
            current_interval=900.0, entries=(entry,)))
        return article.id

    def article(self, aid: str) -> dict:
        return self.store.db["articles"].get(aid)

    def assignments(self) -> list[tuple]:
        return self.store.db.execute(
            "SELECT id, cluster_id, duplicate_of, duplicate_kind, duplicate_score "
            "FROM articles ORDER BY id").fetchall()

    def bands(self) -> list[tuple]:
        return self.store.db.execute(
            "SELECT bucket, signature_id FROM neardup_bands ORDER BY 1, 2").fetchall()

    def anchors(self) -> list[tuple]:
        return self.store.db.execute(
            "SELECT anchor, signature_id FROM neardup_anchors ORDER BY 1, 2").fetchall()

    def signatures(self) -> dict[str, tuple]:
        """Each indexed article's signature, figures, anchors and band and anchor rows."""
        db = self.store.db
        return {r[0]: (*r[1:], db.execute(
            "SELECT group_concat(bucket) FROM (SELECT bucket FROM neardup_bands "
            "WHERE signature_id = ? ORDER BY 1)", [r[5]]).fetchone()[0], db.execute(
            "SELECT group_concat(anchor) FROM (SELECT anchor FROM neardup_anchors "
            "WHERE signature_id = ? ORDER BY 1)", [r[5]]).fetchone()[0])
            for r in db.execute("SELECT article_id, signature, shingles, numbers, anchors, id "
                                "FROM neardup_signatures")}


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    c = Corpus(tmp_path / "nw.db")
    yield c
    c.store.close()


def test_copies_land_in_the_originals_cluster(corpus: Corpus) -> None:
    original = corpus.add("quake", WIRE, site="Global Wire Service", published=T0)
    ids = {name: corpus.add(f"quake-{i}", text, site=f"Outlet {i}",
                            published=T0 + timedelta(hours=i + 1))
           for i, (name, text) in enumerate(copies_of_the_wire().items())}
    members = {original, *ids.values()}
    for name, aid in ids.items():
        row = corpus.article(aid)
        assert row["cluster_id"] == original, name
        assert row["duplicate_of"] in members - {aid}, name  # the closest stored copy
        expected = "exact" if name == "verbatim" else "near"
        assert row["duplicate_kind"] == expected, name
        assert row["duplicate_score"] >= DedupeConfig().threshold, name  # aligned coverage
    cluster = corpus.store.db["clusters"].get(original)
    assert cluster["size"] == 7 and cluster["canonical_article_id"] == original
    assert corpus.article(original)["duplicate_kind"] is None
    edges = corpus.store.db.execute(
        "SELECT article_id, other_id, kind, coverage FROM duplicate_edges").fetchall()
    assert (ids["verbatim"], original, "exact", None) in edges
    # Every near copy has its evidence: a near edge to the copy it names (one near match per
    # cluster is verified; the others are not read).
    near = {(a, other) for a, other, kind, _ in edges if kind == "near"}
    assert all((ids[n], corpus.article(ids[n])["duplicate_of"]) in near
               for n in ids if n != "verbatim")
    assert all(coverage >= DedupeConfig().threshold
               for _, _, kind, coverage in edges if kind == "near")


def test_templated_reports_and_distinct_stories_on_one_topic_stay_apart(
        corpus: Corpus) -> None:
    rng = random.Random(5)
    aids = [corpus.add(f"{kind}-{i}", templated_story(kind, rng)[1], site="Wire")
            for kind in ("market", "sports", "weather") for i in range(6)]
    aids += [corpus.add(f"policy-{i}", story(f"economy policy {i}", 8), site="Wire")
             for i in range(8)]
    clusters = {corpus.article(a)["cluster_id"] for a in aids}
    assert len(clusters) == len(aids)
    assert all(corpus.article(a)["duplicate_kind"] is None for a in aids)
    # The guard did the work: some templated pairs share enough text to pass containment.
    stopped = corpus.store.db.execute(
        "SELECT count(*) FROM duplicate_edges WHERE kind = 'related' AND note = "
        "'numbers differ' AND containment >= 0.8").fetchone()[0]
    assert stopped > 0
    # ...while a copy of a templated report is still its duplicate.
    copy = corpus.add("market-0-copy", corpus.article(aids[0])["text"].split("\n\n")[:-1],
                      site="Other")
    assert corpus.article(copy)["cluster_id"] == aids[0]


def test_canonical_member_is_the_agency_copy_else_the_earliest_else_the_longest(
        corpus: Corpus) -> None:
    first = corpus.add("a", WIRE[:6], site="Daily Meridian", published=T0 + timedelta(hours=2))
    earlier = corpus.add("b", WIRE[:6], site="Valley Herald", published=T0 + timedelta(hours=1))
    cluster = corpus.article(first)["cluster_id"]

    def canonical() -> str:
        return corpus.store.db["clusters"].get(cluster)["canonical_article_id"]

    assert corpus.article(earlier)["cluster_id"] == cluster
    assert canonical() == earlier  # earliest published
    longer = corpus.add("c", WIRE, site="Coastal Times", published=T0 + timedelta(hours=1))
    assert canonical() == longer  # same time: the longest text
    agency = corpus.add("d", WIRE[:5], site="Reuters", published=T0 + timedelta(hours=5))
    assert canonical() == agency  # the agency's own copy, though later and shorter
    corpus.add("e", WIRE, site="Metro Dispatch", published=T0)
    assert canonical() == agency
    assert corpus.store.db["clusters"].get(cluster)["size"] == 5


def test_agencies_come_from_the_config(tmp_path: Path) -> None:
    corpus = Corpus(tmp_path / "nw.db", DedupeConfig(agencies=("Global Wire Service",)))
    corpus.add("a", WIRE, site="Reuters", published=T0)
    agency = corpus.add("b", WIRE[:6], site="Global Wire Service", published=T0)
    cluster = corpus.article(agency)["cluster_id"]
    assert corpus.store.db["clusters"].get(cluster)["canonical_article_id"] == agency
    corpus.store.close()


def ingest_story_set(corpus: Corpus) -> None:
    corpus.add("quake", WIRE, site="Global Wire Service", published=T0)
    for i, text in enumerate(copies_of_the_wire().values()):
        corpus.add(f"quake-{i}", text, site=f"Outlet {i}", published=T0 + timedelta(hours=1))
    rng = random.Random(8)
    for i in range(4):
        corpus.add(f"weather-{i}", templated_story("weather", rng)[1], site="Wire")
        corpus.add(f"topic-{i}", story(f"harbour plan {i}", 6), site="Wire")


def test_restart_and_rerun_leave_assignments_unchanged(tmp_path: Path) -> None:
    corpus = Corpus(tmp_path / "a.db")
    ingest_story_set(corpus)
    before = corpus.assignments()
    clusters = corpus.store.db.execute("SELECT * FROM clusters ORDER BY id").fetchall()
    bands = corpus.bands()
    corpus.reopen()
    ingest_story_set(corpus)  # the same items again: already stored, nothing moves
    assert corpus.assignments() == before
    assert corpus.store.db.execute("SELECT * FROM clusters ORDER BY id").fetchall() == clusters
    assert corpus.bands() == bands
    # A new copy joins without moving anyone else.
    corpus.add("quake-late", WIRE[:5], site="Late Outlet")
    after = corpus.assignments()
    assert len(after) == len(before) + 1 and set(before) <= set(after)
    corpus.store.close()

    # Same input, same order, fresh database: the same clusters (ids are article ids).
    again = Corpus(tmp_path / "b.db")
    ingest_story_set(again)
    assert again.assignments() == before
    again.store.close()


def test_exact_copies_stay_out_of_the_index(corpus: Corpus) -> None:
    original = corpus.add("a", WIRE, site="One")
    copy = corpus.add("b", WIRE, site="Two")
    rows = [r[0] for r in corpus.store.db.execute("SELECT article_id FROM neardup_signatures")]
    assert rows == [original]  # the copy's twin is indexed: no signature of its own
    assert len(corpus.bands()) == 28
    assert {sid for _, sid in corpus.anchors()} == {1}
    assert corpus.article(copy)["duplicate_of"] == original
    # An exact copy of a near copy points at the text it equals, not at the original.
    near = corpus.add("c", WIRE[:6], site="Three")
    twin = corpus.add("d", WIRE[:6], site="Four")
    assert corpus.article(near)["duplicate_of"] == original
    assert corpus.article(twin)["duplicate_of"] == near
    assert corpus.article(twin)["duplicate_kind"] == "exact"


def test_prune_and_reindex(corpus: Corpus) -> None:
    ingest_story_set(corpus)
    bands, anchors = corpus.bands(), corpus.anchors()
    signatures = corpus.store.db["neardup_signatures"].count
    assert bands and signatures >= 8
    indexed = {sid for _, sid in bands}
    assert anchors and {sid for _, sid in anchors} <= indexed

    report = corpus.store.reindex(30)
    assert corpus.bands() == bands  # rebuilt from the signatures: identical
    assert corpus.anchors() == anchors  # ...and from the anchors kept with them
    assert report.band_rows == len(bands) and report.signatures == len(bands) // 28
    assert report.anchor_rows == len(anchors)
    stored = corpus.signatures()
    assert len(stored) == signatures

    assert corpus.store.prune_bands(30) == 0  # nothing is old yet
    later = datetime.now(UTC) + timedelta(days=31)
    assert corpus.store.prune_bands(30, now=later) == len(bands) // 28
    assert corpus.bands() == [] and corpus.anchors() == []  # both indexes, together
    assert corpus.store.db["neardup_signatures"].count == 0  # the signatures with them
    assert corpus.store.prune_bands(0, now=later) == 0  # 0 = keep everything
    # Out of the window, an old story no longer attracts copies...
    fp = neardup.fingerprint("\n".join(WIRE))
    assert fp is not None and fp.anchors
    assert corpus.store.near_match("x" * 16, fp, "\n".join(WIRE)).kind is None
    # ...until the window is widened: the signatures come back from the stored texts,
    # the same as they were, and so do both indexes.
    report = corpus.store.reindex(0)
    assert report.fingerprinted == signatures and report.band_rows == len(bands)
    assert corpus.signatures() == stored  # the same values under the same ids
    assert corpus.bands() == bands and corpus.anchors() == anchors
    assert corpus.store.near_match("x" * 16, fp, "\n".join(WIRE)).kind == "near"
    assert corpus.store.reindex(0).fingerprinted == 0  # nothing missing any more
    assert corpus.store.reindex(30, now=later).band_rows == 0
    assert corpus.anchors() == [] and corpus.store.db["neardup_signatures"].count == 0


def test_signatures_computed_for_a_widened_window_keep_the_oldest_first(
        corpus: Corpus) -> None:
    """Widening the window computes the older articles' signatures after the newer ones
    were stored; they are renumbered into place, so a copy matching both still goes to the
    earliest (candidates come oldest first, ties to the earliest indexed)."""
    old = corpus.add("a", WIRE, site="One")
    month_ago = iso(datetime.now(UTC) - timedelta(days=40))
    corpus.store.db.execute("UPDATE articles SET fetched_at = ? WHERE id = ?", [month_ago, old])
    corpus.store.db.execute("UPDATE neardup_signatures SET indexed_at = ?", [month_ago])
    assert corpus.store.prune_bands(30) == 1
    newer = corpus.add("b", WIRE[:7], site="Two")
    assert corpus.article(newer)["cluster_id"] == newer  # the old story is out of the window
    assert corpus.store.reindex(60).fingerprinted == 1
    assert corpus.store.db.execute(
        "SELECT article_id FROM neardup_signatures ORDER BY id").fetchall() == [(old,), (newer,)]
    copy = corpus.add("c", WIRE[:6], site="Three")  # all of it in both
    assert corpus.article(copy)["duplicate_of"] == old
    assert corpus.article(copy)["duplicate_kind"] == "near"


def test_an_article_never_given_a_fetch_time_is_indexed_as_new(corpus: Corpus) -> None:
    article = corpus.add("a", WIRE, site="One")
    corpus.store.db.execute("DELETE FROM neardup_signatures")
    corpus.store.db.execute("UPDATE articles SET fetched_at = NULL")
    report = corpus.store.reindex(30, from_text=True)
    assert (report.fingerprinted, report.signatures) == (1, 1)
    assert corpus.add("b", WIRE[:6], site="Two") != article
    assert corpus.store.db.execute("SELECT count(DISTINCT cluster_id) FROM articles"
                                   ).fetchone() == (1,)


def test_a_page_claiming_an_article_out_of_the_window_is_checked_on_its_text(
        corpus: Corpus) -> None:
    """An article whose signature left with the window is compared on its stored text when
    another page claims its canonical URL: a near copy joins it, another text keeps its
    own URL."""
    original = corpus.add("quake", WIRE, site="One")
    url = corpus.article(original)["url"]
    assert corpus.store.prune_bands(30, now=datetime.now(UTC) + timedelta(days=31)) == 1
    assert corpus.store.db["neardup_signatures"].count == 0
    edited = [*WIRE[:-1], WIRE[-1] + " Officials gave no further details."]
    assert corpus.add("amp/quake", edited, site="One", canonical=url) == original
    assert corpus.store.db["articles"].count == 1
    corpus.add("amp/other", story("harbour plan", 6), site="One", canonical=url)
    assert corpus.store.db.execute(
        "SELECT id != ?, claimed_canonical_url FROM articles WHERE url = ?",
        [original, "https://one.example/amp/other"]).fetchall() == [(1, url)]


def test_a_database_from_before_schema_22_keeps_only_the_windows_signatures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrations 22 and 23: the signatures out of the index (pruned ones, exact copies')
    go, then the columns that told them apart; the window's stay, and copies of its
    stories are still found."""
    monkeypatch.setattr(schema, "MIGRATIONS", {  # the feeds table's later columns kept
        n: m for n, m in schema.MIGRATIONS.items() if n < 22 or n >= 24})
    corpus = Corpus(tmp_path / "a.db")
    original = corpus.add("a", WIRE, site="One")
    copy = corpus.add("b", WIRE, site="Two")
    old = corpus.add("c", story("harbour plan", 6), site="Three")
    db = corpus.store.db
    # As schema 21 left them: every signature flagged in the index, the exact copy's kept
    # out of it, an old article's pruned from it.
    db.execute("UPDATE neardup_signatures SET in_index = 1, indexable = 1")
    db.execute("INSERT INTO neardup_signatures (article_id, cluster_id, signature, shingles, "
               "numbers, indexed_at, in_index, indexable, anchors) SELECT ?, cluster_id, "
               "signature, shingles, numbers, indexed_at, 0, 0, anchors FROM "
               "neardup_signatures WHERE article_id = ?", [copy, original])
    db.execute("UPDATE neardup_signatures SET in_index = 0 WHERE article_id = ?", [old])
    monkeypatch.undo()
    corpus.reopen()
    assert {22, 23} <= schema.applied(corpus.store.db)
    assert [r[0] for r in corpus.store.db.execute(
        "SELECT article_id FROM neardup_signatures")] == [original]
    assert "in_index" not in corpus.store.db["neardup_signatures"].columns_dict
    near = corpus.add("d", WIRE[:6], site="Four")
    assert corpus.article(near)["cluster_id"] == original
    corpus.store.close()


def test_a_rewritten_copy_found_by_its_anchors_alone_joins(corpus: Corpus) -> None:
    """A copy of a long story's first half, rewritten: it shares no LSH band with the
    story (its Jaccard is far too low), but shares anchors, and its text aligns."""
    from bench.hard_syndication import edit_throughout, rewrite_lead

    rng = random.Random(4)
    long_story = (*WIRE, *story("quake aftermath", 12))
    copy_text = edit_throughout(rewrite_lead(WIRE[:4], rng, ()), rng, 0.06)
    original = corpus.add("long", long_story, site="Wire")
    fp = neardup.fingerprint("\n\n".join(copy_text))
    assert fp is not None
    assert not set(neardup.band_keys(fp.signature)) & {b for b, _ in corpus.bands()}
    assert len(set(fp.anchors) & {a for a, _ in corpus.anchors()}) >= 2
    copy = corpus.add("copy", copy_text, site="Paper")
    assert corpus.article(copy)["cluster_id"] == original
    assert corpus.article(copy)["duplicate_kind"] == "near"
    coverage, containment = corpus.store.db.execute(
        "SELECT coverage, containment FROM duplicate_edges WHERE article_id = ?",
        [copy]).fetchone()
    assert coverage >= DedupeConfig().threshold and containment < verify.ESTIMATE_NEAR


def test_daemon_maintenance_prunes_the_index(corpus: Corpus) -> None:
    from types import SimpleNamespace

    old = corpus.add("old", WIRE, site="One")
    corpus.add("new", story("harbour plan", 6), site="Two")
    corpus.store.db.execute("UPDATE neardup_signatures SET indexed_at = ? WHERE article_id = ?",
                            ["2000-01-01T00:00:00Z", old])
    corpus.store.maintenance(SimpleNamespace(dedupe=DedupeConfig(band_window_days=30),
                                             schedule=ScheduleConfig()))
    rows = [r[0] for r in corpus.store.db.execute("SELECT article_id FROM neardup_signatures")]
    assert old not in rows and len(rows) == 1
    assert len(corpus.bands()) == 28


def dummy_article() -> Article:
    return Article(id="0" * 16, url="", canonical_url="", title="", text="", author=None,
                   published_at=None, language=None, sitename=None, text_source="page")


@pytest.mark.parametrize("key", ["scheme", "anchor_scheme"])
def test_a_changed_scheme_is_refused_until_reindexed_from_text(corpus: Corpus,
                                                               key: str) -> None:
    original = corpus.add("a", WIRE, site="One")
    corpus.store.db.execute("UPDATE neardup_meta SET value = 'rensa-0.4/old' "
                            "WHERE key = ?", [key])
    corpus.reopen()
    with pytest.raises(StoreError, match="reindex --from-text"):
        corpus.add("b", WIRE[:6], site="Two")
    assert corpus.store.db["articles"].count == 1  # the poll rolled back whole
    report = corpus.store.reindex(30, from_text=True)
    assert report.fingerprinted == 1 and report.band_rows == 28 and report.anchor_rows > 0
    assert dict(corpus.store.db.execute("SELECT key, value FROM neardup_meta").fetchall()) \
        == {"scheme": neardup.SCHEME, "anchor_scheme": neardup.ANCHOR_SCHEME}
    copy = corpus.add("b", WIRE[:6], site="Two")
    assert corpus.article(copy)["cluster_id"] == original


def test_a_version_1_database_is_migrated_and_backfilled(tmp_path: Path) -> None:
    from pipeline.store.schema import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    import sqlite_utils

    MIGRATIONS[1](sqlite_utils.Database(conn))
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO feeds (id, url, active) VALUES (1, 'http://f.example/', 1)")
    conn.execute("INSERT INTO clusters (id, canonical_article_id, size) VALUES ('a', 'a', 1)")
    conn.execute("INSERT INTO articles (id, url, title, text, fetched_at, feed_id, cluster_id, "
                 "sitename) VALUES ('a', 'https://old.example/a', 'Old', ?, ?, 1, 'a', 'Old')",
                 ["\n\n".join(WIRE), utcnow()])
    conn.close()
    corpus = Corpus(path)
    assert corpus.store.schema_version == SCHEMA_VERSION
    assert corpus.store.reindex(30, from_text=True).fingerprinted == 1
    anchors = corpus.store.db.execute("SELECT anchors FROM neardup_signatures").fetchone()[0]
    fp = neardup.fingerprint("\n\n".join(WIRE), "Old")
    assert fp is not None and anchors == np.asarray(fp.anchors, dtype="<i8").tobytes()
    assert len(corpus.anchors()) == len(fp.anchors)
    copy = corpus.add("copy", WIRE[:5], site="New")
    assert corpus.article(copy)["cluster_id"] == "a"
    corpus.store.close()


def test_articles_stored_before_anchors_keep_their_band_index_until_reindexed(
        corpus: Corpus) -> None:
    """A database from before migration 8: its signatures have no anchors (NULL); copies
    are still found through the bands, and `reindex --from-text` gives them anchors."""
    original = corpus.add("a", WIRE, site="One")
    corpus.store.db.execute("UPDATE neardup_signatures SET anchors = NULL")
    corpus.store.db.execute("DELETE FROM neardup_anchors")
    corpus.store.db.execute("DELETE FROM neardup_meta WHERE key = 'anchor_scheme'")
    corpus.reopen()
    copy = corpus.add("b", WIRE[:6], site="Two")  # the anchorless scheme check passes
    assert corpus.article(copy)["cluster_id"] == original
    assert corpus.store.reindex(30).anchor_rows == len(corpus.anchors()) > 0  # the copy's
    report = corpus.store.reindex(30, from_text=True)
    assert report.fingerprinted == 2
    assert {sid for _, sid in corpus.anchors()} == {1, 2}


def test_stories_by_outlets_view(corpus: Corpus) -> None:
    original = corpus.add("quake", WIRE, site="Global Wire Service", published=T0,
                          title=WIRE_TITLE)
    corpus.add("q1", WIRE[:6], site="Daily Meridian", title="Quake")
    corpus.add("q2", WIRE, site="Valley Herald", title="Quake!")  # exact copy
    corpus.add("solo", story("harbour plan", 6), site="Daily Meridian")
    corpus.add("s1", story("rail strike", 6), site="Daily Meridian", feed_id=1)
    corpus.add("s2", story("rail strike", 6)[:4], site="Daily Meridian", feed_id=2)
    rows = list(corpus.store.db.query("SELECT * FROM stories_by_outlets"))
    assert len(rows) == 1  # one outlet twice is not "several outlets"
    row = rows[0]
    assert row["cluster_id"] == original and row["canonical_title"] == WIRE_TITLE
    assert row["outlets_count"] == 3 and row["articles"] == 3
    assert set(row["outlets"].split(",")) == {"Global Wire Service", "Daily Meridian",
                                               "Valley Herald"}
    assert row["first_seen_at"] <= row["last_seen_at"]
    assert row["first_published_at"] == "2025-03-04T06:00:00Z"


# --- end to end: the CLI against several outlets ---------------------------------------------

def test_cli_clusters_copies_across_outlets(tmp_path: Path) -> None:
    agency = Outlet("Reuters", 0, "rss")
    papers = [Outlet(name, template, fmt) for name, template, fmt in (
        ("Daily Meridian", 1, "atom"), ("Valley Herald", 2, "json"),
        ("Harbour Town Post", 3, "rdf"), ("Metro Dispatch", 4, "rss"))]
    outlets = [agency, *papers]
    rng = random.Random(11)
    agency.site.add_article("quake", WIRE_TITLE, WIRE, T0)
    for i in range(3):
        agency.site.add_article(f"weather-{i}", f"Weather {i}",
                                templated_story("weather", rng)[1], T0 + timedelta(hours=i))
        agency.site.add_article(f"policy-{i}", f"Policy {i}", story(f"budget row {i}", 6),
                                T0 + timedelta(hours=i))
    for outlet in outlets:
        outlet.site.start()
    try:
        config = write_config(tmp_path / "newswire.yaml", [o.feed_url for o in outlets],
                              dedupe={"band_window_days": 30})
        # The agency publishes first; the papers' copies follow (arriving in any order).
        assert run_cli("once", config=config).code == 0
        copies = copies_of_the_wire()
        for paper, name in zip(papers, ("trimmed", "wrapped", "edited", "verbatim"),
                               strict=True):
            paper.site.add_article("earthquake", f"{WIRE_TITLE} | {paper.name}", copies[name],
                                   T0 + timedelta(hours=2))
        result = run_cli("once", "--all", config=config)
        assert result.code == 0, result.stderr
        counts = re.search(r"4 new articles \((\d+) exact and (\d+) near", result.stdout)
        assert counts and int(counts[1]) + int(counts[2]) == 4, result.stdout
        db = tmp_path / "newswire.db"

        def query(sql: str) -> list[tuple]:
            with sqlite3.connect(db) as conn:
                return conn.execute(sql).fetchall()

        quake = query("SELECT cluster_id, sitename, duplicate_kind FROM articles "
                      "WHERE title LIKE 'Strong earthquake%'")
        assert len(quake) == 5 and len({c for c, *_ in quake}) == 1
        cluster = quake[0][0]
        canonical = query(f"SELECT a.sitename, c.size FROM clusters c JOIN articles a "
                          f"ON a.id = c.canonical_article_id WHERE c.id = '{cluster}'")
        assert canonical == [("Reuters", 5)]
        others = query("SELECT cluster_id FROM articles WHERE title NOT LIKE 'Strong%'")
        assert len(others) == 6 and len({c for (c,) in others}) == 6
        view = query("SELECT cluster_id, canonical_title, outlets_count FROM "
                     "stories_by_outlets")
        assert view == [(cluster, WIRE_TITLE, 5)]

        before = query("SELECT id, cluster_id, duplicate_of, duplicate_kind, duplicate_score "
                       "FROM articles ORDER BY id")
        bands = query("SELECT * FROM neardup_bands ORDER BY 1, 2")
        assert run_cli("once", "--all", config=config).code == 0
        assert query("SELECT id, cluster_id, duplicate_of, duplicate_kind, duplicate_score "
                     "FROM articles ORDER BY id") == before

        result = run_cli("reindex", config=config)
        assert result.code == 0, result.stderr
        assert f"into {len(bands)} band rows" in result.stdout
        assert query("SELECT * FROM neardup_bands ORDER BY 1, 2") == bands

        # `once` keeps the index within its window: age one signature past it.
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE neardup_signatures SET indexed_at = '2000-01-01T00:00:00Z' "
                         "WHERE id = 1")
        assert run_cli("once", "--all", config=config).code == 0
        assert query("SELECT count(*) FROM neardup_bands WHERE signature_id = 1") == [(0,)]
        assert query("SELECT id FROM neardup_signatures WHERE id = 1") == []  # gone
        assert len(query("SELECT * FROM neardup_bands")) == len(bands) - 28
    finally:
        for outlet in outlets:
            outlet.site.stop()
