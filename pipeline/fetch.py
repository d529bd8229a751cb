"""HTTP fetching: the only module that opens sockets.

What it guarantees, whatever the server does:
- a deadline for the whole request, redirects and body included (httpx's own timeouts are per
  read and never fire against a server that trickles a byte at a time);
- a cap on the *decoded* body, decompressing from raw chunks with a budget, so a gzip bomb
  cannot expand in memory; at most one content coding;
- at most `max_redirects` hops, http and https only;
- an address guard that checks the address actually connected to, after DNS, on every hop,
  and connects to exactly the address it checked (no DNS-rebinding window);
- per-host concurrency and spacing between request starts;
- a feed's own settings (pipeline.messages.FeedSettings): its user agent and proxy on every
  request made for it, its extra headers and basic auth only on requests to its own host.
  Through a proxy, the guard checks the proxy's address when connecting to it and, before
  the request is handed over, the addresses the target's name resolves to.

Failures never raise: they come back as a `FetchResult` with `error` set, so the caller
records them against the feed and carries on.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import http.cookiejar
import ipaddress
import os
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any, BinaryIO, Protocol
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpcore
import httpx

from pipeline.config import FetchConfig
from pipeline.errors import BlockedAddressError, BodyTooLarge
from pipeline.messages import FeedRequest, FeedSettings, FetchResult, Page
from pipeline.times import utcnow
from pipeline.values import content_length, http_url, parse_int, url_scope

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
HTML_TYPES = ("text/html", "application/xhtml+xml", "")  # "" : no Content-Type, try it
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
PERMANENT_CODES = frozenset({301, 308})
# How long a host's robots.txt answer is kept: a day when it was read or is missing (RFC 9309
# caps caching at 24 hours); minutes when the read failed or was refused (a timeout, a 5xx,
# a 401/403, which disallows everything meanwhile), so one bad moment is not kept for good.
ROBOTS_KEPT = 24 * 3600.0
ROBOTS_RETRY = 600.0
ROBOTS_HOSTS = 10_000  # answers kept before the expired ones are dropped
# A download into a file (a WARC to backfill) stops before the disk it writes to has less
# than DOWNLOAD_RESERVE bytes left: an endless or oversized body must not fill the disk the
# database lives on. The free space is looked at every DISK_LOOK_EVERY bytes written.
DOWNLOAD_RESERVE = 1 << 30
DISK_LOOK_EVERY = 8 << 20

Resolver = Callable[[str, int], Awaitable[list[str]]]


# --- the address guard --------------------------------------------------------------------

def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in a mapped, 6to4 or NAT64 IPv6 address, if any."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


# Not globally reachable, yet `is_global` in Python 3.11 says they are: local-use NAT64
# (RFC 8215), deprecated site-local, deprecated IPv4-compatible and SIIT IPv4-translated forms.
_NOT_GLOBAL_V6 = tuple(ipaddress.ip_network(n) for n in (
    "64:ff9b:1::/48", "fec0::/10", "::/96", "::ffff:0:0:0/96"))


class AddressGuard:
    """Refuses every non-public address unless it lies in an allowed network."""

    def __init__(self, allow_networks: Iterable[str] = ()) -> None:
        self.allowed = [ipaddress.ip_network(n, strict=False) for n in allow_networks]

    def permits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%")[0])
        if any(ip in net for net in self.allowed):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            inner = _embedded_ipv4(ip)
            if inner is not None:
                return self.permits(str(inner))
        return (ip.is_global and not ip.is_multicast
                and not any(ip in net for net in _NOT_GLOBAL_V6))


# Lookups run in threads of their own: asyncio's default pool (CPUs + 4 threads) serves
# everything else too, and a lookup the request's deadline gave up on keeps its thread until
# the system resolver's own timeout. With a feed's pages in flight capped
# (pipeline.engine.PAGES_PER_FEED), one feed's stuck names cannot take them all.
DNS_THREADS = 32
_dns = concurrent.futures.ThreadPoolExecutor(DNS_THREADS, thread_name_prefix="newswire-dns")


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for host (it also accepts odd IP spellings)."""
    infos = await asyncio.get_running_loop().run_in_executor(_dns, functools.partial(
        socket.getaddrinfo, host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP))
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that resolves once, checks, and connects to that address."""

    def __init__(self, guard: AddressGuard, resolver: Resolver = system_resolver) -> None:
        self.guard = guard
        self.resolver = resolver
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await self.resolver(host, port)
        permitted = [a for a in addresses if self.guard.permits(a)]
        if not permitted:
            raise BlockedAddressError(
                f"refused: {host} resolves to non-public address {', '.join(addresses)}")
        last_error: Exception | None = None
        for address in permitted:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("unix sockets are never used")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


# --- decoding with a budget ---------------------------------------------------------------

class _Decoder:
    """Decodes at most one content coding, never producing more than `limit` bytes."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1:
            raise ValueError(f"stacked content encodings refused: {content_encoding!r}")
        self.coding = codings[0] if codings else None
        if self.coding not in (None, "gzip", "x-gzip", "deflate"):
            raise ValueError(f"unsupported content encoding: {self.coding!r}")
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] = []
        self._z: Any = None
        self._head = b""  # deflate bytes held until the stream's kind is known
        if self.coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise BodyTooLarge(f"body exceeds max_bytes ({self.limit})")
        self.parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self.coding is None:
            self._add(chunk)
            return
        if self._z is None:  # deflate: zlib-wrapped per the RFC, raw in practice
            # The two-byte zlib header decides, so wait for two bytes: a network chunk
            # can be a single byte.
            self._head += chunk
            if len(self._head) < 2:
                return
            chunk, self._head = self._head, b""
            raw = not (chunk[0] & 0x0F == 8 and ((chunk[0] << 8) | chunk[1]) % 31 == 0)
            self._z = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        data = chunk
        while data:
            out = self._z.decompress(data, self.limit - self.size + 1)
            self._add(out)
            data = self._z.unconsumed_tail

    def finish(self) -> bytes:
        if self._head:  # a deflate body of one byte: not a stream either way
            raise ValueError(f"truncated {self.coding} body")
        if self._z is not None:
            self._add(self._z.flush(self.limit - self.size + 1))
            if not self._z.eof:  # a cut-off stream is an error, not a shorter document
                raise ValueError(f"truncated {self.coding} body")
        return b"".join(self.parts)


