"""One poll of one feed end to end, and one pass over all due feeds: composition only.

    FeedState ─plan_request─► FeedRequest ─engine.poll_feed (fetch, parse)─► FeedPolled
    ─store.plan_entries─► EntryPlan ─filters (title, url)─► PageTask ─engine.process_page
    (fetch, extract, fingerprint)─► PageDone ─filters (text, author, language)─► NewEntry
    ─► EntryBatch / PollResult ─writer─► PollSummary

A feed's config entry gives its settings (user agent, headers, auth, proxy, whether pages
are fetched: the FeedSettings its requests carry), its extraction rules (else its pages'
site's, carried by the ExtractJob) and, with the global ones, its filters (pipeline.filters).

Every arrow is a stage function on messages (pipeline.messages) defined in its own module:
the schedule decides, the engine fetches, parses and extracts (in this process and its
worker pool, or on Celery workers: pipeline.engine), the store plans from what it knows and
its writer records. This module only calls them in order and bounds what is in flight, so
memory stays flat however large the backlog: feeds are pulled from the due list by a fixed
number of pollers, and a poll works through its entries in batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import TypeVar

from pipeline import filters
from pipeline.archive import Archiver, Capture
from pipeline.boilerplate import site_of
from pipeline.config import Config, FeedConfig
from pipeline.dedupe import canonical_url, entry_article_id
from pipeline.engine import PAGES_PER_FEED, Engine, LocalEngine, Trace
from pipeline.errors import EngineError, StoreError, StoreWriteError
from pipeline.extract import EXTRACTOR, job_for
from pipeline.fetch import Resolver, system_resolver
from pipeline.messages import (
    FROM_PAGE,
    RETRY,
    RULE_MISSED,
    UPDATE,
    ArchiveLocation,
    Entry,
    EntryBatch,
    EntryPlan,
    ExtractResult,
    FeedSettings,
    FeedState,
    Message,
    NewEntry,
    PageMetadata,
    PageRetry,
    PageTask,
    PollResult,
    PollSummary,
    Revision,
)
from pipeline.metrics import Metrics
from pipeline.outcome import (
    Outcome,
    crashed,
    poll_outcome,
    poll_result,
    response_error,
    write_failed,
)
from pipeline.schedule import plan_request
from pipeline.store import Store, Writer

log = logging.getLogger("newswire")

MAX_FEEDS_IN_FLIGHT = 16
ENTRY_BATCH = 50  # a poll's entries are planned, extracted and written this many at a time

_Extracted = tuple[str, ExtractResult, ArchiveLocation | None]  # final url, article, archive
PageFuture = asyncio.Task[_Extracted]
T = TypeVar("T")


@dataclass(frozen=True)
class FeedPlan:
    """A feed's own settings for one poll (from its config entry): how its requests are
    made, the extraction rules of its pages, and the filters its entries pass through."""

    config: FeedConfig
    settings: FeedSettings
    filters: tuple[filters.FilterSet, ...]

    @property
    def page_variant(self) -> Hashable:
        """What makes this feed's fetch and extraction of a page differ from another
        feed's: None for default settings, so feeds carrying the same story share one."""
        if not self.config.changes_pages:
            return None
        return (self.settings, self.config.rules)


@dataclass
class RunReport:
    """What a pass over the feeds did, for the CLI's summary line."""

    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    throttled: int = 0
    failed: int = 0  # failed, gone (410) or not stored
    new_entries: int = 0
    new_articles: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, feed: FeedState, result: PollResult, summary: PollSummary) -> None:
        self.feeds += 1
        outcome = poll_outcome(result)
        if outcome == Outcome.OK:
            self.ok += 1
        elif outcome == Outcome.NOT_MODIFIED:
            self.not_modified += 1
        elif outcome == Outcome.THROTTLED:
            self.throttled += 1
        else:
            self.failed += 1
            self.errors.append((feed.url, result.error or outcome))
        self.new_entries += summary.new_entries
        self.new_articles += summary.new_articles
        self.exact_duplicates += summary.exact_duplicates
        self.near_duplicates += summary.near_duplicates

    def line(self) -> str:
        return (f"{self.feeds} feeds polled: {self.ok} updated, {self.not_modified} not "
                f"modified, {self.throttled} throttled, {self.failed} failed; "
                f"{self.new_entries} new entries, "
                f"{self.new_articles} new articles ({self.exact_duplicates} exact and "
                f"{self.near_duplicates} near duplicates)")


