"""Crash safety (hostile-inputs row 28): `newswire once` killed with SIGKILL at seeded
moments while it ingests 300 articles from 20 feeds (once while it starts, then as its stored
entries reach random counts: in the middle of its writes), then rerun to completion.

Nothing may be lost (every served article stored, with its text), nothing doubled (entry
keys unique per feed, exact article and entry counts), validators only next to the entries
they cover, and `PRAGMA integrity_check` ok. `bench/bench_crash.py` prints the figures.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline import archive
from pipeline.messages import ArchiveLocation
from tests.conftest import REPO, write_config
from tests.newssite import NewsSite

SITES = 5
ARTICLES_PER_SITE = 60


@dataclass
class CrashFigures:
    kills: int = 0  # runs that were killed before they finished
    finished_early: int = 0  # runs that finished before their kill time came
    entries_at_kills: list[int] = field(default_factory=list)  # entries stored when killed
    reruns: int = 0
    articles: int = 0
    entries: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.kills} kills (entries stored at each kill: {self.entries_at_kills}),"
                f" {self.finished_early} runs finished before their kill, {self.reruns} "
                f"reruns; {self.articles} articles and {self.entries} entries, exactly as "
                f"served; {self.seconds:.1f} s in all")


WORDS = (
    "harbour", "council", "minister", "river", "budget", "strike", "election", "court", "storm",
    "bridge", "school", "hospital", "railway", "festival", "market", "police", "farmers",
    "museum", "airport", "border", "treaty", "energy", "housing", "climate", "science",
    "village", "report", "officials", "protest", "vote", "record", "season", "island",
    "factory", "coast", "mayor", "union", "drought", "library", "archive",
)


def unique_story(rng: random.Random) -> list[str]:
    """Four paragraphs no other article shares (so no dedupe layer merges them)."""
    return [" ".join(rng.choice(WORDS) for _ in range(45)).capitalize() + "."
            for _ in range(4)]


def build_sites(stack: ExitStack) -> tuple[list[NewsSite], dict[str, int]]:
    """Five sites of 60 articles; their four feeds list overlapping subsets."""
    sites, expected_entries = [], {}
    now = datetime.now(UTC)
    rng = random.Random(300)
    for s in range(SITES):
        site = stack.enter_context(NewsSite(site_name=f"Site {s}"))
        slugs = [f"s{s}-a{i}" for i in range(ARTICLES_PER_SITE)]
        for i, slug in enumerate(slugs):
            site.add_article(slug, f"Site {s} story {i}", unique_story(rng),
                             now - timedelta(minutes=i), author=f"Reporter {i % 7}")
        subsets = {"rss": slugs, "atom": slugs[:36], "rdf": slugs[-36:], "json": slugs[::3]}
        for name, subset in subsets.items():
            site.set_feed_items(name, subset)
            expected_entries[site.feed_url(name)] = len(subset)
        sites.append(site)
    return sites, expected_entries


def stored_entries(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
    except sqlite3.Error:
        return 0


def killed_when(proc: subprocess.Popen[bytes], db: Path, at_entries: int | None,
                after: float) -> bool:
    """Wait until `proc` has stored `at_entries` entries in all (None: until `after`
    seconds), then SIGKILL it; False when it finished first."""
    deadline = time.monotonic() + (after if at_entries is None else 120)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if at_entries is not None and stored_entries(db) >= at_entries:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def crash_run(workdir: Path, kills: int = 5, seed: int = 28) -> CrashFigures:
    """Kill `kills` runs at seeded moments, rerun to completion, check everything: the first
    kill at a random time (it may land while the run starts), the others as the stored
    entries reach random counts, so they land in the middle of its writes."""
    rng = random.Random(seed)
    figures = CrashFigures()
    started = time.monotonic()
    with ExitStack() as stack:
        sites, expected_entries = build_sites(stack)
        config = write_config(workdir / "newswire.yaml", list(expected_entries),
                              extract={"workers": 2})
        db = workdir / "newswire.db"
        command = [sys.executable, "-m", "pipeline", "--config", str(config), "once", "-q"]
        total = sum(expected_entries.values())
        for number in range(kills):
            stored = stored_entries(db)
            at_entries = None if number == 0 else stored + rng.randrange(
                1, max(2, (total - stored) // 2))
            proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            try:
                if killed_when(proc, db, at_entries, after=rng.uniform(0.8, 6.0)):
                    figures.kills += 1
                    figures.entries_at_kills.append(stored_entries(db))
                else:
                    figures.finished_early += 1
            finally:
                if proc.stderr:
                    proc.stderr.close()
        for _ in range(3):  # the due feeds, until every feed has been polled once
            run = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                 timeout=300)
            assert run.returncode == 0, run.stderr
            figures.reruns += 1
            with sqlite3.connect(db) as conn:
                if not conn.execute("SELECT count(*) FROM feeds WHERE last_polled_at IS NULL"
                                    ).fetchone()[0]:
                    break
        check_nothing_lost_nothing_doubled(db, sites, expected_entries)
    with sqlite3.connect(db) as conn:
        figures.articles = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        figures.entries = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    figures.seconds = time.monotonic() - started
    return figures


def check_nothing_lost_nothing_doubled(db: Path, sites: list[NewsSite],
                                       expected_entries: dict[str, int]) -> None:
    served = {a.url: a for site in sites for a in site.articles}
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = dict(conn.execute("SELECT url, text FROM articles").fetchall())
        assert set(stored) == set(served)  # nothing lost, nothing extra
        assert conn.execute("SELECT count(*) FROM articles").fetchone()[0] == len(served)
        for url, text in stored.items():
            assert all(p in text for p in served[url].paragraphs), url
        assert conn.execute("SELECT count(*) FROM (SELECT feed_id, entry_key FROM entries "
                            "GROUP BY 1, 2 HAVING count(*) > 1)").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM entries WHERE article_id IS NULL"
                            ).fetchone()[0] == 0
        per_feed = dict(conn.execute(
            "SELECT f.url, count(e.id) FROM feeds f LEFT JOIN entries e ON e.feed_id = f.id "
            "GROUP BY f.id").fetchall())
        assert per_feed == expected_entries
        # A feed's validators are only ever stored together with the entries they cover.
        for url, etag, n in conn.execute(
                "SELECT f.url, f.etag, count(e.id) FROM feeds f "
                "LEFT JOIN entries e ON e.feed_id = f.id GROUP BY f.id"):
            assert etag and n == expected_entries[url]
        assert conn.execute("SELECT sum(size) FROM clusters").fetchone()[0] == len(served)
        fts = conn.execute("SELECT count(*) FROM articles_fts").fetchone()[0]
        assert fts == len(served)
        # The archive: every row points at a record that is on disk and is its page.
        pointers = conn.execute("SELECT url, warc_file, warc_offset, warc_length, "
                                "warc_record_id, warc_digest FROM articles").fetchall()
    for url, *where in pointers:
        capture = archive.read(db.parent / "archive", ArchiveLocation(*where))
        assert capture.url == url and served[url].paragraphs[0].encode() in capture.body


def test_kill_9_at_random_points_loses_and_doubles_nothing(tmp_path: Path) -> None:
    figures = crash_run(tmp_path)
    print("\n" + figures.line())
    assert figures.kills >= 3  # most kills landed mid-run (seeded: the same ones every time)
    # ... some in the middle of writing a poll's entries, not while the process started.
    assert sum(0 < entries < 760 for entries in figures.entries_at_kills) >= 3, figures.line()
    assert figures.articles == SITES * ARTICLES_PER_SITE
