"""Tests of the benchmark metrics in bench/scoring.py, with hand-computed expectations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import scoring  # noqa: E402
from bench.scoring import (  # noqa: E402
    corpus_shingle_f1,
    corpus_word_f1,
    shingle_scores,
    word_scores,
)

SENTENCE = "The quick brown fox jumps over the lazy dog."
# pred shingles: (one two three four), (two three four five)                  -> 2
# truth shingles: (one two three four), (two three four six), (three four six seven) -> 3
PRED = "one two three four five"
TRUTH = "one two three four six seven"


def test_identical_texts_score_one() -> None:
    assert shingle_scores(SENTENCE, SENTENCE) == (1.0, 1.0)
    assert word_scores(SENTENCE, SENTENCE) == (1.0, 1.0, 1.0)


def test_disjoint_texts_score_zero() -> None:
    assert shingle_scores("alpha beta gamma delta", "one two three four") == (0.0, 0.0)
    assert word_scores("alpha beta gamma delta", "one two three four") == (0.0, 0.0, 0.0)


def test_partial_overlap_shingles() -> None:
    precision, recall = shingle_scores(PRED, TRUTH)
    assert precision == pytest.approx(1 / 2)
    assert recall == pytest.approx(1 / 3)


def test_partial_overlap_words() -> None:
    # 4 shared words; 5 predicted, 6 true: P = 4/5, R = 4/6, F1 = 2PR/(P+R) = 8/11.
    assert word_scores(PRED, TRUTH) == pytest.approx((4 / 5, 2 / 3, 8 / 11))


def test_shingles_are_multisets() -> None:
    # pred shingles: abcd x2, bcda, cdab, dabc (5); truth: abcd (1); overlap min(2, 1) = 1.
    assert shingle_scores("a b c d a b c d", "a b c d") == pytest.approx((1 / 5, 1.0))
    # Word bags are multisets too: overlap min(2, 1) = 1 -> P = 1/2, R = 1.
    assert word_scores("news news", "news") == pytest.approx((0.5, 1.0, 2 / 3))


def test_case_kept_for_shingles_but_not_words() -> None:
    assert shingle_scores("The cat sat down", "the cat sat down") == (0.0, 0.0)
    assert word_scores("The cat sat down", "the cat sat down") == (1.0, 1.0, 1.0)


def test_short_texts_form_one_shingle() -> None:
    assert scoring.shingles("hello world") == {("hello", "world"): 1}
    assert shingle_scores("hello world", "Hello, world!") == (0.0, 0.0)
    assert shingle_scores("hello world", "hello world") == (1.0, 1.0)
    # A 2-token shingle never equals a 4-token one.
    assert shingle_scores("hello world", "hello world again today") == (0.0, 0.0)


def test_empty_sides_are_none_for_shingles() -> None:
    assert shingle_scores("", "one two three four") == (None, 0.0)
    assert shingle_scores("one two three four", " ... ") == (0.0, None)
    assert shingle_scores("", "") == (None, None)


def test_word_scores_empty_cases() -> None:
    assert word_scores("", TRUTH) == (0.0, 0.0, 0.0)
    assert word_scores(PRED, "") == (0.0, 0.0, 0.0)
    assert word_scores("", "") == (1.0, 1.0, 1.0)


def test_corpus_shingle_skips_empty_predictions_for_precision() -> None:
    pairs = [(SENTENCE, SENTENCE), ("", SENTENCE), (PRED, TRUTH)]
    # precision: mean(1, 1/2) over the 2 non-empty predictions = 3/4
    # recall: mean(1, 0, 1/3) over the 3 non-empty truths = 4/9
    # F1 = 2 * 3/4 * 4/9 / (3/4 + 4/9) = 24/43
    result = corpus_shingle_f1(pairs)
    assert result == pytest.approx({"precision": 3 / 4, "recall": 4 / 9, "f1": 24 / 43})


def test_corpus_shingle_skips_empty_truth_for_recall() -> None:
    result = corpus_shingle_f1([(SENTENCE, SENTENCE), (PRED, "")])
    assert result == pytest.approx({"precision": 1 / 2, "recall": 1.0, "f1": 2 / 3})


def test_corpus_word_counts_empty_predictions_as_zero() -> None:
    pairs = [(SENTENCE, SENTENCE), ("", SENTENCE), (PRED, TRUTH)]
    # P = (1 + 0 + 4/5)/3 = 3/5; R = (1 + 0 + 2/3)/3 = 5/9; F1 = (1 + 0 + 8/11)/3 = 19/33
    result = corpus_word_f1(pairs)
    assert result == pytest.approx({"precision": 3 / 5, "recall": 5 / 9, "f1": 19 / 33})


def test_corpus_word_skips_pages_with_empty_truth() -> None:
    # The empty-truth pages (with or without a prediction) do not enter the mean.
    pairs = [(PRED, TRUTH), (SENTENCE, ""), ("", " -- ")]
    assert corpus_word_f1(pairs) == pytest.approx(
        {"precision": 4 / 5, "recall": 2 / 3, "f1": 8 / 11}
    )


def test_corpus_metrics_of_nothing_are_zero() -> None:
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert corpus_shingle_f1([]) == zero
    assert corpus_word_f1([]) == zero


def test_decode_html_charsets() -> None:
    assert scoring.decode_html("<p>café</p>".encode()) == "<p>café</p>"
    legacy = b'<meta charset="windows-1252"><p>caf\xe9 \x93q\x94</p>'
    assert scoring.decode_html(legacy).endswith("<p>caf\u00e9 \u201cq\u201d</p>")
    latin1 = b'<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">\xe9'
    assert scoring.decode_html(latin1).endswith("\u00e9")
    # Valid UTF-8 wins over a stale legacy declaration.
    stale = '<meta charset="iso-8859-1"><p>café</p>'.encode()
    assert scoring.decode_html(stale).endswith("<p>café</p>")
    assert scoring.decode_html(b"<p>caf\xe9</p>") == "<p>caf\ufffd</p>"


def test_corpus_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEWSWIRE_SHARED", str(tmp_path))
    assert scoring.corpus_dir_from_env() == (tmp_path / "corpus").resolve()
    monkeypatch.delenv("NEWSWIRE_SHARED")
    assert scoring.corpus_dir_from_env() == (ROOT.parent / "shared" / "corpus").resolve()
    monkeypatch.setattr(scoring, "CORPUS_DIR", tmp_path / "missing")
    assert not scoring.corpus_available()


def test_load_pages_rejects_unknown_set() -> None:
    with pytest.raises(ValueError):
        scoring.load_pages("nope")


needs_corpus = pytest.mark.skipif(
    not scoring.corpus_available(), reason=f"../shared/corpus not found ({scoring.CORPUS_DIR})"
)


@pytest.mark.corpus
@needs_corpus
def test_load_scrapinghub_pages() -> None:
    pages = scoring.load_pages("scrapinghub", limit=3)
    assert len(pages) == 3
    for page in pages:
        assert page.id and page.url.startswith("http")
        assert page.html.strip() and page.truth.strip()
        assert page.publish_date is None and page.author is None


@pytest.mark.corpus
@needs_corpus
def test_load_wcxb_pages_have_metadata() -> None:
    pages = scoring.load_pages("wcxb-dev", limit=3)
    assert len(pages) == 3
    assert all(page.html.strip() and page.truth.strip() for page in pages)
    assert any(page.publish_date for page in pages) and any(page.author for page in pages)
