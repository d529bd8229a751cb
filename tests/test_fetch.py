"""Tests for pipeline.fetch against real servers on loopback (no HTTP mocks).

The "public" side is a NewsSite on 127.0.0.1, the only network the test configs allow.
Anything that must never be reached is a `Trap` on 127.0.0.2 that counts every TCP
connection it accepts; tests assert it saw none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import threading
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from pipeline import fetch as fetch_module
from pipeline.config import FetchConfig
from pipeline.fetch import (
    AddressGuard,
    Fetcher,
    FetchResult,
    HostLimiter,
    Resolver,
)
from tests.conftest import free_port
from tests.newssite import NewsSite, http_date

T = TypeVar("T")
T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
ALLOW = ("127.0.0.1/32",)
TRAP_BODY = b'<?xml version="1.0"?><rss version="2.0"><channel><title>TRAP</title></channel></rss>'


# --------------------------------------------------------------------------- helpers


def config(**overrides: Any) -> FetchConfig:
    base = FetchConfig(timeout=2.0, max_bytes=1_000_000, allow_networks=ALLOW,
                       per_host_concurrency=2, per_host_delay=0.0)
    return dataclasses.replace(base, **overrides)


def run(coro_fn: Callable[[Fetcher], Awaitable[T]], cfg: FetchConfig | None = None,
        resolver: Resolver | None = None) -> T:
    """Run coro_fn(fetcher) in a fresh event loop with a fresh Fetcher."""

    async def main() -> T:
        fetcher = (Fetcher(cfg or config()) if resolver is None
                   else Fetcher(cfg or config(), resolver=resolver))
        async with fetcher as f:
            return await coro_fn(f)

    return asyncio.run(main())


def fetch(url: str, cfg: FetchConfig | None = None, resolver: Resolver | None = None,
          **kwargs: Any) -> FetchResult:
    return run(lambda f: f.fetch(url, **kwargs), cfg, resolver)


def fetch_traced(url: str, cfg: FetchConfig) -> tuple[FetchResult, int]:
    """A fetch and the peak of the allocations made meanwhile: the body must be dropped as it
    passes max_bytes, never held whole (the process's peak RSS would not show it: an earlier
    test may have set it higher)."""
    tracemalloc.start()
    try:
        result = fetch(url, cfg)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class Trap:
    """An HTTP server on 127.0.0.2 that must never be reached: it counts TCP connections."""

    def __init__(self, port: int = 0) -> None:
        self.connections = 0
        self.paths: list[str] = []
        self._lock = threading.Lock()
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with trap._lock:
                    trap.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(TRAP_BODY)))
                self.end_headers()
                self.wfile.write(TRAP_BODY)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                with trap._lock:
                    trap.connections += 1
                return True

        self._server = Server(("127.0.0.2", port), Handler)
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.2:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def hits(self) -> int:
        with self._lock:
            return self.connections + len(self.paths)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as s:
        s.add_article("alpha", "Alpha", ["First paragraph of alpha."], T0, author="Ann")
        s.add_article("beta", "Beta", ["Only paragraph of beta."], T0 + timedelta(hours=1))
        yield s


@pytest.fixture(name="trap")  # test_feed_settings shares it
def trap_fixture() -> Iterator[Trap]:
    t = Trap()
    try:
        yield t
    finally:
        t.close()




# --------------------------------------------------------------------------- basics


def test_plain_fetch_returns_body_and_lowercased_headers(site: NewsSite) -> None:
    cfg = config()
    result = fetch(site.feed_url("rss"), cfg)
    assert result.error is None and result.ok
    assert result.status == 200
    assert result.body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert b"<title>Alpha</title>" in result.body
    assert all(k == k.lower() for k in result.headers)
    assert result.content_type == "application/rss+xml"
    assert result.etag and result.last_modified
    assert result.final_url == site.feed_url("rss")
    assert result.permanent_redirect is None
    assert not result.conditional
    (req,) = site.requests_for("/feeds/rss.xml")
    assert req.headers["User-Agent"] == cfg.user_agent
    assert "application/rss+xml" in req.headers["Accept"]


def test_conditional_get_if_none_match(site: NewsSite) -> None:
    first = fetch(site.feed_url("rss"))
    assert first.ok and first.etag
    second = fetch(site.feed_url("rss"), etag=first.etag)
    assert second.status == 304 and second.not_modified and not second.ok
    assert second.conditional
    assert second.body == b""
    assert second.error is None
    reqs = site.requests_for("/feeds/rss.xml")
    assert len(reqs) == 2
    assert "If-None-Match" not in reqs[0].headers
    assert reqs[1].headers["If-None-Match"] == first.etag
    assert reqs[1].status == 304


def test_conditional_get_if_modified_since(site: NewsSite) -> None:
    first = fetch(site.feed_url("atom"))
    assert first.ok and first.last_modified
    second = fetch(site.feed_url("atom"), last_modified=first.last_modified)
    assert second.not_modified
    stale = http_date(T0 - timedelta(days=1))
    third = fetch(site.feed_url("atom"), last_modified=stale)
    assert third.ok and b"<feed" in third.body
    reqs = site.requests_for("/feeds/atom.xml")
    assert [r.headers.get("If-Modified-Since") for r in reqs] == [None, first.last_modified,
                                                                  stale]
    assert [r.status for r in reqs] == [200, 304, 200]


def test_changed_feed_is_refetched_despite_old_etag(site: NewsSite) -> None:
    first = fetch(site.feed_url("rss"))
    site.add_article("gamma", "Gamma", ["New."], T0 + timedelta(hours=2))
    second = fetch(site.feed_url("rss"), etag=first.etag)
    assert second.ok and b"<title>Gamma</title>" in second.body
    assert second.etag != first.etag


# --------------------------------------------------------------------------- deadlines, sizes


def test_trickling_server_hits_whole_request_deadline(site: NewsSite) -> None:
    site.set_fault("/feeds/rss.xml", "trickle", interval=0.2)  # 1 byte / 0.2 s, forever
    started = time.monotonic()
    result = fetch(site.feed_url("rss"), config(timeout=1.0))
    elapsed = time.monotonic() - started
    assert result.error_kind == "timeout", result
    assert "deadline" in (result.error or "")
    assert not result.ok and result.body == b""
    # Not before the deadline; and a timeout per read would never fire (a byte comes every
    # 0.2 s): the upper bound only tells the two apart, with room for a busy machine.
    assert 0.9 <= elapsed < 10
    assert 900 <= result.elapsed_ms < 10_000


def test_slow_response_headers_hit_deadline(site: NewsSite) -> None:
    site.set_fault("/feeds/rss.xml", "delay", seconds=5)
    started = time.monotonic()
    result = fetch(site.feed_url("rss"), config(timeout=0.6))
    assert result.error_kind == "timeout"
    assert time.monotonic() - started < 4  # before the server's 5 s answer


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_endless_body_is_too_large_not_truncated(site: NewsSite, chunked: bool) -> None:
    site.set_fault("/feeds/rss.xml", "endless", chunked=chunked, content_type="application/xml")
    result, peak = fetch_traced(site.feed_url("rss"), config(max_bytes=500_000, timeout=5.0))
    assert result.error_kind == "too_large", result
    assert "max_bytes" in (result.error or "")
    assert not result.ok and result.body == b""
    assert peak < 32 << 20, f"peak traced allocation {peak / 2**20:.0f} MiB"


def test_declared_content_length_over_cap_refused_at_boundary(site: NewsSite) -> None:
    body = b"<rss>" + b"x" * 9_990 + b"</rss>"
    url = site.route("/exact.xml", body, "application/rss+xml")
    at_cap = fetch(url, config(max_bytes=len(body)))
    assert at_cap.ok and at_cap.body == body
    over = fetch(url, config(max_bytes=len(body) - 1))
    assert over.error_kind == "too_large" and over.body == b""


def test_gzip_and_deflate_bodies_are_decoded(site: NewsSite) -> None:
    body = b"<rss version='2.0'><channel><title>Zipped</title></channel></rss>" * 50
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw_deflate = raw.compress(body) + raw.flush()
    site.route("/gz.xml", gzip.compress(body), "application/rss+xml",
               {"Content-Encoding": "gzip"})
    site.route("/zlib.xml", zlib.compress(body), "application/rss+xml",
               {"Content-Encoding": "deflate"})
    site.route("/raw.xml", raw_deflate, "application/rss+xml", {"Content-Encoding": "deflate"})

    async def go(f: Fetcher) -> list[FetchResult]:
        return [await f.fetch(site.url(p)) for p in ("/gz.xml", "/zlib.xml", "/raw.xml")]

    for result in run(go):
        assert result.ok, result
        assert result.body == body
    (req, *_) = site.requests_for("/gz.xml")
    assert "gzip" in req.headers["Accept-Encoding"]


def test_decoded_size_cap_applies_to_compressed_bodies(site: NewsSite) -> None:
    body = b"a" * 200_000
    site.route("/gz.xml", gzip.compress(body), "application/rss+xml",
               {"Content-Encoding": "gzip"})
    assert fetch(site.url("/gz.xml"), config(max_bytes=200_000)).body == body
    over = fetch(site.url("/gz.xml"), config(max_bytes=199_999))
    assert over.error_kind == "too_large"


@pytest.mark.parametrize("double", [False, True], ids=["gzip", "gzip-gzip"])
def test_gzip_bomb_refused_with_small_memory(site: NewsSite, double: bool) -> None:
    site.set_fault("/feeds/rss.xml", "gzip_bomb", size=256 << 20, double=double)
    result, peak = fetch_traced(site.feed_url("rss"), config(max_bytes=1_000_000, timeout=5.0))
    assert not result.ok and result.body == b""
    if double:
        assert result.error_kind == "encoding", result
        assert "gzip, gzip" in (result.error or "")
    else:
        assert result.error_kind == "too_large", result
    assert peak < 32 << 20, f"peak traced allocation {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("coding", ["br", "compress", "gzip, deflate", "x-unknown"])
def test_unsupported_or_stacked_codings_refused(site: NewsSite, coding: str) -> None:
    site.route("/coded.xml", b"\x1f\x8b whatever", "application/rss+xml",
               {"Content-Encoding": coding})
    result = fetch(site.url("/coded.xml"))
    assert result.error_kind == "encoding", result
    assert not result.ok


def test_corrupt_gzip_is_an_encoding_error(site: NewsSite) -> None:
    site.route("/bad.xml", b"\x1f\x8b\x08\x00" + b"\xff" * 64, "application/rss+xml",
               {"Content-Encoding": "gzip"})
    result = fetch(site.url("/bad.xml"))
    assert result.error_kind == "encoding", result


# --------------------------------------------------------------------------- redirects


def chain(site: NewsSite, n: int, final: str, code: int = 302) -> str:
    """Make /hop1 -> /hop2 -> ... -> /hopN -> final; return the first URL."""
    for i in range(1, n + 1):
        target = site.url(f"/hop{i + 1}") if i < n else final
        site.set_fault(f"/hop{i}", "redirect", location=target, code=code)
    return site.url("/hop1")


def test_five_redirects_are_followed(site: NewsSite) -> None:
    start = chain(site, 5, site.feed_url("rss"))
    result = fetch(start)
    assert result.ok, result
    assert result.final_url == site.feed_url("rss")
    assert b"<rss" in result.body
    assert result.permanent_redirect is None  # 302s are not permanent


def test_more_than_five_redirects_refused(site: NewsSite) -> None:
    start = chain(site, 6, site.feed_url("rss"))
    result = fetch(start)
    assert result.error_kind == "redirect", result
    assert "more than 5 redirects" in (result.error or "")
    assert len(site.requests_for("/hop")) == 6
    assert site.requests_for("/feeds/") == []


def test_max_redirects_is_configurable(site: NewsSite) -> None:
    start = chain(site, 3, site.feed_url("rss"))
    assert fetch(start, config(max_redirects=2)).error_kind == "redirect"
    assert fetch(start, config(max_redirects=3)).ok


def test_redirect_loop_refused(site: NewsSite) -> None:
    site.set_fault("/a", "redirect", location=site.url("/b"))
    site.set_fault("/b", "redirect", location="/a")  # relative Location
    site.set_fault("/self", "redirect", location="/self", code=301)
    result = fetch(site.url("/a"))
    assert result.error_kind == "redirect" and "loop" in (result.error or ""), result
    assert len(site.requests_for("/a")) == 1 and len(site.requests_for("/b")) == 1
    result = fetch(site.url("/self"))
    assert result.error_kind == "redirect" and "loop" in (result.error or "")
    assert len(site.requests_for("/self")) == 1


def test_redirect_without_location_is_an_error(site: NewsSite) -> None:
    site.set_fault("/nowhere", "status", code=301)
    result = fetch(site.url("/nowhere"))
    assert result.error_kind == "redirect" and "Location" in (result.error or "")


@pytest.mark.parametrize(("codes", "permanent"), [
    ([301], True), ([308], True), ([301, 308], True),
    ([302], False), ([307], False), ([303], False), ([301, 302], False), ([302, 301], False),
])
def test_permanent_redirect_reported(site: NewsSite, codes: list[int], permanent: bool) -> None:
    for i, code in enumerate(codes):
        target = site.url(f"/old{i + 1}") if i + 1 < len(codes) else site.feed_url("rss")
        site.set_fault(f"/old{i}", "redirect", location=target, code=code)
    result = fetch(site.url("/old0"))
    assert result.ok
    assert result.final_url == site.feed_url("rss")
    assert result.permanent_redirect == (site.feed_url("rss") if permanent else None)


def test_conditional_headers_survive_a_redirect(site: NewsSite) -> None:
    first = fetch(site.feed_url("rss"))
    site.set_fault("/moved.xml", "redirect", location=site.feed_url("rss"), code=301)
    result = fetch(site.url("/moved.xml"), etag=first.etag)
    assert result.not_modified
    assert result.permanent_redirect == site.feed_url("rss")


@pytest.mark.parametrize("target", [
    "file:///etc/passwd",
    "ftp://127.0.0.2:{port}/feed.xml",
    "gopher://127.0.0.2:{port}/_GET%20/",
    "data:application/rss+xml,%3Crss%2F%3E",
    "feed://127.0.0.2:{port}/feed.xml",
    "javascript:alert(1)",
])
def test_redirect_to_other_schemes_refused(site: NewsSite, trap: Trap, target: str) -> None:
    site.set_fault("/feed", "redirect", location=target.format(port=trap.port))
    result = fetch(site.url("/feed"))
    assert result.error_kind == "blocked", result
    assert result.error
    assert not result.ok and result.body == b""
    assert trap.hits == 0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.2:{port}/",
                                 "gopher://127.0.0.2:{port}/", "data:text/plain,hello"])
def test_feed_url_with_other_scheme_refused(trap: Trap, url: str) -> None:
    result = fetch(url.format(port=trap.port))
    assert result.error_kind == "blocked"
    assert trap.hits == 0


# --------------------------------------------------------------------------- address guard


def test_feed_url_on_blocked_address_refused(trap: Trap) -> None:
    result = fetch(trap.base_url + "/feed.xml")
    assert result.error_kind == "blocked", result
    assert "127.0.0.2" in (result.error or "")
    assert trap.hits == 0


@pytest.mark.parametrize("location", [
    "{trap}/feed.xml", "//127.0.0.2:{port}/feed.xml", "http://127.0.0.2:{port}/x"])
def test_redirect_to_blocked_address_refused(site: NewsSite, trap: Trap, location: str) -> None:
    site.set_fault("/go", "redirect", location=location.format(trap=trap.base_url,
                                                               port=trap.port))
    result = fetch(site.url("/go"))
    assert result.error_kind == "blocked", result
    assert trap.hits == 0
    assert len(site.requests_for("/go")) == 1


def test_feed_item_links_to_blocked_address_are_not_fetched(site: NewsSite, trap: Trap) -> None:
    site.add_article("evil", "Evil", ["x"], T0)
    evil_link = f"{trap.base_url}/news/evil.html"
    body = fetch(site.feed_url("rss")).body.replace(
        site.article("evil").url.encode(), evil_link.encode())
    assert evil_link.encode() in body
    assert fetch(evil_link).error_kind == "blocked"
    assert trap.hits == 0


ODD_SPELLINGS = [
    "http://0177.0.0.2:{port}/",  # octal octet
    "http://2130706434:{port}/",  # one decimal integer
    "http://017700000002:{port}/",  # one octal integer
    "http://0x7f000002:{port}/",  # one hex integer
    "http://0x7f.0.0.2:{port}/",  # hex octet
    "http://127.2:{port}/",  # two-part form
    "http://127.0.2:{port}/",  # three-part form
    "http://[::ffff:127.0.0.2]:{port}/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:2]:{port}/",  # IPv4-mapped, hex form
]


@pytest.mark.parametrize("via_redirect", [False, True], ids=["direct", "redirect"])
@pytest.mark.parametrize("spelling", ODD_SPELLINGS)
def test_odd_ip_spellings_refused(site: NewsSite, trap: Trap, spelling: str,
                                  via_redirect: bool) -> None:
    url = spelling.format(port=trap.port)
    if via_redirect:
        site.set_fault("/odd", "redirect", location=url)
        url = site.url("/odd")
    result = fetch(url)
    # httpx itself rejects some spellings in a Location header (a protocol error)
    assert result.error_kind in (("blocked", "network") if via_redirect else ("blocked",)), result
    assert not result.ok and result.body == b""
    assert trap.hits == 0


@pytest.mark.parametrize("spelling", ["http://127.1:{port}/feeds/rss.xml",
                                      "http://2130706433:{port}/feeds/rss.xml"])
def test_odd_spelling_of_allowed_address_still_works(site: NewsSite, spelling: str) -> None:
    """The guard judges the resolved address, not the string (control for the test above)."""
    result = fetch(spelling.format(port=site.port))
    assert result.ok, result
    assert len(site.requests_for("/feeds/rss.xml")) == 1


BLOCKED = [
    "127.0.0.1", "127.0.0.2", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1",
    "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.254", "169.254.169.254",
    "169.254.0.1", "0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "239.255.255.250",
    "198.18.0.1", "192.0.2.1", "203.0.113.5", "240.0.0.1",
    "::", "::1", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456:789a::1", "ff02::1",
    "ff0e::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:192.168.0.1", "::ffff:169.254.169.254",
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::c0a8:101", "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",  # local-use NAT64 prefix (RFC 8215)
    "2002:7f00:1::1", "2002:a00:1::", "2002:c0a8:101::1", "2002:a9fe:a9fe::",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "fec0::1",  # deprecated site-local
    "::7f00:1", "::a00:1",  # deprecated IPv4-compatible
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "100.128.0.1", "100.63.255.255",
          "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8",
          "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", BLOCKED)
def test_guard_refuses_non_public(address: str) -> None:
    assert AddressGuard().permits(address) is False
    assert AddressGuard(["8.8.8.0/24"]).permits(address) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_guard_permits_public(address: str) -> None:
    assert AddressGuard().permits(address) is True


def test_guard_allow_networks() -> None:
    guard = AddressGuard(ALLOW)
    assert guard.permits("127.0.0.1")
    assert not guard.permits("127.0.0.2")
    assert not guard.permits("::1")
    assert not guard.permits("10.0.0.1")
    lan = AddressGuard(["10.1.0.0/16", "fd00::/8"])
    assert lan.permits("10.1.2.3") and lan.permits("fd00::5")
    assert not lan.permits("10.2.0.1") and not lan.permits("fc00::5")
    assert lan.permits("::ffff:10.1.2.3")  # the same host, mapped


def test_dns_rebinding_connects_to_the_checked_address(site: NewsSite) -> None:
    """The first answer (127.0.0.1) is checked and used; later answers must not be asked for.

    The URL's host is 127.0.0.2 with the site's port, and a trap listens exactly there: a
    fetcher that resolves the name again (or lets the system resolve it) at connect time
    lands in the trap.
    """
    calls: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["127.0.0.2"]

    trap = Trap(port=site.port)
    try:
        url = f"http://127.0.0.2:{site.port}/feeds/rss.xml"
        result = fetch(url, resolver=rebinding)
        assert result.ok, result
        assert b"The Example Gazette" in result.body and b"TRAP" not in result.body
        assert len(calls) == 1
        assert len(site.requests_for("/feeds/rss.xml")) == 1
        assert trap.hits == 0
        # the next connection gets the rebinding answer, which is checked and refused
        calls.clear()
        calls.append("first answer already given")
        result = fetch(url, resolver=rebinding)
        assert result.error_kind == "blocked"
        assert trap.hits == 0
    finally:
        trap.close()


def test_any_blocked_answer_is_skipped(site: NewsSite, trap: Trap) -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["127.0.0.2", "10.0.0.1", "127.0.0.1"]

    result = fetch(f"http://news.test:{site.port}/feeds/rss.xml", resolver=mixed)
    assert result.ok, result
    (req,) = site.requests_for("/feeds/rss.xml")
    assert req.headers["Host"] == f"news.test:{site.port}"
    assert trap.hits == 0


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
def test_proxy_environment_is_ignored(site: NewsSite, trap: Trap,
                                      monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv(name, trap.base_url)
    result = fetch(site.feed_url("rss"))
    assert result.ok, result
    assert b"TRAP" not in result.body
    assert len(site.requests_for("/feeds/rss.xml")) == 1
    assert trap.hits == 0


# --------------------------------------------------------------------------- errors


def test_server_error_status_is_reported(site: NewsSite) -> None:
    site.set_fault("/feeds/rss.xml", "status", code=500, body="boom: database down")
    result = fetch(site.feed_url("rss"))
    assert result.status == 500
    assert not result.ok and not result.not_modified
    assert result.body == b"boom: database down"


def test_dropped_connection_gives_clear_network_error(site: NewsSite) -> None:
    site.set_fault("/feeds/rss.xml", "close")
    result = fetch(site.feed_url("rss"))
    assert result.error_kind == "network", result
    assert result.status is None and not result.ok
    assert "disconnect" in (result.error or "").lower()


def test_connection_refused_gives_network_error() -> None:
    result = fetch(f"http://127.0.0.1:{free_port()}/feed.xml")
    assert result.error_kind == "network", result
    assert result.error


@pytest.mark.parametrize("url", ["http://[oops/feed.xml", "http://127.0.0.1:99999/feed.xml",
                                 "http:///feed.xml", "not a url", ""])
def test_malformed_urls_never_raise(url: str) -> None:
    result = fetch(url)
    assert result.error is not None
    assert result.error_kind in ("blocked", "network", "redirect")


def test_malformed_redirect_location_never_raises(site: NewsSite) -> None:
    site.set_fault("/bad", "redirect", location="http://[::1")
    result = fetch(site.url("/bad"))
    assert result.error is not None and not result.ok


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_seconds_from_server(site: NewsSite, code: int) -> None:
    site.set_fault("/feeds/rss.xml", "status", code=code, headers={"Retry-After": "120"})
    result = fetch(site.feed_url("rss"))
    assert result.status == code and not result.ok
    assert result.retry_after() == 120.0


def test_retry_after_http_date_from_server(site: NewsSite) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    site.set_fault("/feeds/rss.xml", "status", code=429,
                   headers={"Retry-After": http_date(now + timedelta(seconds=300))})
    result = fetch(site.feed_url("rss"))
    assert result.status == 429
    assert result.retry_after(now) == 300.0
    assert 290 <= (result.retry_after() or 0) <= 300


# --------------------------------------------------------------------------- politeness


def most_within(times: list[float], window: float) -> int:
    """The largest number of timestamps falling in any interval of length `window`."""
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u - t < window) for i, t in enumerate(times))


def test_per_host_concurrency_limit(site: NewsSite) -> None:
    delay = 0.4
    site.set_fault("/feeds/rss.xml", "delay", seconds=delay)
    cfg = config(per_host_concurrency=2, timeout=10.0)

    async def go(f: Fetcher) -> list[FetchResult]:
        return await asyncio.gather(*(f.fetch(site.feed_url("rss")) for _ in range(6)))

    started = time.monotonic()
    results = run(go, cfg)
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    times = [r.time for r in site.requests_for("/feeds/rss.xml")]
    assert len(times) == 6
    # each request is answered `delay` after it arrived: at most 2 may be answered together
    assert most_within(times, delay / 2) <= 2
    assert elapsed >= 3 * delay - 0.05


def test_per_host_concurrency_control_without_limit(site: NewsSite) -> None:
    """Control for the test above: with a limit of 6 the server does see 6 at once."""
    delay = 0.4
    site.set_fault("/feeds/rss.xml", "delay", seconds=delay)

    async def go(f: Fetcher) -> list[FetchResult]:
        return await asyncio.gather(*(f.fetch(site.feed_url("rss")) for _ in range(6)))

    assert all(r.ok for r in run(go, config(per_host_concurrency=6, timeout=10.0)))
    times = [r.time for r in site.requests_for("/feeds/rss.xml")]
    assert most_within(times, delay / 2) == 6


def test_per_host_delay_spaces_request_starts(site: NewsSite) -> None:
    spacing = 0.25
    cfg = config(per_host_concurrency=4, per_host_delay=spacing, timeout=5.0)

    async def go(f: Fetcher) -> list[FetchResult]:
        return await asyncio.gather(*(f.fetch(site.feed_url("rss")) for _ in range(4)))

    assert all(r.ok for r in run(go, cfg))
    times = sorted(r.time for r in site.requests_for("/feeds/rss.xml"))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 3
    assert min(gaps) >= spacing - 0.03, gaps


def test_host_limiter_slot_not_leaked_when_cancelled_during_spacing() -> None:
    async def go() -> None:
        limiter = HostLimiter(concurrency=1, delay=0.4)
        sem = await limiter.acquire("example.org")
        sem.release()
        with pytest.raises(TimeoutError):  # a deadline fires while waiting for the spacing
            async with asyncio.timeout(0.1):
                await limiter.acquire("example.org")
        await asyncio.sleep(0.4)
        async with asyncio.timeout(1.0):  # the only slot must be free again
            sem = await limiter.acquire("example.org")
        sem.release()

    asyncio.run(go())


def test_time_queued_for_the_host_does_not_count_against_the_deadline(site: NewsSite) -> None:
    cfg = config(per_host_concurrency=1, per_host_delay=0.8, timeout=0.3)

    async def go(f: Fetcher) -> list[FetchResult]:
        first = await f.fetch(site.feed_url("rss"))
        queued = await f.fetch(site.feed_url("rss"))  # waits 0.8 s for its turn, then 0.3 s
        return [first, queued]

    first, queued = run(go, cfg)
    assert first.ok
    assert queued.ok, queued  # politeness delays it; it is never failed unsent
    assert queued.elapsed_ms >= 700
    times = [r.time for r in site.requests_for("/feeds/rss.xml")]
    assert len(times) == 2 and times[1] - times[0] >= 0.75


# --------------------------------------------------------------------------- robots.txt


ROBOTS = "User-agent: *\nDisallow: /private/\n"


def test_robots_disallow_honoured(site: NewsSite) -> None:
    site.route("/robots.txt", ROBOTS)

    async def go(f: Fetcher) -> list[bool]:
        return [await f.allowed_by_robots(site.url(p)) for p in
                ("/news/alpha.html", "/private/x.html", "/private/", "/feeds/rss.xml")]

    assert run(go) == [True, False, False, True]
    assert len(site.requests_for("/robots.txt")) == 1


def test_robots_group_for_our_agent_wins(site: NewsSite) -> None:
    """A group naming our agent replaces the `*` group (RFC 9309)."""
    site.route("/robots.txt", "User-agent: *\nDisallow: /private/\n\n"
                              "User-agent: newswire\nDisallow: /no-bots/\n")

    async def go(f: Fetcher) -> list[bool]:
        return [await f.allowed_by_robots(site.url(p)) for p in
                ("/news/alpha.html", "/no-bots/y.html", "/private/x.html")]

    assert run(go) == [True, False, True]


def test_robots_fetched_once_per_host_with_concurrent_callers(site: NewsSite) -> None:
    site.route("/robots.txt", ROBOTS)
    site.set_fault("/robots.txt", "delay", seconds=0.3, times=1)

    async def go(f: Fetcher) -> list[bool]:
        urls = [site.url(f"/private/{i}.html") for i in range(10)]
        urls += [site.url(f"/news/{i}.html") for i in range(10)]
        return list(await asyncio.gather(*(f.allowed_by_robots(u) for u in urls)))

    assert run(go) == [False] * 10 + [True] * 10
    assert len(site.requests_for("/robots.txt")) == 1


def test_robots_cancelled_caller_does_not_poison_the_cache(site: NewsSite) -> None:
    site.route("/robots.txt", ROBOTS)
    site.set_fault("/robots.txt", "delay", seconds=0.4, times=1)

    async def go(f: Fetcher) -> tuple[bool, bool]:
        impatient = asyncio.ensure_future(f.allowed_by_robots(site.url("/private/a")))
        patient = asyncio.ensure_future(f.allowed_by_robots(site.url("/private/b")))
        await asyncio.sleep(0.1)
        impatient.cancel()
        allowed_b = await patient
        allowed_c = await f.allowed_by_robots(site.url("/news/c"))
        return allowed_b, allowed_c

    assert run(go) == (False, True)
    assert len(site.requests_for("/robots.txt")) == 1


@pytest.mark.parametrize(("status", "expected"), [(404, True), (500, True), (403, False)])
def test_robots_missing_or_forbidden(site: NewsSite, status: int, expected: bool) -> None:
    site.route("/robots.txt", "nope", status=status)

    async def go(f: Fetcher) -> bool:
        return await f.allowed_by_robots(site.url("/news/alpha.html"))

    assert run(go) is expected


def test_a_failed_robots_read_is_asked_again_a_read_one_kept(
        site: NewsSite, monkeypatch: pytest.MonkeyPatch) -> None:
    """One refused or failed read of robots.txt was kept for the life of the process: a
    daemon lost every page of the host until it restarted."""
    monkeypatch.setattr(fetch_module, "ROBOTS_RETRY", 0.3)
    site.route("/robots.txt", ROBOTS)
    site.set_fault("/robots.txt", "status", code=403, times=1)

    async def go(f: Fetcher) -> list[bool]:
        refused = await f.allowed_by_robots(site.url("/news/a.html"))
        still = await f.allowed_by_robots(site.url("/news/b.html"))  # within ROBOTS_RETRY
        await asyncio.sleep(0.4)
        return [refused, still, await f.allowed_by_robots(site.url("/news/c.html")),
                await f.allowed_by_robots(site.url("/private/d.html"))]

    assert run(go) == [False, False, True, False]
    assert len(site.requests_for("/robots.txt")) == 2  # the read one is kept (a day)


def test_robots_not_fetched_when_not_respected(site: NewsSite) -> None:
    site.route("/robots.txt", "User-agent: *\nDisallow: /\n")

    async def go(f: Fetcher) -> bool:
        return await f.allowed_by_robots(site.url("/news/alpha.html"))

    assert run(go, config(respect_robots=False)) is True
    assert site.requests_for("/robots.txt") == []
    assert run(go) is False
