"""Feed parsing: feedparser → `ParsedFeed` with plain-data `Entry` items.

feedparser is always handed `io.BytesIO(body)` with the response headers: given a string it
would treat it as a path or URL and read local files, and without the headers its charset
precedence rules cannot apply. Every exception is caught and returned as `FeedParseError`.
"""

from __future__ import annotations

import calendar
import codecs
import contextlib
import hashlib
import html
import io
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import lxml.etree
from feedparser.encodings import convert_to_utf8

from pipeline.alarm import ExtractionTimeout, time_limit
from pipeline.config import ExtractConfig
from pipeline.dates import parse_date
from pipeline.dedupe import canonical_url, separate_items
from pipeline.errors import FeedParseError
from pipeline.messages import EXTRACT_TIMEOUT, Entry, FetchResult, ParsedFeed, ParseOutcome
from pipeline.text import clean, one_line, plain_title
from pipeline.times import iso, sane_published
from pipeline.values import MAX_SECONDS, http_url, parse_int

MAX_ENTITY_EXPANSION = 1_000_000  # characters an internal DTD may add to a document
MAX_FIELD = 1_000_000


# --- hostile-DTD pre-scan -----------------------------------------------------------------

_PROLOG_END = re.compile(rb"<\w")  # the first element, where feedparser stops reading the DTD
_ENTITY = re.compile(rb"<!ENTITY\s+(%\s+)?([^\s]+)\s+(SYSTEM|PUBLIC|\"[^\"]*\"|'[^']*')", re.S)
_REF = re.compile(rb"&([A-Za-z_][\w.-]*);")


def check_entities(body: bytes) -> None:
    """Refuse external entities and internal ones that would expand a document too far.

    feedparser's loose fallback parser expands internal entities without any limit (a 160 KB
    feed became a 2 GB title), so this runs before it. Small, ordinary DTDs pass.
    feedparser takes entity declarations from everything before the first element, however
    long, so all of that is scanned: padding must not push a DTD out of view.
    """
    first = _PROLOG_END.search(body)
    head = body[:first.start()] if first else body
    values: dict[bytes, bytes] = {}
    for m in _ENTITY.finditer(head):
        if m.group(3) in (b"SYSTEM", b"PUBLIC"):
            raise FeedParseError(f"external entity {m.group(2).decode(errors='replace')!r} "
                                 "refused")
        values[m.group(2)] = m.group(3)[1:-1]
    if not values:
        return
    sizes: dict[bytes, int] = {}

    def size(name: bytes, depth: int = 0) -> int:
        if name in sizes:
            return sizes[name]
        if depth > 20:
            raise FeedParseError("entity nesting too deep")
        value = values.get(name, b"")
        total = len(value) + sum(size(r, depth + 1) for r in _REF.findall(value) if r in values)
        sizes[name] = min(total, MAX_ENTITY_EXPANSION + 1)
        return sizes[name]

    rest = body[len(head):]
    expansion = 0
    for ref in _REF.findall(rest):
        if ref in values:
            expansion += size(ref)
            if expansion > MAX_ENTITY_EXPANSION:
                raise FeedParseError("entity expansion too large (billion laughs / quadratic "
                                     "blowup refused)")


# --- dates, links, keys ---------------------------------------------------------------------

def sane_date(parsed: Any, now: datetime | None = None) -> str | None:
    """ISO 8601 UTC from feedparser's UTC struct_time, or None when absent or absurd."""
    if not parsed:
        return None
    try:
        when = datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, TypeError, OSError):
        return None
    return iso(when) if sane_published(when, now) else None


def http_link(value: Any) -> str | None:
    """The link if it is an absolute http(s) URL with a host, else None."""
    return http_url(clean(value)) if isinstance(value, str) else None


def entry_key(guid: str | None, link: str | None, title: str, content: str) -> str:
    """GUID, else the canonical link, else a hash of title and content."""
    if guid:
        return "guid:" + guid
    if link:
        return "link:" + canonical_url(link)
    digest = hashlib.sha256(f"{title}\x00{content}".encode()).hexdigest()[:32]
    return "hash:" + digest


# --- the parser -------------------------------------------------------------------------------

