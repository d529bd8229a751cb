"""The messages that cross stage boundaries: small frozen dataclasses with a JSON form.

    FeedState ─► FeedRequest (FeedSettings) ─► fetch ─► FetchResult ─► parse ─►
    ParseOutcome (ParsedFeed: Entry...) ─► store plans ─► EntryPlan (StoredArticle...) ─►
    fetch page ─► Page ─► ExtractJob (ExtractRules) ─► extract and fingerprint ─►
    ExtractResult (Article, Fingerprint) ─► NewEntry ─► EntryBatch / PollResult ─► store
    writes ─► PollSummary

Every stage takes and returns these, never a connection or a socket, so a stage can run in a
worker process or on another machine. `to_dict()` gives plain JSON data and `from_dict()`
reads it back to an equal message: bytes travel as `{"$bytes": base64}` (or, from
ZIP_FROM bytes on, as `{"$zbytes": base64 of zlib}` when that is smaller: a page's HTML
shrinks about fivefold, and it crosses the broker twice) and sets as `{"$set": [...]}`,
tuples as lists, nested messages as objects.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import types
import typing
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Self, TypeVar

from pipeline.values import parse_retry_after, validator

M = TypeVar("M", bound="Message")

ZIP_FROM = 2048  # bytes values at least this long are compressed in the JSON form
ZIP_LEVEL = 1  # zlib's fastest: most of the gain for a fraction of the CPU

# Defaults of `extract.timeout` and `fetch.max_bytes` (pipeline.config starts from them),
# which the extraction messages carry.
EXTRACT_TIMEOUT = 30.0  # seconds
MAX_BYTES = 15_000_000  # a body decoded and decompressed, at most

# What links two articles (`duplicate_edges.kind`; `articles.duplicate_kind` holds the
# joining kinds): the same normalised text, a copy (near duplicate), or shared text that is
# not a copy. Only the joining kinds put an article in another's cluster.
DuplicateKind = Literal["exact", "near", "related"]
EXACT: Final = "exact"
NEAR: Final = "near"
RELATED: Final = "related"
JOINING_KINDS: Final = (EXACT, NEAR)

_NOT_MEDIA_TYPE = re.compile(r"[^\x21-\x7e]")  # what no media type holds (content_type)

# Where an article's text came from (`articles.text_source`): its page, its feed item (the
# page failed or was thin), or a seed-format file (`newswire import`).
TextSource = Literal["page", "feed", "import"]
FROM_PAGE: Final = "page"
FROM_FEED: Final = "feed"
FROM_IMPORT: Final = "import"

# Why an article has a version (`article_versions.reason`): the text it was first stored
# with, a feed entry that said it changed, `newswire reextract`, a failed page retried, or
# the article's own site's feed naming it after another site's feed had.
RevisionReason = Literal["first", "update", "reextract", "retry", "own-feed"]
FIRST: Final = "first"
UPDATE: Final = "update"
REEXTRACT: Final = "reextract"
RETRY: Final = "retry"  # a page that had failed, fetched again (pipeline.store.retries)
OWN_FEED: Final = "own-feed"  # pipeline.store.polls: the site's own feed speaks for it

RULE_MISSED: Final = "rule_missed"  # a quality flag: an extraction rule's body matched nothing


class Message:
    """Base of every message: the lossless JSON codec."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _encode(getattr(self, f.name))
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        hints = _hints(cls)
        return cls(**{name: _decode(hints[name], value) for name, value in data.items()
                      if name in hints})


