"""Extraction: article HTML → `Article` with trafilatura, falling back to the feed's content.

Runs in worker processes (CPU-bound), so everything here takes and returns plain data.
`extract_job` is the worker entry point: it puts a time limit on the work and never raises.

The page is decoded and parsed once; metadata and body come from that one tree:
- body: first `pipeline.blocks` takes out of the tree the blocks that point elsewhere (a
  paragraph that is one link, a short card of links, the article's header block), unless
  they make up the page; then trafilatura in recall mode, which skips the
  external-extractor comparison on long texts (about a third cheaper than the default
  mode). Quality check: when that text covers less than MIN_PAGE_SHARE of the page's
  visible words, the default (balanced) mode runs as a fallback and the longer text wins.
  Then `pipeline.boilerplate` drops a repeated headline, datelines and bylines above the
  text, call-to-action and promotion lines, closing wire credits and the lines this site
  repeats across its pages (from the store).
- metadata: title, site name, description and canonical URL from trafilatura's meta-tag and
  JSON-LD readers; date, authors and language from `pipeline.metadata` (every signal of the
  page in order of trust). The page's date and the feed's are both kept; the feed's wins
  when there is one (htmldate's costly whole-page search is then skipped). The page's
  authors win over the feed's; the language is detected from the extracted text, the
  declared `<html lang>` kept beside it.
- extraction rules (a feed's or a site's, carried by the job): after the metadata is read,
  the `remove` selectors' elements leave the page, and the `body` selector's elements are the
  body, its block elements paragraphs; a body selector that matches nothing falls back to
  the general extraction and says so (`Article.rules_note`, quality flag `rule_missed`).
bench/bench_extraction.py measures the result against plain trafilatura on both corpus sets.
"""

from __future__ import annotations

import codecs
import contextlib
import re
import zlib
from dataclasses import replace
from importlib.metadata import version
from typing import Any

from pipeline import __version__, metadata
from pipeline.alarm import ExtractionTimeout, time_limit
from pipeline.blocks import drop_link_blocks, visible_words
from pipeline.boilerplate import clean_lines, line_keys
from pipeline.dedupe import article_id, canonical_url, same_site
from pipeline.errors import BodyTooLarge, PageNotText
from pipeline.messages import (
    FROM_FEED,
    FROM_PAGE,
    MAX_BYTES,
    RULE_MISSED,
    Article,
    Entry,
    ExtractJob,
    ExtractResult,
    ExtractRules,
    Page,
    TextSource,
)
from pipeline.neardup import fingerprint_article
from pipeline.text import clean, html_to_text, one_line, unreadable_share, word_count
from pipeline.times import utc_from_iso
from pipeline.values import http_url

# What made a stored text (kept with each article version): this newswire and its extractor.
EXTRACTOR = f"newswire-{__version__}/trafilatura-{version('trafilatura')}"

# Page text shorter than this share of the feed's own text means the page lost the story
# (paywall teaser, cookie wall, soft 404): keep the feed text instead.
FEED_PREFERRED_RATIO = 0.6
MIN_FEED_WORDS_FOR_FALLBACK = 40
# trafilatura needs ~40 bytes of memory per character of HTML (an 8 MB page: 320 MB and
# 22 s); real article pages are under 2 MB (the largest of the extraction corpora: 1.8 MB
# with its scripts), so more than this is cut, scripts first.
MAX_HTML_CHARS = 2_000_000
# Binary data sent as HTML decodes to a page whose characters are mostly U+FFFD and controls
# (random bytes: over half); trafilatura would take runs of them for paragraphs. Real pages
# stay under 0.3% (both extraction corpora); a Cyrillic page in an undeclared legacy charset
# comes near the limit, but its text would be as unreadable. The start of the page decides.
MAX_UNREADABLE_SHARE = 0.2
UNREADABLE_SAMPLE = 65_536  # characters
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


# A recall-mode text with fewer words than this share of the page's visible words missed
# the article (a listing-like layout): try the default mode too. 0.15 sends about 3% of the
# corpus pages to the fallback.
MIN_PAGE_SHARE = 0.15
LONG_ENOUGH = 2000  # words: a text this long is the article whatever the page holds besides

_HTML_LANG = re.compile(r"<html[^>]*?\slang=[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?", re.I)
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)


