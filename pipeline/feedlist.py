"""Feed management: find a web page's feed, and keep the feed list in the config file.

The config file is the readable, version-controlled feed list. `add` and `import-opml` append
the new feeds to its `feeds:` list as text, so comments, order and layout stay as a person
wrote them; the edited file is validated (same YAML plus the new items, and a full config
load) before it atomically replaces the original. The database then follows the config as on
every run. Feeds can also be added to the database only (`--no-config`).

Discovery fetches through `pipeline.fetch.Fetcher`, so the address guard, deadlines and size
caps apply: a page cannot steer newswire to a private address. A feed added with settings
(user agent, headers, auth, proxy) is discovered with them.

`try_page` (`newswire try URL [--feed NAME]`) fetches one page the same guarded way, with a
feed's settings, and extracts it with that feed's (or the page's site's) rules, in this
process, without the database: what a rule does is seen before it is saved.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html
import yaml

from pipeline import filters
from pipeline.config import (
    Config,
    FeedConfig,
    FetchConfig,
    RefusedFeed,
    feed_item,
    load_config,
)
from pipeline.errors import ConfigEditError, ConfigError, DiscoveryError, FeedParseError
from pipeline.extract import extract_and_fingerprint, job_for
from pipeline.fetch import FEED_ACCEPT, Fetcher, Resolver, system_resolver
from pipeline.messages import Article, Entry, ExtractRules, FeedSettings, FetchResult, ParsedFeed
from pipeline.parse import parse_feed
from pipeline.schedule import Health
from pipeline.store import Store
from pipeline.values import http_url

# Where sites usually keep their feed (WordPress, Hugo, Jekyll, Ghost, Blogger, Pelican...).
COMMON_FEED_PATHS = ("/feed", "/rss", "/feed.xml", "/rss.xml", "/atom.xml", "/index.xml",
                     "/feed/", "/rss/", "/index.rss", "/atom", "/feeds/posts/default",
                     "/feeds/all.atom.xml")
FEED_LINK_TYPES = frozenset({"application/rss+xml", "application/atom+xml",
                             "application/rdf+xml", "application/feed+json",
                             "application/json", "application/xml", "text/xml"})
MAX_CANDIDATES = 20


@dataclass(frozen=True)
class FoundFeed:
    url: str
    title: str | None
    via: str  # how it was found: "the URL itself", "<link rel=alternate>", "a common path"


# --- discovery --------------------------------------------------------------------------------

def feed_links(html: bytes, page_url: str) -> list[str]:
    """Feed URLs a page announces with `<link rel="alternate" type="...">`, in page order,
    resolved against `<base href>` and the page URL; http(s) only."""
    try:
        root = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    base = page_url
    for href in root.xpath("//base/@href"):
        base = urljoin(page_url, href.strip())
        break
    links: list[str] = []
    for link in root.xpath("//link[@href]"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        if "alternate" not in rel or kind not in FEED_LINK_TYPES:
            continue
        url = http_url(urljoin(base, link.get("href").strip()))
        if url and url not in links:
            links.append(url)
    return links


def common_feed_urls(page_url: str) -> list[str]:
    """The usual feed locations at the site root and, for a page in a section, under it."""
    parts = urlsplit(page_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    section = parts.path.rsplit("/", 1)[0] if not parts.path.endswith("/") else \
        parts.path.rstrip("/")
    urls = [origin + path for path in COMMON_FEED_PATHS]
    if section:
        urls += [origin + section + path for path in COMMON_FEED_PATHS[:6]]
    return urls


def _as_feed(result: FetchResult) -> ParsedFeed | None:
    if not result.ok:
        return None
    try:
        return parse_feed(result.body, result.headers, result.final_url, max_entries=1)
    except FeedParseError:
        return None


async def discover_feed(url: str, fetcher: Fetcher,
                        settings: FeedSettings | None = None) -> FoundFeed:
    """The feed at url, or the feed of the web page at url; raise DiscoveryError if none.
    `settings`: the feed-to-be's own (its user agent, headers, auth, proxy)."""
    response = await fetcher.fetch(url, accept=FEED_ACCEPT, settings=settings)
    if response.error:
        raise DiscoveryError(f"cannot fetch {url}: {response.error}")
    if response.status != 200:
        raise DiscoveryError(f"cannot fetch {url}: HTTP {response.status}")
    parsed = _as_feed(response)
    if parsed is not None:
        return FoundFeed(url, parsed.title or None, "the URL itself")

    announced = feed_links(response.body, response.final_url)
    tried: list[str] = []
    candidates = [(u, "<link rel=alternate>") for u in announced] + \
        [(u, "a common path") for u in common_feed_urls(response.final_url)]
    for candidate, via in candidates:
        if candidate in tried or candidate in (url, response.final_url):
            continue
        if len(tried) >= MAX_CANDIDATES:
            break
        tried.append(candidate)
        parsed = _as_feed(await fetcher.fetch(candidate, accept=FEED_ACCEPT, settings=settings))
        if parsed is not None:
            return FoundFeed(candidate, parsed.title or None, via)
    where = f"{len(announced)} announced in the page" if announced else "none announced"
    raise DiscoveryError(f"no feed found for {url} ({where}; tried {len(tried)} URLs)")


