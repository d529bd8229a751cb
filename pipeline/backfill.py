"""`newswire backfill`: ingest from WARC files (CC-NEWS layout) or news sitemaps through the
same stages as a feed poll.

- **WARC** (`--warc PATH_OR_URL ...`): local WARC / WARC.gz files, or http(s) URLs fetched
  through the guarded fetcher into a temporary file beside the database (streamed, never
  whole in memory). Records are read one at a time: the HTML `response` records (status
  200, http(s) target, `--site`, `--since` / `--until` on WARC-Date) are extracted by the
  engine (the local worker pool, or Celery workers) and stored; request, metadata and
  warcinfo records, non-HTML responses and records whose payload digest does not match are
  skipped and counted; a truncated end stops that file after what it read. A local file's
  records are the articles' archive (the article points at its offset in the file).
- **Sitemap** (`--sitemap URL`): a news sitemap, a plain one or a sitemap index (followed
  to MAX_SITEMAPS files), fetched politely through the guarded fetcher; each page listed
  (`--since` on its publication date or lastmod) is fetched and ingested as a feed entry
  would be.

Each WARC file and each sitemap is recorded as an inactive source feed whose entries are its
records or pages, so running the same backfill again adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from pipeline import archive
from pipeline.boilerplate import site_of
from pipeline.config import Config
from pipeline.dedupe import canonical_url
from pipeline.engine import Engine
from pipeline.errors import BodyTooLarge, FeedParseError
from pipeline.extract import job_for
from pipeline.fetch import HTML_TYPES, Fetcher, Resolver, decode_body, system_resolver
from pipeline.messages import (
    ArchiveLocation,
    Entry,
    NewEntry,
    Page,
    PollResult,
    PollSummary,
)
from pipeline.outcome import recorded
from pipeline.parse import entry_key
from pipeline.run import Runner, make_engine
from pipeline.sitemaps import parse_sitemap
from pipeline.store import Store, Writer
from pipeline.times import iso, parse_iso
from pipeline.values import http_url

BATCH = 100  # records extracted and written together
DOWNLOAD_TIMEOUT = 6 * 3600.0  # a whole WARC file over HTTP (gigabytes)
MAX_SITEMAPS = 1000

Progress = Callable[[int], None]


@dataclass
class BackfillReport:
    sources: int = 0
    records: int = 0  # WARC records read, or sitemap URLs listed
    pages: int = 0  # HTML pages taken
    skipped: int = 0  # not HTML, filtered out, bad digest, or already ingested
    summary: PollSummary = field(default_factory=PollSummary)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        s = self.summary
        return (f"{self.sources} sources, {self.records} records: {self.pages} pages, "
                f"{s.new_articles} new articles ({s.exact_duplicates} exact and "
                f"{s.near_duplicates} near duplicates), {self.skipped} skipped, "
                f"{len(self.errors)} errors")


@dataclass(frozen=True)
class Filters:
    site: str | None = None
    since: str | None = None  # ISO UTC
    until: str | None = None

    def keep(self, url: str, when: str | None) -> bool:
        if self.site:
            host = (urlsplit(url).hostname or "").lower()
            site = self.site.lower().strip(".")
            if host != site and not host.endswith("." + site):
                return False
        try:
            parsed = parse_iso(when)
        except ValueError:
            parsed = None
        stamp = iso(parsed) if parsed else None
        if self.since and (stamp is None or stamp < self.since):
            return False
        return not (self.until and stamp and stamp >= self.until)


# --- WARC ------------------------------------------------------------------------------------

async def backfill_warc(config: Config, store: Store, sources: list[str], filters: Filters,
                        progress: Progress | None = None,
                        resolver: Resolver = system_resolver) -> BackfillReport:
    """Ingest the HTML responses of WARC files (the caller holds the writer lock)."""
    report = BackfillReport()
    engine = make_engine(config, resolver)
    async with engine, Writer(store) as writer:
        for source in sources:
            report.sources += 1
            try:
                async with _local_copy(config, source, resolver) as (path, kept):
                    await _one_warc(config, store, engine, writer, source, path, kept,
                                    filters, report, progress)
            except (OSError, ValueError) as exc:
                report.errors.append((source, str(exc)))
    return report


@contextlib.asynccontextmanager
async def _local_copy(config: Config, source: str, resolver: Resolver
                      ) -> Any:
    """(path, whether the file stays): a local file as it is, or a URL downloaded first."""
    if http_url(source) is None:
        path = Path(source)
        if not path.is_file():
            raise ValueError("not a file, nor an http(s) URL")
        yield path, True
        return
    handle, name = tempfile.mkstemp(prefix="newswire-backfill-", suffix=".warc",
                                    dir=config.database.parent)
    try:
        with os.fdopen(handle, "wb") as sink:
            async with Fetcher(config.fetch, resolver) as fetcher:
                result = await fetcher.fetch(source, accept="application/warc, */*",
                                             sink=sink, timeout=DOWNLOAD_TIMEOUT)
        if not result.ok:
            raise ValueError(result.error or f"HTTP {result.status}")
        yield Path(name), False
    finally:
        Path(name).unlink(missing_ok=True)


async def _one_warc(config: Config, store: Store, engine: Engine, writer: Writer,
                    source: str, path: Path, kept: bool, filters: Filters,
                    report: BackfillReport, progress: Progress | None) -> None:
    uri = source if http_url(source) else path.resolve().as_uri()
    feed_id = store.source_feed(uri, f"backfill: {Path(urlsplit(uri).path).name}")
    lines: dict[str, frozenset[int]] = {}
    with open(path, "rb") as handle:
        for chunk in _chunks(_pages(handle, path, kept, config.fetch.max_bytes, filters,
                                    report), BATCH):
            known = store.known_entry_keys(feed_id, [key for key, *_ in chunk])
            report.skipped += len(known)
            fresh = [item for item in chunk if item[0] not in known]
            started = datetime.now(UTC)
            new = await asyncio.gather(*(_extract(config, store, engine, lines, *item)
                                         for item in fresh))
            summary = await writer.write(PollResult(
                feed_id=feed_id, started_at=iso(started), duration_ms=0, status=None,
                bytes=sum(len(item[1].body or b"") for item in fresh), error=None,
                next_poll_at=None, consecutive_failures=0, current_interval=None,
                feed_title=f"backfill: {path.name}", entries=tuple(new)))
            report.summary += summary
            if progress:
                progress(len(chunk))


def _pages(handle: IO[bytes], path: Path, kept: bool, max_bytes: int, filters: Filters,
           report: BackfillReport
           ) -> Iterator[tuple[str, Page, ArchiveLocation | None]]:
    """(record id, page fetched at its WARC-Date, where it is) for each HTML response to
    take."""
    records = archive.reader(handle)
    try:
        for record in records:
            report.records += 1
            if record.rec_type != "response" or record.http_headers is None:
                report.skipped += 1
                continue
            url = http_url(record.rec_headers.get_header("WARC-Target-URI") or "")
            when = record.rec_headers.get_header("WARC-Date")
            kind = (record.http_headers.get_header("Content-Type") or "").split(";")[0]
            status = record.http_headers.get_statuscode()
            if url is None or status != "200" or kind.strip().lower() not in HTML_TYPES \
                    or not filters.keep(url, when):
                report.skipped += 1
                continue
            body = record.content_stream().read(max_bytes + 1)
            if len(body) > max_bytes:
                report.skipped += 1
                continue
            record.content_stream().read()  # the rest, for the digest check
            if getattr(record.raw_stream, "limit", 0):  # the file ended inside the record
                raise EOFError(f"record at {records.get_record_offset()} is truncated")
            if record.digest_checker.passed is False:
                report.skipped += 1
                report.errors.append((f"{path.name}@{records.get_record_offset()}",
                                      "payload digest does not match"))
                continue
            report.pages += 1
            record_id = record.rec_headers.get_header("WARC-Record-ID")
            location = ArchiveLocation(str(path.resolve()), records.get_record_offset(),
                                       records.get_record_length(), record_id, "") \
                if kept else None
            page = Page(url, url, body, content_type=kind, fetched_at=when or "")
            yield record_id, page, location
    except Exception as exc:  # noqa: BLE001 - a truncated or damaged end: keep what was read
        report.errors.append((path.name, f"stopped reading: {type(exc).__name__}: {exc}"))


async def _extract(config: Config, store: Store, engine: Engine,
                   lines: dict[str, frozenset[int]], key: str, page: Page,
                   location: ArchiveLocation | None) -> NewEntry:
    site = site_of(page.url)
    if site not in lines:
        lines[site] = store.site_lines(site)
    entry = Entry(key=key, guid=key, link=page.url, title="", summary="", content="",
                  published_at=None, published_raw=None)
    result = await engine.extract(job_for(entry, page, lines[site], config.extract.timeout,
                                          config.fetch.max_bytes))
    article = result.article
    aliases = tuple(sorted({canonical_url(page.url), article.canonical_url} - {""}))
    return NewEntry(key=key, guid=key, link=page.url, title=article.title,
                    published_at=article.published_at, article=article,
                    url_aliases=aliases, fingerprint=result.fingerprint, archived=location)


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- sitemaps -----------------------------------------------------------------------------------

def _gunzipped(body: bytes, limit: int) -> bytes:
    """A sitemap as served: a `sitemap.xml.gz` comes gzipped with no Content-Encoding (the
    protocol allows it), and is unpacked here to at most `limit` bytes."""
    return decode_body(body, "gzip", limit) if body[:2] == b"\x1f\x8b" else body


async def backfill_sitemap(config: Config, store: Store, url: str, filters: Filters,
                           progress: Progress | None = None,
                           resolver: Resolver = system_resolver) -> BackfillReport:
    """Ingest the pages a sitemap (or sitemap index) lists (the caller holds the lock)."""
    report = BackfillReport(sources=1)
    feed_id = store.source_feed(url, f"backfill: {url}")
    feed = store.feed(feed_id)
    async with Runner(config, store, resolver) as runner, \
            Fetcher(config.fetch, resolver) as fetcher:
        pending, seen = [url], set[str]()
        while pending and len(seen) < MAX_SITEMAPS:
            current = pending.pop(0)
            if current in seen:
                continue
            seen.add(current)
            response = await fetcher.fetch(current, accept="application/xml, text/xml, */*")
            if not response.ok:
                report.errors.append((current, response.error or f"HTTP {response.status}"))
                continue
            try:
                sitemap = parse_sitemap(_gunzipped(response.body, config.fetch.max_bytes))
            except (FeedParseError, BodyTooLarge, ValueError, zlib.error) as exc:
                report.errors.append((current, str(exc) or type(exc).__name__))
                continue
            # Only as many as can still be read: indexes of 50,000 sitemaps each must not
            # queue millions of URLs.
            room = MAX_SITEMAPS - len(seen) - len(pending)
            pending.extend(u for u in sitemap.children[:max(room, 0)] if u not in seen)
            report.records += len(sitemap.urls)
            entries = [Entry(key=entry_key(None, item.url, item.title, ""), guid=None,
                             link=item.url, title=item.title, summary="", content="",
                             published_at=item.published_at, published_raw=None,
                             language=item.language)
                       for item in sitemap.urls if filters.keep(item.url, item.published_at)]
            report.skipped += len(sitemap.urls) - len(entries)
            for start in range(0, len(entries), BATCH):
                chunk = entries[start:start + BATCH]
                summary, lost = await runner.ingest(feed, chunk)
                report.errors += [(e.link or "", e.article.extract_error or "")
                                  for e in lost if e.article is not None]
                report.pages += summary.new_entries
                report.skipped += len(chunk) - summary.new_entries - len(lost)
                report.summary += summary
                if progress:
                    progress(len(chunk))
        await runner.writer.write(PollResult(
            feed_id=feed_id, started_at=iso(datetime.now(UTC)), duration_ms=0, status=200,
            bytes=0, error=recorded("; ".join(f"{u}: {e}" for u, e in report.errors)),
            next_poll_at=None, consecutive_failures=0, current_interval=None,
            feed_title=f"backfill: {url}"))
    return report