def _encode(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_dict()
    if isinstance(value, bytes | bytearray):
        return _encode_bytes(bytes(value))
    if isinstance(value, set | frozenset):
        return {"$set": sorted((_encode(v) for v in value), key=repr)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _encode_bytes(value: bytes) -> dict[str, str]:
    if len(value) >= ZIP_FROM:
        packed = zlib.compress(value, ZIP_LEVEL)
        if len(packed) < len(value):
            return {"$zbytes": base64.b64encode(packed).decode("ascii")}
    return {"$bytes": base64.b64encode(value).decode("ascii")}


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a message class (cached: resolving them is slow)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _decode(hint: Any, value: Any) -> Any:
    if isinstance(value, dict) and "$bytes" in value:
        return base64.b64decode(value["$bytes"])
    if isinstance(value, dict) and "$zbytes" in value:
        return zlib.decompress(base64.b64decode(value["$zbytes"]))
    if isinstance(value, dict) and "$set" in value:
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return frozenset(_decode(item, v) for v in value["$set"])
    if value is None or hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return _decode_union(typing.get_args(hint), value)
    if isinstance(hint, type) and issubclass(hint, Message):
        return hint.from_dict(value)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin in (frozenset, set):
        (item,) = typing.get_args(hint)
        return frozenset(_decode(item, v) for v in value)
    if origin is dict:
        _key, item = typing.get_args(hint)
        return {k: _decode(item, v) for k, v in value.items()}
    return value


def _decode_union(arms: tuple[Any, ...], value: Any) -> Any:
    arms = tuple(a for a in arms if a is not type(None))
    if isinstance(value, dict):  # a message (or a mapping)
        for arm in arms:
            if isinstance(arm, type) and issubclass(arm, Message):
                return arm.from_dict(value)
    for arm in arms:
        if isinstance(arm, type) and not issubclass(arm, Message) and isinstance(value, arm):
            return value
    return _decode(arms[0], value)


# --- feeds and polls ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FeedState(Message):
    """A feed row, as the scheduler and the poller need it."""

    id: int
    url: str
    name: str | None
    etag: str | None
    last_modified: str | None
    next_poll_at: str | None
    last_polled_at: str | None
    consecutive_failures: int
    interval_seconds: float | None
    cron: str | None
    current_interval: float | None
    last_unconditional_at: str | None
    gone: bool
    config_url: str | None = None  # the URL in the config file: its settings' key


@dataclass(frozen=True)
class FeedSettings(Message):
    """How one feed is fetched, from its config entry (pipeline.config.FeedConfig.settings):
    the feed's requests and its pages' requests carry it to the fetcher.

    No secret travels here: the basic-auth password is named by an environment variable,
    read by the fetcher at request time. The credentials (`headers`, `auth_*`) go only to
    `scope`, the host (and explicit port) of the feed's configured URL, a `www.` prefix
    aside (pipeline.values.url_scope); the user agent and the proxy apply to every request
    made for the feed."""

    user_agent: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    auth_username: str | None = None
    auth_password_env: str | None = None
    proxy: str | None = None
    fetch_pages: bool = True
    scope: str = ""


@dataclass(frozen=True)
class FeedRequest(Message):
    """One feed fetch to make: with the validators, or without them when an unconditional
    fetch is due (pipeline.schedule.plan_request), and the feed's own settings."""

    feed_id: int
    url: str
    etag: str | None = None
    last_modified: str | None = None
    started_at: str = ""  # when the poll started (ISO, UTC)
    settings: FeedSettings = field(default_factory=FeedSettings)


@dataclass(frozen=True)
class FetchResult(Message):
    """What one GET produced: a response, or an error that says why not."""

    url: str
    final_url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    error_kind: str | None = None  # blocked, timeout, too_large, encoding, redirect, network,
    # auth (the feed's password variable is not set)
    permanent_redirect: str | None = None
    elapsed_ms: int = 0
    conditional: bool = False
    request_headers: dict[str, str] = field(default_factory=dict)  # as sent, for the archive

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    @property
    def not_modified(self) -> bool:
        return self.error is None and self.status == 304

    @property
    def etag(self) -> str | None:
        return validator(self.headers.get("etag"))

    @property
    def last_modified(self) -> str | None:
        return validator(self.headers.get("last-modified"))

    @property
    def content_type(self) -> str:
        """The media type, lower-cased; only printable ASCII (what a media type is made
        of): a server's terminal escapes must not reach errors, logs and the CLI."""
        kind = self.headers.get("content-type", "").split(";")[0].strip().lower()
        return _NOT_MEDIA_TYPE.sub("", kind)

    def retry_after(self, now: datetime | None = None) -> float | None:
        """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date)."""
        return parse_retry_after(self.headers.get("retry-after"), now)


@dataclass(frozen=True)
class Entry(Message):
    """One feed item, cleaned: plain-text title, absolute http(s) link, sane UTC date or None."""

    key: str
    guid: str | None
    link: str | None
    title: str
    summary: str  # HTML as the feed gave it (sanitised by feedparser)
    content: str  # HTML; the richest body the feed carries
    published_at: str | None
    published_raw: str | None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # the item's categories
    language: str | None = None  # declared by the item or its feed (`en`, `de`)
    updated_at: str | None = None  # the feed's own "updated" date, when it gives one


@dataclass(frozen=True)
class ParsedFeed(Message):
    title: str
    link: str | None
    version: str
    entries: tuple[Entry, ...]
    ttl_seconds: float | None = None
    warning: str | None = None
    total_entries: int = 0
    skipped_entries: int = 0  # items that could not be read (each is lost, not the feed)


@dataclass(frozen=True)
class ParseOutcome(Message):
    """A parsed feed, or why the body is not one."""

    feed: ParsedFeed | None = None
    error: str | None = None


@dataclass(frozen=True)
class FeedPolled(Message):
    """A feed fetched and, when it answered 200, parsed: what a worker sends back (the body
    stays in `response`: its size is the poll's `bytes`)."""

    response: FetchResult
    outcome: ParseOutcome | None = None


@dataclass(frozen=True)
class StoredArticle(Message):
    """What the filters read of an article already stored (pipeline.filters)."""

    id: str
    url: str
    author: str | None
    language: str | None
    text: str


@dataclass(frozen=True)
class EntryPlan(Message):
    """What the store knows of a poll's entries (pipeline.store.Store.plan_entries): the
    entries not seen in this feed before, the articles already stored under their links
    (canonical link → article id) and, when the feed's filters read them, those articles'
    fields (article id → StoredArticle)."""

    feed_id: int
    fresh: tuple[Entry, ...]
    stored: dict[str, str] = field(default_factory=dict)
    stored_articles: dict[str, StoredArticle] = field(default_factory=dict)


@dataclass(frozen=True)
class PageRetry(Message):
    """A page that failed, due another try (pipeline.store.retries): its article, and the
    feed entry that led to it as stored."""

    article_id: str
    link: str
    title: str
    published_at: str | None
    text: str | None  # the article's text, from the feed: what the page must beat


# --- pages and articles -----------------------------------------------------------------------

@dataclass(frozen=True)
class Page(Message):
    """An article page as fetched: the body undecoded (decoding is worker work), or why
    there is none."""

    url: str  # the entry's link
    final_url: str  # after redirects
    body: bytes | None = None
    content_type: str = ""  # the Content-Type header (its charset decodes the body)
    content_encoding: str = ""  # the body is still compressed this way
    error: str | None = None
    status: int | None = None  # the final response, as received: for the archive
    headers: dict[str, str] = field(default_factory=dict)
    request_headers: dict[str, str] = field(default_factory=dict)
    fetched_at: str = ""  # ISO, UTC


@dataclass(frozen=True)
class ExtractRules(Message):
    """A feed's or a site's extraction rules (pipeline.config): CSS selectors for the body
    and for elements to remove, applied before the general extraction."""

    body: str | None = None
    remove: tuple[str, ...] = ()
    origin: str = ""  # where the rules come from: `feed NAME` or `site HOST`


@dataclass(frozen=True)
class ExtractJob(Message):
    """What extraction needs to know about one entry, as plain data for a worker process."""

    url: str  # the page's final URL after redirects
    html: str | bytes | None  # the body as fetched (bytes are decoded here); None: no page
    entry_title: str
    entry_content: str  # the feed's HTML content or summary
    entry_published_at: str | None
    entry_authors: tuple[str, ...] = ()
    page_error: str | None = None
    timeout: float = EXTRACT_TIMEOUT
    content_type: str = ""  # the page's Content-Type header: its charset decodes bytes
    content_encoding: str = ""  # bytes still compressed this way (gzip, deflate) ...
    max_bytes: int = MAX_BYTES  # ... and decompressed to at most this many bytes
    site_lines: frozenset[int] = frozenset()  # line keys the page's site repeats (the store)
    rules: ExtractRules | None = None  # the feed's or the page's site's rules
    entry_language: str | None = None  # declared by the feed: the page's own comes first


@dataclass(frozen=True)
class Article(Message):
    id: str
    url: str
    canonical_url: str
    title: str
    text: str
    author: str | None  # the page's authors, else the feed's; several joined with ", "
    published_at: str | None  # UTC: the feed's date when it has one, else the page's
    language: str | None  # detected from the text, else the declared one
    sitename: str | None
    text_source: TextSource
    quality: str | None = None  # comma-separated flags, e.g. 'short,wall'
    extract_error: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    line_keys: tuple[int, ...] = ()  # the extracted lines before site filtering, for the store
    claimed_canonical_url: str | None = None  # a canonical claim refused (dedupe.keyed_by_page)
    # The page's own publication date as written there: ISO 8601 with the page's offset
    # ('2024-05-10T22:00:00-05:00'), a local time without one, or a day alone ('2024-05-10').
    page_published_at: str | None = None
    feed_published_at: str | None = None  # the feed item's date (UTC)
    declared_language: str | None = None  # the page's <html lang>, lower-cased primary tag
    rules_note: str | None = None  # what the extraction rules did, or that they matched nothing

    @property
    def flags(self) -> tuple[str, ...]:
        """The quality flags, `quality` split."""
        return tuple(self.quality.split(",")) if self.quality else ()


@dataclass(frozen=True)
class Fingerprint(Message):
    """What near-duplicate detection keeps of a body: small, storable (pipeline.neardup)."""

    signature: bytes  # NUM_PERM MinHash values as little-endian uint32
    shingles: int  # distinct 5-shingles in the body
    numbers: tuple[str, ...]  # figures of the title and the sentences, sorted (neardup.figures)
    anchors: tuple[int, ...] = ()  # anchor keys (signed 64-bit), ascending (neardup.anchor_keys)


@dataclass(frozen=True)
class ArchiveLocation(Message):
    """Where a fetched response is kept in the WARC archive (pipeline.archive)."""

    file: str  # relative to archive.dir
    offset: int
    length: int  # of the gzip member(s): the request record and the response record
    record_id: str  # the response record's WARC-Record-ID
    digest: str  # its WARC-Payload-Digest


@dataclass(frozen=True)
class ExtractResult(Message):
    """An extracted article and its near-duplicate fingerprint (None: too short)."""

    article: Article
    fingerprint: Fingerprint | None = None


@dataclass(frozen=True)
class PageTask(Message):
    """One entry's page to fetch and extract, with what extraction needs from the store: the
    repeated lines of the site its link points to (pipeline.store.lines)."""

    entry: Entry
    site: str  # pipeline.boilerplate.site_of(entry.link); "" without a link
    site_lines: frozenset[int] = frozenset()
    timeout: float = EXTRACT_TIMEOUT  # extraction time limit (extract.timeout)
    max_bytes: int = MAX_BYTES  # fetch.max_bytes
    settings: FeedSettings = field(default_factory=FeedSettings)  # the feed's own
    rules: ExtractRules | None = None  # for the site its link points to (Config.rules_for)


@dataclass(frozen=True)
class PageDone(Message):
    """A page task's outcome: the extraction (None when the link led to another site whose
    repeated lines the task did not carry: then extract `page` with those), and the page as
    fetched, for the archive."""

    final_url: str
    result: ExtractResult | None = None
    page: Page | None = None


# --- what the store records -------------------------------------------------------------------

@dataclass(frozen=True)
class NewEntry(Message):
    """A feed item seen for the first time, and the article it belongs to (if any)."""

    key: str
    guid: str | None
    link: str | None
    title: str
    published_at: str | None
    updated_at: str | None = None
    article: Article | None = None  # freshly extracted
    existing_article_id: str | None = None  # already stored under one of its URLs
    url_aliases: tuple[str, ...] = ()  # canonical forms of every URL that led to the article
    fingerprint: Fingerprint | None = None  # near-duplicate signature
    tags: tuple[str, ...] = ()  # the item's categories
    filtered_by: str | None = None  # the filter rule that kept it out of the corpus
    archived: ArchiveLocation | None = None  # the article's page in the archive

    @property
    def page_lost(self) -> bool:
        """Its page failed and nothing else gave a text (no feed content)."""
        return self.article is not None and not self.article.text and \
            bool(self.article.extract_error)


@dataclass(frozen=True)
class PageMetadata(Message):
    """The metadata a re-extraction read from an archived page (issue 12's columns)."""

    author: str | None = None
    page_published_at: str | None = None
    published_at: str | None = None  # the page's date in UTC: fills an empty published_at
    language: str | None = None
    declared_language: str | None = None

    @classmethod
    def of(cls, article: Article) -> PageMetadata:
        """What an extraction read of its page."""
        return cls(author=article.author, page_published_at=article.page_published_at,
                   published_at=article.published_at, language=article.language,
                   declared_language=article.declared_language)


@dataclass(frozen=True)
class Revision(Message):
    """A stored article's page read again (its feed entry changed, a re-extraction, or a
    retry of a page that had failed): its new title and text (None: unchanged), with the
    entry that announced it, if any. The store records a version only when something
    changed (pipeline.store.versions)."""

    article_id: str
    reason: RevisionReason  # UPDATE, REEXTRACT or RETRY (text None: the page failed again)
    title: str | None = None
    text: str | None = None
    extractor: str = ""  # pipeline.extract.EXTRACTOR
    archived: ArchiveLocation | None = None
    fingerprint: Fingerprint | None = None
    feed_id: int | None = None  # the entry that announced the change (update)
    entry_key: str | None = None
    entry_title: str | None = None
    entry_updated_at: str | None = None
    # What the page says of itself, read again (reextract; None keeps the stored value):
    # authors, its own date as written there and in UTC, detected and declared language.
    page: PageMetadata | None = None
    quality: str | None = None  # a retried page's quality flags (Article.quality)


@dataclass(frozen=True)
class RevisionBatch(Message):
    """Revisions written on their own (`newswire reextract`)."""

    revisions: tuple[Revision, ...]


@dataclass(frozen=True)
class EntryBatch(Message):
    """Some of a poll's new entries, written ahead of the poll's PollResult.

    Only entries: the feed's validators and schedule change with the PollResult alone, so a
    crash between batches leaves the feed due with its old validators, and the next poll
    skips the entries already written and continues with the rest.
    """

    feed_id: int
    entries: tuple[NewEntry, ...]
    feed_link: str | None = None  # the site the feed says it is of (its <link>)


@dataclass(frozen=True)
class PollResult(Message):
    """Everything one poll of one feed produced, recorded in one transaction."""

    feed_id: int
    started_at: str
    duration_ms: int
    status: int | None
    bytes: int
    error: str | None
    next_poll_at: str | None
    consecutive_failures: int
    current_interval: float | None
    etag: str | None = None
    last_modified: str | None = None
    feed_title: str | None = None
    feed_link: str | None = None  # the site the feed says it is of (its <link>)
    new_url: str | None = None  # after a permanent redirect
    gone: bool = False
    conditional: bool = False
    warning: str | None = None
    entries: tuple[NewEntry, ...] = ()
    storage_error: bool = False  # the poll's own write failed (recorded as far as possible)
    archived: ArchiveLocation | None = None  # the parsed feed body in the archive
    revisions: tuple[Revision, ...] = ()  # stored articles whose entries changed
    skipped_entries: int = 0  # items of the feed that could not be read
    # A poll with many new entries is written in batches (EntryBatch) before this result,
    # which carries the last batch: these count the entries and articles already written.
    batched_entries: int = 0
    batched_articles: int = 0

    @property
    def new_entry_count(self) -> int:
        return self.batched_entries + len(self.entries)


@dataclass(frozen=True)
class PollSummary(Message):
    new_entries: int = 0
    new_articles: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    revised: int = 0  # stored articles given a new version

    def __add__(self, other: PollSummary) -> PollSummary:
        return PollSummary(self.new_entries + other.new_entries,
                           self.new_articles + other.new_articles,
                           self.exact_duplicates + other.exact_duplicates,
                           self.near_duplicates + other.near_duplicates,
                           self.revised + other.revised)


MESSAGES: tuple[type[Message], ...] = (
    FeedState, FeedSettings, FeedRequest, FetchResult, Entry, ParsedFeed, ParseOutcome,
    FeedPolled, StoredArticle, EntryPlan, PageTask, Page, ExtractRules, ExtractJob, Article,
    Fingerprint, ExtractResult, PageDone, ArchiveLocation, NewEntry, Revision, RevisionBatch,
    EntryBatch, PollResult, PollSummary)
