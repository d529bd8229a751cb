"""Extraction quality of the whole pipeline against plain trafilatura, on the same pages.

Usage: python bench/bench_extraction.py [--set scrapinghub|wcxb-dev|all] [--limit N]
                                        [--cost-baseline REV]

Each corpus set is served from 127.0.0.1 as news sites with RSS feeds (bench/corpus_site.py:
one port per original host) and ingested by a cold `newswire once` subprocess, twice:
- bare feeds: items carry a title and a link only (a sitemap, a backfill, an import), so
  date, author and language come from the page alone;
- full feeds: items also carry the page's meta description, a pubDate (the manifest's date)
  and the manifest's author as dc:creator, as most news feeds do.
The texts stored in the database are scored with both metrics of ../shared/corpus/README.md,
next to plain trafilatura (`trafilatura.extract` for the text, `bare_extraction` for the
metadata, bench/scoring.py) on the same pages in the same run. A page with no stored article
scores as an empty prediction. Metadata (wcxb-dev has publish_date and author in its
manifest): the share of pages whose stored date matches to the day and whose stored author
matches.

In process, on the same pages: the ablation (what each step of pipeline/extract.py and
pipeline/boilerplate.py buys, the manifest title standing in for the feed's), which signal
gave each page's date and author, the detected language against the declared `<html lang>`
(every disagreement listed), and with `--cost-baseline REV` the extraction time per page of
this tree against revision REV of the repository (bench/time_extraction.py, one core,
alternating runs). Exits 0 with a "skipped" message when ../shared/corpus is absent.
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
            "+ a repeated headline dropped", "+ call-to-action lines dropped",
            "+ promotion lines and closing wire credits dropped (the pipeline)")


def _ablation(page: Page) -> list[str]:
    """The text after each step of ABLATION."""
    import trafilatura

    from pipeline.boilerplate import TITLE_LINES, clean_lines, is_call_to_action, is_headline
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
    linked = [line for line in headline if not is_call_to_action(line)]
    return [default, recall, chosen, "\n".join(headline), "\n".join(linked),
            "\n".join(clean_lines(lines, [page.title]))]


def _in_process(page: Page) -> dict[str, object]:
    """The pipeline's extraction of one page as a bare feed item gives it: which signal gave
    the date and the author, and the detected and declared languages."""
    import trafilatura

    from pipeline import metadata
    from pipeline.extract import extract_article, page_metadata, trim_html
    from pipeline.messages import ExtractJob

    article = extract_article(ExtractJob(url=page.url, html=page.html, entry_title=page.title,
                                         entry_content="", entry_published_at=None))
    tree = trafilatura.load_html(trim_html(page.html))
    meta = page_metadata(tree, page.url) if tree is not None else {}
    return {"language": metadata.detect_language(article.text),
            "declared": article.declared_language, "words": len(article.text.split()),
            "date": meta.get("date"), "date_source": meta.get("date_source"),
            "author": meta.get("author"), "author_source": meta.get("author_source")}


def _plain(page: Page) -> tuple[str, dict[str, str | None], list[str], dict[str, object]]:
    metadata = (scoring.plain_trafilatura_metadata(page.html, page.url)
                if page.publish_date or page.author else {})
    return (scoring.plain_trafilatura(page.html, page.url), metadata, _ablation(page),
            _in_process(page))


def _fmt(metrics: dict[str, float]) -> str:
    return f"{metrics['f1']:.4f} (P {metrics['precision']:.3f}, R {metrics['recall']:.3f})"


def _rate(hits: list[bool]) -> str:
    return f"{sum(hits) / len(hits):.3f} ({sum(hits)}/{len(hits)})" if hits else "n/a"


def _ingest(pages: list[Page], feeds: str, workdir: Path) -> tuple[list[dict | None], str]:
    """Serve the pages through bare or full feeds, run `newswire once`: the stored article
    of each page (None when missing) and a line about the run."""
    full = feeds == "full"
    site = corpus_site.build_site(pages, len(pages), max(1, len(pages) // 50), dated=full,
                                  summaries=full)
    config = corpus_site.write_config(workdir / feeds, site.feed_urls())
    with corpus_site.Server(site):
        stats = corpus_site.run_once(config)
    if stats.returncode != 0:
        raise SystemExit(f"newswire once failed ({stats.returncode}): {stats.stderr[-2000:]}")
    stored = corpus_site.stored_articles(config.parent / "newswire.db")
    rows = [stored.get(served.url) for served in site.pages]
    articles = len({row["id"] for row in rows if row})
    from_feed = sum(1 for row in rows if row and row["text_source"] == "feed")
    note = (f"{feeds} feeds: {len(site.feeds)} feeds from {len(site.host_ports)} sites; "
            f"{articles} articles stored, covering {sum(r is not None for r in rows)} of the "
            f"pages ({from_feed} with the feed's text); `once` took {stats.wall_s:.0f} s")
    return rows, note


def _cost(set_name: str, limit: int | None, baseline: str, workdir: Path) -> None:
    """Mean extraction time per page (bare feed items), this tree against `baseline`, two
    alternating single-core runs of each; the faster run of each tree counts."""
    import json
    import statistics
    import subprocess

    old = workdir / "baseline-tree"
    old.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", baseline, "pipeline"], cwd=scoring.REPO_ROOT,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    script = str(Path(__file__).resolve().parent / "time_extraction.py")
    means: dict[str, list[float]] = {baseline: [], "this tree": []}
    for _ in range(2):
        for name, root in ((baseline, old), ("this tree", scoring.REPO_ROOT)):
            command = [sys.executable, script, str(root), set_name]
            if limit:
                command += ["--limit", str(limit)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            means[name].append(statistics.fmean(json.loads(out)["ms"]))
    before, after = min(means[baseline]), min(means["this tree"])
    print(f"\ncost: extraction per page (bare feed items, one core, mean of the faster of 2 "
          f"runs): {baseline} {before:.1f} ms, this tree {after:.1f} ms "
          f"({(after / before - 1) * 100:+.1f}%); runs: "
          + ", ".join(f"{k} {' / '.join(f'{v:.1f}' for v in vs)}" for k, vs in means.items()))


def run_set(set_name: str, limit: int | None, workdir: Path, baseline: str | None) -> None:
    pages = scoring.load_pages(set_name, limit)
    with ProcessPoolExecutor(os.cpu_count()) as pool:  # plain trafilatura, same pages
        plain = list(pool.map(_plain, pages, chunksize=8))
    truths = [page.truth for page in pages]
    dated = [i for i, page in enumerate(pages) if page.publish_date]
    authored = [i for i, page in enumerate(pages) if page.author]

    def dates(values: list[object]) -> str:
        return _rate([date_matches(values[i], pages[i].publish_date) for i in dated])

    def authors(values: list[object]) -> str:
        return _rate([author_matches(values[i], pages[i].author) for i in authored])

    print(f"\n== {set_name}: {len(pages)} pages")
    print("| feeds | extractor | shingle F1 | word F1 | date to the day | author |")
    print("|---|---|---|---|---|---|")
    plain_texts = [text for text, _, _, _ in plain]
    pairs = list(zip(plain_texts, truths, strict=True))
    print(f"| any | plain trafilatura 2.3.1 | {_fmt(scoring.corpus_shingle_f1(pairs))} | "
          f"{_fmt(scoring.corpus_word_f1(pairs))} | "
          f"{dates([meta.get('date') for _, meta, _, _ in plain])} | "
          f"{authors([meta.get('author') for _, meta, _, _ in plain])} |")
    notes = []
    for feeds in ("bare", "full"):
        rows, note = _ingest(pages, feeds, workdir / set_name)
        notes.append(note)
        pairs = [(str(row["text"]) if row else "", truth) for row, truth in zip(rows, truths,
                                                                               strict=True)]
        print(f"| {feeds} | **newswire** (stored) | {_fmt(scoring.corpus_shingle_f1(pairs))} | "
              f"{_fmt(scoring.corpus_word_f1(pairs))} | "
              f"{dates([row and row['published_at'] for row in rows])} | "
              f"{authors([row and row['author'] for row in rows])} |")
    for note in notes:
        print(f"- {note}")

    print("\nablation, in process:\n| step | shingle F1 | word F1 |\n|---|---|---|")
    for step, name in enumerate(ABLATION):
        pairs = [(steps[step], truth) for (_, _, steps, _), truth in zip(plain, truths,
                                                                         strict=True)]
        print(f"| {name} | {scoring.corpus_shingle_f1(pairs)['f1']:.4f} | "
              f"{scoring.corpus_word_f1(pairs)['f1']:.4f} |")

    details = [detail for _, _, _, detail in plain]
    if dated or authored:
        print("\nwhere the page's date and author came from (bare items, in process): "
              "signal: pages (right)")
        for kind, matches, indices, truth in (
                ("date", date_matches, dated, "publish_date"),
                ("author", author_matches, authored, "author")):
            by_source: dict[str, list[bool]] = {}
            for i in indices:
                found = details[i][kind]
                by_source.setdefault(str(details[i][f"{kind}_source"]), []).append(
                    bool(found) and matches(found, getattr(pages[i], truth)))
            print(f"- {kind}: " + ", ".join(f"{source} {len(hits)} ({sum(hits)})" for
                                           source, hits in sorted(by_source.items())))
    _language(pages, details)
    if baseline:
        _cost(set_name, limit, baseline, workdir)


def _language(pages: list[Page], details: list[dict[str, object]]) -> None:
    """Detected against declared language on the pages that declare one."""
    declared = [(page, d) for page, d in zip(pages, details, strict=True) if d["declared"]]
    judged = [(page, d) for page, d in declared if d["language"]]
    agree = [d["language"] == d["declared"] for _, d in judged]
    print(f"\nlanguage: {len(declared)} pages declare one; {len(judged)} long enough to "
          f"detect; detected = declared on {_rate(agree)}")
    for page, d in judged:
        if d["language"] != d["declared"]:
            print(f"- {page.id}: declared {d['declared']}, detected {d['language']} "
                  f"({d['words']} words) {page.url[:80]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=[*scoring.SETS, "all"], default="all")
    parser.add_argument("--limit", type=int, default=None, help="first N pages of each set")
    parser.add_argument("--quick", action="store_true", help="first 200 pages of each set")
    parser.add_argument("--workdir", default=None, help="keep run directories here")
    parser.add_argument("--cost-baseline", default=None, metavar="REV",
                        help="also time extraction per page against this git revision")
    args = corpus_site.parse_args(parser, argv)
    if args is None:
        return 0
    limit = args.limit or (200 if args.quick else None)
    print(f"== extraction quality: {corpus_site.machine()}")
    with tempfile.TemporaryDirectory(prefix="nw-bench-") as tmp:
        for set_name in scoring.SETS if args.set == "all" else (args.set,):
            run_set(set_name, limit, Path(args.workdir or tmp), args.cost_baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
