"""Score plain trafilatura on the shared extraction corpora.

Usage: python bench/baseline_extraction.py [--set scrapinghub|wcxb-dev|all] [--limit N]

Prints pages, shingle P/R/F1, word P/R/F1 and the median time of ``trafilatura.extract`` per
page; for wcxb-dev also the share of pages whose extracted date matches the manifest
publish_date to the day and whose author matches it (case-insensitive containment, either way).
Exits 0 with a "skipped" message when ../shared/corpus is absent.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scoring  # noqa: E402
from bench.scoring import Page  # noqa: E402


def date_matches(predicted: str | None, expected: str) -> bool:
    """Day-level match: the extracted date starts with the manifest date (YYYY-MM-DD).

    A manifest date with less precision (e.g. ``2003-11``) matches at its own precision.
    """
    return bool(predicted) and str(predicted)[:10].startswith(expected)


def _norm_author(name: str, lists: bool = False) -> str:
    separators = r"\s*(?:[;,&]|\band\b)\s*" if lists else r"\s*[;,]\s*"
    name = re.sub(separators, ", ", name.casefold())
    if not lists:
        return re.sub(r"\s+", " ", name).strip()
    return re.sub(r"\s+", " ", re.sub(r"(?:,\s*)+", ", ", name)).strip(" ,")


def author_matches(predicted: str | None, expected: str, lists: bool = False) -> bool:
    """Case-insensitive containment in either direction (';' and ',' separators unified;
    with `lists`, 'and' and '&' too: 'A, B and C' matches 'A, B, C')."""
    if not predicted:
        return False
    pred, exp = _norm_author(predicted, lists), _norm_author(expected, lists)
    return bool(pred) and (exp in pred or pred in exp)


def _fmt(metrics: dict[str, float]) -> str:
    return f"P {metrics['precision']:.3f}  R {metrics['recall']:.3f}  F1 {metrics['f1']:.3f}"


def run_set(set_name: str, limit: int | None) -> None:
    """Extract, score and print one corpus set."""
    pages: list[Page] = scoring.load_pages(set_name, limit)
    if pages:  # warm-up, so lazy imports and caches are not timed
        scoring.plain_trafilatura(pages[0].html, pages[0].url)
    preds: list[str] = []
    timings: list[float] = []
    for page in pages:
        start = time.perf_counter()
        preds.append(scoring.plain_trafilatura(page.html, page.url))
        timings.append((time.perf_counter() - start) * 1000)
    pairs = [(pred, page.truth) for pred, page in zip(preds, pages, strict=True)]

    print(f"== {set_name}: {len(pages)} pages")
    print(f"shingle  {_fmt(scoring.corpus_shingle_f1(pairs))}")
    print(f"word     {_fmt(scoring.corpus_word_f1(pairs))}")
    empty = sum(1 for pred in preds if not pred.strip())
    print(f"empty predictions: {empty}")
    if timings:
        print(f"median ms/page (trafilatura.extract): {statistics.median(timings):.1f}")

    if set_name == "wcxb-dev":
        dated = authored = date_ok = author_ok = 0
        for page in pages:
            if not (page.publish_date or page.author):
                continue
            meta = scoring.plain_trafilatura_metadata(page.html, page.url)
            if page.publish_date:
                dated += 1
                date_ok += date_matches(meta["date"], page.publish_date)
            if page.author:
                authored += 1
                author_ok += author_matches(meta["author"], page.author)
        if dated:
            print(f"date match:   {date_ok / dated:.3f} ({date_ok}/{dated} pages with a date)")
        if authored:
            print(
                f"author match: {author_ok / authored:.3f} "
                f"({author_ok}/{authored} pages with an author)"
            )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=[*scoring.SETS, "all"], default="all")
    parser.add_argument("--limit", type=int, default=None, help="first N pages of each set")
    args = parser.parse_args(argv)

    if not scoring.corpus_available():
        print(f"skipped: ../shared/corpus not found (looked in {scoring.CORPUS_DIR})")
        return 0
    for set_name in scoring.SETS if args.set == "all" else (args.set,):
        if not (scoring.CORPUS_DIR / "extraction" / set_name / "manifest.tsv").is_file():
            print(f"skipped {set_name}: not found under {scoring.CORPUS_DIR}")
            continue
        run_set(set_name, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
