"""One poll of one feed end to end, and one pass over all due feeds.

    fetch feed ─► parse ─► new entries only ─► fetch pages ─► extract (process pool)
               ─► fingerprint ─► store (one transaction per poll)

Fetching runs concurrently on the event loop; parsing and extraction run in a process pool
(pipeline.pool). Everything in flight is bounded, so memory stays flat however large the
backlog: feeds are pulled from the due list by a fixed number of pollers, a poll works through
its new entries in batches, and a page holds a slot from before its fetch until its
extraction returns. All writes go through one writer task on the loop's thread, which commits
whatever polls are waiting in one short transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.boilerplate import site_of
from pipeline.config import Config
from pipeline.dedupe import article_id, canonical_url
from pipeline.extract import MAX_HTML_CHARS, Article, ExtractJob, read_page, trim_html
from pipeline.fetch import (
    PAGE_ACCEPT,
    BodyTooLarge,
    Fetcher,
    FetchResult,
    Resolver,
    Slot,
    system_resolver,
)
from pipeline.parse import Entry, ParsedFeed
from pipeline.pool import make_pool, parse_in_worker, pool_size, process_page, start_workers
from pipeline.schedule import PollOutcome, due_feeds, next_poll
from pipeline.store import (
    EntryBatch,
    FeedState,
    NewEntry,
    PollResult,
    PollSummary,
    Store,
    StoreError,
    StoreWriteError,
    iso,
    parse_iso,
)

log = logging.getLogger("newswire")

HTML_TYPES = ("text/html", "application/xhtml+xml", "")
MAX_FEEDS_IN_FLIGHT = 16
MAX_PAGES_IN_FLIGHT = 32  # pages fetched or being extracted at once: bounds the HTML held
ENTRY_BATCH = 50  # a poll's new entries are extracted and written this many at a time
WRITE_QUEUE = 64  # writes waiting for the writer before producers wait too
MAX_WRITE_GROUP = 64  # writes committed together in one transaction


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


def _add(a: PollSummary, b: PollSummary) -> PollSummary:
    return PollSummary(a.new_entries + b.new_entries, a.new_articles + b.new_articles,
                       a.exact_duplicates + b.exact_duplicates,
                       a.near_duplicates + b.near_duplicates)


_NOTHING = PollSummary(0, 0, 0, 0)
_Write = tuple[PollResult | EntryBatch, "asyncio.Future[PollSummary]"]


class WorkerCrashed(Exception):
    """A pool worker died mid-job (killed, out of memory); the pool has been replaced."""


class Runner:
    """Holds the shared fetcher, worker pool, writer and store for a run or a daemon."""

    def __init__(self, config: Config, store: Store,
                 resolver: Resolver = system_resolver, metrics: Any = None) -> None:
        self.config = config
        self.store = store
        self.resolver = resolver
        self.metrics = metrics  # pipeline.metrics.Metrics, when the daemon exports them
        self.fetcher: Fetcher | None = None
        # Its processes start with the first job: a run of 304s never starts any.
        self.pool: ProcessPoolExecutor | None = None
        self._pool_jobs = 0  # jobs given to the current pool
        self._pool_started = False  # the fork server is up (the first pool's first job)
        self._pool_pending: set[asyncio.Future[Any]] = set()  # jobs not yet returned
        self._pool_lock = asyncio.Lock()
        self.stopping = False
        # Pages being fetched in this pass, by canonical URL: feeds that carry the same
        # story share one fetch and one extraction. Dropped once their batch is written.
        self._page_tasks: dict[str, asyncio.Task[tuple[str, Article, Any]]] = {}
        self._pages = asyncio.Semaphore(MAX_PAGES_IN_FLIGHT)
        self._site_lines: dict[str, frozenset[int]] = {}  # per pass, from the store
        self._writes: asyncio.Queue[_Write] = asyncio.Queue(WRITE_QUEUE)
        self._writer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Runner:
        self.fetcher = Fetcher(self.config.fetch, self.resolver)
        self.pool = make_pool(self.config.extract.workers)
        self._writer = asyncio.ensure_future(self._write_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer:
            await self._writes.join()  # everything handed to the writer is written
            self._writer.cancel()
        if self.fetcher:
            await self.fetcher.aclose()
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)

    # -- the worker pool

    async def _pool(self) -> ProcessPoolExecutor:
        """The current pool, replaced by a fresh one every `max_tasks_per_worker` jobs per
        worker. One generation at a time: the new pool starts when the old one has finished
        its jobs, so memory stays that of one pool (the wait is the old pool's last job)."""
        async with self._pool_lock:
            extract = self.config.extract
            limit = extract.max_tasks_per_worker * pool_size(extract.workers)
            if self.pool is not None and limit and self._pool_jobs >= limit:
                old, self.pool = self.pool, None
                await asyncio.gather(*self._pool_pending, return_exceptions=True)
                old.shutdown(wait=False)
            if self.pool is None:
                self.pool = make_pool(extract.workers)
                self._pool_jobs = 0
            if not self._pool_started:
                # The first worker starts the fork server, which imports and warms the
                # extractor (a second or two): in a thread, so fetches in flight keep their
                # deadlines meanwhile.
                await asyncio.to_thread(start_workers, self.pool)
                self._pool_started = True
            self._pool_jobs += 1
            return self.pool

    async def _in_pool(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn in the worker pool; a dead worker replaces the pool and raises WorkerCrashed.

        The job is not retried: a page that kills its worker would kill the next one too.
        """
        loop = asyncio.get_running_loop()
        pool = await self._pool()
        job = loop.run_in_executor(pool, fn, *args)
        self._pool_pending.add(job)
        try:
            return await job
        except BrokenProcessPool as exc:
            if self.pool is pool:  # the first caller to notice replaces it for everyone
                log.error("a worker process died; starting a new pool")
                pool.shutdown(wait=False, cancel_futures=True)
                self.pool = make_pool(self.config.extract.workers)
                self._pool_jobs = 0
            raise WorkerCrashed(f"worker process died: {exc}") from None
        finally:
            self._pool_pending.discard(job)

    # -- the single writer

    async def _write(self, item: PollResult | EntryBatch) -> PollSummary:
        """Hand a write to the writer and wait until it is committed."""
        future: asyncio.Future[PollSummary] = asyncio.get_running_loop().create_future()
        await self._writes.put((item, future))
        return await future

    async def _write_loop(self) -> None:
        """The one place that writes: commits every waiting write in one transaction."""
        while True:
            group = [await self._writes.get()]
            while len(group) < MAX_WRITE_GROUP and not self._writes.empty():
                group.append(self._writes.get_nowait())
            try:
                self._commit(group)
            finally:
                for _ in group:
                    self._writes.task_done()

    def _commit(self, group: list[_Write]) -> None:
        try:
            summaries = self.store.record_batch([item for item, _ in group])
        except Exception as exc:  # noqa: BLE001 - find the write at fault; others go in alone
            if len(group) == 1:
                future = group[0][1]
                if not future.done():
                    future.set_exception(exc)
                return
            for one in group:
                self._commit([one])
            return
        for (_, future), summary in zip(group, summaries, strict=True):
            if not future.done():
                future.set_result(summary)

    # -- a pass over the feeds

    async def run_due(self, include_all: bool = False,
                      progress: Callable[[FeedState, PollResult], None] | None = None
                      ) -> RunReport:
        """Poll every due feed (every active feed with include_all), concurrently."""
        report = RunReport()
        due = due_feeds(self.store, self.config.schedule, include_all)
        if self.metrics:
            self.metrics.due_feeds.set(len(due))
        feeds: Iterator[FeedState] = iter(due)

        async def poller() -> None:
            for feed in feeds:  # the pollers share one iterator: each feed is polled once
                if self.stopping:
                    return
                result, summary = await self.poll_and_record(feed)
                report.add(feed, result, summary)
                if progress:
                    progress(feed, result)

        try:
            await asyncio.gather(*(poller() for _ in range(MAX_FEEDS_IN_FLIGHT)))
        except (StoreError, asyncio.CancelledError):  # a damaged database, or shutdown
            self.stopping = True  # the other pollers start no more polls
            raise
        finally:
            self._page_tasks.clear()
            self._site_lines.clear()
        return report

    async def poll_and_record(self, feed: FeedState) -> tuple[PollResult, PollSummary]:
        """Poll one feed and write it: entry batches first, then the poll itself.

        The failure boundary of a poll: whatever the poll raises is recorded against its
        feed (error, backoff, a fetch-log row) and the run goes on; only a database that
        can no longer be used stops the run.
        """
        started = datetime.now(UTC)
        clock = time.monotonic()
        try:
            result, written, write_error = await self._poll(feed, started, clock)
        except StoreError:  # the database itself is unusable: no feed can be recorded
            raise
        except Exception as exc:  # noqa: BLE001 - one feed must never stop the others
            fatal = self.store.damaged(exc)
            if fatal is not None:
                raise fatal from exc
            log.error("poll of %s failed unexpectedly", feed.url, exc_info=True)
            result, written, write_error = self._crashed(feed, started, clock, exc), \
                _NOTHING, None
        try:
            if write_error is not None:
                raise write_error
            summary = _add(written, await self._write(result))
        except StoreWriteError as exc:
            result, summary = self._write_failed(feed, result, exc)
        self._forget_pages(e.link for e in result.entries)
        fields = {"feed": feed.url, "feed_id": feed.id, "outcome": poll_outcome(result),
                  "status": result.status, "bytes": result.bytes,
                  "new_entries": summary.new_entries, "new_articles": summary.new_articles,
                  "duration_ms": result.duration_ms, "next_poll_at": result.next_poll_at,
                  "error": result.error}
        log.info("poll", extra={"fields": fields})
        if self.metrics:
            self.metrics.observe_poll(result, summary)
        return result, summary

    def _crashed(self, feed: FeedState, started: datetime, clock: float,
                 exc: Exception) -> PollResult:
        """The record of a poll that raised: a failure, backed off like any other."""
        schedule = next_poll(feed, PollOutcome(status=None, failed=True),
                             self.config.schedule, now=started)
        return PollResult(
            feed_id=feed.id, started_at=iso(started),
            duration_ms=int((time.monotonic() - clock) * 1000), status=None, bytes=0,
            error=f"internal error: {type(exc).__name__}: {exc}"[:1000],
            next_poll_at=iso(schedule.at) if schedule.at else None,
            consecutive_failures=schedule.consecutive_failures,
            current_interval=schedule.interval)

    async def _poll(self, feed: FeedState, started: datetime, clock: float
                    ) -> tuple[PollResult, PollSummary, StoreWriteError | None]:
        """Fetch, parse and extract one feed, writing its entry batches as they are ready:
        (the poll's result, what the batches wrote, the write error that stopped them)."""
        assert self.fetcher is not None
        etag, modified = self._validators(feed, started)
        response = await self.fetcher.fetch(feed.url, etag=etag, last_modified=modified)
        parsed: ParsedFeed | None = None
        error = _response_error(response)
        fresh: list[Entry] = []
        if error is None and response.status == 200:
            try:
                outcome = await self._in_pool(parse_in_worker, response.body,
                                              response.headers, response.final_url,
                                              self.config.extract.max_entries_per_poll)
            except WorkerCrashed as exc:
                outcome = str(exc)
            if isinstance(outcome, str):
                kind = response.content_type or "no Content-Type"
                error = f"feed parse error ({kind}): {outcome}"
            else:
                parsed = outcome
                known = self.store.known_entry_keys(feed.id, [e.key for e in parsed.entries])
                fresh = [e for e in parsed.entries if e.key not in known]

        written = _NOTHING
        last: tuple[NewEntry, ...] = ()
        write_error: StoreWriteError | None = None
        for start in range(0, len(fresh), ENTRY_BATCH):
            batch = fresh[start:start + ENTRY_BATCH]
            entries = await self._new_entries(feed, batch)
            if start + ENTRY_BATCH >= len(fresh):
                last = entries  # written with the poll, validators and all
                break
            try:
                written = _add(written, await self._write(EntryBatch(feed.id, entries)))
            except StoreWriteError as exc:
                write_error = exc  # the poll is not recorded: its feed stays due
                break
            self._forget_pages(e.link for e in batch)

        retry_after = response.retry_after(started)
        schedule = next_poll(feed, PollOutcome(
            status=response.status, failed=error is not None,
            retry_after=retry_after, headers=response.headers,
            ttl_seconds=parsed.ttl_seconds if parsed else None,
            new_entries=len(fresh),
            total_entries=len(parsed.entries) if parsed else 0,
        ), self.config.schedule, now=started)
        if response.status in (429, 503) and retry_after is not None:
            error = None  # throttled, not failed: the next poll honours Retry-After
        result = PollResult(
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
            warning=parsed.warning if parsed else None, entries=last,
            batched_entries=written.new_entries, batched_articles=written.new_articles,
        )
        return result, written, write_error

    def _write_failed(self, feed: FeedState, result: PollResult,
                      exc: StoreWriteError) -> tuple[PollResult, PollSummary]:
        """The poll's transaction rolled back (disk full, database locked): keep the feed's
        validators as they were, so the next poll fetches everything again (entry batches
        already written are skipped then); record the error against the feed if the
        database still takes that much."""
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
        return failed, _NOTHING

    def _validators(self, feed: FeedState, now: datetime) -> tuple[str | None, str | None]:
        """The stored validators, unless an unconditional fetch is due (stale ETags exist)."""
        last = parse_iso(feed.last_unconditional_at)
        if last is None or (now - last).total_seconds() >= self.config.schedule.\
                unconditional_every:
            return None, None
        return feed.etag, feed.last_modified

    def _forget_pages(self, links: Iterable[str | None]) -> None:
        """Written articles are found in the store from now on; drop their finished tasks."""
        for link in links:
            if link:
                task = self._page_tasks.get(canonical_url(link))
                if task is not None and task.done():
                    del self._page_tasks[canonical_url(link)]

    # -- entries and their pages

    async def _new_entries(self, feed: FeedState, fresh: Sequence[Entry]
                           ) -> tuple[NewEntry, ...]:
        """These new entries of the feed, each with its article."""
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
        """Fetch the entry's page and extract it in the pool: (final url, article, print).

        A page holds one of MAX_PAGES_IN_FLIGHT slots from the moment its host lets the
        request go until its extraction returns, so fetched HTML never piles up; waiting
        for its host's turn holds none, so a slow host cannot starve the others."""
        slot = Slot(self._pages)
        try:
            page_url, body, headers, page_error = entry.link or "", None, {}, None
            if entry.link:
                page_url, body, headers, page_error = await self._fetch_page(entry.link,
                                                                             slot)
            await slot.take()  # extraction is work too, page or not
            job = ExtractJob(
                url=page_url, html=body, content_type=headers.get("content-type", ""),
                content_encoding=headers.get("content-encoding", ""),
                max_bytes=self.config.fetch.max_bytes,
                entry_title=entry.title, entry_content=entry.content or entry.summary,
                entry_published_at=entry.published_at, entry_authors=entry.authors,
                page_error=page_error, timeout=self.config.extract.timeout,
                site_lines=self._lines_of_site(page_url) if body is not None else frozenset())
            try:
                article, fingerprint = await self._in_pool(process_page, job)
            except WorkerCrashed as exc:  # keep the entry: the feed's own content, no page
                article, fingerprint = process_page(replace(job, html=None,
                                                            page_error=str(exc)))
        finally:
            slot.release()
        return page_url, article, fingerprint

    def _lines_of_site(self, url: str) -> frozenset[int]:
        site = site_of(url)
        if site not in self._site_lines:
            self._site_lines[site] = self.store.site_lines(site)
        return self._site_lines[site]

    async def _fetch_page(self, url: str, slot: Slot
                          ) -> tuple[str, bytes | None, dict[str, str], str | None]:
        """(final url, raw body or None, response headers, error or None) for one page."""
        assert self.fetcher is not None
        if not await self.fetcher.allowed_by_robots(url):
            return url, None, {}, "disallowed by robots.txt"
        # Decompressing is left to the worker: it is CPU the event loop should not spend.
        response: FetchResult = await self.fetcher.fetch(url, accept=PAGE_ACCEPT, decode=False,
                                                         slot=slot)
        error = _response_error(response)
        if error is None and response.status != 200:
            error = f"HTTP {response.status}"
        if error is None and response.content_type not in HTML_TYPES:
            error = f"not an HTML page ({response.content_type})"
        if error is not None:
            return response.final_url, None, {}, error
        if len(response.body) > MAX_HTML_CHARS:
            # Rare: an oversized page is decoded and trimmed here, so it is not copied whole
            # into a worker; everything else is decoded there.
            try:
                html = trim_html(read_page(response.body,
                                           response.headers.get("content-type", ""),
                                           response.headers.get("content-encoding", ""),
                                           self.config.fetch.max_bytes))
            except (BodyTooLarge, ValueError, zlib.error) as exc:
                return response.final_url, None, {}, f"bad page body: {exc}"
            return response.final_url, html.encode(), {"content-type": "text/html; "
                                                       "charset=utf-8"}, None
        return response.final_url, response.body, response.headers, None


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
