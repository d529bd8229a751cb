"""A small local news site for end-to-end tests (stdlib only).

``NewsSite`` serves realistic article pages and the same article list as RSS 2.0, Atom 1.0,
RSS 1.0 (RDF) and JSON Feed 1.1, supports conditional GET, records every request and can
inject faults (error statuses, redirects, slow or endless bodies, gzip bombs, dropped
connections, delays) on any path.

Example::

    with NewsSite() as site:
        art = site.add_article("hello", "Hello", ["First.", "Second."], datetime.now(UTC))
        feed_url = site.feed_url("rss")
        site.set_fault("/feeds/atom.xml", "status", code=503, headers={"Retry-After": "1"})
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import html
import json
import socket
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "FAULT_KINDS",
    "FEED_PATHS",
    "FEED_TYPES",
    "Article",
    "Headers",
    "NewsSite",
    "RequestRecord",
]

FEED_PATHS: dict[str, str] = {
    "rss": "/feeds/rss.xml",
    "atom": "/feeds/atom.xml",
    "rdf": "/feeds/rdf.xml",
    "json": "/feeds/feed.json",
}
FEED_TYPES: dict[str, str] = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "rdf": "application/rdf+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
HTML_TYPE = "text/html; charset=utf-8"

# Allowed keyword options per fault kind (besides the generic ``times``).
FAULT_OPTIONS: dict[str, frozenset[str]] = {
    "status": frozenset({"code", "headers", "body", "content_type"}),
    "redirect": frozenset({"location", "code"}),
    "trickle": frozenset({"interval", "byte", "count", "status", "content_type", "headers"}),
    "endless": frozenset({"chunk", "chunked", "interval", "status", "content_type", "headers"}),
    "gzip_bomb": frozenset({"size", "double", "content_type"}),
    "body": frozenset({"body", "content_type", "headers", "status"}),
    "close": frozenset(),
    "delay": frozenset({"seconds"}),
}
FAULT_KINDS: frozenset[str] = frozenset(FAULT_OPTIONS)

_NS_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_NS_DC = "http://purl.org/dc/elements/1.1/"
_NS_ATOM = "http://www.w3.org/2005/Atom"
_NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_NS_RSS1 = "http://purl.org/rss/1.0/"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FILLER_MOST_READ = (
    ("Weather: sunny spells and scattered showers expected", "/section/weather"),
    ("Quiz of the week: how closely have you followed the news?", "/section/quiz"),
    ("Crossword: today's puzzle and yesterday's answers", "/section/puzzles"),
)


# --------------------------------------------------------------------------- data types


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive mapping of HTTP headers (repeated names are comma-joined)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._data: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._data:
                orig, prev = self._data[key]
                self._data[key] = (orig, f"{prev}, {value}")
            else:
                self._data[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._data[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (orig for orig, _ in self._data.values())

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class RequestRecord:
    """One request as seen by the server."""

    method: str
    path: str  # URL path without the query string
    target: str  # raw request target, including any query string
    headers: Headers
    status: int | None  # None when the connection was dropped without a response
    fault: str | None  # the fault kind applied, if any
    time: float  # time.monotonic() when the response was decided


@dataclass(frozen=True)
class Article:
    """An article on the site."""

    slug: str
    title: str
    paragraphs: tuple[str, ...]
    published: datetime
    url: str
    guid: str
    author: str | None = None
    summary: str | None = None
    updated: datetime | None = None
    canonical: str | None = None  # what the page declares as its canonical URL (default: url)

    @property
    def text(self) -> str:
        """The paragraphs joined by newlines (what an extractor should find)."""
        return "\n".join(self.paragraphs)

    @property
    def description(self) -> str:
        """The summary, or the first paragraph shortened when there is none."""
        if self.summary is not None:
            return self.summary
        first = self.paragraphs[0] if self.paragraphs else ""
        return first if len(first) <= 200 else first[:197].rstrip() + "..."

    @property
    def modified(self) -> datetime:
        """The update time, or the publication time."""
        return self.updated or self.published

    @property
    def content_html(self) -> str:
        """The article body as HTML paragraphs."""
        return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in self.paragraphs)


@dataclass
class _Fault:
    kind: str
    options: dict[str, Any]
    remaining: int | None
    payload: bytes = b""


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


# --------------------------------------------------------------------------- helpers


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def http_date(dt: datetime) -> str:
    """Format ``dt`` as an HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return email.utils.format_datetime(_aware(dt).astimezone(UTC), usegmt=True)