def page_language(html: str | None) -> str | None:
    """The page's declared language (`<html lang="en-GB">` → `en`), lower-cased."""
    match = _HTML_LANG.search(html[:5000]) if html else None
    return match.group(1).lower() if match else None


def trafilatura_text(lines: list[str]) -> str:
    """trafilatura separates paragraphs by one newline; the corpus uses a blank line.
    Its lines are already whitespace-normalised: only blank lines and controls go."""
    return clean("\n\n".join(text for line in lines if (text := line.strip())))


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


# WHATWG encoding labels that all mean windows-1252 in HTML (browsers never decode pages as
# strict Latin-1: its C1 range is where cp1252 keeps curly quotes and dashes).
_CP1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii",
                            "ascii", "iso_8859-1", "cp819", "ibm819", "x-cp1252"})


def _codec(label: str, in_document: bool) -> str | None:
    """The Python codec for a charset label, or None when unknown. A page's own meta tag
    cannot declare UTF-16/32 (an ASCII-compatible tag could not be read then)."""
    label = label.strip().lower()
    if label in _CP1252_LABELS:
        return "cp1252"
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return None if in_document and name.startswith(("utf-16", "utf-32")) else name


def decode_html(body: bytes, content_type: str = "") -> str:
    """Page bytes to text: a BOM, else the HTTP charset, else strict UTF-8, else a meta
    charset, else lenient UTF-8. Valid UTF-8 wins over a meta tag: stale declarations are
    common and multi-byte UTF-8 is rarely valid by accident. The benchmarks read the corpus
    pages with this too (bench/scoring.py)."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            return body[len(bom):].decode(encoding, errors="replace")
    match = _CHARSET.search(content_type)
    codec = _codec(match.group(1), in_document=False) if match else None
    if codec:
        return body.decode(codec, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    meta = _META_CHARSET.search(body[:16384])
    codec = _codec(meta.group(1).decode("ascii", "replace"), in_document=True) if meta else None
    return body.decode(codec or "utf-8", errors="replace")


def page_visible_words(tree: Any) -> int:
    """Words of the page's visible text."""
    body = tree.find(".//body")
    return visible_words(tree if body is None else body)


def extract_body(tree: Any, url: str) -> str:
    """The main text (lines separated by newlines) of `tree`, from which `pipeline.blocks`
    first takes the blocks that point elsewhere (in place): recall mode, and the default mode
    as a fallback when that covers too little of the page."""
    import trafilatura

    words_on_page = page_visible_words(tree)
    drop_link_blocks(tree, words_on_page)

    def body(favor_recall: bool) -> str:
        document: Any = trafilatura.bare_extraction(
            tree, url=url, include_comments=False, include_tables=True, with_metadata=False,
            favor_recall=favor_recall)
        return (document.text if document is not None else "") or ""

    text = body(favor_recall=True)
    words = len(text.split())
    if words < LONG_ENOUGH and words < MIN_PAGE_SHARE * words_on_page:
        fallback = body(favor_recall=False)
        if len(fallback) > len(text):
            text = fallback
    return text


def page_metadata(tree: Any, url: str, *, title: bool = True, date_search: bool = True
                  ) -> dict[str, Any]:
    """The page's metadata: title, site name, description, canonical URL and tags from
    trafilatura's meta-tag and JSON-LD readers; date and authors from `pipeline.metadata`.
    `title=False` spares the XPath title search and `date_search=False` htmldate's
    whole-page search when the feed entry already answers them."""
    from trafilatura import metadata as meta

    document = meta.examine_meta(tree)
    with contextlib.suppress(Exception):  # trafilatura's JSON-LD code has known bugs
        document = meta.extract_meta_json(tree, document)
    if title and not document.title:
        document.title = meta.extract_title(tree)
    if not document.url:
        document.url = meta.extract_url(tree, url)
    if not document.sitename:
        document.sitename = meta.extract_sitename(tree)
    if document.sitename:
        document.sitename = document.sitename.lstrip("@")
    document.author = document.date = None  # ours, below
    document.clean_and_trim()
    found = {key: getattr(document, key, None) for key in
             ("title", "url", "sitename", "description", "tags")}
    objects = metadata.json_ld(tree)
    window = metadata.headline_window(tree)
    found["date"], found["date_source"] = metadata.page_date(
        tree, url, objects, window, heuristics=date_search)
    found["author"], found["author_source"] = metadata.page_author(
        tree, url, objects, window, document.sitename)
    return found


