"""One poll of one feed end to end, and one pass over all due feeds: composition only.

    FeedState ─plan_request─► FeedRequest ─fetch_feed─► FetchResult ─parse (worker)─►
    ParseOutcome ─store.plan_entries─► EntryPlan ─fetch_page─► Page ─job_for─► ExtractJob
    ─extract and fingerprint (worker)─► ExtractResult ─► NewEntry ─► EntryBatch / PollResult
    ─writer─► PollSummary

Every arrow is a stage function on messages (pipeline.messages) defined in its own module:
the schedule decides, the fetcher fetches, the worker pool parses and extracts, the store
plans from what it knows and its writer records. This module only calls them in order and
bounds what is in flight, so memory stays flat however large the backlog: feeds are pulled
from the due list by a fixed number of pollers, a poll works through its entries in batches,
and a page holds one of MAX_PAGES_IN_FLIGHT slots only while it is fetched or extracted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType

from pipeline.boilerplate import site_of
from pipeline.config import Config
from pipeline.dedupe import article_id, canonical_url
from pipeline.errors import StoreError, StoreWriteError, WorkerCrashed
from pipeline.extract import extract_and_fingerprint, job_for
from pipeline.fetch import Fetcher, Resolver, Slot, system_resolver
from pipeline.messages import (
    Article,
    Entry,
    EntryBatch,
    ExtractResult,
    FeedState,
    Message,
    NewEntry,
    ParseOutcome,
    PollResult,
    PollSummary,
)
from pipeline.metrics import Metrics
from pipeline.outcome import crashed, poll_outcome, poll_result, response_error, write_failed
from pipeline.parse import parse_response
from pipeline.pool import WorkerPool
from pipeline.schedule import plan_request
from pipeline.store import Store, Writer

log = logging.getLogger("newswire")

MAX_FEEDS_IN_FLIGHT = 16
MAX_PAGES_IN_FLIGHT = 32  # pages fetched or being extracted at once: bounds the HTML held
ENTRY_BATCH = 50  # a poll's entries are planned, extracted and written this many at a time

Trace = Callable[[Message], None]


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


class Runner:
    """The fetcher, worker pool and writer of a run or a daemon, and the order of stages.

    `trace`, when given, sees every message as it crosses a stage boundary."""

    def __init__(self, config: Config, store: Store, resolver: Resolver = system_resolver,
                 metrics: Metrics | None = None, trace: Trace | None = None) -> None:
        self.config = config
        self.store = store
        self.resolver = resolver
        self.metrics = metrics
        self.trace = trace
        self.fetcher = Fetcher(config.fetch, resolver)
        self.pool = WorkerPool(config.extract)
        self.writer = Writer(store)
        self.stopping = False
        # Pages being fetched in this pass, by canonical URL: feeds that carry the same
        # story share one fetch and one extraction. Dropped once their batch is written.
        self._page_tasks: dict[str, asyncio.Task[tuple[str, ExtractResult]]] = {}
        self._pages = asyncio.Semaphore(MAX_PAGES_IN_FLIGHT)
        self._site_lines: dict[str, frozenset[int]] = {}  # per pass, from the store

    async def __aenter__(self) -> Runner:
        await self.writer.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.writer.__aexit__(exc_type, exc, tb)  # everything handed over is written
        await self.fetcher.aclose()
        self.pool.close()

    def _trace(self, message: Message) -> None:
        if self.trace is not None:
            self.trace(message)

    # -- a pass over the feeds

    async def run_due(self, include_all: bool = False,
                      progress: Callable[[FeedState, PollResult], None] | None = None
                      ) -> RunReport:
        """Poll every due feed (every active feed with include_all), concurrently."""
        report = RunReport()
        due = self.store.due_feeds(self.config.schedule, include_all)
        if self.metrics:
            self.metrics.observe_pass(len(due), self.store.health_counts(
                self.config.schedule.dead_after))
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
            result = crashed(feed, started, _ms_since(clock), exc, self.config.schedule)
            written, write_error = PollSummary(), None
        self._trace(result)
        try:
            if write_error is not None:
                raise write_error
            summary = written + await self.writer.write(result)
        except StoreWriteError as exc:
            result, summary = self._write_failed(feed, result, exc), PollSummary()
        self._trace(summary)
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

    async def _poll(self, feed: FeedState, started: datetime, clock: float
                    ) -> tuple[PollResult, PollSummary, StoreWriteError | None]:
        """The stages of one poll, writing its entry batches as they are ready: (the poll's
        result, what the batches wrote, the write error that stopped them)."""
        self._trace(feed)
        request = plan_request(feed, self.config.schedule, started)
        self._trace(request)
        response = await self.fetcher.fetch_feed(request)
        self._trace(response)
        error = response_error(response)
        entries: tuple[Entry, ...] = ()
        parsed = None
        if error is None and response.status == 200:
            try:
                outcome = await self.pool.run(parse_response, response,
                                              self.config.extract.max_entries_per_poll)
            except WorkerCrashed as exc:
                outcome = ParseOutcome(error=str(exc))
            self._trace(outcome)
            if outcome.feed is None:
                kind = response.content_type or "no Content-Type"
                error = f"feed parse error ({kind}): {outcome.error}"
            else:
                parsed = outcome.feed
                entries = parsed.entries

        fresh = self.store.unseen_entries(feed.id, entries)
        written, last = PollSummary(), tuple[NewEntry, ...]()
        write_error: StoreWriteError | None = None
        for start in range(0, len(fresh), ENTRY_BATCH):
            plan = self.store.plan_entries(feed.id, fresh[start:start + ENTRY_BATCH])
            self._trace(plan)
            new = tuple(await asyncio.gather(*(
                self._entry_with_article(feed, entry, plan.stored) for entry in plan.fresh)))
            if start + ENTRY_BATCH >= len(fresh):
                last = new  # written with the poll, validators and all
                break
            batch = EntryBatch(feed.id, new)
            self._trace(batch)
            try:
                written += await self.writer.write(batch)
            except StoreWriteError as exc:
                write_error = exc  # the poll is not recorded: its feed stays due
                break
            self._forget_pages(e.link for e in new)

        result = poll_result(feed, response, parsed, error, len(fresh), last, written,
                             started, _ms_since(clock), self.config.schedule)
        return result, written, write_error

    def _write_failed(self, feed: FeedState, result: PollResult,
                      exc: StoreWriteError) -> PollResult:
        """The poll's transaction rolled back: record the error against the feed if the
        database still takes that much (pipeline.outcome.write_failed)."""
        failed = write_failed(result, exc, datetime.now(UTC), self.config.schedule)
        log.error("could not record the poll of %s: %s", feed.url, exc)
        try:
            self.store.record_write_failure(feed.id, result.started_at, result.duration_ms,
                                            result.status, failed.error or "",
                                            failed.next_poll_at or "")
        except StoreWriteError as again:
            log.error("could not record the error against %s either: %s", feed.url, again)
        return failed

    def _forget_pages(self, links: Iterable[str | None]) -> None:
        """Written articles are found in the store from now on; drop their finished tasks."""
        for link in links:
            if link:
                task = self._page_tasks.get(canonical_url(link))
                if task is not None and task.done():
                    del self._page_tasks[canonical_url(link)]

    # -- entries and their pages

    async def _entry_with_article(self, feed: FeedState, entry: Entry,
                                  stored: dict[str, str]) -> NewEntry:
        """A new entry with its article: already stored under its link, or extracted."""
        new = NewEntry(key=entry.key, guid=entry.guid, link=entry.link, title=entry.title,
                       published_at=entry.published_at)
        existing = stored.get(canonical_url(entry.link)) if entry.link else None
        if existing:  # the same article reached us through another feed or URL
            return replace(new, existing_article_id=existing)
        if entry.link:
            key = canonical_url(entry.link)
            if key not in self._page_tasks:
                self._page_tasks[key] = asyncio.ensure_future(self._article(entry))
            page_url, result = await self._page_tasks[key]
            article = result.article
        else:  # no URL at all: the feed's content, with an id from the feed and entry key
            page_url, result = await self._article(entry)
            article = _without_url(result.article, feed.url, entry.key)
        aliases = {canonical_url(u) for u in (entry.link, page_url, article.canonical_url) if u}
        return replace(new, article=article, url_aliases=tuple(sorted(aliases)),
                       fingerprint=result.fingerprint)

    async def _article(self, entry: Entry) -> tuple[str, ExtractResult]:
        """Fetch the entry's page and extract it in the pool: (final url, extraction).

        A page holds one of MAX_PAGES_IN_FLIGHT slots from the moment its host lets the
        request go until its extraction returns, so fetched HTML never piles up; waiting
        for its host's turn holds none, so a slow host cannot starve the others."""
        slot = Slot(self._pages)
        try:
            page = await self.fetcher.fetch_page(entry.link, slot) if entry.link else None
            if page is not None:
                self._trace(page)
            await slot.take()  # extraction is work too, page or not
            lines = self._lines_of_site(page.final_url) \
                if page is not None and page.body is not None else frozenset()
            job = job_for(entry, page, lines, self.config.extract.timeout,
                          self.config.fetch.max_bytes)
            self._trace(job)
            try:
                result = await self.pool.run(extract_and_fingerprint, job)
            except WorkerCrashed as exc:  # keep the entry: the feed's own content, no page
                result = extract_and_fingerprint(replace(job, html=None, page_error=str(exc)))
            self._trace(result)
        finally:
            slot.release()
        return (page.final_url if page is not None else entry.link or ""), result

    def _lines_of_site(self, url: str) -> frozenset[int]:
        """The site's repeated lines, an input of its pages' extraction jobs (cached for
        the pass)."""
        site = site_of(url)
        if site not in self._site_lines:
            self._site_lines[site] = self.store.site_lines(site)
        return self._site_lines[site]


def _ms_since(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)


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
    # its window and roll the fetch log here (index probes when nothing is due). The polls
    # are recorded already, so a failure here is only worth a warning; the next run tries
    # again.
    try:
        store.prune_bands(config.dedupe.band_window_days)
        store.prune_fetch_log(config.schedule.fetch_log_days)
    except StoreWriteError as exc:
        log.warning("%s", exc)
    return report
