"""What the daemon's upkeep costs `newswire once`, which runs it after every cron pass.

Usage: python bench/bench_upkeep.py [--articles-per-day 2740] [--lines 30] [--rounds 7]

A fresh database (the product's schema) is given the site lines of a week and a day of news
at the rate of a million articles a year (2,740 a day on 2,857 sites, 30 distinct lines an
article, nine in ten seen once), as `pipeline.store.lines` keeps them. Timed, with the same
store: the first `Store.maintenance` (it forgets the oldest day's singletons), then, for
`--rounds` rounds, the upkeep `once` ran before (pruning the near-duplicate index and
rolling the fetch log) against `Store.maintenance` (also forgetting site lines seen once
over SITE_LINE_SINGLETON_DAYS ago, and a WAL checkpoint) with nothing left to forget: the
medians and their difference, which is what a `once` with nothing due pays.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_config  # noqa: E402
from pipeline.store import Store  # noqa: E402
from pipeline.store.lines import SITE_LINE_SINGLETON_DAYS  # noqa: E402
from pipeline.times import iso  # noqa: E402

SITES = 2857  # 5,000 feeds, 1 to 4 section feeds a site (bench/corpus_db.py)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles-per-day", type=int, default=2740)
    parser.add_argument("--lines", type=int, default=30, help="distinct lines an article")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "newswire.yaml"
        path.write_text("database: newswire.db\nfeeds: [{url: 'http://127.0.0.1:1/feed'}]\n",
                        encoding="utf-8")
        config = load_config(path)
        store = Store.open(config.database)
        now = datetime.now(UTC)
        rows = [(f"site{rng.randrange(SITES)}.example", rng.getrandbits(63) - (1 << 62),
                 1 if rng.random() < 0.9 else 4,
                 iso(now - timedelta(days=day, seconds=rng.randrange(86400))))
                for day in range(SITE_LINE_SINGLETON_DAYS + 1)
                for _ in range(args.articles_per_day * args.lines)]
        store.db.conn.executemany("INSERT OR IGNORE INTO site_lines VALUES (?, ?, ?, ?)", rows)
        store.db.conn.commit()

        def count() -> int:
            return int(store.db.execute("SELECT count(*) FROM site_lines").fetchone()[0])

        held = count()
        first = _timed(lambda: store.maintenance(config))
        print(f"site lines: {held:,} rows; the first Store.maintenance forgets the oldest "
              f"day's singletons ({held - count():,} rows) in {first * 1000:.0f} ms")
        before, after = [], []
        for _ in range(args.rounds):
            before.append(_timed(lambda: (
                store.prune_bands(config.dedupe.band_window_days),
                store.prune_fetch_log(config.schedule.fetch_log_days))))
            after.append(_timed(lambda: store.maintenance(config)))
        store.close()
    low, high = statistics.median(before), statistics.median(after)
    print(f"once's upkeep with nothing to forget, median of {args.rounds}: before (index and "
          f"fetch log) {low * 1000:.1f} ms, Store.maintenance {high * 1000:.1f} ms "
          f"(+{(high - low) * 1000:.1f} ms a run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
