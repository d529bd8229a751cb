"""One poll of one feed end to end, and one pass over all due feeds.

    fetch feed ─► parse ─► new entries only ─► fetch pages ─► extract (process pool)
               ─► fingerprint ─► store (one transaction per poll)

Fetching runs concurrently on the event loop; parsing and extraction run in a process pool;
all writes happen here, on the loop's thread, one short transaction per poll: one writer.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.config import Config
from pipeline.dedupe import article_id, canonical_url
from pipeline.extract import Article, ExtractJob, extract_job, trim_html
from pipeline.fetch import PAGE_ACCEPT, Fetcher, FetchResult, Resolver, system_resolver
from pipeline.parse import Entry, FeedParseError, ParsedFeed, parse_feed
from pipeline.schedule import PollOutcome, next_poll
from pipeline.store import (
    FeedState,
    NewEntry,
    PollResult,
    PollSummary,
    Store,
    StoreWriteError,
    iso,
    parse_iso,
)

log = logging.getLogger("newswire")

HTML_TYPES = ("text/html", "application/xhtml+xml", "")
MAX_FEEDS_IN_FLIGHT = 16
MAX_PAGES_IN_FLIGHT = 32


@dataclass
class RunReport:
    """What a pass over the feeds did, for the CLI's summary line."""

    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    failed: int = 0
    new_entries: int = 0
    new_articles: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, feed: FeedState, result: PollResult, summary: PollSummary) -> None:
        self.feeds += 1
        if result.error:
            self.failed += 1
            self.errors.append((feed.url, result.error))
        elif result.status == 304:
            self.not_modified += 1
        else:
            self.ok += 1
        self.new_entries += summary.new_entries
        self.new_articles += summary.new_articles
        self.exact_duplicates += summary.exact_duplicates
        self.near_duplicates += summary.near_duplicates

    def line(self) -> str:
        return (f"{self.feeds} feeds polled: {self.ok} updated, {self.not_modified} not "
                f"modified, {self.failed} failed; {self.new_entries} new entries, "
                f"{self.new_articles} new articles ({self.exact_duplicates} exact and "
                f"{self.near_duplicates} near duplicates)")


def _parse_in_worker(body: bytes, headers: dict[str, str], url: str,
                     max_entries: int) -> ParsedFeed | str:
    """Worker entry point for parsing: an error comes back as its message."""
    try:
        return parse_feed(body, headers, url, max_entries=max_entries)
    except FeedParseError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - never let one feed break the pool
        return f"parser crashed: {type(exc).__name__}: {exc}"


def process_page(job: ExtractJob) -> tuple[Article, Any]:
    """Worker entry point for a page: the article, and its near-duplicate fingerprint."""
    article = extract_job(job)
    fingerprint = None
    if article.text:
        try:
            from pipeline.neardup import fingerprint as make_fingerprint
        except ImportError:  # the clustering layer is optional
            return article, None
        fingerprint = make_fingerprint(article.text, article.title)
    return article, fingerprint


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the process that started it is gone.

    A `once` killed with SIGKILL cannot shut its pool down, and an idle worker blocks
    forever on its task queue (it holds that pipe's write end itself), so without this
    every kill would leave idle workers behind for good.
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def make_pool(workers: int, max_tasks: int) -> ProcessPoolExecutor:
    """Extraction workers, recycled after `max_tasks` jobs to bound trafilatura's memory.

    Always spawned, never forked: a forked worker would inherit the writer's open SQLite
    connection and lock file. Workers receive plain data only (row 35 of hostile-inputs).
    """
    count = workers or os.cpu_count() or 1
    return ProcessPoolExecutor(max_workers=count, max_tasks_per_child=max_tasks or None,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))


class WorkerCrashed(Exception):
    """A pool worker died mid-job (killed, out of memory); the pool has been replaced."""


