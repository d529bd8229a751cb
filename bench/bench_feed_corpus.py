"""Poll every file of feedparser's test corpus over 127.0.0.1 and print what happened.

Usage: python bench/bench_feed_corpus.py [--root DIR]

Serves ../shared/corpus/feeds/feedparser/ with each file's `Header:` lines as HTTP headers,
runs one real `run_once` pass over all of them (no name lookups: only 127.0.0.0/8 is
reachable) and prints the outcome table (counts by status and error class), the run's
summary line, the wall time and the peak RSS of this process and of the worker pool.
Exits 0 with a "skipped" message when the corpus is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_config  # noqa: E402
from pipeline.run import run_once  # noqa: E402
from pipeline.store import Store  # noqa: E402
from tests.conftest import CORPUS, write_config  # noqa: E402
from tests.feedcorpus import (  # noqa: E402
    CorpusServer,
    loopback_resolver,
    outcome_table,
    outcomes,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=CORPUS / "feeds" / "feedparser")
    args = parser.parse_args()
    if not args.root.is_dir():
        print(f"skipped: {args.root} not found (../shared/corpus is absent)")
        return 0
    with tempfile.TemporaryDirectory() as tmp, CorpusServer(args.root) as server:
        config = load_config(write_config(Path(tmp) / "newswire.yaml",
                                          [s.url for s in server],
                                          fetch={"per_host_concurrency": 16}))
        with Store.open(config.database) as store:
            started = time.perf_counter()
            report = asyncio.run(run_once(config, store, resolver=loopback_resolver))
            elapsed = time.perf_counter() - started
            results = outcomes(store, server)
            fetch_rows = store.db["fetches"].count
    print(f"feedparser corpus: {len(server.files)} files served from {args.root}")
    print(f"{'status':>6}  {'outcome':<40} {'files':>6}")
    for status, kind, n in outcome_table(results):
        print(f"{status:>6}  {kind:<40} {n:>6}")
    print(report.line())
    print(f"fetch-log rows: {fetch_rows}; entries: {sum(r.entries for r in results)}; "
          f"wall time {elapsed:.1f} s")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pool = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: this process {own:.0f} MB, largest worker {pool:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
