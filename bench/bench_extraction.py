"""Extraction quality of the whole pipeline against plain trafilatura, on the same pages.

Usage: python bench/bench_extraction.py [--set scrapinghub|wcxb-dev|all] [--limit N]
                                        [--cost-baseline REV [--cost-rounds N]]

Each corpus set is served from 127.0.0.1 as news sites with RSS feeds (bench/corpus_site.py:
one port per original host) and ingested by a cold `newswire once` subprocess, twice:
- bare feeds: items carry a title and a link only (a sitemap, a backfill, an import), so
  date, author and language come from the page alone;
- full feeds: items also carry the page's meta description, a pubDate (the manifest's date,
  at 12:00 GMT) and the manifest's author as dc:creator, as most news feeds do. The feed's
  date and author win, so those columns are right by construction there: they show that
  the feed's values are kept, not how good they are.
The texts stored in the database are scored with both metrics of ../shared/corpus/README.md,
next to plain trafilatura (`trafilatura.extract` for the text, `bare_extraction` for the
metadata, bench/scoring.py) on the same pages in the same run. A page with no stored article
scores as an empty prediction. Metadata (wcxb-dev has publish_date and author in its
manifest): the share of pages whose date matches to the day, as the page wrote it
(`page_published_at`, else the feed's date) and as the UTC day of `published_at`; and whose
stored author matches (containment either way; `lists` also unifies 'and' and '&').

In process, on the same pages, as a bare feed item gives them: the ablation (what each step
of pipeline/extract.py and pipeline/boilerplate.py buys, the manifest title standing in for
the feed's, and what each date and author signal of pipeline/metadata.py adds), which signal
gave each page's date and author, and the detected language against the declared
`<html lang>` (every disagreement listed). Two summaries say what is left to gain: both
trafilatura modes after every rule and the better of them on each page (what a perfect
choice between them would reach), and the date misses sorted by what the page offered.
With `--cost-baseline REV`: the extraction CPU time per page of this tree against revision
REV of the repository (bench/time_extraction.py, one core, bare and full items, N
alternating runs of each tree; each page counts with its fastest run, so other load on the
machine drops out). Exits 0 with a "skipped" message when ../shared/corpus is absent.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import corpus_site, scoring  # noqa: E402
from bench.baseline_extraction import author_matches, date_matches  # noqa: E402
from bench.scoring import Page  # noqa: E402
from pipeline.blocks import BLOCK_RULES  # noqa: E402
from pipeline.boilerplate import REPEATED_RUN, RULES  # noqa: E402
from pipeline.metadata import AUTHOR_SOURCES  # noqa: E402

# (step, the line rules of pipeline.boilerplate.clean_lines applied, the block rules of
# pipeline.blocks applied to the page before the body is extracted). None: no line rule at
# all, the mode's own text.
TEXT_STEPS: tuple[tuple[str, tuple[str, ...] | None, tuple[str, ...]], ...] = (
    ("default mode (`bare_extraction`, plain trafilatura's text)", None, ()),
    ("recall mode", None, ()),
    ("+ default mode when recall keeps < 15% of the page's words", (), ()),
    ("+ a leading line repeating the title dropped", ("headline",), ()),
    ("+ call-to-action lines dropped", ("headline", "call-to-action"), ()),
    ("+ promotion lines and newsletter boxes dropped",
     ("headline", "call-to-action", "promotion"), ()),
    ("+ closing wire credits dropped", ("headline", "call-to-action", "promotion", "credits"),
     ()),
    ("+ datelines and bylines above the text dropped",
     ("headline", "call-to-action", "promotion", "credits", "metadata"), ()),
    (f"+ runs of {REPEATED_RUN} or more lines given a second time dropped", RULES, ()),
    ("+ paragraphs that are one link taken out of the page", RULES, ("one-link paragraphs",)),
    ("+ short blocks of links (cards, tags, share bars) taken out", RULES,
     ("one-link paragraphs", "link cards")),
    ("+ the article's header block taken out (the pipeline)", RULES, tuple(BLOCK_RULES)),
)
assert TEXT_STEPS[-1][1:] == (RULES, tuple(BLOCK_RULES)), "the last step is the pipeline"
assert {name for step in TEXT_STEPS for name in step[2]} <= set(BLOCK_RULES), "known blocks"
# (step, date signals of pipeline.metadata.date_candidates, htmldate's search too, the
# headline's date weighed as pipeline.metadata.ShownDate: labels and both numeric readings)
ALL_DATE_SIGNALS = ("json-ld", "meta", "time", "url", "header")
DATE_STEPS = (
    ("JSON-LD datePublished of the article", ("json-ld",), False, False),
    ("+ publication meta tags", ("json-ld", "meta"), False, False),
    ("+ <time datetime> in the article", ("json-ld", "meta", "time"), False, False),
    ("+ a full date in the URL path", ("json-ld", "meta", "time", "url"), False, False),
    ("+ the date written by the headline (wins when a field agrees)", ALL_DATE_SIGNALS,
     False, False),
    ("+ htmldate's heuristics, last", ALL_DATE_SIGNALS, True, False),
    ("+ an 'Updated' date by the headline not confirmed by a <time>; 09.10.2024 read both "
     "ways (the pipeline)", ALL_DATE_SIGNALS, True, True),
)
# (step, the author signals of pipeline.metadata.AUTHOR_SOURCES used): one more each step.
AUTHOR_STEPS = tuple((label, AUTHOR_SOURCES[:count]) for count, label in enumerate((
    "JSON-LD author (people before organisations)",
    "+ author meta tags",
    "+ the byline element",
    "+ 'By Name' by the headline",
    "+ a link to the author's page named as its address",
    "+ 'Written by Name' anywhere (the pipeline)"), start=1))
assert len(AUTHOR_STEPS) == len(AUTHOR_SOURCES), "a step for each signal"


def _ablation(page: Page) -> dict[str, Any]:
    """The text, date and author after each step of TEXT_STEPS, DATE_STEPS, AUTHOR_STEPS;
    both modes after every rule, and the days the date signals offered."""
    import trafilatura

    from pipeline import metadata
    from pipeline.blocks import drop_link_blocks
    from pipeline.boilerplate import clean_lines
    from pipeline.extract import (
        LONG_ENOUGH,
        MIN_PAGE_SHARE,
        page_metadata,
        page_visible_words,
        trim_html,
    )

    tree = trafilatura.load_html(trim_html(page.html))
    if tree is None:
        return {"text": [""] * len(TEXT_STEPS), "modes": ["", ""],
                "date": [None] * len(DATE_STEPS), "author": [None] * len(AUTHOR_STEPS),
                "date_evidence": {"offered": set(), "shown": (), "update": False,
                                  "fields": set()}}
    meta = page_metadata(tree, page.url)
    titles = [t for t in (page.title, meta.get("title")) if t]
    authors = [str(meta.get("author") or "")]
    options: dict[str, Any] = dict(url=page.url, include_comments=False, include_tables=True)

    def bodies(blocks: tuple[str, ...]) -> tuple[str, str, str]:
        """The default and recall texts, and the pipeline's choice between them, of a fresh
        tree of the page without the `blocks` rules' blocks."""
        fresh = trafilatura.load_html(trim_html(page.html))
        words_on_page = page_visible_words(fresh)
        drop_link_blocks(fresh, words_on_page, blocks)
        default, recall = ((doc.text if doc is not None else "") or "" for doc in (
            trafilatura.bare_extraction(fresh, **options),
            trafilatura.bare_extraction(fresh, favor_recall=True, **options)))
        words = len(recall.split())
        if words < LONG_ENOUGH and words < MIN_PAGE_SHARE * words_on_page and \
                len(default) > len(recall):
            return default, recall, default
        return default, recall, recall

    extracted = {blocks: bodies(blocks) for blocks in dict.fromkeys(s[2] for s in TEXT_STEPS)}
    texts = list(extracted[()][:2])
    for _, rules, blocks in TEXT_STEPS[2:]:
        texts.append("\n".join(clean_lines(extracted[blocks][2].split("\n"), titles, (),
                                           authors, rules=rules or ())))
    # Both modes after every rule, whatever the choice between them: how much a better
    # choice could still buy (_print_modes).
    modes = ["\n".join(clean_lines(text.split("\n"), titles, (), authors))
             for text in extracted[tuple(BLOCK_RULES)][:2]]

    objects, window = metadata.json_ld(tree), metadata.headline_window(tree)
    candidates = metadata.date_candidates(tree, page.url, objects, window)
    search_result: list[str | None] = []

    def search() -> str | None:  # htmldate once per page, whichever step asks first
        if not search_result:
            search_result.append(metadata.htmldate_date(tree, page.url))
        return search_result[0]

    shown = metadata.shown_date(window)
    dates = [metadata.choose_date({k: v for k, v in candidates.items() if k in signals},
                                  search if heuristics else None, shown if weighed else None)[0]
             for _, signals, heuristics, weighed in DATE_STEPS]
    found = [metadata.page_author(tree, page.url, objects, window, meta.get("sitename"),
                                  sources)[0] for _, sources in AUTHOR_STEPS]
    # Every day a signal offered, for sorting the misses (_print_date_misses).
    offered = {str(value)[:10] for value in (*candidates.values(), search()) if value}
    evidence = {"offered": offered | set(shown.readings() if shown else ()),
                "shown": shown.readings() if shown else (),
                "update": bool(shown and shown.update),
                "fields": {str(value)[:10] for source, value in candidates.items()
                           if source != "header" and value}}
    return {"text": texts, "modes": modes, "date": dates, "author": found,
            "date_evidence": evidence}


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