def _to_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _el(tag: str, text: str, attrs: str = "") -> str:
    return f"<{tag}{attrs}>{escape(text)}</{tag}>"


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _gzip(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


def _gzip_zeros(size: int) -> bytes:
    """Gzip ``size`` zero bytes without materialising them all at once."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    out: list[bytes] = []
    remaining = size
    while remaining > 0:
        n = min(remaining, len(block))
        out.append(comp.compress(block if n == len(block) else block[:n]))
        remaining -= n
    out.append(comp.flush())
    return b"".join(out)


def _norm_path(path: str) -> str:
    """Reduce a path or absolute URL to its path component (no query)."""
    path = urlsplit(path).path if "://" in path else path.split("?", 1)[0]
    return path if path.startswith("/") else "/" + path


def _not_modified(req: Headers, etag: str, last_modified: datetime | None) -> bool:
    inm = req.get("If-None-Match")
    if inm is not None:  # RFC 9110: If-None-Match takes precedence over If-Modified-Since
        tags = [t.strip() for t in inm.split(",")]
        return any(t == "*" or t.removeprefix("W/") == etag for t in tags)
    ims = req.get("If-Modified-Since")
    if ims and last_modified is not None:
        try:
            since = _aware(email.utils.parsedate_to_datetime(ims))
        except (TypeError, ValueError, IndexError):
            return False
        return int(last_modified.timestamp()) <= since.timestamp()
    return False


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, site: NewsSite, address: tuple[str, int]) -> None:
        self.site = site
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # client went away: not interesting
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "NewsSite/1.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.site._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.site._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr logging."""

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    # -- plumbing

    def _dispatch(self, head: bool) -> None:
        site = self.server.site
        self._req_path = _norm_path(self.path)
        self._req_headers = Headers(self.headers.items())
        refusal = site._refusal(self._req_path, self._req_headers)
        if refusal is not None:
            self._send(refusal, head, "required")
            return
        fault = site._take_fault(self._req_path)
        kind = fault.kind if fault else None
        if fault is not None and fault.kind != "delay":
            self._serve_fault(fault, head)
            return
        if fault is not None:
            site._stopping.wait(float(fault.options.get("seconds", 1.0)))
        self._send(site._render(self._req_path, self._req_headers), head, kind)

    def _record(self, status: int | None, fault: str | None) -> None:
        self.server.site._record(
            RequestRecord(
                method=self.command,
                path=self._req_path,
                target=self.path,
                headers=self._req_headers,
                status=status,
                fault=fault,
                time=time.monotonic(),
            )
        )

    def _send(self, resp: _Response, head: bool, fault: str | None = None) -> None:
        self._record(resp.status, fault)  # before replying, so clients never outrun the log
        no_body = resp.status < 200 or resp.status in (204, 304)
        try:
            self.send_response(resp.status)
            for name, value in resp.headers:
                self.send_header(name, value)
            has_length = any(n.lower() == "content-length" for n, _ in resp.headers)
            if not no_body and not has_length:
                self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if not head and not no_body and resp.body:
                self.wfile.write(resp.body)
        except OSError:
            self.close_connection = True

    def _serve_fault(self, fault: _Fault, head: bool) -> None:
        opts = fault.options
        kind = fault.kind
        if kind == "close":
            self._record(None, kind)
            self.close_connection = True
            return
        if kind == "trickle":
            self._trickle(opts, head)
            return
        if kind == "endless":
            self._endless(opts, head)
            return
        if kind == "status":
            code = int(opts.get("code", 500))
            phrase = self.responses.get(code, ("Error",))[0]
            body = _to_bytes(opts.get("body", f"{code} {phrase}\n"))
            headers = [("Content-Type", opts.get("content_type", "text/plain; charset=utf-8"))]
            resp = _Response(code, headers + list(opts.get("headers", {}).items()), body)
        elif kind == "redirect":
            location = str(opts["location"])
            body = f'<html><body><a href="{html.escape(location)}">Moved</a></body></html>'
            headers = [("Location", location), ("Content-Type", HTML_TYPE)]
            resp = _Response(int(opts.get("code", 302)), headers, body.encode())
        elif kind == "gzip_bomb":
            encoding = "gzip, gzip" if opts.get("double") else "gzip"
            headers = [
                ("Content-Type", opts.get("content_type", FEED_TYPES["rss"])),
                ("Content-Encoding", encoding),
            ]
            resp = _Response(200, headers, fault.payload)
        else:  # body
            headers = [("Content-Type", opts.get("content_type", "application/octet-stream"))]
            resp = _Response(
                int(opts.get("status", 200)),
                headers + list(opts.get("headers", {}).items()),
                _to_bytes(opts.get("body", b"")),
            )
        self._send(resp, head, kind)

    def _start_stream(self, kind: str, opts: dict[str, Any], extra: list[tuple[str, str]]) -> None:
        status = int(opts.get("status", 200))
        self._record(status, kind)
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", opts.get("content_type", HTML_TYPE))
        for name, value in [*extra, *opts.get("headers", {}).items()]:
            self.send_header(name, value)
        self.end_headers()

    def _trickle(self, opts: dict[str, Any], head: bool) -> None:
        stopping = self.server.site._stopping
        interval = float(opts.get("interval", 0.5))
        byte = _to_bytes(opts.get("byte", b" "))
        count: int | None = opts.get("count")
        extra = [("Connection", "close")]
        if count is not None:
            extra.append(("Content-Length", str(count * len(byte))))
        try:
            self._start_stream("trickle", opts, extra)
            sent = 0
            while not head and not stopping.is_set() and (count is None or sent < count):
                self.wfile.write(byte)
                sent += 1
                if (count is None or sent < count) and stopping.wait(interval):
                    break
        except OSError:
            pass

    def _endless(self, opts: dict[str, Any], head: bool) -> None:
        stopping = self.server.site._stopping
        chunk = _to_bytes(opts.get("chunk", b"x" * 65536))
        chunked = bool(opts.get("chunked", True))
        interval = float(opts.get("interval", 0.0))
        extra = [("Transfer-Encoding", "chunked")] if chunked else [("Connection", "close")]
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
        try:
            self._start_stream("endless", opts, extra)
            while not head and not stopping.is_set():
                self.wfile.write(frame)
                if interval and stopping.wait(interval):
                    break
        except OSError:
            pass


# --------------------------------------------------------------------------- the site


class NewsSite:
    """A local news site on 127.0.0.1 with articles, four feed formats and fault injection.

    The port is bound on construction, so ``base_url`` and article URLs are known before
    ``start()``. Use as a context manager or call ``start()``/``stop()``.
    """

    def __init__(
        self,
        *,
        site_name: str = "The Example Gazette",
        host: str = "127.0.0.1",
        port: int = 0,
        full_content: bool = True,
        conditional_get: bool = True,
    ) -> None:
        self.site_name = site_name
        self.full_content = full_content  # RSS content:encoded, RDF content:encoded, Atom content
        self.conditional_get = conditional_get  # ETag/Last-Modified and 304 handling
        self._lock = threading.RLock()
        self._log_cond = threading.Condition(self._lock)
        self._articles: dict[str, Article] = {}
        self._feed_items: dict[str, list[str] | None] = dict.fromkeys(FEED_PATHS)
        self._faults: dict[str, _Fault] = {}
        self._routes: dict[str, _Response] = {}
        self._required: dict[str, tuple[str, str, int, dict[str, str]]] = {}
        self._log: list[RequestRecord] = []
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._server = _Server(self, (host, port))
        self.host: str = str(self._server.server_address[0])
        self.port: int = int(self._server.server_address[1])
        self.base_url = f"http://{self.host}:{self.port}"

    # -- lifecycle

    def start(self) -> Self:
        """Start serving in a daemon thread (idempotent)."""
        if self._stopping.is_set():
            raise RuntimeError("NewsSite cannot be restarted after stop()")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"newssite-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, abort streaming responses and close open connections (idempotent)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        """Absolute URL for ``path`` on this site."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def feed_url(self, name: str = "rss") -> str:
        """Absolute URL of feed ``name`` (``rss``, ``atom``, ``rdf`` or ``json``)."""
        return self.base_url + FEED_PATHS[name]

    # -- content

    def add_article(
        self,
        slug: str,
        title: str,
        paragraphs: Iterable[str],
        published: datetime,
        author: str | None = None,
        summary: str | None = None,
        *,
        updated: datetime | None = None,
        guid: str | None = None,
        canonical: str | None = None,
    ) -> Article:
        """Add (or replace) the article at ``/news/{slug}.html``; naive datetimes are UTC."""
        url = f"{self.base_url}/news/{slug}.html"
        article = Article(
            slug=slug,
            title=title,
            paragraphs=tuple(paragraphs),
            published=_aware(published),
            url=url,
            guid=guid if guid is not None else url,
            author=author,
            summary=summary,
            updated=_aware(updated) if updated is not None else None,
            canonical=canonical,
        )
        with self._lock:
            self._articles[slug] = article
        return article

    def remove_article(self, slug: str) -> None:
        """Remove an article (its page then 404s and it leaves every feed)."""
        with self._lock:
            del self._articles[slug]

    def article(self, slug: str) -> Article:
        """The article with ``slug``."""
        with self._lock:
            return self._articles[slug]

    @property
    def articles(self) -> list[Article]:
        """All articles, newest first."""
        with self._lock:
            return sorted(self._articles.values(), key=lambda a: a.published, reverse=True)

    def set_feed_items(self, name: str, slugs: Iterable[str] | None) -> None:
        """Restrict feed ``name`` to ``slugs`` (``None`` = all articles); unknown slugs skip."""
        if name not in FEED_PATHS:
            raise KeyError(f"unknown feed {name!r}; expected one of {sorted(FEED_PATHS)}")
        with self._lock:
            self._feed_items[name] = None if slugs is None else list(slugs)

    def feed_articles(self, name: str) -> list[Article]:
        """The articles feed ``name`` currently lists, newest first."""
        with self._lock:
            slugs = self._feed_items[name]
            arts = self.articles
        if slugs is None:
            return arts
        wanted = set(slugs)
        return [a for a in arts if a.slug in wanted]

    def route(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
        *,
        status: int = 200,
    ) -> str:
        """Serve ``body`` verbatim at ``path``; returns the absolute URL."""
        path = _norm_path(path)
        resp_headers = [("Content-Type", content_type), *(headers or {}).items()]
        with self._lock:
            self._routes[path] = _Response(status, resp_headers, _to_bytes(body))
        return self.base_url + path

    def remove_route(self, path: str) -> None:
        """Remove an extra route."""
        with self._lock:
            self._routes.pop(_norm_path(path), None)

    # -- faults

    def set_fault(self, path: str, kind: str, *, times: int | None = None, **kw: Any) -> None:
        """Inject a fault on ``path`` (for the next ``times`` requests, or until cleared).

        Kinds and options (defaults in brackets):
        ``status``: code [500], headers, body, content_type;
        ``redirect``: location (required), code [302];
        ``trickle``: interval [0.5], byte [b" "], count [None = forever], status, content_type,
        headers;
        ``endless``: chunk [64 KiB of b"x"], chunked [True, else no framing + close], interval
        [0], status, content_type, headers;
        ``gzip_bomb``: size [64 MiB of zeros], double [False], content_type;
        ``body``: body, content_type, headers, status [200];
        ``close``: drop the connection without a response;
        ``delay``: seconds [1.0], then serve normally.
        """
        if kind not in FAULT_OPTIONS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        unknown = set(kw) - FAULT_OPTIONS[kind]
        if unknown:
            raise TypeError(f"fault {kind!r} got unexpected options {sorted(unknown)}")
        if kind == "redirect":
            if "location" not in kw:
                raise TypeError("redirect fault needs location=")
            if int(kw.get("code", 302)) not in (301, 302, 303, 307, 308):
                raise ValueError(f"bad redirect code {kw['code']}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1")
        payload = b""
        if kind == "gzip_bomb":
            payload = _gzip_zeros(int(kw.get("size", 64 << 20)))
            if kw.get("double"):
                payload = _gzip(payload)
        with self._lock:
            self._faults[_norm_path(path)] = _Fault(kind, dict(kw), times, payload)

    def require_header(self, path_prefix: str, name: str, value: str, *, status: int = 403,
                       headers: Mapping[str, str] | None = None) -> None:
        """Answer ``status`` (with ``headers``, e.g. a ``WWW-Authenticate`` challenge) to
        requests under ``path_prefix`` that do not carry the header ``name: value``."""
        with self._lock:
            self._required[path_prefix] = (name, value, status, dict(headers or {}))

    def _refusal(self, path: str, req: Headers) -> _Response | None:
        with self._lock:
            required = [r for prefix, r in self._required.items() if path.startswith(prefix)]
        for name, value, status, headers in required:
            if req.get(name) != value:
                return _Response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                          *headers.items()], b"not without the right header\n")
        return None

    def clear_fault(self, path: str) -> None:
        """Remove the fault on ``path`` (no error if none)."""
        with self._lock:
            self._faults.pop(_norm_path(path), None)

    def clear_faults(self) -> None:
        """Remove all faults."""
        with self._lock:
            self._faults.clear()

    # -- request log

    @property
    def log(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_for(
        self, path_prefix: str = "/", method: str | None = None
    ) -> list[RequestRecord]:
        """Logged requests whose path starts with ``path_prefix`` (optionally one method)."""
        prefix = _norm_path(path_prefix) if "://" in path_prefix else path_prefix
        with self._lock:
            return [
                r
                for r in self._log
                if r.path.startswith(prefix) and (method is None or r.method == method)
            ]

    def wait_for_requests(
        self, path_prefix: str = "/", count: int = 1, timeout: float = 5.0
    ) -> list[RequestRecord]:
        """Block until at least ``count`` requests matched ``path_prefix``; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._log_cond:
            while len(found := self.requests_for(path_prefix)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"saw {len(found)}/{count} requests for {path_prefix!r}")
                self._log_cond.wait(left)
            return found

    def clear_log(self) -> None:
        """Forget all logged requests."""
        with self._lock:
            self._log.clear()

    # -- internals used by the handler

    def _record(self, record: RequestRecord) -> None:
        with self._log_cond:
            self._log.append(record)
            self._log_cond.notify_all()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(sock)
            else:
                self._conns.discard(sock)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            fault = self._faults.get(path)
            if fault is not None and fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[path]
            return fault

    def _render(self, path: str, req: Headers) -> _Response:
        with self._lock:
            route = self._routes.get(path)
        if route is not None:
            return route
        renderers = {
            "rss": self._render_rss,
            "atom": self._render_atom,
            "rdf": self._render_rdf,
            "json": self._render_json,
        }
        for name, feed_path in FEED_PATHS.items():
            if path == feed_path:
                items = self.feed_articles(name)
                newest = max((a.modified for a in items), default=None)
                body = renderers[name](items, newest)
                return self._conditional(req, body, FEED_TYPES[name], newest)
        if path.startswith("/news/") and path.endswith(".html"):
            slug = path[len("/news/") : -len(".html")]
            with self._lock:
                article = self._articles.get(slug)
            if article is not None:
                body = self._render_page(article).encode("utf-8")
                return self._conditional(req, body, HTML_TYPE, article.modified)
        if path in ("/", "/index.html"):
            return _Response(200, [("Content-Type", HTML_TYPE)], self._render_index().encode())
        body = self._page("Page not found", "<h1>Page not found</h1><p>Sorry.</p>", "")
        return _Response(404, [("Content-Type", HTML_TYPE)], body.encode("utf-8"))

    def _conditional(
        self, req: Headers, body: bytes, content_type: str, last_modified: datetime | None
    ) -> _Response:
        if not self.conditional_get:
            return _Response(200, [("Content-Type", content_type)], body)
        etag = _etag(body)
        validators = [("ETag", etag)]
        if last_modified is not None:
            validators.append(("Last-Modified", http_date(last_modified)))
        if _not_modified(req, etag, last_modified):
            return _Response(304, validators)
        return _Response(200, [("Content-Type", content_type), *validators], body)

    # -- feeds

    def _render_rss(self, items: list[Article], newest: datetime | None) -> bytes:
        out = [
            '<?xml version="1.0" encoding="utf-8"?>',
            f'<rss version="2.0" xmlns:content="{_NS_CONTENT}" xmlns:dc="{_NS_DC}"'
            f' xmlns:atom="{_NS_ATOM}">',
            "<channel>",
            _el("title", self.site_name),
            _el("link", self.base_url + "/"),
            _el("description", f"Latest news from {self.site_name}"),
            _el("language", "en"),
            f'<atom:link href={quoteattr(self.feed_url("rss"))} rel="self"'
            ' type="application/rss+xml"/>',
        ]
        if newest is not None:
            out.append(_el("lastBuildDate", email.utils.format_datetime(newest)))
        for a in items:
            permalink = "true" if a.guid == a.url else "false"
            out += [
                "<item>",
                _el("title", a.title),
                _el("link", a.url),
                _el("guid", a.guid, f' isPermaLink="{permalink}"'),
                _el("description", a.description),
                _el("pubDate", email.utils.format_datetime(a.published)),
            ]
            if a.author:
                out.append(_el("dc:creator", a.author))
            if self.full_content:
                out.append(_el("content:encoded", a.content_html))
            out.append("</item>")
        out += ["</channel>", "</rss>", ""]
        return "\n".join(out).encode("utf-8")

    def _render_atom(self, items: list[Article], newest: datetime | None) -> bytes:
        out = [
            '<?xml version="1.0" encoding="utf-8"?>',
            f'<feed xmlns="{_NS_ATOM}" xml:lang="en">',
            _el("id", self.base_url + "/"),
            _el("title", self.site_name),
            _el("subtitle", f"Latest news from {self.site_name}"),
            _el("updated", (newest or _EPOCH).isoformat()),
            f'<link rel="alternate" type="text/html" href={quoteattr(self.base_url + "/")}/>',
            '<link rel="self" type="application/atom+xml"'
            f" href={quoteattr(self.feed_url('atom'))}/>",
            f"<author><name>{escape(self.site_name)} Newsroom</name></author>",
            _el("generator", "NewsSite"),
        ]
        for a in items:
            entry_id = a.guid if ":" in a.guid else f"tag:newssite.test,2024:{a.guid}"
            out += [
                "<entry>",
                _el("id", entry_id),
                # The site's titles are HTML (RSS and JSON Feed carry them as such): Atom
                # says so, as WordPress does; an Atom title without a type is plain text.
                _el("title", a.title, ' type="html"'),
                f'<link rel="alternate" type="text/html" href={quoteattr(a.url)}/>',
                _el("published", a.published.isoformat()),
                _el("updated", a.modified.isoformat()),
            ]
            if a.author:
                out.append(f"<author><name>{escape(a.author)}</name></author>")
            out.append(_el("summary", a.description))
            if self.full_content:
                out.append(_el("content", a.content_html, ' type="html"'))
            out.append("</entry>")
        out += ["</feed>", ""]
        return "\n".join(out).encode("utf-8")

    def _render_rdf(self, items: list[Article], newest: datetime | None) -> bytes:
        out = [
            '<?xml version="1.0" encoding="utf-8"?>',
            f'<rdf:RDF xmlns:rdf="{_NS_RDF}" xmlns="{_NS_RSS1}" xmlns:dc="{_NS_DC}"'
            f' xmlns:content="{_NS_CONTENT}">',
            f"<channel rdf:about={quoteattr(self.feed_url('rdf'))}>",
            _el("title", self.site_name),
            _el("link", self.base_url + "/"),
            _el("description", f"Latest news from {self.site_name}"),
            _el("dc:language", "en"),
        ]
        if newest is not None:
            out.append(_el("dc:date", newest.isoformat()))
        out.append("<items><rdf:Seq>")
        out += [f"<rdf:li rdf:resource={quoteattr(a.url)}/>" for a in items]
        out += ["</rdf:Seq></items>", "</channel>"]
        for a in items:
            out += [
                f"<item rdf:about={quoteattr(a.url)}>",
                _el("title", a.title),
                _el("link", a.url),
                _el("description", a.description),
                _el("dc:date", a.published.isoformat()),
            ]
            if a.author:
                out.append(_el("dc:creator", a.author))
            if self.full_content:
                out.append(_el("content:encoded", a.content_html))
            out.append("</item>")
        out += ["</rdf:RDF>", ""]
        return "\n".join(out).encode("utf-8")

    def _render_json(self, items: list[Article], newest: datetime | None) -> bytes:
        feed_items: list[dict[str, Any]] = []
        for a in items:
            item: dict[str, Any] = {
                "id": a.guid,
                "url": a.url,
                "title": a.title,
                "content_html": a.content_html,
                "summary": a.description,
                "date_published": a.published.isoformat(),
                "date_modified": a.modified.isoformat(),
                "language": "en",
            }
            if a.author:
                item["authors"] = [{"name": a.author}]
            feed_items.append(item)
        feed = {
            "version": "https://jsonfeed.org/version/1.1",
            "title": self.site_name,
            "home_page_url": self.base_url + "/",
            "feed_url": self.feed_url("json"),
            "description": f"Latest news from {self.site_name}",
            "language": "en",
            "items": feed_items,
        }
        return json.dumps(feed, ensure_ascii=False, indent=2).encode("utf-8")

    # -- pages

    def _page(self, title: str, main: str, head_extra: str) -> str:
        e = html.escape
        nav = "".join(
            f'<li><a href="/section/{s.lower()}">{s}</a></li>'
            for s in ("World", "Politics", "Business", "Technology", "Science", "Sport", "Culture")
        )
        feeds = "".join(
            f'<link rel="alternate" type="{FEED_TYPES[n].split(";")[0]}"'
            f' title="{e(self.site_name)} ({n})" href="{p}">'
            for n, p in FEED_PATHS.items()
        )
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
{head_extra}{feeds}
<link rel="stylesheet" href="/static/site.css">
</head>
<body>
<div class="cookie-banner" role="dialog">We use cookies to improve your experience and to show
personalised adverts. <button type="button">Accept all</button> <a href="/privacy">Manage</a></div>
<header class="site-header">
<a class="logo" href="/">{e(self.site_name)}</a>
<nav class="main-nav" aria-label="Sections"><ul>{nav}</ul></nav>
<form class="search" action="/search"><input name="q" placeholder="Search"></form>
<a class="subscribe" href="/subscribe">Subscribe</a>
</header>
<div class="ad ad-leaderboard">Advertisement</div>
<main class="layout">
{main}
</main>
<footer class="site-footer">
<nav aria-label="Footer"><ul>
<li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li>
<li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li>
<li><a href="/cookies">Cookie settings</a></li><li><a href="/careers">Careers</a></li>
</ul></nav>
<form class="newsletter" action="/newsletter"><label>Get the morning briefing in your
inbox <input type="email" name="email"></label> <button>Sign up</button></form>
<p class="copyright">&copy; {datetime.now(UTC).year} {e(self.site_name)}. All rights reserved.
Reproduction without permission is prohibited.</p>
</footer>
</body>
</html>
"""

    def _render_page(self, a: Article) -> str:
        e = html.escape
        iso = a.published.isoformat()
        canonical = a.canonical or a.url
        head = [
            f'<link rel="canonical" href="{e(canonical)}">',
            f'<meta name="description" content="{e(a.description)}">',
            '<meta property="og:type" content="article">',
            f'<meta property="og:title" content="{e(a.title)}">',
            f'<meta property="og:site_name" content="{e(self.site_name)}">',
            f'<meta property="og:url" content="{e(canonical)}">',
            f'<meta property="og:description" content="{e(a.description)}">',
            f'<meta property="article:published_time" content="{e(iso)}">',
        ]
        if a.updated is not None:
            head.append(
                f'<meta property="article:modified_time" content="{e(a.updated.isoformat())}">'
            )
        if a.author:
            head.append(f'<meta name="author" content="{e(a.author)}">')
        byline = f"By {e(a.author)} | " if a.author else ""
        human = f"{a.published.day} {a.published:%B %Y}"
        paragraphs = [f"<p>{e(p, quote=False)}</p>" for p in a.paragraphs]
        # What real article pages carry inside the story: a paragraph that is one link to
        # another story, and a row of topic links (pipeline.blocks takes both out).
        other = next((o for o in self.articles if o.slug != a.slug), None)
        if other is not None:
            paragraphs.insert(1, f'<p><a href="{e(other.url)}">{e(other.title)}</a></p>')
        topics = ('<div class="topics"><a href="/topic/news">News</a> '
                  '<a href="/topic/world">World</a></div>')
        body = "\n".join(paragraphs)
        main = f"""<article class="story">
<h1>{e(a.title)}</h1>
<div class="story-meta">{byline}<time datetime="{e(iso)}">{human}</time></div>
{body}
{topics}
</article>
{self._sidebar(a.slug)}"""
        return self._page(f"{a.title} | {self.site_name}", main, "\n".join(head) + "\n")

    def _sidebar(self, exclude: str) -> str:
        links = [(a.title, a.url) for a in self.articles if a.slug != exclude][:5]
        links += list(_FILLER_MOST_READ)[: max(0, 3 - len(links))]
        items = "".join(
            f'<li><a href="{html.escape(u)}">{html.escape(t)}</a></li>' for t, u in links
        )
        return f"""<aside class="sidebar">
<section class="most-read"><h2>Most read</h2><ol>{items}</ol></section>
<div class="ad ad-mpu">Advertisement</div>
</aside>"""

    def _render_index(self) -> str:
        items = "".join(
            f'<li><a href="{html.escape(a.url)}">{html.escape(a.title)}</a>'
            f"<p>{html.escape(a.description)}</p></li>"
            for a in self.articles
        )
        main = f'<section class="top-stories"><h1>Top stories</h1><ul>{items}</ul></section>'
        return self._page(self.site_name, main, "")
