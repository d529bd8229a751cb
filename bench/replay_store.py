"""Replay stored sets through this tree's store, on a fixed clock, to compare two trees.

Usage: python bench/replay_store.py OUT DB [DB ...] [--step-seconds N] [--prune-every N]
                                    [--window-days N]

Each DB is a database a benchmark ingested (bench/bench_clustering.py `--keep`: its
seed-N/{waves,cold}.db). Its articles, in the order they were stored (rowid), go one poll
each through a fresh `pipeline.store.Store` in process, as bench/bench_verify.py's
`store_replay` feeds them (`arrivals`, `poll_of`): the real writer, near-duplicate
index and clustering. The clock is fixed (`pipeline.times.utcnow` replaced): each article
comes N seconds after the last, so two runs see the same times and make the same decisions;
with `--prune-every K` the index is pruned to `--window-days` before every K-th article, as
the daemon's maintenance does. Writes OUT, one JSON line per DB: the counts and a digest of
every article's (id, cluster, duplicate_of, kind, score) and every duplicate edge.

Run it from two checkouts on the same DBs and compare the files: identical digests mean
the same decisions (how schema 22's signatures-for-the-window was checked against main).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the checkout it is run from

from bench.bench_verify import arrivals, poll_of  # noqa: E402
from pipeline import times  # noqa: E402
from pipeline.config import FeedConfig  # noqa: E402
from pipeline.store import Store  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=UTC)


class Clock:
    """Stands in for `utcnow` in every module that imported it."""

    def __init__(self) -> None:
        self.now = START
        self.original = times.utcnow

    def __call__(self) -> str:
        return times.iso(self.now)

    def install(self) -> None:
        for module in list(sys.modules.values()):
            if getattr(module, "utcnow", None) is self.original:
                module.utcnow = self  # type: ignore[attr-defined]

    def uninstall(self) -> None:
        for module in list(sys.modules.values()):
            if getattr(module, "utcnow", None) is self:
                module.utcnow = self.original  # type: ignore[attr-defined]


def replay(path: Path, clock: Clock, step: timedelta, prune_every: int,
           window_days: int) -> dict[str, object]:
    arrived = arrivals(path)
    clock.now = START
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "replay.db")
        clock.install()  # again: the store's modules are imported by now
        store.sync_feeds([FeedConfig(url="http://feeds.example/replay")])
        feed_id = store.feeds(include_all=True)[0].id
        for number, (_, entry, _) in enumerate(arrived):
            clock.now += step
            if prune_every and number % prune_every == 0:
                store.prune_bands(window_days, now=clock.now)
            store.record_poll(poll_of(feed_id, entry, clock()))
        articles = store.db.execute(
            "SELECT id, cluster_id, duplicate_of, duplicate_kind, round(duplicate_score, 6) "
            "FROM articles ORDER BY id").fetchall()
        edges = store.db.execute("SELECT article_id, other_id, kind, note FROM duplicate_edges "
                                 "ORDER BY 1, 2, 3, 4").fetchall()
        merges = store.db.execute("SELECT count(*) FROM cluster_merges").fetchone()[0]
        store.close()
    digest = hashlib.sha256(json.dumps([articles, edges]).encode()).hexdigest()[:16]
    return {"db": str(path), "articles": len(articles), "edges": len(edges),
            "merges": merges, "digest": digest}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("dbs", nargs="+", type=Path)
    parser.add_argument("--step-seconds", type=float, default=7.0)
    parser.add_argument("--prune-every", type=int, default=0)
    parser.add_argument("--window-days", type=int, default=30)
    args = parser.parse_args(argv)
    clock = Clock()
    clock.install()
    try:
        with args.out.open("w") as out:
            for path in args.dbs:
                result = replay(path, clock, timedelta(seconds=args.step_seconds),
                                args.prune_every, args.window_days)
                print(json.dumps(result), file=out, flush=True)
                print(result, flush=True)
    finally:
        clock.uninstall()
    return 0


if __name__ == "__main__":
    sys.exit(main())