def _plain(page: Page) -> dict[str, Any]:
    return {"text": scoring.plain_trafilatura(page.html, page.url),
            "meta": (scoring.plain_trafilatura_metadata(page.html, page.url)
                     if page.publish_date or page.author else {}),
            "steps": _ablation(page), "detail": _in_process(page)}


def _fmt(metrics: dict[str, float]) -> str:
    return f"{metrics['f1']:.4f} (P {metrics['precision']:.3f}, R {metrics['recall']:.3f})"


def _rate(hits: list[bool]) -> str:
    return f"{sum(hits) / len(hits):.3f} ({sum(hits)}/{len(hits)})" if hits else "n/a"


def _ingest(pages: list[Page], feeds: str, workdir: Path
            ) -> tuple[list[dict[str, Any] | None], str]:
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


def _cost(set_name: str, limit: int | None, baseline: str, rounds: int, workdir: Path) -> None:
    """Extraction CPU time per page, this tree against `baseline` (bare and full items):
    `rounds` alternating single-core runs of each tree; each page counts with its fastest."""
    import json
    import statistics
    import subprocess

    old = workdir / "baseline-tree"
    old.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", baseline, "pipeline"], cwd=scoring.REPO_ROOT,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    script = str(Path(__file__).resolve().parent / "time_extraction.py")
    print(f"\ncost: extraction CPU per page, one core, per-page minimum of {rounds} "
          f"alternating runs (mean of the run means in brackets)")
    print(f"| items | {baseline} | this tree | change |\n|---|---|---|---|")
    for feeds in ("bare", "full"):
        runs: dict[str, list[list[float]]] = {baseline: [], "this tree": []}
        for _ in range(rounds):
            for name, root in ((baseline, old), ("this tree", scoring.REPO_ROOT)):
                command = [sys.executable, script, str(root), set_name, "--feeds", feeds]
                if limit:
                    command += ["--limit", str(limit)]
                out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                runs[name].append(json.loads(out)["ms"])
        per_page = {name: statistics.fmean(min(times) for times in zip(*r, strict=True))
                    for name, r in runs.items()}
        means = {name: statistics.fmean(statistics.fmean(run) for run in r)
                 for name, r in runs.items()}
        before, after = per_page[baseline], per_page["this tree"]
        print(f"| {feeds} | {before:.1f} ms ({means[baseline]:.1f}) | {after:.1f} ms "
              f"({means['this tree']:.1f}) | {(after / before - 1) * 100:+.1f}% |")


