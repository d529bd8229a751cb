"""End-to-end throughput of `newswire once` against the hardware bound, measured in one run.

Usage: python bench/bench_throughput.py [--quick] [--sizes 300,3000] [--repoll-feeds 1000]

1. The bound: every unique corpus page (both extraction sets) is extracted once with plain
   trafilatura (`trafilatura.extract`, as scored in bench/scoring.py) in this single process;
   the bound for N served pages is the sum of their single-process times divided by the core
   count (copies count at their original's time). The same figure for `bare_extraction` with
   metadata (the call issue 2 specified for the pipeline) is reported alongside.
2. For each size N: N pages served from 127.0.0.1 (bench/corpus_site.py; a separate process)
   through N/50 RSS feeds, ingested by a cold `newswire once` subprocess (fresh database).
   Reported: pages/s, wall, CPU of the whole process tree, CPU utilisation of all cores, peak
   RSS (sum over the CLI and its worker processes, and the largest single process), and the
   ratio of throughput to the bound. Target: >= 0.85 on 2 cores; flat peak RSS.
3. Re-poll: 1,000 feeds already ingested, polled again with `once --all` (all 304 Not
   Modified): CPU per feed of the whole CLI process (start-up included). Target: < 2 ms.
Exits 0 with a "skipped" message when ../shared/corpus is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import corpus_site, scoring  # noqa: E402

ITEMS_PER_FEED = 50
SITES = 16  # the corpus's ~870 hosts are served as this many sites (ports)


def single_process_times(pages: list[scoring.Page]) -> tuple[list[float], list[float]]:
    """Seconds per page of plain `trafilatura.extract`, and of `bare_extraction` + metadata."""
    import trafilatura

    for page in pages[:20]:  # warm-up: imports, lazily built regexes and caches
        scoring.plain_trafilatura(page.html, page.url)
        trafilatura.bare_extraction(page.html, url=page.url, include_comments=False,
                                    with_metadata=True)
    plain: list[float] = []
    for page in pages:
        started = time.perf_counter()
        scoring.plain_trafilatura(page.html, page.url)
        plain.append(time.perf_counter() - started)
    meta: list[float] = []
    for page in pages:
        started = time.perf_counter()
        trafilatura.bare_extraction(page.html, url=page.url, include_comments=False,
                                    with_metadata=True)
        meta.append(time.perf_counter() - started)
    return plain, meta


def run_size(pages: list[scoring.Page], total: int, plain: list[float], meta: list[float],
             workdir: Path) -> dict[str, float]:
    cores = os.cpu_count() or 1
    site = corpus_site.build_site(pages, total, max(1, total // ITEMS_PER_FEED), sites=SITES)
    config = corpus_site.write_config(workdir / f"n{total}", site.feed_urls())
    with corpus_site.Server(site) as server:
        stats = corpus_site.run_once(config)
    if stats.returncode != 0:
        raise SystemExit(f"newswire once failed ({stats.returncode}): {stats.stderr[-2000:]}")
    stored = corpus_site.stored_articles(config.parent / "newswire.db")
    bound_s = sum(plain[i % len(pages)] for i in range(total)) / cores
    bound_meta_s = sum(meta[i % len(pages)] for i in range(total)) / cores
    rate = total / stats.wall_s
    return {
        "pages": total, "feeds": len(site.feeds), "stored": len({r["id"] for r in stored.values()}),
        "wall_s": stats.wall_s, "pages_per_s": rate,
        "cpu_s": stats.cpu_s, "main_cpu_s": stats.main_cpu_s,
        "cpu_util": stats.cpu_s / (stats.wall_s * cores),
        "server_cpu_s": float(server.stats.get("cpu_s", 0.0)),
        "peak_tree_rss_mb": stats.peak_tree_rss_mb,
        "peak_process_rss_mb": stats.peak_process_rss_mb,
        "bound_s": bound_s, "bound_pages_per_s": total / bound_s,
        "ratio": rate / (total / bound_s),
        "bound_meta_s": bound_meta_s, "ratio_meta": rate / (total / bound_meta_s),
    }


def run_repoll(pages: list[scoring.Page], feeds: int, workdir: Path) -> dict[str, float]:
    site = corpus_site.build_site(pages[:50], 50, feeds, sites=1)
    config = corpus_site.write_config(workdir / "repoll", site.feed_urls())
    with corpus_site.Server(site) as server:
        first = corpus_site.run_once(config)
        if first.returncode != 0:
            raise SystemExit(f"first poll failed: {first.stderr[-2000:]}")
        before = dict(server.stats)
        second = corpus_site.run_once(config, "--all")
    if second.returncode != 0 or f"{feeds} not modified" not in second.stdout:
        raise SystemExit(f"re-poll was not all 304s: {second.stdout} {second.stderr[-2000:]}")
    del before
    return {"feeds": feeds, "wall_s": second.wall_s, "cpu_s": second.cpu_s,
            "cpu_ms_per_feed": second.cpu_s * 1000 / feeds,
            "wall_ms_per_feed": second.wall_s * 1000 / feeds,
            "peak_tree_rss_mb": second.peak_tree_rss_mb}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 pages, 200 feeds re-polled")
    parser.add_argument("--sizes", default=None, help="comma-separated page counts")
    parser.add_argument("--repoll-feeds", type=int, default=None)
    parser.add_argument("--workdir", default=None, help="keep run directories here")
    args = parser.parse_args(argv)
    if not scoring.corpus_available():
        print(f"skipped: ../shared/corpus not found (looked in {scoring.CORPUS_DIR})")
        return 0
    sizes = [int(s) for s in (args.sizes or ("300" if args.quick else "300,3000")).split(",")]
    repoll = args.repoll_feeds or (200 if args.quick else 1000)
    cores = os.cpu_count() or 1

    pages = corpus_site.load_sets()
    print(f"== throughput: {corpus_site.machine()}")
    print(f"corpus: {len(pages)} unique pages (scrapinghub + wcxb-dev)")
    plain, meta = single_process_times(pages)
    print(f"single process, plain trafilatura.extract: {sum(plain):.1f} s for {len(pages)} "
          f"pages, median {sorted(plain)[len(plain) // 2] * 1000:.1f} ms/page; with metadata "
          f"(bare_extraction): {sum(meta):.1f} s")

    with tempfile.TemporaryDirectory(prefix="nw-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        print("\n| pages | feeds | stored | wall s | pages/s | bound pages/s | ratio | ratio "
              "(bound with metadata) | CPU util | peak RSS tree MB | largest process MB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for total in sizes:
            r = run_size(pages, total, plain, meta, workdir)
            print(f"| {total} | {r['feeds']} | {r['stored']} | {r['wall_s']:.1f} | "
                  f"{r['pages_per_s']:.1f} | {r['bound_pages_per_s']:.1f} | "
                  f"**{r['ratio']:.2f}** | {r['ratio_meta']:.2f} | {r['cpu_util']:.0%} | "
                  f"{r['peak_tree_rss_mb']:.0f} | {r['peak_process_rss_mb']:.0f} |", flush=True)
            print(f"<!-- detail: cpu {r['cpu_s']:.1f} s over {cores} cores "
                  f"({r['main_cpu_s']:.1f} s in the main process), server process "
                  f"cpu {r['server_cpu_s']:.1f} s, bound {r['bound_s']:.1f} s -->", flush=True)
        rp = run_repoll(pages, repoll, workdir)
        print(f"\nre-poll of {rp['feeds']} unchanged feeds (all 304): "
              f"**{rp['cpu_ms_per_feed']:.2f} ms CPU per feed** (whole CLI process, start-up "
              f"included; {rp['cpu_s']:.2f} s CPU, {rp['wall_s']:.2f} s wall, "
              f"peak RSS {rp['peak_tree_rss_mb']:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