class Runner:
    """Holds the shared fetcher, worker pool and store for a run or a daemon's lifetime."""

    def __init__(self, config: Config, store: Store,
                 resolver: Resolver = system_resolver, metrics: Any = None) -> None:
        self.config = config
        self.store = store
        self.resolver = resolver
        self.metrics = metrics  # pipeline.metrics.Metrics, when the daemon exports them
        self.fetcher: Fetcher | None = None
        self.pool: ProcessPoolExecutor | None = None
        self.stopping = False
        # Pages being fetched in this pass, by canonical URL: feeds that carry the same
        # story share one fetch and one extraction.
        self._page_tasks: dict[str, asyncio.Task[tuple[str, Article, Any]]] = {}
        self._pages = asyncio.Semaphore(MAX_PAGES_IN_FLIGHT)

    async def __aenter__(self) -> Runner:
        self.fetcher = Fetcher(self.config.fetch, self.resolver)
        self.pool = make_pool(self.config.extract.workers,
                              self.config.extract.max_tasks_per_worker)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.fetcher:
            await self.fetcher.aclose()
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)

    async def _in_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn in the worker pool; a dead worker replaces the pool and raises WorkerCrashed.

        The job is not retried: a page that kills its worker would kill the next one too.
        """
        loop = asyncio.get_running_loop()
        pool = self.pool
        try:
            return await loop.run_in_executor(pool, fn, *args)
        except BrokenProcessPool as exc:
            if self.pool is pool:  # the first caller to notice replaces it for everyone
                log.error("a worker process died; starting a new pool")
                assert pool is not None
                pool.shutdown(wait=False, cancel_futures=True)
                self.pool = make_pool(self.config.extract.workers,
                                      self.config.extract.max_tasks_per_worker)
            raise WorkerCrashed(f"worker process died: {exc}") from None

    # -- a pass over the feeds

    async def run_due(self, include_all: bool = False,
                      progress: Callable[[FeedState, PollResult], None] | None = None
                      ) -> RunReport:
        """Poll every due feed (every active feed with include_all), concurrently."""
        report = RunReport()
        feeds = self.store.feeds(include_all=include_all)
        if self.metrics:
            self.metrics.due_feeds.set(len(feeds))
        limit = asyncio.Semaphore(MAX_FEEDS_IN_FLIGHT)

        async def one(feed: FeedState) -> None:
            async with limit:
                if self.stopping:
                    return
                result, summary = await self.poll_and_record(feed)
                report.add(feed, result, summary)
                if progress:
                    progress(feed, result)

        try:
            await asyncio.gather(*(one(feed) for feed in feeds))
        finally:
            self._page_tasks.clear()
        return report

    async def poll_and_record(self, feed: FeedState) -> tuple[PollResult, PollSummary]:
        result = await self.poll(feed)
        try:
            summary = self.store.record_poll(result)
        except StoreWriteError as exc:
            result, summary = self._write_failed(feed, result, exc)
        fields = {"feed": feed.url, "feed_id": feed.id, "outcome": poll_outcome(result),
                  "status": result.status, "bytes": result.bytes,
                  "new_entries": summary.new_entries, "new_articles": summary.new_articles,
                  "duration_ms": result.duration_ms, "next_poll_at": result.next_poll_at,
                  "error": result.error}
        log.info("poll", extra={"fields": fields})
        if self.metrics:
            self.metrics.observe_poll(result, summary)
        return result, summary

    def _write_failed(self, feed: FeedState, result: PollResult,
                      exc: StoreWriteError) -> tuple[PollResult, PollSummary]:
        """The poll's transaction rolled back (disk full, database locked): keep the feed's
        validators and entries as they were, so the next poll fetches everything again;
        record the error against the feed if the database still takes that much."""
        error = f"storage error: {exc}"
        retry = iso(datetime.now(UTC) + timedelta(seconds=self.config.schedule.min_interval))
        failed = replace(result, error=error, entries=(), next_poll_at=retry,
                         extra={**result.extra, "storage_error": True})
        log.error("could not record the poll of %s: %s", feed.url, exc)
        try:
            self.store.record_write_failure(feed.id, result.started_at, result.duration_ms,
                                            result.status, error, retry)
        except StoreWriteError as again:
            log.error("could not record the error against %s either: %s", feed.url, again)
        return failed, PollSummary(0, 0, 0, 0)

    # -- one feed

    async def poll(self, feed: FeedState) -> PollResult:
        """Fetch, parse and extract one feed; never raises for bad input."""
        assert self.fetcher is not None
        started = datetime.now(UTC)
        clock = time.monotonic()
        etag, modified = self._validators(feed, started)
        response = await self.fetcher.fetch(feed.url, etag=etag, last_modified=modified)
        parsed: ParsedFeed | None = None
        error = _response_error(response)
        entries: tuple[NewEntry, ...] = ()
        if error is None and response.status == 200:
            try:
                outcome = await self._in_pool(_parse_in_worker, response.body,
                                              response.headers, response.final_url,
                                              self.config.extract.max_entries_per_poll)
            except WorkerCrashed as exc:
                outcome = str(exc)
            if isinstance(outcome, str):
                kind = response.content_type or "no Content-Type"
                error = f"feed parse error ({kind}): {outcome}"
            else:
                parsed = outcome
                entries = await self._new_entries(feed, parsed)
        schedule = next_poll(feed, PollOutcome(
            status=response.status, failed=error is not None,
            retry_after=response.retry_after(started), headers=response.headers,
            ttl_seconds=parsed.ttl_seconds if parsed else None,
            new_entries=len(entries),
            total_entries=len(parsed.entries) if parsed else 0,
        ), self.config.schedule, now=started)
        if response.status in (429, 503) and response.retry_after(started) is not None:
            error = None  # throttled, not failed: the next poll honours Retry-After
        return PollResult(
            feed_id=feed.id, started_at=iso(started),
            duration_ms=int((time.monotonic() - clock) * 1000),
            status=response.status, bytes=len(response.body), error=error,
            next_poll_at=iso(schedule.at) if schedule.at else None,
            consecutive_failures=schedule.consecutive_failures,
            current_interval=schedule.interval,
            etag=response.etag, last_modified=response.last_modified,
            feed_title=parsed.title if parsed else None,
            new_url=response.permanent_redirect if error is None else None,
            gone=schedule.gone, conditional=response.conditional,
            warning=parsed.warning if parsed else None, entries=entries,
        )

    def _validators(self, feed: FeedState, now: datetime) -> tuple[str | None, str | None]:
        """The stored validators, unless an unconditional fetch is due (stale ETags exist)."""
        last = parse_iso(feed.last_unconditional_at)
        if last is None or (now - last).total_seconds() >= self.config.schedule.\
                unconditional_every:
            return None, None
        return feed.etag, feed.last_modified

    async def _new_entries(self, feed: FeedState, parsed: ParsedFeed) -> tuple[NewEntry, ...]:
        """Entries not seen before in this feed, each with its article."""
        known = self.store.known_entry_keys(feed.id, [e.key for e in parsed.entries])
        fresh = [e for e in parsed.entries if e.key not in known]
        links = {canonical_url(e.link) for e in fresh if e.link}
        stored = self.store.article_ids_for_urls(sorted(links))
        tasks = []
        for entry in fresh:
            existing = stored.get(canonical_url(entry.link)) if entry.link else None
            tasks.append(self._entry_with_article(feed, entry, existing))
        return tuple(await asyncio.gather(*tasks))

    async def _entry_with_article(self, feed: FeedState, entry: Entry,
                                  existing: str | None) -> NewEntry:
        base = dict(key=entry.key, guid=entry.guid, link=entry.link, title=entry.title,
                    published_at=entry.published_at)
        if existing:  # the same article reached us through another feed or URL
            return NewEntry(**base, existing_article_id=existing)
        if entry.link:
            key = canonical_url(entry.link)
            if key not in self._page_tasks:
                self._page_tasks[key] = asyncio.ensure_future(self._article(entry))
            page_url, article, fingerprint = await self._page_tasks[key]
        else:  # no URL at all: the feed's content, with an id from the feed and entry key
            page_url, article, fingerprint = await self._article(entry)
            article = _without_url(article, feed.url, entry.key)
        aliases = {canonical_url(u) for u in (entry.link, page_url, article.canonical_url) if u}
        return NewEntry(**base, article=article, url_aliases=tuple(sorted(aliases)),
                        fingerprint=fingerprint)

    async def _article(self, entry: Entry) -> tuple[str, Article, Any]:
        """Fetch the entry's page and extract it in the pool: (final url, article, print)."""
        page_url, html, page_error = entry.link or "", None, None
        if entry.link:
            async with self._pages:
                page_url, html, page_error = await self._fetch_page(entry.link)
        job = ExtractJob(
            url=page_url, html=html, entry_title=entry.title,
            entry_content=entry.content or entry.summary,
            entry_published_at=entry.published_at, entry_authors=entry.authors,
            page_error=page_error, timeout=self.config.extract.timeout)
        try:
            article, fingerprint = await self._in_pool(process_page, job)
        except WorkerCrashed as exc:  # keep the entry: the feed's own content, no page
            article, fingerprint = process_page(replace(job, html=None, page_error=str(exc)))
        return page_url, article, fingerprint

    async def _fetch_page(self, url: str) -> tuple[str, str | None, str | None]:
        """(final url, html or None, error or None) for one article page."""
        assert self.fetcher is not None
        if not await self.fetcher.allowed_by_robots(url):
            return url, None, "disallowed by robots.txt"
        response: FetchResult = await self.fetcher.fetch(url, accept=PAGE_ACCEPT)
        error = _response_error(response)
        if error is None and response.status != 200:
            error = f"HTTP {response.status}"
        if error is None and response.content_type not in HTML_TYPES:
            error = f"not an HTML page ({response.content_type})"
        if error is not None:
            return response.final_url, None, error
        # Trimmed here too, so an oversized page is not copied whole into a worker.
        return response.final_url, trim_html(_decode_html(response.body, response.headers)), None