class Runner:
    """The fetcher, worker pool and writer of a run or a daemon, and the order of stages.

    `trace`, when given, sees every message as it crosses a stage boundary."""

    def __init__(self, config: Config, store: Store, resolver: Resolver = system_resolver,
                 metrics: Metrics | None = None, trace: Trace | None = None,
                 engine: Engine | None = None) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.trace = trace
        self.engine = engine or make_engine(config, resolver, trace)
        self.archiver = Archiver(config.archive) if config.archive.enabled else None
        self.writer = Writer(store, self.archiver.sync if self.archiver else None)
        self.stopping = False
        # Pages being fetched in this pass, by canonical URL (and the feed's page settings,
        # FeedPlan.page_variant): feeds that carry the same story share one fetch and one
        # extraction. Dropped once their batch is written.
        self._page_tasks: dict[str, dict[Hashable, PageFuture]] = {}
        self._done_at_last_look: set[PageFuture] = set()
        self._site_lines: dict[str, frozenset[int]] = {}  # per pass (daemon: per tick)
        # The daemon's feeds, polled as they fall due (queue_due, keep_polling): those
        # queued or being polled are not queued again.
        self._queue: asyncio.Queue[FeedState | None] = asyncio.Queue()
        self._claimed: set[int] = set()
        self._fatal: list[StoreError] = []
        self.on_fatal: Callable[[], None] | None = None  # told when the database fails

    async def __aenter__(self) -> Runner:
        await self.engine.__aenter__()
        await self.writer.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.writer.__aexit__(exc_type, exc, tb)  # everything handed over is written
        await self.engine.__aexit__(exc_type, exc, tb)
        if self.archiver is not None:
            self.archiver.close()

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
        if due:
            await self.engine.ready()
        if self.metrics:
            self.metrics.observe_pass(len(due), self.store.health_counts(
                self.config.schedule.dead_after))
        feeds: Iterator[FeedState] = iter(due)
        halted = False  # the pass cannot go on: start no more polls

        async def poller() -> None:
            for feed in feeds:  # the pollers share one iterator: each feed is polled once
                if self.stopping or halted:
                    return
                result, summary = await self.poll_and_record(feed)
                report.add(feed, result, summary)
                if progress:
                    progress(feed, result)

        try:
            await asyncio.gather(*(poller() for _ in range(MAX_FEEDS_IN_FLIGHT)))
        except (StoreError, EngineError, asyncio.CancelledError):  # the pass cannot go on
            halted = True  # the other pollers start no more polls
            raise
        finally:
            self._page_tasks.clear()
            self._site_lines.clear()
        return report

    # -- the daemon: each feed polled as it falls due

    async def queue_due(self) -> int:
        """Queue the due feeds that are not queued or being polled already, for the
        pollers of `keep_polling` (the daemon's tick); returns how many were queued.

        A pass (run_due) ends with its slowest poll, and a feed falling due meanwhile waits
        for it: one feed whose pages trickle to their deadline would set every other
        feed's pace. Here a slow poll holds one poller, and the others go on."""
        self._refresh_caches()
        due = [feed for feed in self.store.due_feeds(self.config.schedule)
               if feed.id not in self._claimed and self._has_read(feed)]
        if due:
            await self.engine.ready()  # EngineError: nothing queued, the next tick asks again
            if self.stopping:
                return 0
        for feed in due:
            self._claimed.add(feed.id)
            self._queue.put_nowait(feed)
        if self.metrics:
            self.metrics.observe_pass(len(self._claimed), self.store.health_counts(
                self.config.schedule.dead_after))
        return len(due)

    def _has_read(self, feed: FeedState) -> bool:
        """Whether the running config has the feed's line. The database can list a feed
        from a config the daemon has not read yet (`newswire add` while it runs), and a
        reload can take away the line of a feed already queued: such a feed is not polled
        without its settings (it waits for the daemon to read its line)."""
        return feed.config_url is None or self.config.feed_config(feed.config_url) is not None

    async def keep_polling(self) -> None:
        """Poll the queued feeds, MAX_FEEDS_IN_FLIGHT at a time, until `stop_polling`:
        returns once the polls in flight are written. Raises StoreError when the database
        can no longer be used (the other pollers finish their polls first)."""
        async def poller() -> None:
            while (feed := await self._queue.get()) is not None:
                try:
                    # A reload since it was queued may have taken its line away.
                    if not self.stopping and self._has_read(feed):
                        await self.poll_and_record(feed)
                except EngineError as exc:  # workers or broker away: feeds stay due
                    log.warning("poll pass skipped: %s", exc)
                    self._drop_queued()
                except StoreError as exc:  # the database is unusable: stop
                    self._fatal.append(exc)
                    self.stop_polling()
                    if self.on_fatal is not None:
                        self.on_fatal()
                except Exception:  # noqa: BLE001 - a bug here must not stop the pollers
                    log.exception("poll of %s failed", feed.url)
                finally:
                    self._claimed.discard(feed.id)

        await asyncio.gather(*(poller() for _ in range(MAX_FEEDS_IN_FLIGHT)))
        if self._fatal:
            raise self._fatal[0]

    @property
    def in_flight(self) -> int:
        """The daemon's feeds queued or being polled."""
        return len(self._claimed)

    def stop_polling(self) -> None:
        """Start no more polls: the queued feeds stay due, the pollers return once their
        poll in flight is written."""
        self.stopping = True
        self._drop_queued()
        for _ in range(MAX_FEEDS_IN_FLIGHT):
            self._queue.put_nowait(None)

    def _drop_queued(self) -> None:
        """Empty the queue of feeds (they stay due); the pollers' stop marks stay."""
        stops = 0
        while not self._queue.empty():
            feed = self._queue.get_nowait()
            if feed is None:
                stops += 1
            else:
                self._claimed.discard(feed.id)
        for _ in range(stops):
            self._queue.put_nowait(None)

    def _refresh_caches(self) -> None:
        """What a pass caches, kept fresh in a daemon whose polls never all end at once:
        the sites' repeated lines read again; pages done by the previous tick forgotten
        (written ones are already; this drops those of polls that crashed or could not be
        written, and their entries have had a tick to be planned against the store)."""
        self._site_lines.clear()
        done = {task for tasks in self._page_tasks.values() for task in tasks.values()
                if task.done()}
        for url, tasks in list(self._page_tasks.items()):
            for variant, task in list(tasks.items()):
                if task in self._done_at_last_look:
                    del tasks[variant]
            if not tasks:
                del self._page_tasks[url]
        self._done_at_last_look = done - self._done_at_last_look

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
        except (StoreError, EngineError):  # no feed can be polled or recorded: stop the run
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

    def feed_plan(self, feed: FeedState) -> FeedPlan:
        """The feed's config entry (defaults for a feed added to the database only) as the
        settings, rules and filters of its poll."""
        config = self.config.feed_config(feed.config_url) or FeedConfig(url=feed.url)
        return FeedPlan(config, config.settings(),
                        filters.filter_sets(self.config.filters, config.filters))

    async def _poll(self, feed: FeedState, started: datetime, clock: float
                    ) -> tuple[PollResult, PollSummary, StoreWriteError | None]:
        """The stages of one poll, writing its entry batches as they are ready: (the poll's
        result, what the batches wrote, the write error that stopped them)."""
        self._trace(feed)
        own = self.feed_plan(feed)
        request = plan_request(feed, self.config.schedule, started, own.settings)
        self._trace(request)
        polled = await self.engine.poll_feed(request, self.config.extract.max_entries_per_poll)
        self._trace(polled)
        response, outcome = polled.response, polled.outcome
        archived = None
        if outcome is not None and response.status is not None:  # a feed body was parsed
            archived = await self._archive(Capture(
                response.final_url, response.status, response.headers, response.body,
                response.request_headers, request.started_at, decoded=True))
        error = response_error(response)
        entries: tuple[Entry, ...] = ()
        parsed = None
        if outcome is not None:
            if outcome.feed is None:
                kind = response.content_type or "no Content-Type"
                error = f"feed parse error ({kind}): {outcome.error}"
            else:
                parsed = outcome.feed
                entries = parsed.entries

        fresh = self.store.unseen_entries(feed.id, entries)
        revisions = await self._revisions(feed, own, entries)
        written, last, write_error = await self._store_entries(
            feed, own, fresh, keep_last=True, feed_link=parsed.link if parsed else None)
        result = replace(poll_result(feed, response, parsed, error, len(fresh), last, written,
                                     started, _ms_since(clock), self.config.schedule),
                         archived=archived, revisions=revisions)
        return result, written, write_error

    async def ingest(self, feed: FeedState, entries: Sequence[Entry]
                     ) -> tuple[PollSummary, list[NewEntry]]:
        """Entries from elsewhere than a feed poll (a sitemap backfill) for a source feed:
        the new ones planned, their pages fetched and extracted, written in batches. An
        entry whose page failed with no text to keep is not written but returned: a source
        is never polled, so only a run that tries it again can fetch it."""
        fresh = self.store.unseen_entries(feed.id, entries)
        lost: list[NewEntry] = []
        written, _last, write_error = await self._store_entries(
            feed, self.feed_plan(feed), fresh, keep_last=False, lost=lost)
        if write_error is not None:
            raise write_error
        return written, lost

    async def _store_entries(self, feed: FeedState, own: FeedPlan, fresh: Sequence[Entry],
                             keep_last: bool, feed_link: str | None = None,
                             lost: list[NewEntry] | None = None
                             ) -> tuple[PollSummary, tuple[NewEntry, ...],
                                        StoreWriteError | None]:
        """New entries planned, extracted and written ENTRY_BATCH at a time: (what the
        batches wrote, the last batch unwritten when `keep_last` (it goes with the poll),
        the write error that stopped them). `feed_link`: the site the feed is of. With
        `lost`, the entries whose page failed with no text go there, unwritten."""
        written, last = PollSummary(), tuple[NewEntry, ...]()
        share = asyncio.Semaphore(PAGES_PER_FEED)  # a feed's share of the pages in flight
        for start in range(0, len(fresh), ENTRY_BATCH):
            plan = self.store.plan_entries(feed.id, fresh[start:start + ENTRY_BATCH],
                                           with_articles=filters.reads_articles(own.filters))
            self._trace(plan)
            new = tuple(await asyncio.gather(*(
                _within(share, self._entry_with_article(feed, own, entry, plan))
                for entry in plan.fresh)))
            if lost is not None:
                lost += [e for e in new if e.page_lost]
                new = tuple(e for e in new if not e.page_lost)
            if keep_last and start + ENTRY_BATCH >= len(fresh):
                last = new  # written with the poll, validators and all
                break
            batch = EntryBatch(feed.id, new, feed_link)
            self._trace(batch)
            try:
                written += await self.writer.write(batch)
            except StoreWriteError as exc:
                return written, last, exc  # the poll is not recorded: its feed stays due
            self._forget_pages(e.link for e in new)
        return written, last, None

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
                tasks = self._page_tasks.get(canonical_url(link), {})
                for variant, task in list(tasks.items()):
                    if task.done():
                        del tasks[variant]
                if not tasks:
                    self._page_tasks.pop(canonical_url(link), None)

    # -- entries and their pages

    async def _revisions(self, feed: FeedState, own: FeedPlan, entries: Sequence[Entry]
                         ) -> tuple[Revision, ...]:
        """Stored articles whose feed entry changed (a new title, a later `updated`), and
        this feed's articles whose page failed and is due another try
        (pipeline.store.retries): their pages fetched again, politely, and their new text
        (the store keeps a version only when something changed)."""
        async def revise(entry: Entry, article_id: str, refetch: bool) -> Revision:
            base = Revision(article_id, UPDATE, feed_id=feed.id, entry_key=entry.key,
                            entry_title=entry.title, entry_updated_at=entry.updated_at)
            if not refetch or not entry.link or not own.settings.fetch_pages:
                return base
            _url, result, archived = await self._article(entry, own)
            page = result.article.text_source == FROM_PAGE  # else the page failed: keep ours
            return replace(base, title=entry.title, text=result.article.text if page else None,
                           extractor=EXTRACTOR, archived=archived,
                           fingerprint=result.fingerprint if page else None)

        async def retry(due: PageRetry, changed: Entry | None) -> Revision:
            # The entry as stored (or as the feed now gives it, when it changed), its
            # content the article's text (from the feed): the page's text must beat it, as
            # at the first try.
            title = changed.title if changed else None
            entry = Entry(key="", guid=None, link=due.link, title=title or due.title,
                          summary="", content=due.text or "", published_at=due.published_at,
                          published_raw=None)
            _url, result, archived = await self._article(entry, own)
            article = result.article
            if article.extract_error:  # failed again: the store counts it
                return Revision(due.article_id, RETRY, title=title, feed_id=feed.id)
            page = article.text_source == FROM_PAGE
            return Revision(due.article_id, RETRY, title=title,
                            text=article.text if page else None, extractor=EXTRACTOR,
                            archived=archived, fingerprint=result.fingerprint if page else None,
                            page=PageMetadata.of(article), quality=article.quality,
                            feed_id=feed.id)

        retries = self.store.page_retries(feed.id) if own.settings.fetch_pages else []
        retried = {due.article_id for due in retries}
        changed = self.store.changed_entries(feed.id, entries)
        refetched = {article_id: entry for entry, article_id, refetch in changed if refetch}
        share = asyncio.Semaphore(PAGES_PER_FEED)  # a feed's share of the pages in flight
        # An article due a retry has its page fetched once, by the retry, with the new title.
        return tuple(await asyncio.gather(
            *(_within(share, revise(entry, article_id, refetch and article_id not in retried))
              for entry, article_id, refetch in changed),
            *(_within(share, retry(due, refetched.get(due.article_id))) for due in retries)))

    async def _entry_with_article(self, feed: FeedState, own: FeedPlan, entry: Entry,
                                  plan: EntryPlan) -> NewEntry:
        """A new entry with its article: already stored under its link, or extracted; or
        the filter rule that keeps it out (a blocked title or URL is decided before its page
        is fetched, text, author and language once it is extracted)."""
        new = NewEntry(key=entry.key, guid=entry.guid, link=entry.link, title=entry.title,
                       published_at=entry.published_at, updated_at=entry.updated_at,
                       tags=entry.tags)
        rule = filters.verdict(own.filters, filters.before_fetch(entry))
        if rule is not None:
            return replace(new, filtered_by=rule)
        existing = plan.stored.get(canonical_url(entry.link)) if entry.link else None
        if existing:  # the same article reached us through another feed or URL
            stored = plan.stored_articles.get(existing)
            rule = filters.verdict(own.filters, filters.after_extract(entry, stored)) \
                if stored is not None else None
            if rule is not None:
                return replace(new, filtered_by=rule)
            return replace(new, existing_article_id=existing)
        if entry.link:
            key = canonical_url(entry.link)
            tasks = self._page_tasks.setdefault(key, {})
            if own.page_variant not in tasks:
                tasks[own.page_variant] = asyncio.ensure_future(self._article(entry, own))
            page_url, result, archived = await tasks[own.page_variant]
            article = result.article
        else:  # no URL at all: the feed's content, with an id from the feed and entry key
            page_url, result, archived = await self._article(entry, own)
            article = replace(result.article, id=entry_article_id(feed.url, entry.key),
                              url="", canonical_url="")
        rule = filters.verdict(own.filters, filters.after_extract(entry, article))
        if rule is not None:
            return replace(new, filtered_by=rule)
        aliases = {canonical_url(u) for u in (entry.link, page_url, article.canonical_url) if u}
        return replace(new, article=article, url_aliases=tuple(sorted(aliases)),
                       fingerprint=result.fingerprint, archived=archived)

    async def _article(self, entry: Entry, own: FeedPlan) -> _Extracted:
        """The entry's page fetched (unless its feed says `fetch_pages: false`) with the
        feed's settings, archived, and extracted with the rules and repeated lines of its
        site, by the engine: (final url, extraction, archive location)."""
        link = entry.link if own.settings.fetch_pages else None
        task = PageTask(entry, site_of(link) if link else "",
                        self._lines_of_site(link) if link else frozenset(),
                        self.config.extract.timeout, self.config.fetch.max_bytes,
                        own.settings, self.config.rules_for(own.config, link) if link else None)
        self._trace(task)
        done = await self.engine.process_page(task)
        self._trace(done)
        archived, page = None, done.page
        if page is not None and page.body is not None:
            archived = await self._archive(Capture(
                page.final_url, page.status or 200, page.headers, page.body,
                page.request_headers, page.fetched_at))
        result = done.result
        if result is None:  # the link led to another site: extract with that site's own
            assert done.page is not None
            job = job_for(entry, done.page, self._lines_of_site(done.final_url),
                          task.timeout, task.max_bytes,
                          self.config.rules_for(own.config, done.final_url))
            self._trace(job)
            result = await self.engine.extract(job)
        self._trace(result)
        if result.article.rules_note and RULE_MISSED in result.article.flags:
            log.warning("extraction rule matched nothing", extra={"fields": {
                "url": done.final_url, "rules": result.article.rules_note}})
        return done.final_url, result, archived

    async def _archive(self, capture: Capture) -> ArchiveLocation | None:
        """Keep a fetched response in the archive; its location, or None when the archive is
        off or cannot be written (the article is stored all the same)."""
        if self.archiver is None:
            return None
        try:
            return await self.archiver.store(capture)
        except OSError as exc:
            log.warning("could not archive %s: %s", capture.url, exc)
            return None

    def _lines_of_site(self, url: str) -> frozenset[int]:
        """The site's repeated lines, an input of its pages' extraction jobs (cached for
        the pass)."""
        site = site_of(url)
        if site not in self._site_lines:
            self._site_lines[site] = self.store.site_lines(site)
        return self._site_lines[site]


