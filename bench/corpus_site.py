"""Serve the extraction corpus as news sites with feeds on 127.0.0.1, and run `newswire once`.

The benchmarks use this to push real corpus pages through the real pipeline:

* every original host of the corpus gets its own port (its own origin), so per-site state in
  the pipeline (connections, robots.txt, repeated-line statistics) sees one site per host;
* pages keep their original path and query, so URL-derived metadata (dates in paths) is what
  trafilatura sees on the original URL; copies made to reach a page count get `nwcopy=N`;
* pages are served gzip-compressed (as news sites do) with Content-Type and a charset;
* feeds are RSS 2.0 on a port of their own, items carrying the manifest title, the page's own
  meta description as the summary (what real feeds carry) and no date or author, so what the
  pipeline stores for those comes from the page; feeds answer If-None-Match with 304.

The server runs in a separate process (an asyncio server with prebuilt responses), so the
pipeline under test is never slowed by it; its CPU time is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import html
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scoring  # noqa: E402
from bench.scoring import Page  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
_META = re.compile(rb"<meta\b[^>]*>", re.I)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ATTR = re.compile(rb"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")


def meta_description(raw: str) -> str:
    """The page's og:/twitter:/plain meta description: what a site's feed usually carries."""
    found: dict[str, str] = {}
    for tag in _META.findall(raw[:300_000].encode("utf-8", "replace")):
        attrs = {m.group(1).lower(): (m.group(2) or m.group(3) or m.group(4) or b"")
                 for m in _ATTR.finditer(tag)}
        name = (attrs.get(b"property") or attrs.get(b"name") or b"").lower()
        if name in (b"og:description", b"description", b"twitter:description"):
            found.setdefault(name.decode(), html.unescape(
                attrs.get(b"content", b"").decode("utf-8", "replace")).strip())
    for key in ("og:description", "description", "twitter:description"):
        if found.get(key):
            return found[key]
    return ""


@dataclass(frozen=True)
class ServedPage:
    """One page as served: where, which corpus page, and its feed item fields."""

    url: str  # http://127.0.0.1:PORT/original/path?query
    page: Page
    original_host: str
    copy: int  # 0 for the page itself, N for its Nth copy
    summary: str


@dataclass
class Site:
    """What the server serves: pages (by origin port and target) and feeds."""

    pages: list[ServedPage]
    feeds: list[list[int]]  # page indices per feed
    host_ports: dict[str, int] = field(default_factory=dict)
    feed_port: int = 0
    sockets: list[socket.socket] = field(default_factory=list)  # listening, one per port
    # Items carry a pubDate (the manifest's date, else a fixed one) and the manifest's author
    # as dc:creator, as most news feeds do; without, the pipeline finds both on the page.
    dated: bool = False

    def feed_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.feed_port}/feed/{i}.xml" for i in range(len(self.feeds))]


def _target(url: str) -> str:
    parts = urlsplit(url)
    return unquote(parts.path or "/") + ("?" + unquote(parts.query) if parts.query else "")


def _listening_sockets(count: int) -> list[socket.socket]:
    """`count` sockets listening on free ports; the server process inherits them."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        sockets.append(sock)
    return sockets


def build_site(pages: list[Page], total: int, feeds: int, sites: int | None = None,
               dated: bool = False) -> Site:
    """`total` served pages cycling through `pages` (copies get distinct URLs), in `feeds`
    feeds of round-robin items. Every original host gets its own port, or with `sites` the
    original hosts share that many ports (a few big sites rather than hundreds of small)."""
    hosts = sorted({urlsplit(p.url).hostname or "unknown" for p in pages})
    sockets = _listening_sockets(len(hosts) if sites is None else sites)
    sockets.append(_listening_sockets(1)[0])  # the feeds' own port
    ports = [sock.getsockname()[1] for sock in sockets]
    host_ports = {host: ports[i % (len(ports) - 1)] for i, host in enumerate(hosts)}
    summaries = [meta_description(p.html) for p in pages]
    served: list[ServedPage] = []
    taken: set[tuple[int, str]] = set()
    for i in range(total):
        page = pages[i % len(pages)]
        copy = i // len(pages)
        parts = urlsplit(page.url)
        host = parts.hostname or "unknown"
        query = parts.query
        if copy:
            query = (query + "&" if query else "") + f"nwcopy={copy}"
        url = f"http://127.0.0.1:{host_ports[host]}{parts.path or '/'}" + \
            (f"?{query}" if query else "")
        if (host_ports[host], _target(url)) in taken:  # two hosts' pages on one port
            url += ("&" if "?" in url else "?") + f"nwsite={host}"
        taken.add((host_ports[host], _target(url)))
        served.append(ServedPage(url, page, host, copy, summaries[i % len(pages)]))
    items: list[list[int]] = [[] for _ in range(max(1, feeds))]
    for i in range(total):
        items[i % len(items)].append(i)
    return Site(served, items, host_ports, ports[-1], sockets, dated)


