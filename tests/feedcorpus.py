"""Serve feedparser's own test feeds over 127.0.0.1 and poll them all with the real pipeline.

Used by tests/test_feed_corpus.py and bench/bench_feed_corpus.py. Each file is served at its
path relative to the corpus root with the HTTP headers its `Header:` comment lines name,
read the way feedparser's own test harness reads them (BOM-aware decoding of the file, then
`^Header:\\s+name:value$`; Content-Type defaults to text/xml).

The feeds link to example.org and friends: `loopback_resolver` refuses every host name that
is not an IP literal in 127.0.0.0/8, so a run never makes a DNS query or leaves the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

HEADER = re.compile(r"^Header:\s+([^:]+):(.*)$", re.MULTILINE)


def decode_for_headers(data: bytes) -> str:
    """The file as text, by its byte order mark (as feedparser's tests/helpers.py does)."""
    boms = [(b"\x00\x00\xfe\xff", "utf-32be", 0), (b"\xff\xfe\x00\x00", "utf-32le", 0),
            (b"\x00\x00\x00\x3c", "utf-32be", 0), (b"\x3c\x00\x00\x00", "utf-32le", 0),
            (b"\x00\x3c\x00\x3f", "utf-16be", 0), (b"\x3c\x00\x3f\x00", "utf-16le", 0)]
    for prefix, codec, skip in boms:
        if data.startswith(prefix):
            return data[skip:].decode(codec, errors="ignore")
    if data[:2] == b"\xfe\xff" and data[2:4] != b"\x00\x00":
        return data[2:].decode("utf-16be", errors="ignore")
    if data[:2] == b"\xff\xfe" and data[2:4] != b"\x00\x00":
        return data[2:].decode("utf-16le", errors="ignore")
    if data[:3] == b"\xef\xbb\xbf":
        return data[3:].decode("utf-8", errors="ignore")
    return data.decode("utf-8", errors="ignore")


def served_headers(path: Path, data: bytes) -> list[tuple[str, str]]:
    """The response headers for one corpus file: its `Header:` lines, else a default type."""
    headers = [(name.strip(), value.strip())
               for name, value in HEADER.findall(decode_for_headers(data))]
    if not any(name.lower() == "content-type" for name, _ in headers):
        default = "application/json" if path.suffix == ".json" else "text/xml"
        headers.append(("Content-Type", default))
    return headers


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".xml", ".json"))


@dataclass(frozen=True)
class Served:
    path: Path
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class CorpusServer:
    """A threaded HTTP server on 127.0.0.1 for every file of the corpus."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Served] = {}
        self.requests = Counter[str]()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                served = outer.files.get(unquote(urlsplit(self.path).path))
                with outer._lock:
                    outer.requests[self.path] += 1
                if served is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                for name, value in served.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that went away (a deadline, a refused body) is not news

        self._server = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        for path in corpus_files(root):
            rel = "/" + path.relative_to(root).as_posix()
            data = path.read_bytes()
            self.files[rel] = Served(path, self.base_url + quote(rel),
                                     tuple(served_headers(path, data)), data)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> CorpusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __iter__(self) -> Iterator[Served]:
        return iter(self.files.values())


async def loopback_resolver(host: str, port: int) -> list[str]:
    """Resolve only IP literals in 127.0.0.0/8; refuse every name without asking DNS."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: name lookups are off in this run"
                              ) from None
    if address.version == 4 and address in ipaddress.ip_network("127.0.0.0/8"):
        await asyncio.sleep(0)
        return [str(address)]
    raise socket.gaierror(socket.EAI_NONAME, f"{host}: outside 127.0.0.0/8 in this run")


_DETAIL = re.compile(r"[:(].*$")


def error_class(error: str | None) -> str:
    """A short class for an error message: its kind without the per-feed details."""
    if not error:
        return "-"
    if error.startswith("feed parse error"):
        reason = error.split("): ", 1)[-1]
        if reason.startswith("parser crashed"):
            return "parse: " + reason.split(":")[0] + ": " + reason.split(":")[1].strip()
        if reason.startswith("external entity"):
            return "parse: external entity refused"
        return "parse: " + _DETAIL.sub("", reason).strip()
    return _DETAIL.sub("", error).strip()


@dataclass(frozen=True)
class Outcome:
    path: str
    status: int | None
    error: str | None
    entries: int
    entries_with_article: int
    fetches: int
    title: str | None


def outcomes(store: Any, server: CorpusServer) -> list[Outcome]:
    """What happened to every served file, read back from the database."""
    by_url = {s.url: s for s in server}
    rows = store.db.execute("""
        SELECT f.config_url, f.last_status, f.last_error, f.title,
               (SELECT count(*) FROM entries e WHERE e.feed_id = f.id),
               (SELECT count(*) FROM entries e WHERE e.feed_id = f.id
                  AND e.article_id IS NOT NULL),
               (SELECT count(*) FROM fetches x WHERE x.feed_id = f.id)
        FROM feeds f""").fetchall()
    return [Outcome(str(by_url[r[0]].path.relative_to(server.root)), r[1], r[2], r[4], r[5],
                    r[6], r[3]) for r in rows if r[0] in by_url]


def outcome_table(results: list[Outcome]) -> list[tuple[str, str, int]]:
    """(status, class, count) rows, most frequent first; 'ok' split by whether it had items."""
    counts = Counter[tuple[str, str]]()
    for r in results:
        if r.error:
            counts[(str(r.status or "-"), error_class(r.error))] += 1
        else:
            counts[(str(r.status), "ok, with entries" if r.entries else "ok, no entries")] += 1
    return [(status, kind, n) for (status, kind), n in counts.most_common()]