def make_engine(config: Config, resolver: Resolver = system_resolver,
                trace: Trace | None = None) -> Engine:
    """The engine the config names (`engine.kind`)."""
    if config.engine.kind == "celery":
        from pipeline.celery_engine import CeleryEngine  # Celery only where it is used

        return CeleryEngine(config)
    return LocalEngine(config, resolver, trace)


async def _within(share: asyncio.Semaphore, work: Awaitable[T]) -> T:
    """`work` done holding one of `share`'s places (a feed's share of the pages in flight)."""
    async with share:
        return await work


def _ms_since(clock: float) -> int:
    return int((time.monotonic() - clock) * 1000)


async def run_once(config: Config, store: Store, include_all: bool = False,
                   resolver: Resolver = system_resolver,
                   progress: Callable[[FeedState, PollResult], None] | None = None
                   ) -> RunReport:
    """Sync the config's feeds into the store and poll the due ones once."""
    store.sync_config(config)
    async with Runner(config, store, resolver) as runner:
        report = await runner.run_due(include_all=include_all, progress=progress)
    # Cron-driven installs have no daemon: its upkeep runs here (index probes and one scan
    # of the week's site lines when nothing is due). The polls are recorded already, so a
    # failure here is only worth a warning; the next run tries again.
    try:
        store.maintenance(config)
    except StoreWriteError as exc:
        log.warning("%s", exc)
    return report
