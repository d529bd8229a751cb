"""Ingest throughput with and without issue 17's indexes and counters, in the same run.

Usage:
    python bench/bench_ingest_indexes.py [CORPUS.db] [--hours 12] [--rounds 3] [--workdir DIR]
                                         [--news-scale 1]

CORPUS.db is a database bench/corpus_db.py built (its config and .corpus.json beside it);
without it a 10k corpus is built first. Each round copies it three times: "after" as it is
(migrations 13 and 14: the reading indexes and the counters' triggers), "indexes" with the
counters' triggers dropped (the indexes alone), "before" with both dropped (what the writer
maintained before issue 17); then appends the same `--hours` of news to each copy through
the writer's own path (`corpus_db.append`: every poll through `pipeline.store.polls.record`),
in a rotating order (`--news-scale` N: N times the corpus's rate of news, more articles per
poll). Reported: the writer's CPU seconds per 1,000 polls with their articles
(less sensitive than wall time on a shared machine), its wall time, the medians over the
rounds and their ratios to "before".

`--index NAME` compares one index instead: "with" (the corpus as it is) against "without"
(NAME dropped from the copy), the same news appended to both; for example
`--index articles_dated_twice` (migration 21).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import sqlite_utils

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import corpus_db  # noqa: E402
from pipeline.store import summaries  # noqa: E402

# What migrations 13 and 14 added that the writer maintains on every write.
NEW_INDEXES = ("articles_feed_published", "article_urls_article", "clusters_last_seen",
               "articles_sitename", "articles_language", "articles_duplicate_kind",
               "clusters_several_outlets", "feed_days_day")


def copy(source: Path, target: Path) -> None:
    for suffix in (".db-wal", ".db-shm"):  # a WAL left by an interrupted run is not this one's
        target.with_suffix(suffix).unlink(missing_ok=True)
    for suffix in (".db", ".yaml", ".corpus.json"):
        shutil.copyfile(source.with_suffix(suffix), target.with_suffix(suffix))


def strip(db: Path, indexes: bool) -> None:
    """Drop the counters' triggers (the counter tables stay, untouched) and, with
    `indexes`, the new indexes too."""
    database = sqlite_utils.Database(db)
    summaries.drop_triggers(database)
    for name in NEW_INDEXES if indexes else ():
        database.execute(f"DROP INDEX IF EXISTS [{name}]")
    database.close()


LABELS = ("before", "indexes", "after")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, nargs="?")
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--news-scale", type=float, default=1.0)
    parser.add_argument("--index", help="compare the corpus with and without this index")
    args = parser.parse_args()
    labels = ("without", "with") if args.index else LABELS
    if not corpus_db.CORPUS.is_dir():
        print(f"skipped: {corpus_db.CORPUS} is absent (the corpus builder needs it)")
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="newswire-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus
    if corpus is None:
        corpus = work / "corpus-10k.db"
        if not corpus.exists():
            corpus_db.build(corpus, corpus_db.Shape(articles=10_000))
    if args.index:  # a corpus from before the index's migration would build it while timed
        with sqlite_utils.Database(corpus) as database:
            if not database.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND "
                                    "name = ?", [args.index]).fetchone():
                print(f"{corpus} has no index {args.index}: migrate it first (opening it "
                      "with pipeline.store.Store applies this newswire's migrations)")
                return 2
    runs: dict[str, list[tuple[float, float, int]]] = {label: [] for label in labels}
    for round_ in range(args.rounds):
        turn = round_ % len(labels)
        for label in labels[turn:] + labels[:turn]:
            db = work / f"{label}.db"
            copy(corpus, db)
            if args.index and label == "without":
                with sqlite_utils.Database(db) as database:
                    database.execute(f"DROP INDEX [{args.index}]")
            elif not args.index and label != "after":
                strip(db, indexes=label == "before")
            report = corpus_db.append(db, args.hours, progress=False,
                                      news_scale=args.news_scale)
            runs[label].append((report.write_cpu, report.write_seconds, report.polls))
            print(f"round {round_ + 1} {label:<7}: {report.polls:,} polls, "
                  f"{report.articles:,} articles; writer {report.write_cpu:.2f} s CPU, "
                  f"{report.write_seconds:.2f} s wall", flush=True)
            for suffix in (".db", ".db-wal", ".db-shm", ".yaml", ".corpus.json"):
                db.with_suffix(suffix).unlink(missing_ok=True)
    medians = {}
    for label, values in runs.items():
        cpu = statistics.median(1000 * c / p for c, _w, p in values)
        wall = statistics.median(1000 * w / p for _c, w, p in values)
        medians[label] = (cpu, wall)
        print(f"{label:<7}: writer {cpu * 1000:.1f} ms CPU, {wall * 1000:.1f} ms wall per "
              f"1,000 polls with their articles (median of {len(values)})")
    base = labels[0]
    for label in labels[1:]:
        print(f"{label} / {base}: CPU {medians[label][0] / medians[base][0]:.3f}, "
              f"wall {medians[label][1] / medians[base][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