async def find_feed(fetch_config: FetchConfig, url: str,
                    resolver: Resolver = system_resolver,
                    settings: FeedSettings | None = None) -> FoundFeed:
    async with Fetcher(fetch_config, resolver) as fetcher:
        return await discover_feed(url, fetcher, settings)


# --- trying a page ------------------------------------------------------------------------

@dataclass(frozen=True)
class Trial:
    """What `newswire try` found: the page's article as extraction makes it (with the
    rules that applied), or why there is none, and whether the filters would keep it."""

    url: str
    final_url: str
    feed: FeedConfig | None
    rules: ExtractRules | None
    article: Article | None
    error: str | None = None
    filtered_by: str | None = None


async def try_page(config: Config, url: str, feed: FeedConfig | None = None,
                   resolver: Resolver = system_resolver) -> Trial:
    """Fetch one page (guarded, with the feed's settings) and extract it with the feed's
    rules, else its site's; the global and the feed's filters say whether it would be kept.
    Nothing is written."""
    settings = feed.settings() if feed is not None else None
    async with Fetcher(config.fetch, resolver) as fetcher:
        page = await fetcher.fetch_page(url, None, settings)
    if page.body is None:
        return Trial(url, page.final_url, feed, None, None, error=page.error)
    rules = config.rules_for(feed, page.final_url)
    entry = Entry(key="try", guid=None, link=url, title="", summary="", content="",
                  published_at=None, published_raw=None)
    job = job_for(entry, page, frozenset(), config.extract.timeout, config.fetch.max_bytes,
                  rules)
    article = extract_and_fingerprint(job).article
    sets = filters.filter_sets(config.filters, feed.filters if feed is not None else None)
    verdict = filters.verdict(sets, filters.after_extract(entry, article))
    return Trial(url, page.final_url, feed, rules, article, article.extract_error, verdict)


# --- the config file --------------------------------------------------------------------------

_FEEDS_KEY = re.compile(r"^feeds\s*:\s*(#.*)?$")
_FEEDS_INLINE = re.compile(r"^feeds\s*:")
_TOP_LEVEL = re.compile(r"^([^\s#-]|---|\.\.\.)")
_ITEM = re.compile(r"^(\s*)-\s")


# What YAML may not hold unescaped in a double-quoted scalar: characters outside its
# printable set, and those it reads as line breaks (NEL, U+2028, U+2029).
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd"
                          "\U00010000-\U0010ffff]")


def _scalar(value: str) -> str:
    """value as a YAML scalar: plain when that reads back unchanged, else double-quoted
    (JSON's escapes are YAML's), any character YAML cannot print escaped."""
    try:
        plain_ok = yaml.safe_load(f"k: {value}\n") == {"k": value}
    except yaml.YAMLError:
        plain_ok = False
    if plain_ok:
        return value
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                            json.dumps(value, ensure_ascii=False))


def _item(feed: FeedConfig) -> dict[str, Any]:
    return feed_item(feed)