def read_page(body: bytes, content_type: str = "", content_encoding: str = "",
              max_bytes: int = MAX_BYTES) -> str:
    """A page's bytes as fetched to text: its Content-Encoding undone (never past max_bytes:
    a gzip bomb stops there), then its charset decoded."""
    if content_encoding:
        from pipeline.fetch import decode_body

        body = decode_body(body, content_encoding, max_bytes)
    return decode_html(body, content_type)


def _select(tree: Any, selector: str) -> list[Any]:
    from lxml.cssselect import CSSSelector

    return list(CSSSelector(selector, translator="html")(tree))


def apply_rules(tree: Any, rules: ExtractRules) -> tuple[str | None, str]:
    """Apply extraction rules to a page's tree: drop the `remove` selectors' elements (in
    place), then take the text of the `body` selector's elements. (the body's text, or None
    when there is no body selector or it matched nothing; a note of what was done)."""
    import lxml.html

    notes = []
    removed = 0
    for selector in rules.remove:
        for element in _select(tree, selector):
            if element.getparent() is not None:
                element.drop_tree()  # its tail text stays
                removed += 1
    if rules.remove:
        notes.append(f"removed {removed} element{'s' * (removed != 1)} "
                     f"({', '.join(rules.remove)})")
    body = None
    if rules.body:
        matched = _select(tree, rules.body)
        outer = [e for e in matched if not any(a in matched for a in e.iterancestors())]
        if outer:
            fragment = "".join(lxml.html.tostring(e, encoding="unicode") for e in outer)
            body = html_to_text(fragment)
            notes.insert(0, f"body {rules.body!r} matched {len(outer)} element"
                            f"{'s' * (len(outer) != 1)}")
        else:
            notes.insert(0, f"body {rules.body!r} matched nothing: general extraction used")
    origin = f"{rules.origin}: " if rules.origin else ""
    return body, origin + "; ".join(notes)


def extract_page(job: ExtractJob
                 ) -> tuple[dict[str, Any], list[str], tuple[int, ...], str | None, bool]:
    """(metadata, cleaned text lines, keys of the raw lines, what the extraction rules did,
    whether a body rule matched nothing) of the job's page."""
    import trafilatura

    html = job.html
    if isinstance(html, bytes):
        html = read_page(html, job.content_type, job.content_encoding, job.max_bytes)
    share = unreadable_share((html or "")[:UNREADABLE_SAMPLE])
    if share > MAX_UNREADABLE_SHARE:
        raise PageNotText(f"page is not text: {share:.0%} of its first characters are "
                          f"undecodable bytes or control characters")
    html = trim_html(html or "")
    tree = trafilatura.load_html(html) if html else None
    if tree is None:
        return {}, [], (), None, False
    meta = page_metadata(tree, job.url, title=not job.entry_title,
                         date_search=not job.entry_published_at)
    meta["declared_language"] = page_language(html)
    ruled, note, missed = None, None, False
    if job.rules is not None:
        ruled, note = apply_rules(tree, job.rules)
        missed = bool(job.rules.body) and ruled is None
    if ruled is not None:
        lines = [line for line in ruled.split("\n") if line.strip()]
    else:
        lines = extract_body(tree, job.url).split("\n")
    titles = [t for t in (job.entry_title, meta.get("title")) if t]
    authors = [str(meta.get("author") or ""), *job.entry_authors]
    # Walls are judged on the text before the clean-up, which drops "Subscribe to continue
    # reading" as a promotion line.
    meta["walls"] = walls("\n".join(lines)[:2000])
    return (meta, clean_lines(lines, titles, job.site_lines, authors), line_keys(lines), note,
            missed)


def walls(text: str) -> list[str]:
    """The kinds of wall (paywall, cookie wall, JavaScript wall, soft 404) `text` shows."""
    return [kind for kind, phrases in _WALLS.items() if phrases.search(text)]


