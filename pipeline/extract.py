"""Extraction: article HTML → `Article` with trafilatura, falling back to the feed's content.

Runs in worker processes (CPU-bound), so everything here takes and returns plain data.
`extract_job` is the worker entry point: it puts a time limit on trafilatura and never raises.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import trafilatura

from pipeline.dedupe import article_id, canonical_url, same_site
from pipeline.text import html_to_text, normalise_paragraphs, one_line, word_count

# Page text shorter than this share of the feed's own text means the page lost the story
# (paywall teaser, cookie wall, soft 404): keep the feed text instead.
FEED_PREFERRED_RATIO = 0.6
MIN_FEED_WORDS_FOR_FALLBACK = 40
# trafilatura needs ~40 bytes of memory per character of HTML (an 8 MB page: 320 MB and
# 22 s); real article pages are under 2 MB (the largest of the extraction corpora: 1.8 MB
# with its scripts), so more than this is cut, scripts first.
MAX_HTML_CHARS = 2_000_000
_INERT_START = re.compile(r"<(script|style)\b", re.I)

# What a page shows instead of the story; each kind becomes a quality flag besides 'wall'.
_WALLS = {
    "javascript": re.compile(r"enable javascript|javascript (is )?(required|disabled)", re.I),
    "paywall": re.compile(r"subscribe to (continue|read)|already a subscriber|"
                          r"sign in to (continue|read)", re.I),
    "cookies": re.compile(r"accept (all )?cookies|cookie (settings|consent)", re.I),
    "soft404": re.compile(r"page (was |you were looking for )?(not found|could not be found)|"
                          r"404 not found", re.I),
}


_HTML_LANG = re.compile(r"<html[^>]*?\slang=[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?", re.I)


def page_language(html: str | None) -> str | None:
    """The page's declared language (`<html lang="en-GB">` → `en`), lower-cased."""
    match = _HTML_LANG.search(html[:5000]) if html else None
    return match.group(1).lower() if match else None


class ExtractionTimeout(Exception):
    pass


@dataclass(frozen=True)
class ExtractJob:
    """What extraction needs to know about one entry, as plain data for a worker process."""

    url: str  # the page's final URL after redirects
    html: str | None  # None when the page could not be fetched
    entry_title: str
    entry_content: str  # the feed's HTML content or summary
    entry_published_at: str | None
    entry_authors: tuple[str, ...] = ()
    page_error: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class Article:
    id: str
    url: str
    canonical_url: str
    title: str
    text: str
    author: str | None
    published_at: str | None
    language: str | None
    sitename: str | None
    text_source: str  # 'page' or 'feed'
    quality: str | None = None  # comma-separated flags, e.g. 'short,wall'
    extract_error: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ExtractionTimeout after `seconds` (main thread of a process only; else a no-op)."""
    try:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
    except ValueError:  # not the main thread: rely on the caller's own deadline
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _on_alarm(signum: int, frame: object) -> None:
    raise ExtractionTimeout("extraction time limit exceeded")


def trafilatura_text(text: str | None) -> str:
    """trafilatura separates paragraphs by one newline; the corpus uses a blank line."""
    if not text:
        return ""
    return normalise_paragraphs("\n\n".join(line for line in text.split("\n")))


def _date_from_metadata(date: str | None) -> str | None:
    if not date:
        return None
    try:
        when = datetime.strptime(date[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    if when.year < 1990 or when > datetime.now(UTC):
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def trim_html(html: str, limit: int = MAX_HTML_CHARS) -> str:
    """At most `limit` characters of html; when over, scripts and styles go first (they
    carry no article text). Linear: an unclosed <script> drops the rest, as browsers do."""
    if len(html) <= limit:
        return html
    lower, parts, pos = html.lower(), [], 0
    while (match := _INERT_START.search(lower, pos)) is not None:
        parts.append(html[pos:match.start()])
        close = lower.find(f"</{match.group(1)}", match.end())
        if close < 0:
            pos = len(html)
            break
        end = lower.find(">", close)
        pos = len(html) if end < 0 else end + 1
    parts.append(html[pos:])
    return "".join(parts)[:limit]


def run_trafilatura(html: str, url: str) -> dict[str, object] | None:
    """trafilatura's bare extraction with metadata, comments off, as a plain dict."""
    document = trafilatura.bare_extraction(
        html, url=url, include_comments=False, with_metadata=True, include_tables=True)
    if document is None:
        return None
    return document.as_dict() if hasattr(document, "as_dict") else dict(document)


def extract_article(job: ExtractJob) -> Article:
    """Extract one page; fall back to the feed's content when the page fails or is thin."""
    feed_text = html_to_text(job.entry_content)
    meta: dict[str, object] = {}
    error = job.page_error
    page_text = ""
    if job.html is not None and error is None:
        try:
            with time_limit(job.timeout):
                meta = run_trafilatura(trim_html(job.html), job.url) or {}
            page_text = trafilatura_text(str(meta.get("text") or ""))
            if not page_text:
                error = "extractor found no main text"
        except ExtractionTimeout as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bad page must not stop the run
            error = f"extractor failed: {type(exc).__name__}: {exc}"

    flags: list[str] = []
    page_words, feed_words = word_count(page_text), word_count(feed_text)
    if page_text and page_words < 150:
        walls = [kind for kind, phrases in _WALLS.items() if phrases.search(page_text[:2000])]
        flags += ["wall", *walls] if walls else []
    use_feed = not page_text or (
        feed_words >= MIN_FEED_WORDS_FOR_FALLBACK
        and page_words < FEED_PREFERRED_RATIO * feed_words)
    if page_text and use_feed:
        flags.append("short")
    text = feed_text if use_feed and feed_text else page_text
    source = "feed" if use_feed and feed_text else "page"
    if not text:
        flags.append("empty")

    canonical = job.url
    meta_url = meta.get("url")
    if isinstance(meta_url, str) and meta_url.startswith(("http://", "https://")) and \
            same_site(meta_url, job.url):
        canonical = meta_url  # <link rel=canonical> / og:url, only when on the same site
    canonical = canonical_url(canonical)

    author = one_line(str(meta.get("author") or ""), 300) or (
        ", ".join(job.entry_authors)[:300] if job.entry_authors else None)
    return Article(
        id=article_id(canonical),
        url=job.url,
        canonical_url=canonical,
        title=job.entry_title or one_line(str(meta.get("title") or ""), 1000),
        text=text,
        author=author or None,
        published_at=job.entry_published_at or _date_from_metadata(
            str(meta.get("date") or "") or None),
        language=str(meta.get("language") or "") or page_language(job.html),
        sitename=one_line(str(meta.get("sitename") or ""), 300) or None,
        text_source=source,
        quality=",".join(flags) or None,
        extract_error=error,
        description=one_line(str(meta.get("description") or ""), 2000) or None,
        tags=tuple(str(t) for t in (meta.get("tags") or []) if t)[:50]
        if isinstance(meta.get("tags"), list) else (),
    )


def extract_job(job: ExtractJob) -> Article:
    """Worker entry point: never raises, so one page cannot break a batch."""
    try:
        return extract_article(job)
    except Exception as exc:  # noqa: BLE001
        fallback = replace(job, html=None, page_error=f"{type(exc).__name__}: {exc}")
        return extract_article(fallback)