def _stored_day(row: dict[str, Any] | None) -> str | None:
    """The publication day as the source wrote it: the page's own date (its offset kept)
    when the feed gave none, else the feed's."""
    if not row:
        return None
    if row.get("feed_published_at"):
        return str(row["feed_published_at"])
    return row.get("page_published_at") or row.get("published_at")


def run_set(set_name: str, limit: int | None, workdir: Path, baseline: str | None,
            rounds: int) -> None:
    pages = scoring.load_pages(set_name, limit)
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1)) as pool:  # same pages, in process
        plain = list(pool.map(_plain, pages, chunksize=8))
    truths = [page.truth for page in pages]
    dated = [i for i, page in enumerate(pages) if page.publish_date]
    authored = [i for i, page in enumerate(pages) if page.author]

    def dates(values: list[Any]) -> str:
        return _rate([date_matches(values[i], str(pages[i].publish_date)) for i in dated])

    def authors(values: list[Any], lists: bool = False) -> str:
        return _rate([author_matches(values[i], str(pages[i].author), lists)
                      for i in authored])

    print(f"\n== {set_name}: {len(pages)} pages ({len(dated)} dated, {len(authored)} with an "
          f"author in the manifest)")
    print("| feeds | extractor | shingle F1 | word F1 | date, day as published | "
          "date, UTC day | author | author (lists) |")
    print("|---|---|---|---|---|---|---|---|")
    pairs = list(zip([p["text"] for p in plain], truths, strict=True))
    plain_dates = [p["meta"].get("date") for p in plain]
    plain_authors = [p["meta"].get("author") for p in plain]
    print(f"| any | plain trafilatura 2.3.1 | {_fmt(scoring.corpus_shingle_f1(pairs))} | "
          f"{_fmt(scoring.corpus_word_f1(pairs))} | {dates(plain_dates)} | "
          f"{dates(plain_dates)} | {authors(plain_authors)} | "
          f"{authors(plain_authors, True)} |")
    notes = []
    stored: dict[str, list[dict[str, Any] | None]] = {}
    for feeds in ("bare", "full"):
        rows, note = _ingest(pages, feeds, workdir / set_name)
        stored[feeds] = rows
        notes.append(note)
        pairs = [(str(row["text"]) if row else "", truth)
                 for row, truth in zip(rows, truths, strict=True)]
        found = [row and row["author"] for row in rows]
        print(f"| {feeds} | **newswire** (stored) | {_fmt(scoring.corpus_shingle_f1(pairs))} | "
              f"{_fmt(scoring.corpus_word_f1(pairs))} | "
              f"{dates([_stored_day(row) for row in rows])} | "
              f"{dates([row and row['published_at'] for row in rows])} | "
              f"{authors(found)} | {authors(found, True)} |")
    for note in notes:
        print(f"- {note}")
    if dated:
        both = [row for i in dated if (row := stored["full"][i]) and row["page_published_at"]]
        agree = [str(row["page_published_at"])[:10] == str(row["feed_published_at"])[:10]
                 for row in both]
        print(f"- full feeds: the page's own date agrees with the feed's to the day on "
              f"{_rate(agree)} of the pages that have both (the feed's date is the "
              f"manifest's here, so this is the page's accuracy, not a test of the rule)")

    _print_ablation(TEXT_STEPS, [p["steps"]["text"] for p in plain], truths)
    _print_modes([p["steps"]["modes"] for p in plain], [p["text"] for p in plain], truths)
    steps_dates = [p["steps"]["date"] for p in plain]
    steps_authors = [p["steps"]["author"] for p in plain]
    if dated:
        print(f"\nablation, dates (in process, bare items; plain trafilatura "
              f"{dates(plain_dates)}):\n| step | date to the day |\n|---|---|")
        for step, (name, _, _, _) in enumerate(DATE_STEPS):
            print(f"| {name} | {dates([s[step] for s in steps_dates])} |")
        _print_date_misses([(pages[i], steps_dates[i][-1], plain[i]["steps"]["date_evidence"])
                            for i in dated])
    if authored:
        print(f"\nablation, authors (in process, bare items; plain trafilatura "
              f"{authors(plain_authors)}):\n| step | author | author (lists) |\n|---|---|---|")
        for step, (name, _) in enumerate(AUTHOR_STEPS):
            values = [s[step] for s in steps_authors]
            print(f"| {name} | {authors(values)} | {authors(values, True)} |")

    details = [p["detail"] for p in plain]
    if dated or authored:
        print("\nwhere the page's date and author came from (bare items, in process): "
              "signal: pages (right)")
        for kind, matches, indices, truth in (
                ("date", date_matches, dated, "publish_date"),
                ("author", author_matches, authored, "author")):
            by_source: dict[str, list[bool]] = {}
            for i in indices:
                value = details[i][kind]
                by_source.setdefault(str(details[i][f"{kind}_source"]), []).append(
                    bool(value) and matches(value, getattr(pages[i], truth)))
            print(f"- {kind}: " + ", ".join(f"{source} {len(hits)} ({sum(hits)})" for
                                           source, hits in sorted(by_source.items())))
    _language(pages, details)
    if baseline:
        _cost(set_name, limit, baseline, rounds, workdir)