def feed_xml(site: Site, index: int) -> bytes:
    entries = []
    for i in site.feeds[index]:
        served = site.pages[i]
        extra = ""
        if site.dated:
            day = (served.page.publish_date or "2019-11-19")[:10]
            extra = f"<pubDate>{day[8:10] or '01'} {_MONTHS[int(day[5:7] or 1) - 1]} " \
                    f"{day[:4]} 12:00:00 GMT</pubDate>"
            if served.page.author:
                extra += f"<dc:creator>{escape(served.page.author)}</dc:creator>"
        entries.append(
            f"<item><title>{escape(served.page.title)}</title><link>{escape(served.url)}</link>"
            f"<guid isPermaLink=\"false\">page-{i}</guid>{extra}"
            f"<description>{escape(served.summary)}</description></item>")
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>Corpus feed {index}</title><link>http://127.0.0.1:{site.feed_port}/</link>"
            f"<description>bench</description>{''.join(entries)}</channel></rss>").encode()


# --- the server (runs in its own process) ------------------------------------------------------

def _response(status: str, body: bytes, content_type: str, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}"
            f"\r\n{extra}Connection: keep-alive\r\n\r\n")
    return head.encode("latin-1") + body


def _build_responses(site: Site) -> tuple[dict[tuple[int, str], bytes], dict[str, str]]:
    """Prebuilt responses by (port, target); feed ETags by target."""
    table: dict[tuple[int, str], bytes] = {}
    etags: dict[str, str] = {}
    bodies: dict[str, bytes] = {}  # one compressed body per corpus page, shared by copies
    for served in site.pages:
        key = served.page.id
        if key not in bodies:
            bodies[key] = gzip.compress(served.page.html.encode("utf-8"), 6)
        port = int(urlsplit(served.url).port or 80)
        table[(port, _target(served.url))] = _response(
            "200 OK", bodies[key], "text/html; charset=utf-8", "Content-Encoding: gzip\r\n")
    for index in range(len(site.feeds)):
        body = feed_xml(site, index)
        target = f"/feed/{index}.xml"
        etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        etags[target] = etag
        table[(site.feed_port, target)] = _response(
            "200 OK", body, "application/rss+xml; charset=utf-8", f"ETag: {etag}\r\n")
    return table, etags


_NOT_FOUND = _response("404 Not Found", b"not found", "text/plain")
_NOT_MODIFIED = b"HTTP/1.1 304 Not Modified\r\nConnection: keep-alive\r\n\r\n"


class _Protocol(asyncio.Protocol):
    def __init__(self, port: int, table: dict[tuple[int, str], bytes],
                 etags: dict[str, str], counts: list[int]) -> None:
        self.port, self.table, self.etags, self.counts = port, table, etags, counts
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            target = unquote(parts[1]) if len(parts) > 1 else "/"
            self.counts[0] += 1
            etag = self.etags.get(target)
            if etag is not None and any(
                    line.lower().startswith("if-none-match:") and etag in line
                    for line in lines[1:]):
                self.counts[1] += 1
                self.transport.write(_NOT_MODIFIED)  # type: ignore[attr-defined]
                continue
            self.transport.write(  # type: ignore[attr-defined]
                self.table.get((self.port, target), _NOT_FOUND))


