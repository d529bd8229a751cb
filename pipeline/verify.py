"""Verification of near-duplicate candidates on their texts (issue 11).

MinHash-LSH and the anchor index (`pipeline.neardup`) propose candidates; one
estimated-containment threshold cannot then tell a rewritten copy from a follow-up or a
templated report: rewriting breaks five-word shingles everywhere (one edited word breaks
five of them) while a follow-up that reuses a story's background keeps its shingles
verbatim. This module looks at the two texts of a candidate pair (their first SPAN_WORDS
words) and gathers evidence a threshold on one number cannot give:

- **aligned coverage**: the share of the shorter body's words that lie in a word 4-gram the
  other body also has, the shared 4-grams taken in the same order in both texts (the
  longest such chain: a copy keeps the story's order, while two texts made of the same
  stock phrases share them in any order). An edited word uncovers only itself (the
  4-grams on either side of it still match), so coverage stays high under rewording, while
  a follow-up's new reporting (most of it) stays uncovered.
- **numbers**: copies keep their figures, templated reports (markets, results, weather)
  differ exactly there. Two checks: the figures of the two texts' titles and sentences
  (`neardup.figures` and `numbers_overlap`, the existing guard), and the figures inside
  the aligned paragraphs of the shorter text: in a templated pair the sentences align
  around figures that differ.

`check` runs it all for a new article and its candidates, cheapest first: most pairs are
settled by their fingerprints (figures that differ, an estimate under TEXT_FLOOR), and
one near match per cluster is enough. Pure functions: the store passes a loader for the
candidates' stored texts; nothing here reads the database, and nothing is persisted (no
scheme). Measured by bench/bench_verify.py on bench/syndication.py and
bench/hard_syndication.py.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pipeline import neardup
from pipeline.config import DedupeConfig
from pipeline.messages import NEAR, RELATED, DuplicateKind
from pipeline.neardup import BELOW_THRESHOLD, NUMBERS_DIFFER

GRAM_WORDS = 4  # an edited word uncovers itself only; 3 would align stock phrases by chance
# The defaults of `dedupe.threshold` and `dedupe.related_threshold` (pipeline.config): 0.6 of
# the shorter body aligned for a near duplicate, 0.3 for a "related" edge (unrelated texts
# align below ~0.3).
NEAR_COVERAGE = DedupeConfig().threshold
RELATED_COVERAGE = DedupeConfig().related_threshold
# The MinHash containment estimate's thresholds before issue 11: they decide instead of
# coverage when `Signals.coverage` is off (the bench's ablation).
ESTIMATE_NEAR = 0.8
ESTIMATE_RELATED = 0.6
ALIGNED_PARAGRAPH = 0.5  # a paragraph of the shorter text counts as aligned from this share
NUMBER_CONFLICTS = 2  # differing numbers in aligned paragraphs that make a templated pair
# Below this MinHash estimate a pair is not compared on its texts: no copy verified on the
# bench sets had an estimate under 0.43 with the candidate it joined (unrelated pairs: 90%
# under 0.13), and comparing costs about as much as a fingerprint.
TEXT_FLOOR = 0.2
# Bodies are compared on their first 1000 words: a copy keeps a story's beginning, a
# thousand aligned words are evidence enough, and the cost stays flat for long pages.
SPAN_WORDS = 1000

_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Signals:
    """Which evidence `verify` uses (all of it by default; the bench switches each off)."""

    coverage: bool = True  # False: the MinHash containment estimate decides, as before
    order: bool = True  # shared 4-grams count in the same order only (else in any order)
    numbers: bool = True  # the numeric tokens of the two texts (neardup's guard)
    aligned_numbers: bool = True  # differing numbers inside aligned paragraphs


ALL = Signals()


@dataclass(frozen=True, eq=False)
class Prepared:
    """One body, tokenised for verification (kept in memory only, in one process: gram keys
    come from Python's string hash)."""

    words: tuple[str, ...]  # NFKC, case-folded \\w+ words of the body (headline left out)
    paragraph: np.ndarray  # paragraph index of every word
    numeric: np.ndarray  # whether every word contains a digit
    grams: np.ndarray  # a 64-bit key per word GRAM_WORDS-gram, in order (`_gram_keys`)
    numbers: tuple[str, ...]  # figures of the title and the sentences (neardup.figures)

    @cached_property
    def first(self) -> tuple[np.ndarray, np.ndarray]:
        """Each distinct gram key, sorted, and where it first occurs (needed of the longer
        text of a pair only)."""
        keys, where = np.unique(self.grams, return_index=True)
        return keys, where

    def positions(self, grams: np.ndarray) -> np.ndarray:
        """Where each of these gram keys first occurs in this text, -1 where it does not."""
        keys, where = self.first
        if not len(keys):
            return np.full(len(grams), -1, dtype=np.int64)
        slot = np.minimum(np.searchsorted(keys, grams), len(keys) - 1)
        return np.where(keys[slot] == grams, where[slot], -1).astype(np.int64)


@dataclass(frozen=True)
class Evidence:
    """What verification found for one candidate pair."""

    kind: DuplicateKind | None  # near, related or None (unrelated)
    containment: float  # the MinHash estimate (neardup.containment), as before
    numbers_overlap: float | None  # neardup.numbers_overlap of the two texts
    coverage: float | None = None  # share of the shorter body aligned with the other body
    number_conflicts: int | None = None  # unaligned numbers in aligned paragraphs
    note: str | None = None  # why a pair is only related

    @property
    def score(self) -> float:
        """Coverage when the texts were compared, else the estimate."""
        return self.containment if self.coverage is None else self.coverage


@dataclass(frozen=True)
class Candidate:
    """A stored article the indexes proposed, with what the store keeps of it."""

    article_id: str
    cluster_id: str
    containment: float  # the MinHash estimate against the new article
    numbers: tuple[str, ...]  # its stored figures (Fingerprint.numbers)


def check(text: str, title: str, numbers: tuple[str, ...], candidates: Sequence[Candidate],
          load: Callable[[str], tuple[str, str]], signals: Signals = ALL,
          near: float = NEAR_COVERAGE, related: float = RELATED_COVERAGE
          ) -> list[tuple[Candidate, Evidence]]:
    """Verify a new article (its text, title and figures) against its candidates; `load`
    returns a candidate's stored (text, title) by article id, and is called only for the
    candidates whose texts must be compared. `near` and `related` are the coverage
    thresholds (`verify`).

    Cheapest first: figures that differ settle a pair without texts (`screen`), and so does
    an estimate under TEXT_FLOOR (unrelated). The others are compared by descending
    estimate, and once a candidate of a cluster is near, the rest of that cluster are
    skipped (a join or a merge needs one near match per cluster; they would only add
    edges). Returns the evidence of every candidate examined, in that order.
    """
    found: list[tuple[Candidate, Evidence]] = []
    rest = []
    for candidate in candidates:
        screened = screen(numbers, candidate.numbers, candidate.containment, signals, related)
        if screened is not None:
            found.append((candidate, screened))
        elif signals.coverage and candidate.containment < TEXT_FLOOR:
            found.append((candidate, Evidence(None, candidate.containment, None,
                                              note="estimate under the floor")))
        else:
            rest.append(candidate)
    new: Prepared | None = None
    joined: set[str] = set()
    for candidate in sorted(rest, key=lambda c: -c.containment):  # stable: ties stay in order
        if candidate.cluster_id in joined:
            continue
        if new is None:
            new = prepare(text, title)
        evidence = verify(new, prepare(*load(candidate.article_id)), candidate.containment,
                          signals, near, related)
        found.append((candidate, evidence))
        if evidence.kind == NEAR:
            joined.add(candidate.cluster_id)
    return found


def screen(new_numbers: tuple[str, ...], other_numbers: tuple[str, ...], containment: float,
           signals: Signals = ALL, related: float = RELATED_COVERAGE) -> Evidence | None:
    """The verdict from the fingerprints alone when they settle it, else None: compare the
    texts (`verify`). Numbers that differ overall make a pair "related" at most, whatever
    its texts: most candidates of a templated report are other instances of its template,
    and this spares reading and aligning their texts."""
    overlap = neardup.numbers_overlap(new_numbers, other_numbers)
    if not (signals.coverage and signals.numbers and overlap is not None
            and overlap < neardup.NUMERIC_MIN_OVERLAP):
        return None
    if containment < related:
        return Evidence(None, containment, overlap)
    return Evidence(RELATED, containment, overlap, note=NUMBERS_DIFFER)


def prepare(text: str, title: str = "") -> Prepared:
    """Tokenise a body (its first SPAN_WORDS words) once; `verify` then compares it with any
    number of others. Its figures are those of the whole text, as in its fingerprint."""
    title, normalised = neardup.normalise(title), neardup.normalise(text)
    lines = neardup.body(normalised, title).split("\n")
    per_line = []
    count = 0
    for line in lines:
        found = _WORD.findall(line)[:SPAN_WORDS - count]
        per_line.append(found)
        count += len(found)
        if count >= SPAN_WORDS:
            break
    lines = lines[:len(per_line)]
    words = [w for found in per_line for w in found]
    paragraph = np.repeat(np.arange(len(per_line), dtype=np.int32),
                          [len(found) for found in per_line])
    numeric = np.zeros(len(words), dtype=bool)
    offset = 0
    for line, found in zip(lines, per_line, strict=True):
        if _DIGIT.search(line):  # most lines have no figure: skip their words
            numeric[[offset + i for i, w in enumerate(found) if _DIGIT.search(w)]] = True
        offset += len(found)
    return Prepared(words=tuple(words), paragraph=paragraph, numeric=numeric,
                    grams=_gram_keys(words), numbers=neardup.figures(normalised, title))


def _gram_keys(words: Sequence[str]) -> np.ndarray:
    """One 64-bit key per word GRAM_WORDS-gram (neardup.gram_keys over the words' string
    hashes). Equal keys mean equal grams, up to 2^-64; the keys are only compared within
    one process, so Python's per-process hash seed does not matter."""
    hashes = np.fromiter((hash(w) for w in words), dtype=np.int64,
                         count=len(words)).view(np.uint64)
    return neardup.gram_keys(hashes, GRAM_WORDS)


def aligned(text: Prepared, other: Prepared, in_order: bool = True) -> np.ndarray:
    """Per word of `text`: whether it lies in a GRAM_WORDS-gram that `other` also has
    (`in_order`: in the longest chain of such grams in the same order in both texts)."""
    if not len(text.grams):  # fewer words than a gram: nothing can align
        return np.zeros(len(text.words), dtype=bool)
    hits = np.zeros(len(text.grams), dtype=bool)
    if in_order:
        hits[_longest_chain(text, other)] = True
    else:
        hits[other.positions(text.grams) >= 0] = True
    # Word i is covered by the grams starting at i-GRAM_WORDS+1 .. i.
    return np.convolve(hits, np.ones(GRAM_WORDS, dtype=np.int32))[:len(text.words)] > 0


def _longest_chain(text: Prepared, other: Prepared) -> np.ndarray:
    """Indexes of `text`'s grams in a longest chain whose first positions in `other` rise
    (a longest increasing subsequence, by patience sorting)."""
    positions = other.positions(text.grams)
    matched = np.flatnonzero(positions >= 0)
    if (np.diff(positions[matched]) > 0).all():  # in order already (most copies): all of them
        return matched
    tails: list[int] = []  # the smallest position ending a chain of each length
    ends: list[int] = []  # ... and the gram of `text` there
    before: dict[int, int] = {}
    for index, position in zip(matched.tolist(), positions[matched].tolist(), strict=True):
        length = bisect_left(tails, position)
        if length == len(tails):
            tails.append(position)
            ends.append(index)
        else:
            tails[length] = position
            ends[length] = index
        before[index] = ends[length - 1] if length else -1
    chain = []
    index = ends[-1] if ends else -1
    while index >= 0:
        chain.append(index)
        index = before[index]
    return np.asarray(chain, dtype=np.int64)


def verify(new: Prepared, other: Prepared, containment: float, signals: Signals = ALL,
           near: float = NEAR_COVERAGE, related: float = RELATED_COVERAGE) -> Evidence:
    """The evidence that two bodies are copies of one story.

    `containment` is the pair's MinHash estimate (neardup.containment): kept as evidence,
    and deciding instead of coverage when `signals.coverage` is off. 'near' needs the
    shorter body aligned at `near` (NEAR_COVERAGE) and numbers that agree; 'related' needs
    `related` (RELATED_COVERAGE)."""
    short, long = (new, other) if len(new.words) <= len(other.words) else (other, new)
    covered = aligned(short, long, signals.order)
    coverage = float(covered.mean()) if len(covered) else 0.0
    overlap = neardup.numbers_overlap(new.numbers, other.numbers)
    conflicts = number_conflicts(short, covered)

    def evidence(kind: DuplicateKind | None, note: str | None = None) -> Evidence:
        return Evidence(kind, containment, overlap, coverage, conflicts, note)

    score = coverage if signals.coverage else containment
    if not signals.coverage:
        near, related = ESTIMATE_NEAR, ESTIMATE_RELATED
    if score < related:
        return evidence(None)
    if score < near:
        return evidence(RELATED, BELOW_THRESHOLD)
    if signals.numbers and overlap is not None and overlap < neardup.NUMERIC_MIN_OVERLAP:
        return evidence(RELATED, NUMBERS_DIFFER)
    if signals.aligned_numbers and conflicts >= NUMBER_CONFLICTS:
        return evidence(RELATED, f"{NUMBERS_DIFFER} in aligned paragraphs")
    return evidence(NEAR)


def number_conflicts(text: Prepared, covered: np.ndarray) -> int:
    """Numeric words of the aligned paragraphs of `text` left unaligned, when they are at
    least half of the numeric words there (else 0): the same sentences with other figures,
    as in two instances of one report template. (A copy loses the odd figure to an edit
    next to it, or gains a date in its dateline; that is not half of them.)"""
    if not text.numeric.any():
        return 0
    paragraphs = int(text.paragraph[-1]) + 1
    share = (np.bincount(text.paragraph, weights=covered, minlength=paragraphs)
             / np.maximum(1, np.bincount(text.paragraph, minlength=paragraphs)))
    numeric = text.numeric & (share[text.paragraph] >= ALIGNED_PARAGRAPH)
    differing = int((numeric & ~covered).sum())
    return differing if 2 * differing >= int(numeric.sum()) else 0

