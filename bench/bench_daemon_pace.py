"""Whether a slow feed sets the daemon's pace for the others.

Usage: python bench/bench_daemon_pace.py [--seconds 20] [--slow-pages 30]

Two sites on 127.0.0.1 (two host names, so per-host limits apply to each alone): a quick
feed due every second with 2 articles, and a feed of `--slow-pages` articles. The daemon
(`run_daemon`, tick 0.5 s, fetch timeout 1 s, one request at a time per host) runs for
`--seconds`, twice: with the slow feed's pages answering at once (the baseline), then with
each of them trickling a byte every 0.2 s until the 1 s deadline. Printed for each run: how
many times the quick feed was polled, the median gap between its polls, and the ratio of
the faulted run's polls to the baseline's. Before the daemon polled each feed as it fell due
(it polled in passes, each waiting for its slowest poll), the faulted run polled the quick
feed once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_config  # noqa: E402
from pipeline.store import Store  # noqa: E402
from tests.conftest import (  # noqa: E402
    resolve_to_loopback,
    run_daemon_for,
    slow_beside_quick,
)


def one_run(seconds: float, slow_pages: int, trickle: bool) -> list[float]:
    """The times the quick feed was polled, in a daemon run of `seconds`."""
    with tempfile.TemporaryDirectory() as workdir, \
            slow_beside_quick(Path(workdir), slow_pages, trickle) as (path, _slow, quick):
        config = load_config(path)
        store = Store.open(config.database)
        run_daemon_for(config, store, seconds, resolve_to_loopback)
        store.close()
        return sorted(r.time for r in quick.requests_for("/feeds/rss.xml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--slow-pages", type=int, default=30)
    args = parser.parse_args(argv)
    polls = {}
    for name, trickle in (("baseline (slow feed's pages answer at once)", False),
                          ("slow feed's pages trickle to their deadline", True)):
        times = one_run(args.seconds, args.slow_pages, trickle)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        polls[trickle] = len(times)
        median = f"{statistics.median(gaps):.2f} s" if gaps else "-"
        print(f"{name}: quick feed polled {len(times)} times in {args.seconds:g} s, "
              f"median gap {median}")
    print(f"ratio of polls, faulted / baseline: {polls[True] / max(1, polls[False]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