def _serve(site: Site, ready: multiprocessing.synchronize.Event, stats: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    table, etags = _build_responses(site)
    counts = [0, 0]
    setup = resource.getrusage(resource.RUSAGE_SELF)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sock in site.sockets:
            port = sock.getsockname()[1]
            await loop.create_server(
                lambda port=port: _Protocol(port, table, etags, counts), sock=sock)
        ready.set()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    asyncio.run(main())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats.send({"requests": counts[0], "not_modified": counts[1],  # type: ignore[attr-defined]
                "cpu_s": usage.ru_utime + usage.ru_stime - setup.ru_utime - setup.ru_stime})


class Server:
    """The corpus site in a child process: `with Server(site): ...`; `.stats` after exit."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.stats: dict[str, float] = {}

    def __enter__(self) -> Server:
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_serve, args=(self.site, ready, send), daemon=True)
        self.process.start()
        for sock in self.site.sockets:  # the server process has its own copies now
            sock.close()
        if not ready.wait(120):
            raise RuntimeError("corpus server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.pid is not None
        os.kill(self.process.pid, signal.SIGTERM)
        if self._recv.poll(30):
            self.stats = self._recv.recv()
        self.process.join(10)


# --- running the pipeline ----------------------------------------------------------------------

def write_config(directory: Path, feed_urls: list[str], workers: int = 0) -> Path:
    """A config for the local corpus site: only 127.0.0.1, no spacing, generous concurrency."""
    import yaml

    shutil.rmtree(directory, ignore_errors=True)  # a cold run: no database from before
    directory.mkdir(parents=True)
    data = {
        "database": "newswire.db",
        "fetch": {"allow_networks": ["127.0.0.1/32"], "per_host_delay": "0s",
                  "per_host_concurrency": 64, "timeout": "60s"},
        "extract": {"workers": workers},
        "feeds": [{"url": url} for url in feed_urls],
    }
    path = directory / "newswire.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


_TICK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat(pid: int) -> tuple[float, int]:
    """(CPU seconds of the process itself, RSS in KiB) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK, int(fields[21]) * _PAGE_KB


def _descendants(root: int) -> list[int]:
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
        found.append(pid)
    return found


class TreeSampler:
    """Samples a process tree every `interval` s: peak RSS (summed, and largest process) and
    each process's CPU time. Rusage cannot give the tree's CPU: pool workers are children of
    the fork server, which does not always reap them before it exits itself."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root = root
        self.cpu: dict[int, float] = {}
        self.peak_total_kb = self.peak_process_kb = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._done.wait(interval):
            total = 0
            for pid in _descendants(self.root):
                try:
                    cpu, rss = _stat(pid)
                except (OSError, IndexError, ValueError):
                    continue
                self.cpu[pid] = cpu
                total += rss
                self.peak_process_kb = max(self.peak_process_kb, rss)
            self.peak_total_kb = max(self.peak_total_kb, total)

    def stop(self) -> tuple[float, float]:
        """Stop sampling; CPU seconds of the root process and of all its descendants (the
        root exactly: call while it is a zombie; the others as last sampled, missing at most
        `interval` each)."""
        self._done.set()
        self._thread.join()
        root_cpu, _ = _stat(self.root)
        return root_cpu, sum(c for pid, c in self.cpu.items() if pid != self.root)


@dataclass
class RunStats:
    """One `newswire once` run: wall and CPU seconds of the whole process tree, memory, output."""

    wall_s: float
    cpu_s: float  # the CLI and all its worker processes
    main_cpu_s: float  # the CLI process alone (fetching, parsing results, writing)
    peak_tree_rss_mb: float
    peak_process_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_once(config: Path, *extra: str) -> RunStats:
    """Run the real CLI (`python -m pipeline once`) and measure it with its worker processes."""
    return run_cli(config, "once", *extra)


def run_cli(config: Path, *args: str) -> RunStats:
    """Run any `python -m pipeline` command and measure it with its worker processes."""
    command = [sys.executable, "-m", "pipeline", "--config", str(config), *args]
    out_path, err_path = config.parent / f"{args[0]}.out", config.parent / f"{args[0]}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=err)
        sampler = TreeSampler(proc.pid)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
        wall = time.perf_counter() - started
        main_cpu, workers_cpu = sampler.stop()
        proc.wait()
    return RunStats(
        wall_s=wall, cpu_s=main_cpu + workers_cpu, main_cpu_s=main_cpu,
        peak_tree_rss_mb=sampler.peak_total_kb / 1024,
        peak_process_rss_mb=sampler.peak_process_kb / 1024, returncode=proc.returncode,
        stdout=out_path.read_text(), stderr=err_path.read_text())


def stored_articles(database: Path) -> dict[str, dict[str, object]]:
    """The stored article of each feed entry, by the entry's link (the served page URL):
    two served URLs of one article (the corpus has such pairs) both find it."""
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT e.link, a.id, a.text, a.author, a.published_at, "
                          "a.text_source, a.duplicate_kind FROM entries e "
                          "JOIN articles a ON a.id = e.article_id").fetchall()
    return {row["link"]: dict(row) for row in rows}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None
               ) -> argparse.Namespace | None:
    """A benchmark's arguments (`--quick` also from BENCH_QUICK=1, e.g. `make bench
    BENCH_QUICK=1`), or None after saying so when ../shared/corpus is absent."""
    args = parser.parse_args(argv)
    args.quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    if not scoring.corpus_available():
        print(f"skipped: ../shared/corpus not found (looked in {scoring.CORPUS_DIR})")
        return None
    return args


def load_sets(names: tuple[str, ...] = scoring.SETS) -> list[Page]:
    pages: list[Page] = []
    for name in names:
        pages.extend(scoring.load_pages(name))
    return pages


def machine() -> str:
    """One line about this machine for BENCHMARKS.md."""
    import platform

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")
