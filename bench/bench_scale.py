"""Everything a user touches every day, timed on corpora of 10k, 100k and 1M articles.

Usage:
    python bench/bench_scale.py [--sizes 10k] [--workdir DIR] [--keep]      # build, then time
    python bench/bench_scale.py --db DIR/corpus-1m.db [--python PY] [--label before]
                                [--results FILE.jsonl] [--repeat 3] [--no-cold]
    python bench/bench_scale.py --table FILE.jsonl     # the BENCHMARKS.md tables

Builds each corpus with bench/corpus_db.py (the product's own write path; see there for the
shapes), or times an existing one (`--db`, with its config `DB.yaml` beside it), and times:
- `newswire status` and `newswire once -q` with nothing due (every feed's next poll is first
  moved an hour ahead: the one write the bench makes), as subprocesses, start-up included;
- every Datasette page a user reaches from the home page, through `newswire serve` (the
  shipped settings and metadata): the home and database pages; each table page as the
  database page links it (with its default facets); each table's facets asked for on
  demand (`?_facet=`); each canned query (the search one with a common and a rare word);
  each view; the articles table searched for the same two words; the page of the article
  with the most copies, of the busiest feed and of the largest cluster.
Cold: the database files are dropped from the OS page cache (fsync, then
posix_fadvise(DONTNEED), checked with mincore through `fincore` when present) and the
command, or a fresh server, starts; warm: the median of `--repeat` runs right after. A page
"timed out" when Datasette answered "SQL query took too long" or listed a facet as timed out;
tracebacks in the server's log are counted.

`--python` runs the commands with another interpreter (another checkout's venv: how the
"before" figures were taken). Results are JSON lines (one per measurement) in `--results`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import corpus_db  # noqa: E402

COMMON_WORD = "said"
RARE_WORD = "referendum"
TIMEOUT_MARKERS = ("SQL query took too long", "took too long")
FACET_TIMEOUT = "These facets timed out"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- cold files --------------------------------------------------------------------------------

def database_files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def evict(db: Path) -> int:
    """Drop the database's files from the OS page cache; how many bytes stay cached."""
    os.sync()
    for path in database_files(db):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return sum(cached_bytes(p) for p in database_files(db))


def cached_bytes(path: Path) -> int:
    """Bytes of the file in the page cache (fincore), or 0 when that cannot be told."""
    if not shutil.which("fincore"):
        return 0
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True)
    try:
        return int(out.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


# --- commands ------------------------------------------------------------------------------------

# The commands' environment: as installed, with their bytecode cached (a checkout run with
# PYTHONDONTWRITEBYTECODE compiles every module at every start: seconds on a busy machine).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_command(python: str, config: Path, *args: str) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the command and its children, exit code, stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([python, "-m", "pipeline", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=config.parent, timeout=4 * 3600,
                          env=ENV)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, proc.returncode, proc.stderr[-2000:]


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants (from /proc)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (OSError, IndexError, ValueError):
            continue
    return total


def nothing_due(db: Path) -> None:
    """Every feed's next poll an hour ahead, so `once` has nothing to poll."""
    ahead = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE feeds SET next_poll_at = ? WHERE active = 1 AND gone = 0 AND "
                     "(next_poll_at IS NULL OR next_poll_at < ?)", [ahead, ahead])