def decode_body(raw: bytes, content_encoding: str, limit: int) -> bytes:
    """Decode a body fetched with `decode=False`, never producing more than `limit` bytes
    (raises BodyTooLarge, ValueError or zlib.error). Pure: worker processes call it."""
    decoder = _Decoder(content_encoding, limit)
    decoder.feed(raw)
    return decoder.finish()


def _free_bytes(sink: BinaryIO) -> int | None:
    """The space left to an unprivileged writer on the disk of `sink` (None: not a file)."""
    try:
        stats = os.fstatvfs(sink.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return stats.f_bavail * stats.f_frsize


# --- politeness -----------------------------------------------------------------------------

class Permit(Protocol):
    """The right to make one request to a host, given back with `release()`."""

    def release(self) -> None: ...


class Limiter(Protocol):
    """Per-host politeness: `acquire(host)` waits for the host's turn."""

    async def acquire(self, host: str) -> Permit: ...


class HostLimiter:
    """At most `concurrency` requests in flight per host, starts at least `delay` s apart,
    within this process (pipeline.politeness shares the limits across Celery workers)."""

    def __init__(self, concurrency: int, delay: float) -> None:
        self.concurrency = concurrency
        self.delay = delay
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_start: dict[str, float] = {}

    def _get(self, host: str) -> tuple[asyncio.Semaphore, asyncio.Lock]:
        if host not in self._sems:
            self._sems[host] = asyncio.Semaphore(self.concurrency)
            self._locks[host] = asyncio.Lock()
        return self._sems[host], self._locks[host]

    async def acquire(self, host: str) -> asyncio.Semaphore:
        sem, lock = self._get(host)
        await sem.acquire()
        if self.delay > 0:
            try:
                async with lock:
                    wait = self._last_start.get(host, -1e9) + self.delay - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    self._last_start[host] = time.monotonic()
            except BaseException:  # cancelled (the request deadline): free the slot
                sem.release()
                raise
        return sem


# --- the fetcher ------------------------------------------------------------------------------

class MissingSecret(Exception):
    """A feed's password variable is not set: no request is made without it."""


def feed_headers(url: str, settings: FeedSettings | None) -> dict[str, str]:
    """The request headers a feed's settings add to a request for `url`: the user agent
    always; the extra headers and basic auth only when `url` is on the feed's own host
    (`FeedSettings.scope`), so they never reach another site, redirects included. The
    password is read from its environment variable here, at request time (MissingSecret
    when unset), and goes nowhere but into this request's Authorization header."""
    if settings is None:
        return {}
    headers: dict[str, str] = {}
    if settings.user_agent:
        headers["User-Agent"] = settings.user_agent
    if not settings.scope or url_scope(url) != settings.scope:
        return headers
    headers.update(settings.headers)
    if settings.auth_username and settings.auth_password_env:
        password = os.environ.get(settings.auth_password_env)
        if password is None:
            raise MissingSecret(f"basic auth: the environment variable "
                                f"{settings.auth_password_env} (auth.password_env) is not set")
        token = f"{settings.auth_username}:{password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
    return headers


class Fetcher:
    """httpx clients with the guard, the limits and the decoding above: one for direct
    requests, and one per proxy that a feed's settings name (made on first use).

    Use as `async with Fetcher(config) as f: await f.fetch(url)`.
    """

    def __init__(self, config: FetchConfig, resolver: Resolver = system_resolver,
                 limiter: Limiter | None = None) -> None:
        self.config = config
        self.guard = AddressGuard(config.allow_networks)
        self.resolver = resolver
        self.limiter = limiter or HostLimiter(config.per_host_concurrency,
                                              config.per_host_delay)
        self._clients: dict[str | None, httpx.AsyncClient] = {}
        self.client = self.client_for(None)
        self._robots: dict[str, asyncio.Task[RobotFileParser | None]] = {}
        self._robots_until: dict[str, float] = {}  # time.monotonic() when each one expires

    def client_for(self, proxy: str | None) -> httpx.AsyncClient:
        """The client for direct requests (None) or for requests through `proxy`. Each
        connects only through the guarded backend: directly, to the checked address of the
        target; through a proxy, to the checked address of the proxy."""
        client = self._clients.get(proxy)
        if client is not None:
            return client
        backend = GuardedBackend(self.guard, self.resolver)
        transport = httpx.AsyncHTTPTransport(retries=0)
        # httpx has no public hook for the network backend; the pool is where it lives.
        if proxy is None:
            transport._pool = httpcore.AsyncConnectionPool(
                ssl_context=httpx.create_ssl_context(), max_connections=100,
                max_keepalive_connections=20, network_backend=backend)
        else:
            transport._pool = httpcore.AsyncHTTPProxy(
                proxy_url=proxy, ssl_context=httpx.create_ssl_context(),
                max_connections=100, max_keepalive_connections=20, network_backend=backend)
        client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would bypass the address guard
            # No cookie jar: cookies a page sets would be replayed to every later request to
            # its host, other feeds' included, and can grow until the server answers 400.
            cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(
                allowed_domains=[])),
            timeout=httpx.Timeout(self.config.timeout),
            headers={"User-Agent": self.config.user_agent, "Accept-Encoding": "gzip, deflate"},
        )
        self._clients[proxy] = client
        return client

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def fetch(self, url: str, *, etag: str | None = None,
                    last_modified: str | None = None, accept: str = FEED_ACCEPT,
                    decode: bool = True, slot: Slot | None = None,
                    settings: FeedSettings | None = None, sink: BinaryIO | None = None,
                    timeout: float | None = None) -> FetchResult:
        """GET url (conditionally when validators are given) within the whole deadline.

        With decode=False the body stays as sent (Content-Encoding applied, max_bytes
        capping its raw size): decompressing is then the caller's job, with decode_body, in
        a worker process rather than on the event loop. A `slot` is taken once the host's
        limit lets the request go, and left for the caller to release. `settings` are the
        feed's own (user agent, headers, auth, proxy), when the request is made for a feed.
        With a `sink`, the raw body is written there instead of kept (a large file:
        `max_bytes` does not apply, `timeout` replaces `fetch.timeout` as the deadline).
        """
        started = time.monotonic()
        conditional = bool(etag or last_modified)
        limit = timeout or self.config.timeout
        try:
            async with asyncio.timeout(limit) as deadline:
                result = await self._follow(url, etag, last_modified, accept, deadline,
                                            decode, slot, settings, sink)
        except TimeoutError:
            result = FetchResult(url, url, error=f"deadline of {limit:g}s exceeded",
                                 error_kind="timeout")
        elapsed = int((time.monotonic() - started) * 1000)
        return _replace(result, elapsed_ms=elapsed, conditional=conditional)

    async def _follow(self, url: str, etag: str | None, last_modified: str | None,
                      accept: str, deadline: asyncio.Timeout,
                      decode: bool, slot: Slot | None,
                      settings: FeedSettings | None = None,
                      sink: BinaryIO | None = None) -> FetchResult:
        current = url
        permanent = True
        visited: set[str] = set()
        for _hop in range(self.config.max_redirects + 1):
            if http_url(current) is None:
                return FetchResult(url, current, error=f"refused URL {current[:200]!r}: not "
                                   "an absolute http(s) URL", error_kind="blocked")
            visited.add(current)
            headers = {"Accept": accept}
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            try:
                headers.update(feed_headers(current, settings))
            except MissingSecret as exc:
                return FetchResult(url, current, error=str(exc), error_kind="auth")
            proxy = settings.proxy if settings is not None else None
            result = await self._get_once(url, current, headers, deadline, decode, slot,
                                          proxy, sink)
            if result.error or result.status not in REDIRECT_CODES:
                moved = current if (current != url and permanent) else None
                return _replace(result, permanent_redirect=moved)
            location = result.headers.get("location")
            if not location:
                return _replace(result, error=f"redirect {result.status} without Location",
                                error_kind="redirect")
            permanent = permanent and result.status in PERMANENT_CODES
            try:
                current = urljoin(current, location.strip())
            except ValueError as exc:
                return _replace(result, error=f"bad redirect Location: {exc}",
                                error_kind="redirect")
            if current in visited:
                return FetchResult(url, current, status=result.status,
                                   error="redirect loop", error_kind="redirect")
        return FetchResult(url, current, error=f"more than {self.config.max_redirects} redirects",
                           error_kind="redirect")

    async def _check_target(self, url: str) -> None:
        """Before a request goes through a proxy (which resolves and connects on its own):
        the addresses the target's name resolves to here must pass the guard."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        addresses = await self.resolver(host, port)
        if not any(self.guard.permits(a) for a in addresses):
            raise BlockedAddressError(
                f"refused: {host} resolves to non-public address {', '.join(addresses)} "
                "(checked before asking the proxy)")

    async def _get_once(self, url: str, current: str, headers: dict[str, str],
                        deadline: asyncio.Timeout, decode: bool,
                        slot: Slot | None, proxy: str | None = None,
                        sink: BinaryIO | None = None) -> FetchResult:
        host = (urlsplit(current).hostname or "").lower()
        # Waiting for the host's turn (and then for a slot) is politeness and our own
        # congestion, not the server's slowness: the deadline stops while queued, so a busy
        # host's backlog never times out unsent.
        loop = asyncio.get_running_loop()
        remaining = (deadline.when() or loop.time()) - loop.time()
        deadline.reschedule(None)
        sem = await self.limiter.acquire(host)
        try:
            if slot is not None:
                await slot.take()
        except BaseException:
            sem.release()
            raise
        deadline.reschedule(loop.time() + max(remaining, 0.0))
        try:
            if proxy is not None:
                await self._check_target(current)
            client = self.client_for(proxy)
            async with client.stream("GET", current, headers=headers) as response:
                resp_headers = {k.lower(): v for k, v in response.headers.items()}
                sent = dict(response.request.headers.items())
                status = response.status_code
                if status in REDIRECT_CODES or status == 304:
                    return FetchResult(url, current, status=status, headers=resp_headers,
                                       request_headers=sent)
                body = await self._read_body(response, decode) if sink is None else \
                    await self._copy_body(response, sink)
                return FetchResult(url, str(response.url), status=status, headers=resp_headers,
                                   body=body, request_headers=sent)
        except BlockedAddressError as exc:
            return FetchResult(url, current, error=str(exc), error_kind="blocked")
        except BodyTooLarge as exc:
            return FetchResult(url, current, error=str(exc), error_kind="too_large")
        except (ValueError, zlib.error) as exc:
            return FetchResult(url, current, error=f"bad body: {exc}", error_kind="encoding")
        except httpx.InvalidURL as exc:
            return FetchResult(url, current, error=f"invalid URL: {exc}", error_kind="blocked")
        except httpx.HTTPError as exc:
            message = str(exc) or type(exc).__name__
            return FetchResult(url, current, error=f"{type(exc).__name__}: {message}",
                               error_kind="network")
        except OSError as exc:
            return FetchResult(url, current, error=f"network error: {exc}", error_kind="network")
        finally:
            sem.release()

    async def _copy_body(self, response: httpx.Response, sink: BinaryIO) -> bytes:
        """The raw body written to `sink` chunk by chunk (flat memory): nothing kept. Raises
        BodyTooLarge before the disk keeps less than DOWNLOAD_RESERVE free."""
        written = looked = 0
        async for chunk in response.aiter_raw():
            sink.write(chunk)
            written += len(chunk)
            if written - looked >= DISK_LOOK_EVERY:
                looked = written
                free = _free_bytes(sink)
                if free is not None and free < DOWNLOAD_RESERVE:
                    raise BodyTooLarge(
                        f"download stopped after {written} bytes: {free} bytes left on the "
                        f"disk, which keeps at least {DOWNLOAD_RESERVE} free")
        return b""

    async def _read_body(self, response: httpx.Response, decode: bool = True) -> bytes:
        limit = self.config.max_bytes
        length = content_length(response.headers.get("content-length"))
        encoding = response.headers.get("content-encoding", "") if decode else ""
        if length is not None and not encoding and length > limit:
            raise BodyTooLarge(f"Content-Length {length} exceeds max_bytes ({limit})")
        decoder = _Decoder(encoding, limit)
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
        return decoder.finish()

    # -- the two fetching stages

    async def fetch_feed(self, request: FeedRequest) -> FetchResult:
        """A feed, conditionally when the request carries validators, with its settings."""
        return await self.fetch(request.url, etag=request.etag,
                                last_modified=request.last_modified, settings=request.settings)

    async def fetch_page(self, url: str, slot: Slot | None = None,
                         settings: FeedSettings | None = None) -> Page:
        """An article page, if robots.txt allows it and it is an HTML page; the body stays
        as sent (decompressing is worker work, pipeline.extract.read_page). `settings`: the
        settings of the feed whose entry links to it."""
        agent = settings.user_agent if settings is not None else None
        if not await self.allowed_by_robots(url, agent):
            return Page(url, url, error="disallowed by robots.txt")
        fetched_at = utcnow()
        response = await self.fetch(url, accept=PAGE_ACCEPT, decode=False, slot=slot,
                                    settings=settings)
        error = response.error
        if error is None and response.status != 200:
            error = f"HTTP {response.status}"
        if error is None and response.content_type not in HTML_TYPES:
            error = f"not an HTML page ({response.content_type})"
        if error is not None:
            return Page(url, response.final_url, error=error)
        return Page(url, response.final_url, response.body,
                    content_type=response.headers.get("content-type", ""),
                    content_encoding=response.headers.get("content-encoding", ""),
                    status=response.status, headers=response.headers,
                    request_headers=response.request_headers, fetched_at=fetched_at)

    async def allowed_by_robots(self, url: str, user_agent: str | None = None) -> bool:
        """Whether robots.txt of url's host lets our user agent (or the feed's, when it has
        its own) fetch it (cached per host)."""
        if not self.config.respect_robots:
            return True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        task = self._robots.get(origin)
        if task is None or time.monotonic() >= self._robots_until.get(origin, float("inf")):
            if len(self._robots) >= ROBOTS_HOSTS:
                self._forget_expired_robots()
            # One fetch per host, shared by concurrent callers.
            task = self._robots[origin] = asyncio.ensure_future(self._load_robots(origin))
            self._robots_until.pop(origin, None)  # set when the answer comes
        parser = await asyncio.shield(task)  # others may share the task
        if parser is None:
            return True
        try:
            return parser.can_fetch(user_agent or self.config.user_agent, url)
        except ValueError:  # a URL the robots parser cannot split: the fetch will say why
            return True

    async def _load_robots(self, origin: str) -> RobotFileParser | None:
        """The host's rules; None (everything allowed) when it has no usable robots.txt.
        Kept ROBOTS_KEPT when read or missing, ROBOTS_RETRY when the read failed."""
        result = await self.fetch(origin + "/robots.txt", accept="text/plain, */*")
        answered = result.error is None and result.status is not None and (
            result.ok or 400 <= result.status < 500 and result.status not in (401, 403, 429))
        self._robots_until[origin] = time.monotonic() + (
            ROBOTS_KEPT if answered else ROBOTS_RETRY)
        if result.ok:
            return parse_robots(result.body)
        if result.status in (401, 403):
            parser = RobotFileParser()
            parser.disallow_all = True  # type: ignore[attr-defined]  # set by parse() too
            return parser
        return None

    def _forget_expired_robots(self) -> None:
        now = time.monotonic()
        for origin in [o for o, until in self._robots_until.items() if until <= now]:
            del self._robots[origin], self._robots_until[origin]


def _robots_line_ok(line: str) -> bool:
    """Whether the standard library's parser can take this line: its Crawl-delay and
    Request-rate values go through int() after a str.isdigit() check that lets "²" by."""
    field, _, value = line.partition(":")
    field = field.strip().lower()
    value = value.split("#", 1)[0].strip()
    if field == "crawl-delay":
        return parse_int(value) is not None
    if field == "request-rate":
        requests, _, seconds = value.partition("/")
        return parse_int(requests) is not None and parse_int(seconds) is not None
    return True


def parse_robots(body: bytes) -> RobotFileParser | None:
    """A robots.txt body as rules; None (everything allowed) when it cannot be read."""
    lines = [line for line in body.decode("utf-8", "replace").splitlines()
             if _robots_line_ok(line)]
    parser = RobotFileParser()
    try:
        parser.parse(lines)
    except Exception:  # noqa: BLE001 - a server's file must never stop a poll
        return None
    return parser


class Slot:
    """One of a bounded number of places for pages being worked on, taken by the fetcher
    only when a page's host lets its request go (waiting for a slow host's turn holds no
    place) and released by its owner when the work is done. Taking it twice is a no-op."""

    def __init__(self, places: asyncio.Semaphore) -> None:
        self.places = places
        self.held = False

    async def take(self) -> None:
        if not self.held:
            await self.places.acquire()
            self.held = True

    def release(self) -> None:
        if self.held:
            self.places.release()
            self.held = False


def _replace(result: FetchResult, **changes: Any) -> FetchResult:
    return replace(result, **changes)