def extract_article(job: ExtractJob) -> Article:
    """Extract one page; fall back to the feed's content when the page fails or is thin."""
    feed_text = html_to_text(job.entry_content)
    meta: dict[str, Any] = {}
    error = job.page_error
    page_text = ""
    keys: tuple[int, ...] = ()
    rules_note, rule_missed = None, False
    if job.html is not None and error is None:
        try:
            with time_limit(job.timeout):
                meta, lines, keys, rules_note, rule_missed = extract_page(job)
            page_text = trafilatura_text(lines)
            if not page_text:
                error = "extractor found no main text"
        except (ExtractionTimeout, PageNotText) as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bad page must not stop the run
            error = f"extractor failed: {type(exc).__name__}: {exc}"

    flags: list[str] = [RULE_MISSED] if rule_missed else []
    page_words, feed_words = word_count(page_text), word_count(feed_text)
    if page_text and page_words < 150:
        shown = meta.get("walls") or []
        flags += ["wall", *shown] if shown else []
    use_feed = not page_text or (
        feed_words >= MIN_FEED_WORDS_FOR_FALLBACK
        and page_words < FEED_PREFERRED_RATIO * feed_words)
    if page_text and use_feed:
        flags.append("short")
    text = feed_text if use_feed and feed_text else page_text
    source: TextSource = FROM_FEED if use_feed and feed_text else FROM_PAGE
    if not text:
        flags.append("empty")

    canonical = job.url
    meta_url = http_url(meta.get("url"))
    if meta_url and same_site(meta_url, job.url):
        canonical = meta_url  # <link rel=canonical> / og:url, only when on the same site
    canonical = canonical_url(canonical)

    feed_author = metadata.normalise_authors(", ".join(job.entry_authors), strict=False)
    author = one_line(str(meta.get("author") or feed_author or ""), 300)
    declared = meta.get("declared_language")
    page_date = meta.get("date")
    tags = meta.get("tags")
    return Article(
        id=article_id(canonical),
        url=job.url,
        canonical_url=canonical,
        title=job.entry_title or one_line(str(meta.get("title") or "")),
        text=text,
        author=author or None,
        published_at=job.entry_published_at or utc_from_iso(page_date),
        language=metadata.detect_language(text) or declared or job.entry_language or None,
        sitename=one_line(str(meta.get("sitename") or ""), 300) or None,
        text_source=source,
        quality=",".join(flags) or None,
        extract_error=error,
        description=one_line(str(meta.get("description") or ""), 2000) or None,
        tags=tuple(str(t) for t in tags if t)[:50] if isinstance(tags, list) else (),
        line_keys=keys if source == FROM_PAGE else (),
        page_published_at=page_date,
        feed_published_at=job.entry_published_at,
        declared_language=declared,
        rules_note=rules_note,
    )


def extract_job(job: ExtractJob) -> Article:
    """Never raises, so one page cannot break a batch."""
    try:
        return extract_article(job)
    except Exception as exc:  # noqa: BLE001
        fallback = replace(job, html=None, page_error=f"{type(exc).__name__}: {exc}")
        return extract_article(fallback)


def extract_and_fingerprint(job: ExtractJob) -> ExtractResult:
    """The extraction stage (run in a worker): the article and its near-duplicate
    fingerprint, from the same text and title as every other path (import, reindex)."""
    article = extract_job(job)
    return ExtractResult(article, fingerprint_article(article))


def job_for(entry: Entry, page: Page | None, site_lines: frozenset[int], timeout: float,
            max_bytes: int, rules: ExtractRules | None = None) -> ExtractJob:
    """The extraction job of an entry and its fetched page (None: no page to fetch), with
    the extraction rules for the page (pipeline.config.Config.rules_for).

    A page over MAX_HTML_CHARS is decoded and trimmed here (rare), so it is not copied
    whole into a worker; every other page goes as sent and is decoded there."""
    html: bytes | None = None
    content_type = content_encoding = ""
    error = page.error if page else None
    if page is not None and page.body is not None:
        html, content_type, content_encoding = page.body, page.content_type, \
            page.content_encoding
        if len(html) > MAX_HTML_CHARS:
            try:
                html = trim_html(read_page(html, content_type, content_encoding,
                                           max_bytes)).encode()
                content_type, content_encoding = "text/html; charset=utf-8", ""
            except (BodyTooLarge, ValueError, zlib.error) as exc:
                html, error = None, f"bad page body: {exc}"
    return ExtractJob(
        url=page.final_url if page else (entry.link or ""), html=html,
        content_type=content_type, content_encoding=content_encoding, max_bytes=max_bytes,
        entry_title=entry.title, entry_content=entry.content or entry.summary,
        entry_published_at=entry.published_at, entry_authors=entry.authors,
        page_error=error, timeout=timeout,
        site_lines=site_lines if html is not None else frozenset(),
        rules=rules if html is not None else None, entry_language=entry.language)
