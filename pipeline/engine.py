"""Where the stages run: in this process and its worker pool (`LocalEngine`, the default), or
on Celery workers anywhere (pipeline.celery_engine). The Runner sends the same messages to
either through `Engine`, and the same two compositions of stages run in both:

    poll_feed:    FeedRequest ─fetch_feed─► FetchResult ─parse_response─► FeedPolled
    process_page: PageTask ─fetch_page─► Page ─job_for─► ExtractJob ─extract_and_fingerprint─►
                  PageDone (or the Page back, when the link led to another site, whose
                  repeated lines the coordinator looks up before `extract`)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import TracebackType
from typing import Protocol

from pipeline.boilerplate import site_of
from pipeline.config import Config
from pipeline.errors import WorkerCrashed
from pipeline.extract import extract_and_fingerprint, job_for
from pipeline.fetch import Fetcher, Resolver, Slot, system_resolver
from pipeline.messages import (
    ExtractJob,
    ExtractResult,
    FeedPolled,
    FeedRequest,
    FetchResult,
    Message,
    PageDone,
    PageTask,
    ParseOutcome,
)
from pipeline.parse import parse_response
from pipeline.pool import WorkerPool

MAX_PAGES_IN_FLIGHT = 32  # pages fetched or being extracted at once: bounds the HTML held
# One feed's pages in flight at once, its share of those: a feed whose pages are slow, or
# each hit the extraction time limit, on hosts enough that per-host limits do not bind,
# leaves the other feeds room in the slots and the worker pool's queue.
PAGES_PER_FEED = 8

Trace = Callable[[Message], None]


class Engine(Protocol):
    """What the Runner asks of the place where stages run."""

    async def __aenter__(self) -> Engine: ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None: ...

    async def ready(self) -> None:
        """Raise EngineError when the engine cannot take work now (no broker, no worker)."""

    async def poll_feed(self, request: FeedRequest, max_entries: int) -> FeedPolled: ...

    async def process_page(self, task: PageTask) -> PageDone: ...

    async def extract(self, job: ExtractJob) -> ExtractResult: ...


# --- the two compositions, shared by every engine ---------------------------------------------

async def poll_feed(fetcher: Fetcher, request: FeedRequest,
                    parse: Callable[[FetchResult], Awaitable[ParseOutcome]]) -> FeedPolled:
    """Fetch a feed and parse it when it answered 200."""
    response = await fetcher.fetch_feed(request)
    outcome = None
    if response.ok:
        outcome = await parse(response)
    return FeedPolled(response, outcome)


async def process_page(fetcher: Fetcher, task: PageTask,
                       extract: Callable[[ExtractJob], Awaitable[ExtractResult]],
                       slot: Slot | None = None, trace: Trace | None = None) -> PageDone:
    """Fetch an entry's page (none without a link) and extract it with the site's lines;
    a page that ended up on another site comes back unextracted (see PageDone)."""
    link = task.entry.link if task.settings.fetch_pages else None
    page = await fetcher.fetch_page(link, slot, task.settings) if link else None
    if slot is not None:
        await slot.take()  # extraction is work too, page or not
    if trace is not None and page is not None:
        trace(page)
    final_url = page.final_url if page is not None else (task.entry.link or "")
    fetched = page is not None and page.body is not None
    if fetched and site_of(final_url) != task.site:
        return PageDone(final_url, page=page)
    job = job_for(task.entry, page, task.site_lines if fetched else frozenset(),
                  task.timeout, task.max_bytes, task.rules if fetched else None)
    if trace is not None:
        trace(job)
    return PageDone(final_url, await extract(job), page if fetched else None)


# --- this process ------------------------------------------------------------------------------

class LocalEngine:
    """The stages in this process: fetching on its event loop, parsing and extraction in its
    worker pool. A page holds one of MAX_PAGES_IN_FLIGHT slots from the moment its host lets
    the request go until its extraction returns, so fetched HTML never piles up; waiting for
    its host's turn holds none, so a slow host cannot starve the others."""

    def __init__(self, config: Config, resolver: Resolver = system_resolver,
                 trace: Trace | None = None) -> None:
        self.config = config
        self.trace = trace
        self.fetcher = Fetcher(config.fetch, resolver)
        self.pool = WorkerPool(config.extract)
        self._pages = asyncio.Semaphore(MAX_PAGES_IN_FLIGHT)

    async def __aenter__(self) -> LocalEngine:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.fetcher.aclose()
        self.pool.close()

    async def ready(self) -> None:
        """Always: the work runs here."""

    async def poll_feed(self, request: FeedRequest, max_entries: int) -> FeedPolled:
        async def parse(response: FetchResult) -> ParseOutcome:
            try:
                return await self.pool.run(parse_response, response, max_entries,
                                           self.config.extract.timeout)
            except WorkerCrashed as exc:
                return ParseOutcome(error=str(exc))

        return await poll_feed(self.fetcher, request, parse)

    async def process_page(self, task: PageTask) -> PageDone:
        slot = Slot(self._pages)
        try:
            return await process_page(self.fetcher, task, self._extract, slot, self.trace)
        finally:
            slot.release()

    async def extract(self, job: ExtractJob) -> ExtractResult:
        slot = Slot(self._pages)
        try:
            await slot.take()
            return await self._extract(job)
        finally:
            slot.release()

    async def _extract(self, job: ExtractJob) -> ExtractResult:
        try:
            return await self.pool.run(extract_and_fingerprint, job)
        except WorkerCrashed as exc:  # keep the entry: the feed's own content, no page
            return extract_and_fingerprint(replace(job, html=None, page_error=str(exc)))