def _print_ablation(steps: tuple[Any, ...], values: list[list[str]], truths: list[str]
                    ) -> None:
    print("\nablation, text (in process, bare items):\n| step | shingle F1 | word F1 |\n"
          "|---|---|---|")
    for step, entry in enumerate(steps):
        pairs = [(texts[step], truth) for texts, truth in zip(values, truths, strict=True)]
        print(f"| {entry[0]} | {scoring.corpus_shingle_f1(pairs)['f1']:.4f} | "
              f"{scoring.corpus_word_f1(pairs)['f1']:.4f} |")


def _print_modes(modes: list[list[str]], plain: list[str], truths: list[str]) -> None:
    """Word F1 of each trafilatura mode after every rule, and of the better of the two on
    each page: no rule choosing between the modes can do better than that."""
    scores = [[scoring.word_scores(text, truth)[2] for text in texts]
              for texts, truth in zip(modes, truths, strict=True) if scoring.has_words(truth)]
    base = scoring.corpus_word_f1(zip(plain, truths, strict=True))["f1"]
    default, recall, best = (statistics.fmean(s[0] for s in scores),
                             statistics.fmean(s[1] for s in scores),
                             statistics.fmean(max(s) for s in scores))
    print(f"- word F1 after every rule, plain trafilatura {base:.4f}: default mode "
          f"{default:.4f} ({default - base:+.4f}), recall mode {recall:.4f} "
          f"({recall - base:+.4f}), the better of the two on each page {best:.4f} "
          f"({best - base:+.4f}; what a perfect choice between them would reach); "
          f"the default mode is better on {sum(s[0] > s[1] for s in scores)} pages, "
          f"the recall mode on {sum(s[1] > s[0] for s in scores)}")


