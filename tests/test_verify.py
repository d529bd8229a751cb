"""Verification of near-duplicate candidates on their texts (pipeline.verify), on generated
copies, follow-ups and templated reports (bench/hard_syndication.py's transformations)."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from bench.hard_syndication import (
    dateline,
    edit_throughout,
    hard_copy,
    hard_follow_up,
    hard_templated_story,
    rewrite_lead,
    tagline,
)
from bench.syndication import LOCAL_PARAGRAPHS, Outlet, trim
from pipeline import neardup, verify
from pipeline.boilerplate import clean_lines
from tests.conftest import story

STORY = (
    "Parliament approved a sweeping overhaul of the national rail network late on Tuesday, "
    "clearing the way for the state operator to be split into three regional companies by "
    "the end of next year.",
    "The bill passed by 312 votes to 201 after a debate that ran for more than eleven hours, "
    "with several members of the governing coalition voting against their own leadership.",
    "Transport minister Elena Vargas said the reform would cut journey times on the busiest "
    "routes and end decades of underinvestment in signalling, track and rolling stock.",
    "Unions representing train drivers and maintenance staff have threatened strikes, "
    "arguing that the break-up puts thousands of jobs at risk and will lead to higher fares "
    "on rural lines that lose money.",
    "Under the plan, the government will keep ownership of the tracks and stations through "
    "a new infrastructure agency, while the three operating companies will compete for "
    "contracts to run passenger services.",
    "Freight services, which carry about a fifth of the country's goods, will be opened to "
    "private operators in two stages, the first of them starting in the spring.",
    "Opposition leader Marc Delorme called the vote a mistake that would be paid for by "
    "passengers, and said his party would challenge parts of the law in the constitutional "
    "court.",
    "The European Commission has pushed member states for years to separate the management "
    "of rail infrastructure from the running of trains, saying it encourages competition "
    "and lowers costs.",
    "Similar reforms in neighbouring countries have had mixed results, with punctuality "
    "improving on some main lines while services on smaller branch lines were cut back.",
    "The rail network employs around 48,000 people and carried 1.2 billion passengers last "
    "year, according to figures published by the national statistics office.",
)
# New reporting on the same subject, for a follow-up.
NEXT_DAY = (
    "Rail unions announced a 48-hour strike for next week on Wednesday, the first walkout "
    "since lawmakers voted to break up the state railway into regional operators.",
    "The strike is expected to halt most intercity trains and many commuter services around "
    "the capital, the operator said, advising passengers to postpone journeys if they can.",
    "Union leader Sofia Brandt told a rally outside the transport ministry that members had "
    "been left with no choice after the government refused to guarantee pay and pensions.",
    "Business groups urged both sides to return to talks, warning that a long dispute would "
    "disrupt deliveries to factories that depend on rail freight for their supplies.",
    "The ministry said it remained open to dialogue but would not reopen the law itself, "
    "which it described as the most important modernisation of the network in a generation.",
    "Commuters interviewed at the central station were divided, with some backing the "
    "workers and others saying they were tired of disruption on an already unreliable line.",
)
OUTLET = Outlet("Valley Herald", 1, "rss")


def rewritten(seed: int) -> str:
    """STORY as an outlet runs it: the hard set's transformations, several at once, then
    the call-to-action lines extraction drops (pipeline.boilerplate)."""
    rng = random.Random(seed)
    paragraphs, _ = hard_copy(STORY, rng, OUTLET, NEXT_DAY, "Global Wire Service", None,
                              ["Markets close higher"], rng.uniform(0.02, 0.06))
    return "\n\n".join(clean_lines(list(paragraphs)))


def estimate(a: str, b: str) -> float:
    """The MinHash containment estimate the store verifies with before issue 11."""
    fa, fb = neardup.fingerprint(a), neardup.fingerprint(b)
    assert fa is not None and fb is not None
    jaccard = float(neardup.jaccard_many(fa.signature,
                                         neardup.signature_array(fb.signature)[None, :])[0])
    return neardup.containment(jaccard, fa.shingles, fb.shingles)


def check(a: str, b: str) -> verify.Evidence:
    return verify.verify(verify.prepare(a), verify.prepare(b), estimate(a, b))


def test_an_edited_word_uncovers_only_itself() -> None:
    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    edited = text.replace("lazy", "sleepy")
    covered = verify.aligned(verify.prepare(edited), verify.prepare(text))
    assert covered.tolist() == [i != 7 for i in range(14)]


def test_a_copy_edited_throughout_with_a_new_lead_trimmed_and_dressed_is_near() -> None:
    rng = random.Random(1)
    lead, *rest = edit_throughout(trim(rewrite_lead(STORY, rng, ()), rng, 0.7, 0.7), rng, 0.06)
    when = datetime(2025, 3, 4)
    copy = (dateline("PARIS", "Global Wire Service", when, rng) + lead, *rest[:3],
            LOCAL_PARAGRAPHS[1].format(outlet=OUTLET.name), *rest[3:],
            tagline("Global Wire Service", rng))
    original = "\n\n".join(STORY)
    assert estimate("\n\n".join(copy), original) < 0.8  # one threshold misses it...
    evidence = check("\n\n".join(copy), original)
    assert evidence.kind == "near", evidence  # ...the aligned words do not
    assert evidence.coverage is not None and evidence.coverage >= verify.NEAR_COVERAGE


def test_most_rewritten_copies_are_near_where_containment_misses_them() -> None:
    """What issue 11 is about, pair by pair (a cluster needs one link per copy)."""
    original = "\n\n".join(STORY)
    copies = [rewritten(seed) for seed in range(30)]
    evidence = [check(copy, original) for copy in copies]
    assert sum(e.kind == "near" for e in evidence) >= 27, evidence
    assert all(e.kind is not None for e in evidence)  # at least related
    assert sum(e.containment >= 0.8 for e in evidence) <= 15


@pytest.mark.parametrize("seed", range(6))
def test_a_follow_up_reusing_background_is_not_near(seed: int) -> None:
    rng = random.Random(seed)
    follow_up = hard_follow_up(STORY, NEXT_DAY, rng, 0.4)
    reused = sum(len(p.split()) for p in follow_up if p not in NEXT_DAY)
    assert reused > 0.2 * sum(len(p.split()) for p in follow_up)  # it does reuse background
    for base in (STORY, trim(STORY, rng, 0.5, 0.8)):
        evidence = check("\n\n".join(follow_up), "\n\n".join(base))
        assert evidence.kind != "near", evidence
        assert evidence.coverage is not None and evidence.coverage < verify.NEAR_COVERAGE


@pytest.mark.parametrize("kind", ["market", "sports", "weather"])
def test_templated_reports_align_but_their_figures_differ(kind: str) -> None:
    rng = random.Random(7)
    reports = [hard_templated_story(kind, rng) for _ in range(6)]
    for (title_a, a), (title_b, b) in zip(reports, reports[1:], strict=False):
        one = verify.prepare("\n\n".join(a), title_a)
        other = verify.prepare("\n\n".join(b), title_b)
        evidence = verify.verify(one, other, 0.7)
        assert evidence.kind != "near", evidence
        # The pair is settled from the fingerprints' figures, without reading the texts.
        fa = neardup.fingerprint("\n\n".join(a), title_a)
        fb = neardup.fingerprint("\n\n".join(b), title_b)
        assert fa is not None and fb is not None
        screened = verify.screen(fa.numbers, fb.numbers, 0.7)
        assert screened is not None and screened.kind == "related"


def test_figures_that_differ_inside_aligned_sentences() -> None:
    """Two weather reports whose figures coincide as sets but not in place: the overall
    figures guard passes, the aligned paragraphs show the difference."""
    standing = ("Forecasts are produced by the national weather service from observations "
                "gathered by its network of automatic stations, weather balloons and "
                "satellites, and are updated several times a day as new data arrive.")
    oslo = (f"Temperatures in Oslo are expected to reach 33 degrees on Monday, with overnight "
            f"lows of around 12 degrees and winds of 20 kilometres an hour, according to the "
            f"national weather service.\n\n{standing}")
    lisbon = (f"Temperatures in Lisbon are expected to reach 12 degrees on Monday, with "
              f"overnight lows of around 20 degrees and winds of 33 kilometres an hour, "
              f"according to the national weather service.\n\n{standing}")
    evidence = check(oslo, lisbon)
    assert evidence.numbers_overlap == 1.0  # the sets are equal
    assert evidence.kind == "related" and evidence.note == "numbers differ in aligned paragraphs"
    assert check(oslo, oslo.replace("Monday", "Monday afternoon")).kind == "near"


def test_page_furniture_lends_no_figures() -> None:
    text = "Rovers 3-1 City\n\n" + "\n\n".join(STORY) + "\n\n- Wanderers 2-0 Town"
    assert "3-1" not in neardup.figures(neardup.normalise(text))
    assert "2-0" not in neardup.figures(neardup.normalise(text))
    assert "312" in neardup.figures(neardup.normalise(text))
    assert "3-1" in neardup.figures("", neardup.normalise("Rovers 3-1 City"))  # titles count


def test_distinct_stories_on_one_topic_are_unrelated() -> None:
    for topic, other in (("rail reform", "rail strike"), ("inflation", "interest rates")):
        evidence = check("\n\n".join(story(topic, 8)), "\n\n".join(story(other, 8)))
        assert evidence.kind is None, evidence


def test_screen_settles_only_pairs_whose_figures_differ() -> None:
    assert verify.screen(("1", "2", "3"), ("1", "2", "3", "4"), 0.5) is None
    assert verify.screen((), ("1", "2", "3"), 0.5) is None  # figures cannot judge
    related = verify.screen(("12", "33"), ("20", "5"), 0.7)
    assert related is not None and related.kind == "related" and related.score == 0.7
    unrelated = verify.screen(("12", "33"), ("20", "5"), 0.1)
    assert unrelated is not None and unrelated.kind is None