def _link_values(entry: Any) -> list[str]:
    """The item's link as feedparser read it: `link`, then the `links` hrefs."""
    values = [entry.get("link")] + [item.get("href") for item in entry.get("links") or []]
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _first_link(entry: Any, alternatives: dict[str, str]) -> str | None:
    """The item's http(s) link. When its link is something else (`at://...`), the http(s)
    URL another element or attribute of the item carries: feedburner:origLink, or what
    `link_alternatives` found beside it in the document."""
    link = http_link(entry.get("link"))
    if link:
        return link
    for item in entry.get("links") or []:
        if item.get("rel", "alternate") == "alternate":
            link = http_link(item.get("href"))
            if link:
                return link
    guid = entry.get("id")
    if entry.get("guidislink") and guid:
        link = http_link(guid)
        if link:
            return link
    link = http_link(entry.get("feedburner_origlink"))
    if link:
        return link
    return next((alternatives[v] for v in _link_values(entry) if v in alternatives), None)


_ITEM_TAGS = frozenset({"item", "entry"})
_LINK_ATTRIBUTES = ("href", "uri", "url")


def _local_name(element: Any) -> str:
    """An element's name without namespace or prefix, lower-cased; "" for comments and
    processing instructions. A recovering parser leaves names QName() refuses ("dc:",
    "lihttp:"), so the tag string is split instead, and may leave undecodable bytes in it."""
    try:
        tag = element.tag
    except (UnicodeDecodeError, ValueError):
        return ""
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2].rpartition(":")[2].lower()


def _text_and_attributes(element: Any, names: tuple[str, ...]) -> list[str | None]:
    """The element's attributes `names` and its text; none of them when a recovered
    document gives undecodable bytes (a lone surrogate's UTF-8) for any."""
    try:
        return [element.get(name) for name in names] + [element.text]
    except (UnicodeDecodeError, ValueError):
        return []


def link_alternatives(body: bytes, base: str) -> dict[str, str]:
    """For each item link of the document that is not http(s), the http(s) URL the same
    item carries elsewhere: the link element's text or another of its attributes
    (`<link uri="at://...">https://...</link>`, whose text feedparser drops),
    feedburner:origLink, or a permalink GUID. Read only when an item needs it; the parser
    resolves no entities and fetches nothing."""
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                  huge_tree=False, recover=True)
    try:
        root = lxml.etree.fromstring(body, parser)
    except (lxml.etree.XMLSyntaxError, ValueError):
        return {}
    found: dict[str, str] = {}
    if root is None:
        return found
    for item in root.iter():
        if _local_name(item) not in _ITEM_TAGS:
            continue
        unusable: list[str] = []
        usable: list[str] = []
        for child in item:
            name = _local_name(child)
            if name == "link":
                values = _text_and_attributes(child, _LINK_ATTRIBUTES)
            elif name == "origlink":
                values = _text_and_attributes(child, ())
            elif name == "guid":
                permalink, *values = _text_and_attributes(child, ("isPermaLink",)) or [None]
                if (permalink or "true").strip().lower() == "false":
                    continue
            else:
                continue
            for value in values:
                if not isinstance(value, str) or not value.strip():
                    continue
                value = value.strip()
                url = http_link(urljoin(base, value) if base else value)
                if url:
                    usable.append(url)
                elif name == "link":
                    unusable.append(value)
        if usable:
            for value in unusable:
                found.setdefault(value, usable[0])
    return found


def _needs_alternatives(raw_entries: list[Any]) -> bool:
    return any(not http_link(raw.get("link")) and _link_values(raw)
               and not http_link(raw.get("feedburner_origlink")) for raw in raw_entries)


def _content(entry: Any) -> str:
    best = ""
    for item in entry.get("content") or []:
        value = item.get("value") or ""
        if len(value) > len(best):
            best = value
    return clean(best or entry.get("summary") or "", MAX_FIELD)


def title_kind(detail: Any, declared: bool) -> str | None:
    """What a title says it is, for `plain_title`: Atom declares "text" (its default) or
    HTML; RSS, RDF and JSON Feed declare nothing (None)."""
    if not declared:
        return None
    kind = str(detail.get("type", "")) if isinstance(detail, dict) else ""
    return "html" if "html" in kind else "text"


_LANGUAGE = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9-]*)?\s*$")


def language_code(value: Any) -> str | None:
    """The primary language subtag, lower-cased (`de-DE` → `de`), or None."""
    match = _LANGUAGE.match(value) if isinstance(value, str) else None
    return match.group(1).lower() if match else None