def poll_outcome(result: PollResult) -> str:
    """One word for what a poll came to, shared by the log line and the metrics."""
    if result.extra.get("storage_error"):
        return "storage_error"
    if result.gone:
        return "gone"
    if result.error:
        return "failed"
    if result.status in (429, 503):
        return "throttled"
    if result.status == 304:
        return "not_modified"
    return "ok"


def _response_error(response: FetchResult) -> str | None:
    if response.error:
        return response.error
    if response.status in (200, 304):
        return None
    return f"HTTP {response.status}"


def _decode_html(body: bytes, headers: dict[str, str]) -> str:
    """HTML bytes to text: the HTTP charset, else a meta charset, else UTF-8 (lenient)."""
    import re

    charset = None
    match = re.search(r"charset=([\w.:-]+)", headers.get("content-type", ""), re.I)
    if match:
        charset = match.group(1)
    else:
        meta = re.search(rb"<meta[^>]+charset=[\"']?([\w.:-]+)", body[:4096], re.I)
        if meta:
            charset = meta.group(1).decode("ascii", "replace")
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _without_url(article: Article, feed_url: str, key: str) -> Article:
    return replace(article, id=article_id(f"{feed_url}#entry={key}"), url="",
                   canonical_url="")


async def run_once(config: Config, store: Store, include_all: bool = False,
                   resolver: Resolver = system_resolver,
                   progress: Callable[[FeedState, PollResult], None] | None = None
                   ) -> RunReport:
    """Sync the config's feeds into the store and poll the due ones once."""
    store.sync_feeds(config.feeds)
    async with Runner(config, store, resolver) as runner:
        report = await runner.run_due(include_all=include_all, progress=progress)
    # Cron-driven installs have no daemon maintenance: keep the near-duplicate index within
    # its window here (an empty index probe when nothing is due). The polls are recorded
    # already, so a failure here is only worth a warning; the next run tries again.
    try:
        store.prune_bands(config.dedupe.band_window_days)
    except StoreWriteError as exc:
        log.warning("%s", exc)
    return report