def append_feed_items(text: str, feeds: Sequence[FeedConfig]) -> str:
    """The config text with the feeds appended to its top-level `feeds:` block list (a new
    block at the end when there is none). Raises ConfigEditError for a flow-style list."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _FEEDS_INLINE.match(line)), None)
    if start is None:
        block = ["\n" if lines and lines[-1].strip() else "", "feeds:\n"]
        return "".join(lines + block + _render(feeds, "  "))
    if not _FEEDS_KEY.match(lines[start].rstrip("\n")):
        raise ConfigEditError("`feeds:` is not a block list (one `- url: ...` per line)")
    end = next((i for i in range(start + 1, len(lines)) if _TOP_LEVEL.match(lines[i])),
               len(lines))
    insert = start + 1
    for i in range(end - 1, start, -1):  # after the block's last item line (not a comment)
        if lines[i].strip() and not lines[i].startswith("#"):
            insert = i + 1
            break
    indent = next((m.group(1) for line in lines[start + 1:end] if (m := _ITEM.match(line))),
                  "  ")
    return "".join(lines[:insert] + _render(feeds, indent) + lines[insert:])


def _render(feeds: Sequence[FeedConfig], indent: str) -> list[str]:
    out = []
    for feed in feeds:
        item = feed_item(feed)
        out.append(f"{indent}- url: {_scalar(item.pop('url'))}\n")
        if "name" in item:
            out.append(f"{indent}  name: {_scalar(item.pop('name'))}\n")
        if item:  # the feed's settings, nested mappings and lists as YAML blocks
            text = yaml.safe_dump(item, sort_keys=False, allow_unicode=True,
                                  default_flow_style=False, width=1_000_000)
            out += [f"{indent}  {line}\n" for line in text.splitlines()]
    return out


def append_to_config(path: Path, feeds: Sequence[FeedConfig]) -> Config:
    """Append feeds to the config file at path, verified, atomically; the new Config."""
    try:
        original = path.read_text(encoding="utf-8")
        before = yaml.safe_load(original) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigEditError(f"cannot read {path}: {exc}") from None
    updated = append_feed_items(original, feeds)
    try:
        after = yaml.safe_load(updated) or {}
    except yaml.YAMLError as exc:
        raise ConfigEditError(f"{path}: the new lines would not read: {exc}") from None
    expected = {**before, "feeds": list(before.get("feeds") or []) +
                [_item(f) for f in feeds]}
    if after != expected:
        raise ConfigEditError(f"{path}: appending to `feeds:` would change other settings; "
                              "add the feed by hand")
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(updated)
        os.chmod(temporary, os.stat(path).st_mode & 0o7777)
        try:
            # The edited file must be a valid config as a whole, its new lines included.
            refused_before = {(r.key, r.problem) for r in _refused_lines(path)}
            refused = [r for r in load_config(temporary).refused
                       if (r.key, r.problem) not in refused_before]
        except ConfigError as exc:
            raise ConfigEditError(f"the edited config would not load: {exc.problem}") from None
        if refused:
            raise ConfigEditError(f"the edited config would not load: {refused[0].key}: "
                                  f"{refused[0].problem}")
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigEditError(f"cannot write {path}: {exc}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return load_config(path)


def _refused_lines(path: Path) -> tuple[RefusedFeed, ...]:
    """The feed lines of the config at path that do not read (none if it does not load)."""
    try:
        return load_config(path).refused
    except ConfigError:
        return ()


@dataclass(frozen=True)
class AddReport:
    added: tuple[FeedConfig, ...]
    already: tuple[FeedConfig, ...]  # already in the config (or the database, --no-config)


def add_feeds(config: Config, store: Store, feeds: Sequence[FeedConfig],
              write_config: bool = True) -> AddReport:
    """Add feeds to the config file (and so the database), or to the database only."""
    configured = {f.url for f in config.feeds}
    if write_config:
        new = [f for f in feeds if f.url not in configured]
        already = [f for f in feeds if f.url in configured]
        if new:
            config = append_to_config(config.path, new)
        store.sync_config(config)
        return AddReport(tuple(new), tuple(already))
    if any(f.has_settings for f in feeds):
        raise ConfigEditError("a feed's settings (user agent, headers, auth, proxy, rules, "
                              "filters, fetch_pages) live in the config file: drop --no-config")
    listed = {row["url"] for row in store.feed_list() if row["active"]} | configured
    new = [f for f in feeds if f.url not in listed]
    for feed in new:
        store.add_feed(feed.url, feed.name)
    return AddReport(tuple(new), tuple(f for f in feeds if f.url in listed))


def as_configured(rows: Sequence[dict[str, Any]], feeds: Sequence[FeedConfig],
                  refused: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Feed rows from the database as the next run will have them, without writing: feeds
    from the config are active and those no longer in it inactive (what `sync_feeds` does),
    those whose line does not read (`refused`, Config.refused_feeds) misconfigured with
    the line's error, and config feeds not in the database yet are added as rows without
    an id."""
    refused = refused or {}
    wanted: dict[str, FeedConfig | None] = {url: None for url in refused}
    wanted.update((feed.url, feed) for feed in feeds)
    found: set[str] = set()
    result = []
    for row in rows:
        if row.get("config_url"):
            found.add(row["config_url"])
            if row["config_url"] not in wanted:
                row = {**row, "active": 0, "health": Health.INACTIVE.value}
        configured = row.get("config_url") or row["url"]
        if configured in refused:
            row = {**row, "active": 1, "health": Health.MISCONFIGURED.value,
                   "last_error": refused[configured]}
        result.append(row)
    known = {row["url"] for row in rows}
    for url, feed in wanted.items():
        if url not in found and url not in known:
            result.append({"id": None, "url": url, "config_url": url,
                           "name": feed.name or url if feed else url,
                           "title": None, "site_url": None, "active": 1, "gone": 0,
                           "health": (Health.NEW if feed else Health.MISCONFIGURED).value,
                           "last_polled_at": None, "next_poll_at": None, "last_status": None,
                           "consecutive_failures": 0, "last_error": refused.get(url),
                           "current_interval": None,
                           "interval_seconds": feed.interval if feed else None,
                           "cron": feed.cron if feed else None, "articles": 0,
                           "entries": 0})
    return result