def _entry_language(raw: Any, feed_language: str | None) -> str | None:
    for key in ("title_detail", "summary_detail"):
        detail = dict.get(raw, key)
        if isinstance(detail, dict) and language_code(detail.get("language")):
            return language_code(detail.get("language"))
    return language_code(dict.get(raw, "language")) or feed_language


def _published(raw: Any, now: datetime) -> tuple[str | None, str | None]:
    """(sane UTC date, the raw string) of the item's published, else updated, else created
    date; one feedparser could not read in a common language read here (pipeline.dates)."""
    first_raw = None
    for key in ("published", "updated", "created"):
        # dict.get: feedparser's .get maps a missing `published` to `updated`, with a warning
        value = dict.get(raw, key)
        parsed = dict.get(raw, key + "_parsed")
        if not value and not parsed:
            continue
        first_raw = first_raw or (value if isinstance(value, str) else None)
        if not parsed and isinstance(value, str):
            parsed = parse_date(value)
        if parsed:
            return sane_date(parsed, now), first_raw
    return None, first_raw


def _entry(raw: Any, now: datetime, alternatives: dict[str, str] | None = None,
           declared_titles: bool = False, feed_language: str | None = None) -> Entry:
    guid = one_line(raw.get("id") or "", 2000) or None
    link = _first_link(raw, alternatives or {})
    title = plain_title(raw.get("title"),
                        declared=title_kind(raw.get("title_detail"), declared_titles))
    content = _content(raw)
    published, published_raw = _published(raw, now)
    authors = tuple(dict.fromkeys(
        one_line(a.get("name"), 200) for a in raw.get("authors") or [] if a.get("name")))
    if not authors and raw.get("author"):
        authors = (one_line(raw.get("author"), 200),)
    tags = tuple(dict.fromkeys(
        one_line(t.get("term"), 200) for t in raw.get("tags") or [] if t.get("term")))
    return Entry(
        key=entry_key(guid, link, title, content),
        guid=guid,
        link=link,
        title=title,
        summary=clean(raw.get("summary"), MAX_FIELD),
        content=content,
        published_at=published,
        published_raw=one_line(published_raw, 200) if isinstance(published_raw, str) else None,
        updated_at=sane_date(dict.get(raw, "updated_parsed"), now),
        authors=authors,
        tags=tags,
        language=_entry_language(raw, feed_language),
    )


_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000,
            "yearly": 31536000}


