"""End-to-end throughput of `newswire once` against the hardware bound, measured in one run.

Usage: python bench/bench_throughput.py [--quick] [--sizes 300,3000] [--repeat 3]
                                        [--repoll-feeds 1000]

1. The bound: every unique corpus page (both extraction sets) is extracted once by plain
   trafilatura in this single process, warm, nothing else running; the bound for N served
   pages is the sum of their single-process times divided by the core count (copies count at
   their original's time). Two plain calls are timed (bench/scoring.py):
   - `bare_extraction(with_metadata=True)`: the job the pipeline does for every page (issue 2
     specifies this call: text plus title, author, date, site name) — the bound of the target;
   - `extract()`: text only, reported alongside; metadata costs trafilatura about 45% more.
2. For each size N: N pages served from 127.0.0.1 (bench/corpus_site.py, a separate process;
   the corpus's ~870 hosts folded into 16 sites) through N/50 RSS feeds without dates or
   authors (so every page's metadata is extracted, as in the bound), ingested by a cold
   `newswire once` subprocess on a fresh database. Per run: pages/s, CPU of the whole process
   tree over the cores (utilisation), peak RSS (summed over the CLI and its worker processes,
   and the largest single process). Medians over --repeat runs. Targets: ratio >= 0.85 on
   2 cores; flat peak RSS from 300 to 3,000 pages. One more run of the largest size uses
   feeds whose items carry pubDate and dc:creator, as most news feeds do: the pipeline then
   skips the page's date and author searches (the bound still does them).
3. Re-poll: 1,000 feeds already ingested, polled again with `once --all` (all 304 Not
   Modified): CPU per feed of the whole CLI process, start-up included. Target: < 2 ms.
Exits 0 with a "skipped" message when ../shared/corpus is absent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import corpus_site, scoring  # noqa: E402

ITEMS_PER_FEED = 50
SITES = 16  # the corpus's ~870 hosts are served as this many sites (ports)
CORES = os.cpu_count() or 1


def single_process_times(pages: list[scoring.Page]
                         ) -> tuple[list[float], list[float], list[float]]:
    """Seconds per page of plain `bare_extraction` with metadata and of `extract`, and the CPU
    seconds per page of `bare_extraction` (which other jobs on the machine inflate far less
    than the elapsed time)."""
    for page in pages[:20]:  # warm-up: imports, lazily built patterns and caches
        scoring.plain_trafilatura_metadata(page.html, page.url)
        scoring.plain_trafilatura(page.html, page.url)
    meta: list[float] = []
    meta_cpu: list[float] = []
    plain: list[float] = []
    for page in pages:
        started, started_cpu = time.perf_counter(), time.process_time()
        scoring.plain_trafilatura_metadata(page.html, page.url)
        meta.append(time.perf_counter() - started)
        meta_cpu.append(time.process_time() - started_cpu)
    for page in pages:
        started = time.perf_counter()
        scoring.plain_trafilatura(page.html, page.url)
        plain.append(time.perf_counter() - started)
    return meta, plain, meta_cpu


def run_size(pages: list[scoring.Page], total: int, workdir: Path,
             dated: bool = False) -> dict[str, float]:
    site = corpus_site.build_site(pages, total, max(1, total // ITEMS_PER_FEED), sites=SITES,
                                  dated=dated)
    config = corpus_site.write_config(workdir / f"n{total}", site.feed_urls())
    with corpus_site.Server(site) as server:
        stats = corpus_site.run_once(config)
    if stats.returncode != 0:
        raise SystemExit(f"newswire once failed ({stats.returncode}): {stats.stderr[-2000:]}")
    stored = corpus_site.stored_articles(config.parent / "newswire.db")
    return {"feeds": len(site.feeds), "stored": len({r["id"] for r in stored.values()}),
            "entries": len(stored), "wall_s": stats.wall_s, "cpu_s": stats.cpu_s,
            "main_cpu_s": stats.main_cpu_s, "util": stats.cpu_s / (stats.wall_s * CORES),
            "server_cpu_s": float(server.stats.get("cpu_s", 0.0)),
            "tree_mb": stats.peak_tree_rss_mb, "process_mb": stats.peak_process_rss_mb}


def run_repoll(pages: list[scoring.Page], feeds: int, repeat: int,
               workdir: Path) -> list[corpus_site.RunStats]:
    site = corpus_site.build_site(pages[:50], 50, feeds, sites=1)
    config = corpus_site.write_config(workdir / "repoll", site.feed_urls())
    runs = []
    with corpus_site.Server(site):
        first = corpus_site.run_once(config)
        if first.returncode != 0:
            raise SystemExit(f"first poll failed: {first.stderr[-2000:]}")
        for _ in range(repeat):
            again = corpus_site.run_once(config, "--all")
            if again.returncode != 0 or f"{feeds} not modified" not in again.stdout:
                raise SystemExit(f"re-poll was not all 304s: {again.stdout} "
                                 f"{again.stderr[-2000:]}")
            runs.append(again)
    return runs


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() \
        else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="300 pages, one run each")
    parser.add_argument("--sizes", default=None, help="comma-separated page counts")
    parser.add_argument("--repeat", type=int, default=None, help="runs per size (median)")
    parser.add_argument("--repoll-feeds", type=int, default=None)
    parser.add_argument("--workdir", default=None, help="keep run directories here")
    args = corpus_site.parse_args(parser, argv)
    if args is None:
        return 0
    sizes = [int(s) for s in (args.sizes or ("300" if args.quick else "300,3000")).split(",")]
    repeat = args.repeat or (1 if args.quick else 3)
    repoll = args.repoll_feeds or 1000

    pages = corpus_site.load_sets()
    print(f"== throughput: {corpus_site.machine()}; load average {_load()} at start")
    meta, plain, meta_cpu = single_process_times(pages)
    print(f"single process, warm, {len(pages)} unique pages: plain `bare_extraction` with "
          f"metadata {sum(meta):.1f} s (median {statistics.median(meta) * 1000:.1f} ms/page; "
          f"{sum(meta_cpu):.1f} s of CPU), "
          f"plain `extract` {sum(plain):.1f} s (median "
          f"{statistics.median(plain) * 1000:.1f} ms/page)")

    with tempfile.TemporaryDirectory(prefix="nw-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        print(f"\nmedians of {repeat} cold run(s) per size; bound = single-process time / "
              f"{CORES} cores; CPU efficiency = plain `bare_extraction` CPU per page / the "
              f"pipeline's CPU per page (all processes), which is about ratio / utilisation")
        print("| pages | feeds | articles | wall s | pages/s | bound: `bare_extraction` + "
              "metadata, pages/s | **ratio** | bound: `extract` text only, pages/s | ratio | "
              "CPU utilisation | CPU efficiency | main-process share of CPU | peak RSS, "
              "process tree MB | largest process MB |")
        print("|" + "---|" * 14)
        rows = [(total, False, repeat) for total in sizes]
        if not args.quick:  # typical news feeds: dates and authors in the items
            rows.append((max(sizes), True, 1))
        for total, dated, times in rows:
            runs = [run_size(pages, total, workdir, dated) for _ in range(times)]
            wall = statistics.median(r["wall_s"] for r in runs)
            bound_meta = sum(meta[i % len(pages)] for i in range(total)) / CORES
            bound_text = sum(plain[i % len(pages)] for i in range(total)) / CORES
            bound_cpu = sum(meta_cpu[i % len(pages)] for i in range(total))

            def median(key: str, runs: list[dict[str, float]] = runs) -> float:
                return statistics.median(r[key] for r in runs)

            label = f"{total}, feeds with dates and authors (1 run)" if dated else str(total)
            print(f"| {label} | {runs[0]['feeds']} | {runs[0]['stored']} | {wall:.1f} | "
                  f"{total / wall:.1f} | {total / bound_meta:.1f} | "
                  f"**{bound_meta / wall:.2f}** | {total / bound_text:.1f} | "
                  f"{bound_text / wall:.2f} | {median('util'):.0%} | "
                  f"{bound_cpu / median('cpu_s'):.2f} | "
                  f"{median('main_cpu_s') / median('cpu_s'):.0%} | "
                  f"{max(r['tree_mb'] for r in runs):.0f} | "
                  f"{max(r['process_mb'] for r in runs):.0f} |", flush=True)
            print(f"<!-- {label} pages: walls {[round(r['wall_s'], 1) for r in runs]} s; CPU "
                  f"{median('cpu_s'):.1f} s ({median('cpu_s') / total * 1000:.1f} ms/page, "
                  f"{median('main_cpu_s'):.1f} s in the main process); server process "
                  f"{median('server_cpu_s'):.1f} s; load average {_load()} -->", flush=True)
        polls = run_repoll(pages, repoll, repeat, workdir)
        cpu = statistics.median(r.cpu_s for r in polls)
        print(f"\nre-poll of {repoll} unchanged feeds (all 304 Not Modified), median of "
              f"{repeat}: **{cpu * 1000 / repoll:.2f} ms CPU per feed** (the whole CLI process, "
              f"start-up included: {cpu:.2f} s CPU, "
              f"{statistics.median(r.wall_s for r in polls):.2f} s wall, peak RSS "
              f"{max(r.peak_tree_rss_mb for r in polls):.0f} MB); load average {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
