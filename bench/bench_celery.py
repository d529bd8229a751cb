"""Scale-out: the same pages through the local engine, one Celery worker and two.

Usage: python bench/bench_celery.py [--quick] [--pages N] [--repeat N]

The corpus pages (both extraction sets) are served from 127.0.0.1 as in
bench/bench_throughput.py, and ingested by a cold `newswire once` on a fresh database each
time, with:
- the local engine and one extraction process (`extract.workers: 1`): the single-process
  reference for the broker's overhead;
- `engine: celery` and one `newswire worker --concurrency 1`;
- `engine: celery` and two such workers. Target: two at least 1.6x faster than one, on
  these 2-core machines (the coordinator, Redis and the page server share the cores).
Broker overhead per page, against the local run: tasks sent, bytes through Redis (its own
`INFO stats` counters), and the extra wall milliseconds. A real redis-server is started on a
free loopback port for the run. Exits 0 with "skipped" without ../shared/corpus or
redis-server, 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import corpus_site  # noqa: E402
from tests.celery_harness import RedisServer, Worker, wait_for_workers  # noqa: E402

ITEMS_PER_FEED = 50
TARGET = 1.6


def redis_counters(port: int) -> dict[str, int]:
    """Redis's cumulative commands and network bytes."""
    stats = redis.Redis(port=port).info("stats")
    return {key: int(stats[key]) for key in ("total_commands_processed",
                                             "total_net_input_bytes", "total_net_output_bytes")}


def configure(directory: Path, feeds: list[str], broker: str | None) -> Path:
    config = corpus_site.write_config(directory, feeds, workers=1)
    if broker:
        data = yaml.safe_load(config.read_text())
        data["engine"] = {"kind": "celery", "broker": broker, "task_timeout": "10m",
                          "visibility_timeout": "1h"}
        config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def run(config: Path, pages: int) -> float:
    stats = corpus_site.run_once(config)
    if stats.returncode != 0:
        raise SystemExit(f"newswire once failed: {stats.stderr[-2000:]}")
    stored = corpus_site.stored_articles(config.parent / "newswire.db")
    if len(stored) < pages:
        raise SystemExit(f"only {len(stored)} of {pages} entries stored")
    return stats.wall_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 pages, one run each")
    parser.add_argument("--pages", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    args = corpus_site.parse_args(parser, argv)
    if args is None:
        return 0
    if shutil.which("redis-server") is None:
        print("skipped: redis-server is not installed (.ci/run installs it)")
        return 0
    total = args.pages or (200 if args.quick else 600)
    repeat = args.repeat or (1 if args.quick else 3)
    pages = corpus_site.load_sets()
    site = corpus_site.build_site(pages, total, max(1, total // ITEMS_PER_FEED), sites=16)
    print(f"== scale-out: {corpus_site.machine()}; {total} pages, {len(site.feeds)} feeds, "
          f"medians of {repeat} cold runs")
    walls: dict[str, list[float]] = {"local": [], "1 worker": [], "2 workers": []}
    traffic: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="nw-celery-") as tmp, \
            corpus_site.Server(site), RedisServer(Path(tmp)) as broker:
        work = Path(tmp)
        for attempt in range(repeat):
            local = configure(work / f"local{attempt}", site.feed_urls(), None)
            walls["local"].append(run(local, total))
            for count in (1, 2):
                config = configure(work / f"celery{count}-{attempt}", site.feed_urls(),
                                   broker.url)
                workers = [Worker(config, concurrency=1) for _ in range(count)]
                try:
                    wait_for_workers(broker.url, count)
                    before = redis_counters(broker.port)
                    walls[f"{count} worker{'s' if count > 1 else ''}"].append(
                        run(config, total))
                    after = redis_counters(broker.port)
                finally:
                    for worker in workers:
                        worker.stop()
                if count == 1:
                    traffic.append({k: after[k] - before[k] for k in after})
    median = {name: statistics.median(values) for name, values in walls.items()}
    print("| engine | wall s (median) | pages/s | runs |")
    print("|---|---|---|---|")
    for name, wall in median.items():
        print(f"| {name} | {wall:.1f} | {total / wall:.1f} | "
              f"{', '.join(f'{w:.1f}' for w in walls[name])} |")
    speedup = median["1 worker"] / median["2 workers"]
    commands = statistics.median(t["total_commands_processed"] for t in traffic) / total
    moved = statistics.median(t["total_net_input_bytes"] + t["total_net_output_bytes"]
                              for t in traffic) / total
    extra_ms = (median["1 worker"] - median["local"]) / total * 1000
    tasks = (total + len(site.feeds)) / total
    print(f"\ntwo workers against one: **{speedup:.2f}x** (target >= {TARGET})")
    print(f"broker overhead per page (one worker against the local engine, one process "
          f"each): {tasks:.2f} tasks, {commands:.0f} Redis commands, {moved / 1024:.1f} KiB "
          f"through Redis, {extra_ms:+.1f} ms of wall time")
    return 0 if speedup >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