def _print_date_misses(dated: list[tuple[Page, str | None, dict[str, Any]]]) -> None:
    """The pipeline's wrong or missing dates sorted by what the page offered: no signal
    with the manifest's day (out of reach), the day shown by the headline (labelled as an
    update or not) while a publication field was preferred, or another signal's day.
    Beside them, the pages where the field was right and the headline's date was not."""
    misses: dict[str, int] = {}
    field_right = {"update": 0, "plain": 0}
    for page, value, evidence in dated:
        day = str(page.publish_date)
        label = "update" if evidence["update"] else "plain"
        shown_right = any(reading.startswith(day) for reading in evidence["shown"])
        if date_matches(value, day):
            if evidence["shown"] and not shown_right:
                field_right[label] += 1
            continue
        if not any(offered.startswith(day) for offered in evidence["offered"]):
            kind = "no signal gives the day"
        elif shown_right:
            kind = f"the headline's date ({label})"
        else:
            kind = "another signal's day"
        misses[kind] = misses.get(kind, 0) + 1
    print(f"- {sum(misses.values())} pages missed: " +
          ", ".join(f"{kind} {count}" for kind, count in sorted(misses.items())) +
          f"; right while the headline's date was not: {field_right['update']} labelled "
          f"as an update, {field_right['plain']} not")
    _print_date_conventions(dated)


def _id_block(page_id: str) -> str:
    """'dev-4002' -> 'dev-4xxx': pages numbered together were often annotated together."""
    return re.sub(r"(\d)(\d*)$", lambda m: m.group(1) + "x" * len(m.group(2)), page_id)


def _print_date_conventions(dated: list[tuple[Page, str | None, dict[str, Any]]]) -> None:
    """On the pages whose headline shows a date no publication field (JSON-LD, meta,
    `<time>`, URL) gives, which of the two the manifest has, by block of page ids: a rule
    can only choose one of them, so where blocks disagree it wins one and loses the other."""
    follows: dict[str, dict[str, int]] = {}
    for page, _, evidence in dated:
        shown, fields = evidence["shown"], evidence["fields"]
        if not shown or not fields or any(reading in fields for reading in shown):
            continue
        day = str(page.publish_date)
        side = ("headline" if any(reading.startswith(day) for reading in shown) else
                "field" if any(field.startswith(day) for field in fields) else "neither")
        counts = follows.setdefault(_id_block(page.id), {"headline": 0, "field": 0,
                                                        "neither": 0})
        counts[side] += 1
    if follows:
        print("- where the headline's date and the publication fields disagree, the "
              "manifest has: " + "; ".join(
                  f"{block} the headline's {c['headline']}, a field's {c['field']}, "
                  f"neither {c['neither']}" for block, c in sorted(follows.items())))


def _language(pages: list[Page], details: list[dict[str, Any]]) -> None:
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
    parser.add_argument("--cost-rounds", type=int, default=3, metavar="N",
                        help="alternating timing runs of each tree (default 3)")
    args = corpus_site.parse_args(parser, argv)
    if args is None:
        return 0
    limit = args.limit or (200 if args.quick else None)
    print(f"== extraction quality: {corpus_site.machine()}")
    with tempfile.TemporaryDirectory(prefix="nw-bench-") as tmp:
        for set_name in scoring.SETS if args.set == "all" else (args.set,):
            run_set(set_name, limit, Path(args.workdir or tmp), args.cost_baseline,
                    args.cost_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