def _ttl(feed: Any) -> float | None:
    """The feed's own refresh hint: RSS `<ttl>` minutes, or `sy:updatePeriod`/`Frequency`.
    Values that are not plain numbers are ignored (pipeline.values)."""
    minutes = parse_int(feed.get("ttl"), MAX_SECONDS // 60)
    if minutes:
        return minutes * 60.0
    period = feed.get("sy_updateperiod")
    seconds = _PERIODS.get(period.strip().lower()) if isinstance(period, str) else None
    if seconds:
        frequency = parse_int(feed.get("sy_updatefrequency"), seconds) or 1
        return seconds / frequency
    return None


_ITEM_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
CUT_FACTOR = 4  # cut only feeds with this many times max_entries items: rare and pathological


def cut_after_items(body: bytes, keep: int) -> tuple[bytes, int]:
    """(body, items) with the body cut before item `keep + 1` when it has more than
    CUT_FACTOR x keep items, so a 50,000-item feed costs what `keep` items cost.

    feedparser builds every entry of a document before we can cap them (50,000 items:
    8 s and 115 MB); a cut document ends early, which its loose parser reads fine.
    Only ASCII-compatible bodies are counted; a UTF-16 body passes through whole.
    """
    starts = [m.start() for m in _ITEM_START.finditer(body)]
    if len(starts) <= CUT_FACTOR * keep or keep <= 0:
        return body, len(starts)
    return body[:starts[keep]], len(starts)


_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")  # hex or decimal
_REPLACEMENT_REF = b"&#xFFFD;"


def _unwritable_to_replacement(match: re.Match[bytes]) -> bytes:
    hexadecimal = match.group(1) is not None
    digits = (match.group(1) or match.group(2)).lstrip(b"0") or b"0"
    # U+10FFFF, the last code point, is 6 hex digits and 7 decimal ones: more is beyond it
    # (and never handed to int(), which refuses strings of thousands of digits).
    if len(digits) > (6 if hexadecimal else 7):
        return _REPLACEMENT_REF
    code = int(digits, 16 if hexadecimal else 10)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return _REPLACEMENT_REF
    return match.group(0)


def replace_unwritable_refs(body: bytes) -> bytes:
    """The body with each character reference to a code point no text can hold (a
    surrogate, or beyond U+10FFFF) made U+FFFD, as browsers show it: feedparser's loose
    parser raises on them, and one such reference in one item lost the whole feed."""
    if b"&#" not in body:
        return body
    return _CHARREF.sub(_unwritable_to_replacement, body)


def _rfc7303_content_type(headers: dict[str, str]) -> None:
    """A text/*xml type without charset means 'read the document', not US-ASCII.

    feedparser follows RFC 3023, where such a response is US-ASCII whatever the document
    says, so a UTF-16 or Latin-1 feed served as plain `text/xml` fails or turns to mojibake.
    RFC 7303 replaced that rule: the BOM and XML declaration decide, as for application/xml.
    """
    value = headers.get("content-type", "")
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media.startswith("text/") and "xml" in media and "charset" not in params.lower():
        headers["content-type"] = "application/" + media[len("text/"):] + (
            ";" + params if params.strip() else "")


def _parse_xml(body: bytes, headers: dict[str, str], url: str) -> dict[str, Any]:
    if url:
        headers.setdefault("content-location", url)
    _rfc7303_content_type(headers)
    check_entities(_utf8_view(body, headers))
    body = replace_unwritable_refs(body)
    try:
        return _feedparser(body, headers)
    except Exception as exc:  # noqa: BLE001 - feedparser raises odd things on odd input
        crash = f"parser crashed: {type(exc).__name__}: {exc}"
    repaired = _repaired_declaration(body)
    if repaired is not None:  # an encoding name with garbage bytes in it: mended or dropped
        with contextlib.suppress(Exception):
            return _feedparser(repaired, headers)
        body = repaired
    readable = _readable_utf8(body)
    if readable is not None:  # a UTF-8 feed with bytes or characters XML cannot hold
        with contextlib.suppress(Exception):
            return _feedparser(readable, headers)
    raise FeedParseError(crash)


def _feedparser(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    return feedparser.parse(io.BytesIO(body), response_headers=headers, sanitize_html=True,
                            resolve_relative_uris=True)


_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_NOT_XML_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_ANY_ENCODING = re.compile(rb"^(\s*<\?xml[^>]*?)(\s+encoding\s*=\s*([\"'])([^\"'>]*)\3)")
_NAME_BYTES = re.compile(rb"[^A-Za-z0-9._-]")


def _repaired_declaration(body: bytes) -> bytes | None:
    """The body with its XML declaration's encoding name mended, when that name holds bytes
    no encoding name has (`windows-1252\xa0`): those bytes dropped when what is left names
    a codec, else the name dropped (the body is then read as UTF-8). None when the name is
    clean or there is none."""
    found = _ANY_ENCODING.match(body[:512])
    if found is None or not _NAME_BYTES.search(found.group(4)):
        return None
    name = _NAME_BYTES.sub(b"", found.group(4))
    try:
        codecs.lookup(name.decode("ascii"))
    except LookupError:
        mended = b""
    else:
        mended = b" encoding=" + found.group(3) + name + found.group(3)
    return found.group(1) + mended + body[found.end():]


def _readable_utf8(body: bytes) -> bytes | None:
    """A UTF-8 body (so declared, or declaring nothing) with its undecodable bytes made
    U+FFFD and the control characters XML refuses removed; None when it declares another
    encoding (UTF-8 would garble it) or is clean already. What feedparser reads after it
    crashed on the body as sent."""
    declared = _DECLARED_ENCODING.match(body[:512])
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return None
    readable = _NOT_XML_TEXT.sub("", body.decode("utf-8", errors="replace")).encode()
    return readable if readable != body else None


def _utf8_view(body: bytes, headers: dict[str, str]) -> bytes:
    """The body as feedparser will scan it for a DTD: converted to UTF-8 first (a DTD in a
    UTF-16 or UTF-32 body is invisible to a byte scan of the original)."""
    try:
        return convert_to_utf8(dict(headers), body, {})
    except Exception:  # noqa: BLE001 - the parse itself reports what is wrong
        return body


def _looks_like_html(body: bytes) -> bool:
    head = body[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:512]


# --- JSON Feed (feedparser 6.0 reads only XML) -------------------------------------------------

_JSON_LEAD = b"\xef\xbb\xbf \t\r\n"  # a BOM and whitespace before a JSON document


def _looks_like_json(body: bytes, headers: dict[str, str]) -> bool:
    content_type = headers.get("content-type", "").lower()
    return "json" in content_type or body.lstrip(_JSON_LEAD).startswith(b"{")


def _json_authors(item: dict[str, Any]) -> list[dict[str, str]]:
    people = item.get("authors") or ([item["author"]] if item.get("author") else [])
    if not isinstance(people, list):
        return []
    return [{"name": str(p.get("name"))} for p in people if isinstance(p, dict) and p.get("name")]


def _json_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_link(item: dict[str, Any], base: str) -> Any:
    """`url`, else `external_url`, resolved against the feed's URL: the first usable one."""
    values = [item.get("url"), item.get("external_url")]
    for value in values:
        if isinstance(value, str) and value.strip():
            joined = urljoin(base, value.strip()) if base else value
            if http_link(joined):
                return joined
    return next((v for v in values if v), None)


def _json_item(item: dict[str, Any], base: str = "",
               feed_language: Any = None) -> dict[str, Any]:
    """A JSON Feed item in the shape of a feedparser entry, so one code path cleans both."""
    content = item.get("content_html")
    if not isinstance(content, str) or not content:
        text = item.get("content_text")
        content = f"<p>{html.escape(text)}</p>" if isinstance(text, str) and text else ""
    published = item.get("date_published") or item.get("date_modified")
    published = published if isinstance(published, str) else None
    title = item.get("title")
    return {
        "id": str(item["id"]) if item.get("id") is not None else None,
        "link": _json_link(item, base),
        "title": title if isinstance(title, str) else "",  # plain_title: tags of evident HTML
        "summary": item.get("summary") if isinstance(item.get("summary"), str) else "",
        "content": [{"value": content}],
        "published": published,
        "published_parsed": parse_date(published) if published else None,
        "authors": _json_authors(item),
        "tags": [{"term": t} for t in _json_list(item.get("tags")) if isinstance(t, str)],
        "language": item.get("language") or feed_language,
    }


# `"version": "https://jsonfeed.org/version/1.1"` is the rule; feeds in the wild also write
# "1", "1.0", "1.1", "v1", "version 1.1", "http://jsonfeed.org/version/1/", "jsonfeed 1.1"...


def is_json_feed(data: Any) -> bool:
    """Whether a JSON document is a JSON Feed: its version names jsonfeed, or, whatever
    its version says (or without one), it has the two other required members of a JSON
    Feed, a `title` and an `items` list."""
    if not isinstance(data, dict):
        return False
    if "jsonfeed" in str(data.get("version", "")).lower().replace(" ", ""):
        return True
    return isinstance(data.get("items"), list) and isinstance(data.get("title"), str)


def _json_version(version: Any) -> str:
    minor = re.search(r"1\.([0-9]+)", str(version))
    return "json11" if minor and int(minor.group(1)) >= 1 else "json1"


def _json_document(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # also ints over the 4300-digit limit
        return None


def _json_problem(body: bytes) -> str:
    """Why a body that starts like JSON is none (Python's own message: where it broke)."""
    try:
        json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        return f"not UTF-8 at byte {exc.start}"
    except (ValueError, RecursionError) as exc:
        return str(exc) or type(exc).__name__
    return "not a JSON Feed"


def parse_json_feed(body: bytes, base: str = ""
                    ) -> tuple[dict[str, Any], list[dict[str, Any]], str] | None:
    """(feed, items, version) of a JSON Feed, or None when the body is not one. Relative
    `url`, `external_url` and `home_page_url` are resolved against `base` (the feed's URL)."""
    data = _json_document(body)
    if not is_json_feed(data):
        return None
    items = data.get("items")
    if not isinstance(items, list):
        raise FeedParseError("JSON Feed without an items list")
    home = data.get("home_page_url")
    language = data.get("language")
    feed = {"title": str(data.get("title") or ""),
            "link": urljoin(base, home) if base and isinstance(home, str) else home,
            "language": language if isinstance(language, str) else None}
    return (feed, [_json_item(i, base, feed["language"]) for i in items if isinstance(i, dict)],
            _json_version(data.get("version")))


def parse_feed(body: bytes, headers: dict[str, str] | None = None, url: str = "",
               max_entries: int = ExtractConfig.max_entries_per_poll,
               now: datetime | None = None) -> ParsedFeed:
    """Parse a feed body; raise FeedParseError with a clear reason when it is unusable."""
    if not body.strip():
        raise FeedParseError("empty body")
    response_headers = {k.lower(): v for k, v in (headers or {}).items()}
    looks_like_json = _looks_like_json(body, response_headers)
    json_feed = parse_json_feed(body, url) if looks_like_json else None
    items_seen = 0
    cut = body
    if json_feed is not None:
        feed, items, version = json_feed
        parsed: dict[str, Any] = {"feed": feed, "entries": items, "version": version}
    elif looks_like_json and isinstance(_json_document(body), dict | list):
        raise FeedParseError("a JSON document, not a JSON Feed (no JSON Feed `version`, "
                             "no `items` list with a feed `title`)")
    elif body.lstrip(_JSON_LEAD).startswith((b"{", b"[")):  # not XML mislabelled as JSON
        raise FeedParseError(f"invalid JSON: {_json_problem(body)}")
    else:
        cut, items_seen = cut_after_items(body, max_entries)
        parsed = _parse_xml(cut, response_headers, url)
    now = now or datetime.now(UTC)
    raw_entries = parsed.get("entries") or []
    if not raw_entries and not parsed.get("version"):
        if _looks_like_html(body):
            raise FeedParseError("an HTML page, not a feed")
        reason = parsed.get("bozo_exception")
        raise FeedParseError(f"not a feed: {reason}" if reason else "not a recognisable feed")
    feed = parsed.get("feed") or {}
    raw_entries = raw_entries[:max_entries]
    alternatives = link_alternatives(cut, url) \
        if json_feed is None and _needs_alternatives(raw_entries) else {}
    atom = str(parsed.get("version") or "").startswith("atom")
    feed_language = language_code(feed.get("language"))
    read: list[Entry] = []
    skipped = 0
    for raw in raw_entries:
        try:
            read.append(_entry(raw, now, alternatives, atom, feed_language))
        except Exception:  # noqa: BLE001 - one bad item must not lose the others
            skipped += 1  # counted in the poll's fetch-log row
    entries: list[Entry] = []
    seen: set[str] = set()
    for entry in separate_items(read):  # items sharing a GUID: each different one kept
        if entry.key in seen:  # a repeat of an item within one document: keep the first
            continue
        seen.add(entry.key)
        entries.append(entry)
    warning = None
    if items_seen > CUT_FACTOR * max_entries:
        warning = f"only the first {max_entries} of {items_seen} items read"
    elif parsed.get("bozo") and parsed.get("bozo_exception") is not None:
        warning = one_line(f"{type(parsed['bozo_exception']).__name__}: "
                           f"{parsed['bozo_exception']}", 500)
    return ParsedFeed(
        title=plain_title(feed.get("title"),
                          declared=title_kind(feed.get("title_detail"), atom)),
        link=http_link(feed.get("link")),
        version=str(parsed.get("version") or ""),
        entries=tuple(entries),
        ttl_seconds=_ttl(feed),
        warning=warning,
        total_entries=max(len(raw_entries), items_seen),
        skipped_entries=skipped,
    )


def parse_response(response: FetchResult, max_entries: int,
                   timeout: float = EXTRACT_TIMEOUT) -> ParseOutcome:
    """The parsing stage (run in a worker): a fetched feed body as entries, or why not.
    Within `timeout` seconds (`extract.timeout`): feedparser's own regular expressions take
    quadratic time on some values (an `<author>` of 200 KB: minutes), which must not hold
    a worker, and every feed waiting for it."""
    try:
        with time_limit(timeout):
            return ParseOutcome(feed=parse_feed(response.body, response.headers,
                                                response.final_url, max_entries=max_entries))
    except ExtractionTimeout:
        return ParseOutcome(error=f"feed parse time limit of {timeout:g}s exceeded")
    except FeedParseError as exc:
        return ParseOutcome(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - never let one feed break the pool
        return ParseOutcome(error=f"parser crashed: {type(exc).__name__}: {exc}")
