"""Corpus loading and extraction metrics for the benchmark scripts (stdlib only).

The corpora live outside the repo in ``../shared/corpus`` (see its README.md). Two metrics:

* shingle F1 (ScrapingHub article-extraction-benchmark): ``\\w+`` tokens with case kept,
  4-token shingles compared as multisets per page. Corpus precision is the mean over pages with
  a non-empty prediction, corpus recall the mean over pages with a non-empty truth, and F1 the
  harmonic mean of those two means. A text of 1-3 tokens yields one shingle made of all its
  tokens (as upstream does), so short texts still score; a text with no token has no shingles.
* word F1 (WCXB): lower-cased ``\\w+`` bags of words; per-page P/R/F1 averaged over the pages
  with a non-empty truth (an empty prediction scores 0 on its page).

``plain_trafilatura*`` import trafilatura lazily so the metrics need nothing outside the stdlib.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.extract import decode_html  # the product's own decoding, for both extractors

REPO_ROOT = Path(__file__).resolve().parent.parent
SETS = ("scrapinghub", "wcxb-dev")
SHINGLE_N = 4

_WORD_RE = re.compile(r"\w+")


def corpus_dir_from_env() -> Path:
    """Return ``$NEWSWIRE_SHARED/corpus`` if that is set, else ``<repo>/../shared/corpus``.

    ``NEWSWIRE_SHARED`` names the shared folder itself (the one holding ``corpus/``).
    """
    shared = os.environ.get("NEWSWIRE_SHARED")
    base = Path(shared).expanduser() if shared else REPO_ROOT.parent / "shared"
    return (base / "corpus").resolve()


CORPUS_DIR: Path = corpus_dir_from_env()


def corpus_available() -> bool:
    """True when the shared extraction corpora are present."""
    return (CORPUS_DIR / "extraction").is_dir()


@dataclass(frozen=True)
class Page:
    """One benchmark page: decoded HTML, ground-truth body text and manifest metadata."""

    id: str
    url: str
    title: str
    html: str
    truth: str
    publish_date: str | None = None
    author: str | None = None


def _none_if_empty(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def load_pages(set_name: str, limit: int | None = None) -> list[Page]:
    """Load ``set_name`` ('scrapinghub' or 'wcxb-dev') in manifest order, first ``limit`` pages."""
    if set_name not in SETS:
        raise ValueError(f"unknown set {set_name!r}; expected one of {SETS}")
    root = CORPUS_DIR / "extraction" / set_name
    pages: list[Page] = []
    with (root / "manifest.tsv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            if limit is not None and len(pages) >= limit:
                break
            page_id = row["id"]
            with gzip.open(root / "html" / f"{page_id}.html.gz", "rb") as gz:
                html = decode_html(gz.read())
            truth = (root / "truth" / f"{page_id}.txt").read_text(encoding="utf-8")
            pages.append(
                Page(
                    id=page_id,
                    url=row["url"],
                    title=row.get("title") or "",
                    html=html,
                    truth=truth,
                    publish_date=_none_if_empty(row.get("publish_date")),
                    author=_none_if_empty(row.get("author")),
                )
            )
    return pages


def shingles(text: str, n: int = SHINGLE_N) -> Counter[tuple[str, ...]]:
    """Multiset of ``n``-token shingles; fewer than ``n`` tokens give a single shorter shingle."""
    tokens = _WORD_RE.findall(text)
    if len(tokens) < n:
        return Counter([tuple(tokens)]) if tokens else Counter()
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def shingle_scores(pred: str, truth: str) -> tuple[float | None, float | None]:
    """Page (precision, recall) on shingles; a side with no shingles gives None."""
    pred_sh, truth_sh = shingles(pred), shingles(truth)
    overlap = (pred_sh & truth_sh).total()
    precision = overlap / pred_sh.total() if pred_sh else None
    recall = overlap / truth_sh.total() if truth_sh else None
    return precision, recall


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def corpus_shingle_f1(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Corpus shingle metrics over ``(pred, truth)`` pairs (ScrapingHub averaging rule)."""
    precisions: list[float] = []
    recalls: list[float] = []
    for pred, truth in pairs:
        precision, recall = shingle_scores(pred, truth)
        if precision is not None:
            precisions.append(precision)
        if recall is not None:
            recalls.append(recall)
    p, r = _mean(precisions), _mean(recalls)
    return {"precision": p, "recall": r, "f1": _f1(p, r)}


def word_scores(pred: str, truth: str) -> tuple[float, float, float]:
    """Page (precision, recall, F1) on lower-cased word bags.

    An empty prediction scores 0, as does any prediction against an empty truth; an empty
    prediction for an empty truth is exactly right and scores 1 (``corpus_word_f1`` skips such
    empty-truth pages anyway).
    """
    pred_bag = Counter(_WORD_RE.findall(pred.lower()))
    truth_bag = Counter(_WORD_RE.findall(truth.lower()))
    if not pred_bag and not truth_bag:
        return 1.0, 1.0, 1.0
    if not pred_bag or not truth_bag:
        return 0.0, 0.0, 0.0
    overlap = (pred_bag & truth_bag).total()
    precision = overlap / pred_bag.total()
    recall = overlap / truth_bag.total()
    return precision, recall, _f1(precision, recall)


def has_words(truth: str) -> bool:
    """Whether a page's truth counts in the word metric (``corpus_word_f1`` skips the rest)."""
    return bool(_WORD_RE.search(truth))


def corpus_word_f1(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Mean per-page word precision, recall and F1 over ``(pred, truth)`` pairs.

    Pages whose truth has no word are left out (recall is undefined there; this reproduces the
    published wcxb-dev figure). An empty prediction on any other page scores 0 on that page.
    """
    scores = [word_scores(pred, truth) for pred, truth in pairs if has_words(truth)]
    return {
        "precision": _mean([s[0] for s in scores]),
        "recall": _mean([s[1] for s in scores]),
        "f1": _mean([s[2] for s in scores]),
    }


def plain_trafilatura(html: str, url: str) -> str:
    """Baseline body text: ``trafilatura.extract`` with comments off; '' when it finds nothing."""
    import trafilatura

    return trafilatura.extract(html, url=url, include_comments=False) or ""


def plain_trafilatura_metadata(html: str, url: str) -> dict[str, str | None]:
    """Baseline metadata (title, author, date) from ``trafilatura.bare_extraction``."""
    import trafilatura

    doc: Any = trafilatura.bare_extraction(
        html, url=url, include_comments=False, with_metadata=True
    )
    if doc is None:
        return {"title": None, "author": None, "date": None}
    data: dict[str, Any] = doc if isinstance(doc, dict) else doc.as_dict()
    return {key: data.get(key) or None for key in ("title", "author", "date")}