# --- Datasette ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`newswire serve` on a free port; its log in a file."""

    def __init__(self, python: str, config: Path, log: Path) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("a") as handle:
            self.proc = subprocess.Popen(
                [python, "-m", "pipeline", "--config", str(config), "serve", "--port",
                 str(self.port)], cwd=config.parent, stdout=handle, stderr=subprocess.STDOUT,
                env=ENV)
        deadline = time.monotonic() + 120
        while True:
            try:
                _OPENER.open(self.root + "/-/versions.json", timeout=5).close()
                return
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"newswire serve did not start (see {log})") from None
                time.sleep(0.2)

    def get(self, path: str) -> tuple[float, float, int, str]:
        """(wall seconds, server CPU seconds, HTTP status, body)."""
        cpu = tree_cpu(self.proc.pid)
        started = time.perf_counter()
        try:
            with _OPENER.open(self.root + path, timeout=600) as response:
                code, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            code, body = error.code, error.read()
        elapsed = time.perf_counter() - started
        return (elapsed, tree_cpu(self.proc.pid) - cpu, code,
                body.decode("utf-8", "replace"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pages(db: Path, python: str, config: Path, log: Path) -> list[tuple[str, str]]:
    """(label, path) of every page to time, found from the served database itself."""
    name = db.stem
    server = Server(python, config, log)
    try:
        info = json.loads(server.get(f"/{name}.json")[3])
        metadata = json.loads(server.get("/-/metadata.json")[3])
    finally:
        server.stop()
    section = metadata.get("databases", {}).get(name, {})
    tables = [t for t in info["tables"] if not t["hidden"]]
    found: list[tuple[str, str]] = [("home page", "/"), ("database page", f"/{name}")]
    for table in sorted(tables, key=lambda t: t["name"]):
        found.append((f"table {table['name']}", f"/{name}/{table['name']}"))
    for table in sorted(tables, key=lambda t: t["name"]):
        facets = section.get("tables", {}).get(table["name"], {}).get("facets", [])
        for facet in facets or ON_DEMAND.get(table["name"], []):
            found.append((f"facet {table['name']}.{facet}",
                          f"/{name}/{table['name']}?_facet={facet}"))
    for view in info.get("views", []):
        found.append((f"view {view['name']}", f"/{name}/{view['name']}"))
    for query in sorted(section.get("queries", {})):
        if query == "search":
            for word in (COMMON_WORD, RARE_WORD):
                found.append((f"query search '{word}'", f"/{name}/search?q={word}"))
        else:
            found.append((f"query {query}", f"/{name}/{query}"))
    for word in (COMMON_WORD, RARE_WORD):
        found.append((f"articles ?_search={word}", f"/{name}/articles?_search={word}"))
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        cluster, canonical = conn.execute(
            "SELECT id, canonical_article_id FROM clusters ORDER BY size DESC LIMIT 1"
        ).fetchone()
        feed = conn.execute("SELECT feed_id FROM articles WHERE rowid IN (SELECT rowid FROM "
                            "articles ORDER BY rowid DESC LIMIT 5000) GROUP BY feed_id "
                            "ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    found += [("article page", f"/{name}/articles/{canonical}"),
              ("feed page", f"/{name}/feeds/{feed}"),
              ("cluster page", f"/{name}/clusters/{cluster}")]
    if "cluster" in section.get("queries", {}):
        found.append(("query cluster (the largest)", f"/{name}/cluster?cluster_id={cluster}"))
    return found


# Facets a user asks for when a table ships none (main's defaults, and the obvious ones).
ON_DEMAND = {"articles": ["feed_id", "sitename", "language", "duplicate_kind"],
             "entries": ["feed_id"], "fetches": ["feed_id", "status"]}


def timed_out(body: str) -> str:
    if any(marker in body for marker in TIMEOUT_MARKERS):
        return "query"
    if FACET_TIMEOUT in body:
        match = re.search(FACET_TIMEOUT + r":?\s*(.*?)</", body, re.S)
        return "facets" + (f" ({' '.join(match.group(1).split())[:60]})" if match else "")
    return ""


# --- one database ------------------------------------------------------------------------------

def measure(db: Path, python: str, label: str, repeat: int, cold: bool,
            emit: Callable[[dict[str, Any]], None]) -> None:
    config = db.with_suffix(".yaml")
    size = db_size(db)
    base = {"db": db.name, "label": label, "articles": size["articles"]}
    log = db.with_name(f"{db.stem}-{label}-serve.log")
    log.write_text("")

    def record(what: str, times: list[float], cpus: list[float], cold_s: float | None,
               ok: bool, note: str = "") -> None:
        row = {**base, "what": what, "warm": statistics.median(times) if times else None,
               "cpu": statistics.median(cpus) if cpus else None, "cold": cold_s, "ok": ok,
               "note": note}
        print(f"  {what:<42} cold {fmt(cold_s):>8}  warm {fmt(row['warm']):>8}  "
              f"cpu {fmt(row['cpu']):>8}  {'' if ok else 'FAILED '}{note}", flush=True)
        emit(row)

    # The first command after an upgrade migrates: time it on its own.
    nothing_due(db)
    elapsed, cpu, code, err = run_command(python, config, "once", "-q")
    record("first once (migrations, if any)", [elapsed], [cpu], None, code == 0, err[-200:])
    for what, args in (("status", ("status",)), ("once, nothing due", ("once", "-q"))):
        cold_s = None
        if cold:
            evict(db)
            cold_s, _, code, err = run_command(python, config, *args)
        times, cpus = [], []
        for _ in range(repeat):
            elapsed, cpu, code, err = run_command(python, config, *args)
            times.append(elapsed)
            cpus.append(cpu)
        record(what, times, cpus, cold_s, code == 0, err[-200:] if code else "")

    for what, path in pages(db, python, config, log):
        cold_s = None
        cold_note = ""
        server = None
        try:
            if cold:
                evict(db)
                server = Server(python, config, log)
                cold_s, _, code, body = server.get(path)
                server.stop()
                if timed_out(body) or code != 200:
                    cold_note = f"cold: {timed_out(body) or f'HTTP {code}'}"

            server = Server(python, config, log)
            server.get(path)  # the server's own first request
            times, cpus, notes = [], [], {cold_note} - {""}
            for _ in range(repeat):
                elapsed, cpu, code, body = server.get(path)
                times.append(elapsed)
                cpus.append(cpu)
                if timed_out(body):
                    notes.add(f"timed out: {timed_out(body)}")
                if code != 200:
                    notes.add(f"HTTP {code}")
        finally:
            if server is not None:
                server.stop()
        record(what, times, cpus, cold_s, not notes, "; ".join(sorted(notes)))
    text = log.read_text(errors="replace")
    emit({**base, "what": "server log", "tracebacks": text.count("Traceback (most recent"),
          "log_lines": text.count("\n"),
          "timeouts_logged": text.count("query over the time limit")})
    emit({**base, "what": "size", **size})


def db_size(db: Path) -> dict[str, Any]:
    """File size, rows, and bytes per table (its indexes included; the search index's
    shadow tables under articles_fts), from dbstat."""
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        owner = {name: table for name, table in conn.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")}
        per: dict[str, int] = {}
        try:
            for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                table = owner.get(name, name)
                if table.startswith("articles_fts"):
                    table = "articles_fts"
                per[table] = per.get(table, 0) + int(size)
        except sqlite3.OperationalError:
            pass
        rows = {t: conn.execute(f"SELECT count(*) FROM [{t}]").fetchone()[0] for t in (
            "articles", "entries", "clusters", "fetches", "duplicate_edges", "neardup_bands",
            "article_urls", "site_lines", "feeds")}
        free = conn.execute("PRAGMA freelist_count").fetchone()[0] * \
            conn.execute("PRAGMA page_size").fetchone()[0]
    total = sum(p.stat().st_size for p in database_files(db))
    return {"bytes": total, "articles": rows["articles"], "rows": rows, "tables": per,
            "free_bytes": free,
            "per_article": total / rows["articles"] if rows["articles"] else None}


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


# --- tables for BENCHMARKS.md -----------------------------------------------------------------

def table(results: Path, key: str = "warm") -> str:
    """Markdown: one row per measurement, one column per corpus and label; `warm` cells are
    "warm / cold", `cpu` cells the CPU seconds of the warm runs."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    sizes = sorted({r["articles"] for r in rows})
    whats = list(dict.fromkeys(r["what"] for r in rows if "warm" in r))
    out = ["| | " + " | ".join(f"{short(n)} {label}" for n in sizes for label in labels) +
           " |", "|---|" + "---|" * (len(sizes) * len(labels))]
    for what in whats:
        cells = []
        for n in sizes:
            for label in labels:
                found = [r for r in rows if r["what"] == what and r["articles"] == n and
                         r["label"] == label]
                cells.append(cell(found[-1], key) if found else "")
        out.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def cell(row: dict[str, Any], key: str) -> str:
    if key == "cpu":
        return fmt(row.get("cpu"))
    text = fmt(row.get("warm"))
    if row.get("cold") is not None:
        text += f" / {fmt(row['cold'])}"
    if not row.get("ok", True):
        text += " ✗" + (f" ({row['note']})" if row.get("note") else "")
    return text


def short(n: int) -> str:
    return f"{round(n / 1_000_000)}M" if n >= 900_000 else f"{round(n / 1000)}k"


# --- main ----------------------------------------------------------------------------------------

@contextmanager
def workdir(path: str | None, keep: bool) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
    elif keep:
        yield Path(tempfile.mkdtemp(prefix="newswire-scale-"))
    else:
        with tempfile.TemporaryDirectory(prefix="newswire-scale-") as tmp:
            yield Path(tmp)


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k", help="corpora to build and time")
    parser.add_argument("--db", type=Path, help="time this database (built by corpus_db.py)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for newswire")
    parser.add_argument("--label", default="now")
    parser.add_argument("--results", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true")
    parser.add_argument("--workdir")
    parser.add_argument("--keep", action="store_true", help="keep the built databases")
    parser.add_argument("--table", type=Path, help="print the tables of a results file")
    args = parser.parse_args()
    if args.table:
        print("Wall time, warm / cold:\n" + table(args.table))
        print("\nCPU time of the command or the server, warm:\n" + table(args.table, "cpu"))
        return 0
    if not corpus_db.CORPUS.is_dir():
        print(f"skipped: {corpus_db.CORPUS} is absent (the corpus builder needs it)")
        return 0
    ctypes.CDLL(None)  # posix_fadvise is in os; this only checks we are on a libc system
    print(f"machine: {machine()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    with workdir(args.workdir, args.keep) as work:
        results = args.results or work / "scale-results.jsonl"

        def emit(row: dict[str, Any]) -> None:
            with results.open("a") as handle:
                handle.write(json.dumps(row) + "\n")

        databases = [args.db] if args.db else []
        if not args.db:
            for n in corpus_db.iter_sizes(args.sizes):
                db = work / f"corpus-{short(n).lower()}.db"
                if not db.exists():
                    print(f"== building {db.name}", flush=True)
                    report = corpus_db.build(db, corpus_db.Shape(articles=n))
                    emit({"db": db.name, "label": args.label, "articles": n,
                          "what": "build", "seconds": report.seconds,
                          "write_seconds": report.write_seconds,
                          "articles_written": report.articles})
                databases.append(db)
        for db in databases:
            print(f"== {db.name} ({args.label})", flush=True)
            measure(db, args.python, args.label, args.repeat, not args.no_cold, emit)
        print(f"results: {results}")
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
