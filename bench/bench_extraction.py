"""Extraction quality of the whole pipeline against plain trafilatura, on the same pages.

Usage: python bench/bench_extraction.py [--set scrapinghub|wcxb-dev|all] [--limit N]

Each corpus set is served from 127.0.0.1 as news sites with RSS feeds (bench/corpus_site.py:
one port per original host; feed items carry the manifest title and the page's own meta
description, no date, no author) and ingested by a cold `newswire once` subprocess. The
texts stored in the database are scored with both metrics of ../shared/corpus/README.md,
next to plain trafilatura (`trafilatura.extract`, bench/scoring.py) on the same pages in the
same run. A page with no stored article scores as an empty prediction.

Metadata (wcxb-dev has publish_date and author in its manifest): the share of pages whose
stored date matches to the day and whose author is found, next to plain trafilatura's
`bare_extraction` metadata.

Ablation (in process, same pages): what each step of pipeline/extract.py buys, from
trafilatura's default mode to the recall mode with its coverage fallback and the line
clean-up of pipeline/boilerplate.py (the manifest title standing in for the feed's).
Exits 0 with a "skipped" message when ../shared/corpus is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import corpus_site, scoring  # noqa: E402
from bench.baseline_extraction import author_matches, date_matches  # noqa: E402
from bench.scoring import Page  # noqa: E402

ABLATION = ("default mode (`bare_extraction`)", "recall mode",
            "+ default mode when recall keeps < 15% of the page's words",
            "+ a repeated headline dropped", "+ call-to-action lines dropped (the pipeline)")


def _ablation(page: Page) -> list[str]:
    """The text after each step of ABLATION."""
    import trafilatura

    from pipeline.boilerplate import TITLE_LINES, clean_lines, is_headline
    from pipeline.extract import LONG_ENOUGH, MIN_PAGE_SHARE, visible_words

    tree = trafilatura.load_html(page.html)
    if tree is None:
        return [""] * len(ABLATION)
    options = dict(url=page.url, include_comments=False, include_tables=True)
    texts = [(doc.text if doc is not None else "") or "" for doc in (
        trafilatura.bare_extraction(tree, **options),
        trafilatura.bare_extraction(tree, favor_recall=True, **options))]
    default, recall = texts
    words = len(recall.split())
    chosen = recall
    if words < LONG_ENOUGH and words < MIN_PAGE_SHARE * visible_words(tree) and \
            len(default) > len(recall):
        chosen = default
    lines = [line for line in chosen.split("\n") if line.strip()]
    headline = [line for i, line in enumerate(lines)
                if i >= TITLE_LINES or not is_headline(line, [page.title])]
    return [default, recall, chosen, "\n".join(headline),
            "\n".join(clean_lines(lines, [page.title]))]


def _plain(page: Page) -> tuple[str, dict[str, str | None], list[str]]:
    metadata = (scoring.plain_trafilatura_metadata(page.html, page.url)
                if page.publish_date or page.author else {})
    return scoring.plain_trafilatura(page.html, page.url), metadata, _ablation(page)


def _fmt(metrics: dict[str, float]) -> str:
    return f"{metrics['f1']:.4f} (P {metrics['precision']:.3f}, R {metrics['recall']:.3f})"


def _rate(hits: list[bool]) -> str:
    return f"{sum(hits) / len(hits):.3f} ({sum(hits)}/{len(hits)})" if hits else "n/a"


def run_set(set_name: str, limit: int | None, workdir: Path) -> None:
    pages = scoring.load_pages(set_name, limit)
    with ProcessPoolExecutor(os.cpu_count()) as pool:  # plain trafilatura, same pages
        plain = list(pool.map(_plain, pages, chunksize=8))

    site = corpus_site.build_site(pages, len(pages), max(1, len(pages) // 50))
    config = corpus_site.write_config(workdir / set_name, site.feed_urls())
    with corpus_site.Server(site):
        stats = corpus_site.run_once(config)
    if stats.returncode != 0:
        raise SystemExit(f"newswire once failed ({stats.returncode}): {stats.stderr[-2000:]}")
    stored = corpus_site.stored_articles(config.parent / "newswire.db")
    rows = [stored.get(served.url) for served in site.pages]
    ours = [str(row["text"]) if row else "" for row in rows]
    plain_texts = [text for text, _, _ in plain]

    truths = [page.truth for page in pages]
    articles = len({row["id"] for row in rows if row})
    found = sum(row is not None for row in rows)
    from_feed = sum(1 for row in rows if row and row["text_source"] == "feed")
    print(f"\n== {set_name}: {len(pages)} pages served through {len(site.feeds)} feeds from "
          f"{len(site.host_ports)} sites; {articles} articles stored, covering {found} of the "
          f"pages ({from_feed} with the feed's text); `once` took {stats.wall_s:.0f} s")
    print("| extractor | shingle F1 | word F1 |")
    print("|---|---|---|")
    for name, preds in (("plain trafilatura 2.3.1 (`extract`)", plain_texts),
                        ("newswire pipeline (stored texts)", ours)):
        pairs = list(zip(preds, truths, strict=True))
        print(f"| {name} | {_fmt(scoring.corpus_shingle_f1(pairs))} | "
              f"{_fmt(scoring.corpus_word_f1(pairs))} |")

    print("\nablation, in process:\n| step | shingle F1 | word F1 |\n|---|---|---|")
    for step, name in enumerate(ABLATION):
        pairs = [(steps[step], truth) for (_, _, steps), truth in zip(plain, truths,
                                                                      strict=True)]
        print(f"| {name} | {scoring.corpus_shingle_f1(pairs)['f1']:.4f} | "
              f"{scoring.corpus_word_f1(pairs)['f1']:.4f} |")

    dated = [(page, row, meta) for page, row, (_, meta, _) in zip(pages, rows, plain,
                                                                  strict=True)
             if page.publish_date]
    authored = [(page, row, meta) for page, row, (_, meta, _)
                in zip(pages, rows, plain, strict=True) if page.author]
    if dated or authored:
        print("\n| metadata | date matches to the day | author found |")
        print("|---|---|---|")
        print(f"| plain trafilatura (`bare_extraction`) | "
              f"{_rate([date_matches(m.get('date'), p.publish_date) for p, _, m in dated])} | "
              f"{_rate([author_matches(m.get('author'), p.author) for p, _, m in authored])} |")
        print(f"| newswire pipeline (stored) | "
              f"{_rate([bool(r) and date_matches(r['published_at'], p.publish_date) for p, r, _ in dated])} | "  # noqa: E501
              f"{_rate([bool(r) and author_matches(r['author'], p.author) for p, r, _ in authored])} |")  # noqa: E501


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=[*scoring.SETS, "all"], default="all")
    parser.add_argument("--limit", type=int, default=None, help="first N pages of each set")
    parser.add_argument("--quick", action="store_true", help="first 200 pages of each set")
    parser.add_argument("--workdir", default=None, help="keep run directories here")
    args = corpus_site.parse_args(parser, argv)
    if args is None:
        return 0
    limit = args.limit or (200 if args.quick else None)
    print(f"== extraction quality: {corpus_site.machine()}")
    with tempfile.TemporaryDirectory(prefix="nw-bench-") as tmp:
        for set_name in scoring.SETS if args.set == "all" else (args.set,):
            run_set(set_name, limit, Path(args.workdir or tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
