"""The front page and every chart, timed on a benchmark corpus (bench/corpus_db.py).

Usage:
    python bench/bench_dashboards.py [DB] [--repeat 5] [--now ISO] [--no-cold] [--results F]

Without DB (`make bench`), a 10k-article corpus is built first with bench/corpus_db.py in a
temporary directory (several minutes).

Serves DB with `newswire serve` (its config `DB.yaml` beside it: the shipped settings, so
Datasette's default 1 s time limit) and asks for what a browser asks for: each dashboard's
page, then each chart's query through `/DB.json?sql=...`, exactly as datasette-dashboards
sends it. Cold: the database's files dropped from the page cache and a fresh server, then
each dashboard's page and its charts once; warm: the median of `--repeat` runs after that.

`--now` anchors the charts' windows ("today", "last 30 days") at another time than the
clock: for a corpus whose news ended earlier (a build stopped half-way), the same queries
then read as many days of news as they would on a live corpus.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_scale import Server, evict, machine  # noqa: E402
from pipeline.browse import dashboards_for  # noqa: E402
from pipeline.config import load_config  # noqa: E402


def requests(db: Path, dead_after: int, now: str | None) -> list[tuple[str, str]]:
    """(label, path) of each dashboard page, then each of its charts' queries."""
    found = []
    for slug, dashboard in dashboards_for(db, dead_after).items():
        found.append((f"{slug} (page)", f"/-/dashboards/{slug}"))
        for chart_slug, chart in dashboard.get("charts", {}).items():
            if "query" not in chart:
                continue
            sql = chart["query"]
            if now:
                sql = sql.replace("'now'", f"'{now}'")
            query = urllib.parse.urlencode({"sql": sql, "_shape": "objects"})
            found.append((f"{slug} / {chart_slug}", f"/{db.stem}.json?{query}"))
    return found


def fetch(server: Server, path: str) -> dict[str, Any]:
    seconds, _, status, body = server.get(path)
    result: dict[str, Any] = {"seconds": round(seconds, 4), "status": status}
    if path.startswith("/-/"):
        return result
    try:
        data = json.loads(body)
        result["rows"] = len(data.get("rows", []))
    except ValueError:
        result["error"] = body[:200]
    if status != 200:
        result["error"] = body[:300]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", type=Path, nargs="?")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--now", help="anchor the windows here (ISO time, UTC)")
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--results", type=Path)
    args = parser.parse_args()
    if args.db is None:
        with tempfile.TemporaryDirectory(prefix="newswire-bench-dashboards-") as work:
            args.db = Path(work) / "corpus-10k.db"
            subprocess.run([sys.executable, str(ROOT / "bench" / "corpus_db.py"),
                            str(args.db), "--articles", "10k"], check=True)
            return run(args)
    return run(args)


def run(args: argparse.Namespace) -> int:
    db = args.db.resolve()
    config = db.with_suffix(".yaml")
    dead_after = load_config(config).schedule.dead_after
    paths = requests(db, dead_after, args.now)
    log = db.with_name(db.stem + "-dashboards-serve.log")
    cold: dict[str, dict[str, Any]] = {}
    if not args.no_cold:
        evict(db)
        server = Server(sys.executable, config, log)
        try:
            cold = {label: fetch(server, path) for label, path in paths}
        finally:
            server.stop()
    server = Server(sys.executable, config, log)
    try:
        warm: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in paths}
        for _ in range(args.repeat):
            for label, path in paths:
                warm[label].append(fetch(server, path))
    finally:
        server.stop()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{db.name}  {stamp}  {machine()}  now={args.now or 'clock'}")
    print(f"{'request':40} {'cold s':>8} {'warm s':>8} {'rows':>5}  status")
    out = []
    for label, _ in paths:
        runs = warm[label]
        median = statistics.median(r["seconds"] for r in runs)
        first = cold.get(label, {})
        errors = {r.get("error") for r in runs + [first] if r.get("error")}
        print(f"{label:40} {first.get('seconds', float('nan')):8.3f} {median:8.3f} "
              f"{runs[-1].get('rows', ''):>5}  {runs[-1]['status']}"
              + (f"  {sorted(errors)[0][:120]}" if errors else ""))
        out.append({"db": db.name, "at": stamp, "now": args.now, "request": label,
                    "cold": first.get("seconds"), "warm": median,
                    "rows": runs[-1].get("rows"), "status": runs[-1]["status"],
                    "errors": sorted(errors)})
    if args.results:
        with args.results.open("a") as handle:
            for row in out:
                handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
