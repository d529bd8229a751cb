"""`newswire reextract`: the current extraction over the archived pages.

Each article whose text came from its page is extracted again from the page as archived
(pipeline.archive), with the same title and the site's current repeated lines, by the
engine (the local worker pool, or Celery workers). A text that comes out different becomes a
new version of the article (pipeline.store.versions: `articles` shows the newest, the
full-text index and the near-duplicate signature follow); the same text changes nothing, so
running it again with the same extractor changes nothing. The page's authors, own date and
languages (issue 12) are read again too and stored where they differ, so articles stored
before migration 10 gain `page_published_at` and `declared_language`; the chosen
`published_at` is only filled where it was empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipeline import archive
from pipeline.boilerplate import site_of
from pipeline.config import Config
from pipeline.dedupe import text_hash
from pipeline.engine import Engine, Trace
from pipeline.extract import EXTRACTOR
from pipeline.messages import (
    FROM_PAGE,
    REEXTRACT,
    ArchiveLocation,
    Article,
    ExtractJob,
    PageMetadata,
    Revision,
    RevisionBatch,
)
from pipeline.run import make_engine
from pipeline.store import Store, Writer

IN_FLIGHT = 64  # pages being extracted at once (the engine bounds its own work further)
BATCH = 200  # revisions per transaction


@dataclass
class ReextractReport:
    articles: int = 0
    unchanged: int = 0
    changed: int = 0
    missing: int = 0  # the archived record cannot be read (file gone, damaged)
    metadata: int = 0  # of the unchanged, those whose authors, dates or language changed

    def line(self) -> str:
        return (f"{self.articles} archived pages extracted again: {self.changed} changed "
                f"(new versions), {self.unchanged} unchanged ({self.metadata} with new "
                f"authors, dates or language), {self.missing} missing from the archive")


async def reextract(config: Config, store: Store, since: str | None = None,
                    site: str | None = None, progress: Callable[[int], None] | None = None,
                    engine: Engine | None = None, trace: Trace | None = None
                    ) -> ReextractReport:
    """Extract the archived pages again (those fetched at or after `since`, of one host and
    its subdomains with `site`); the caller holds the writer lock."""
    report = ReextractReport()
    lines: dict[str, frozenset[int]] = {}
    engine = engine or make_engine(config)
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(row: dict[str, Any]) -> Revision | None:
        location = ArchiveLocation(row["warc_file"], row["warc_offset"], row["warc_length"],
                                   row["warc_record_id"], row["warc_digest"])
        async with slots:
            try:
                capture = await asyncio.to_thread(archive.read, config.archive.dir, location)
            except (OSError, ValueError):
                report.missing += 1
                return None
            page_site = site_of(capture.url)
            if page_site not in lines:
                lines[page_site] = store.site_lines(page_site)
            job = ExtractJob(url=capture.url, html=capture.body,
                             entry_title=row["title"] or "", entry_content="",
                             entry_published_at=row["feed_published_at"],
                             timeout=config.extract.timeout,
                             content_type=capture.content_type,
                             content_encoding=capture.content_encoding,
                             max_bytes=config.fetch.max_bytes, site_lines=lines[page_site])
            result = await engine.extract(job)
        article = result.article
        if article.text_source != FROM_PAGE or not article.text:
            report.unchanged += 1
            return None
        page = _page_metadata(article, row)
        if text_hash(article.text) == row["text_hash"]:
            report.unchanged += 1
            if page is None:
                return None
            report.metadata += 1
            return Revision(row["id"], REEXTRACT, extractor=EXTRACTOR, page=page)
        report.changed += 1
        return Revision(row["id"], REEXTRACT, text=article.text, extractor=EXTRACTOR,
                        fingerprint=result.fingerprint, page=page)

    after = 0
    async with engine, Writer(store) as writer:
        while rows := store.archived_articles(since, after, BATCH):
            after = rows[-1]["rowid"]
            chunk = [row for row in rows if site is None or _on(site, row["url"])]
            report.articles += len(chunk)
            revisions = [r for r in await asyncio.gather(*(one(row) for row in chunk)) if r]
            if revisions:
                batch = RevisionBatch(tuple(revisions))
                if trace is not None:
                    trace(batch)
                await writer.write(batch)
            if progress:
                progress(len(chunk))
    return report


def _page_metadata(article: Article, row: dict[str, Any]) -> PageMetadata | None:
    """The page's authors, dates and languages as this extraction reads them (issue 12),
    or None when they are what is stored already. The job carried the feed's date only,
    so `article.published_at` is the feed's or else the page's own, in UTC."""
    page = PageMetadata.of(article)
    stored = [row["author"], row["page_published_at"], row["language"],
              row["declared_language"]]
    read = [page.author, page.page_published_at, page.language, page.declared_language]
    news = [new for new, old in zip(read, stored, strict=True) if new is not None and new != old]
    filling = row["published_at"] is None and page.published_at is not None
    return page if news or filling else None


def _on(site: str, url: object) -> bool:
    host = (urlsplit(str(url)).hostname or "").lower()
    site = site.lower().strip(".")
    return host == site or host.endswith("." + site)
