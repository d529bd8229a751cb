"""Sitemaps as backfill sources: sitemap indexes, plain sitemaps and Google News sitemaps
(the `news:` namespace: publication date, title, language).

Pure: bytes in, URLs out. Parsed with lxml without entities, DTDs or network access (a
sitemap is as untrusted as a feed), only http(s) URLs kept, sizes bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

import lxml.etree

from pipeline.errors import FeedParseError
from pipeline.text import one_line
from pipeline.times import parse_iso, sane_published, utc_from_iso
from pipeline.values import http_url

MAX_URLS = 50_000  # the sitemap protocol's own limit per file
_SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NEWS = "{http://www.google.com/schemas/sitemap-news/0.9}"


@dataclass(frozen=True)
class SitemapUrl:
    url: str
    published_at: str | None = None  # news:publication_date, else lastmod (ISO, UTC)
    title: str = ""  # news:title
    language: str | None = None  # news:language


@dataclass(frozen=True)
class Sitemap:
    urls: tuple[SitemapUrl, ...] = ()
    children: tuple[str, ...] = ()  # the sitemaps an index lists


def parse_sitemap(body: bytes) -> Sitemap:
    """A sitemap or sitemap index; FeedParseError when it is neither."""
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                  huge_tree=False, recover=True)
    try:
        root = lxml.etree.fromstring(body, parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise FeedParseError(f"not a sitemap: {exc}") from None
    if root is None:
        raise FeedParseError("not a sitemap: empty document")
    tag = lxml.etree.QName(root).localname
    if tag == "sitemapindex":
        children = [u for loc in root.iter(f"{_SITEMAP}loc", "loc")
                    if (u := http_url(loc.text or ""))]
        return Sitemap(children=tuple(dict.fromkeys(children))[:MAX_URLS])
    if tag != "urlset":
        raise FeedParseError(f"not a sitemap: <{tag}>")
    urls: dict[str, SitemapUrl] = {}
    for item in root.iter(f"{_SITEMAP}url", "url"):
        url = http_url(_text(item, "loc"))
        if url is None or url in urls:
            continue
        news = item.find(f"{_NEWS}news")
        published = _date(news.findtext(f"{_NEWS}publication_date") if news is not None
                          else None) or _date(_text(item, "lastmod"))
        urls[url] = SitemapUrl(
            url=url, published_at=published,
            title=one_line(news.findtext(f"{_NEWS}title")) if news is not None else "",
            language=(news.findtext(f"{_NEWS}publication/{_NEWS}language") or "").strip()
            or None if news is not None else None)
        if len(urls) >= MAX_URLS:
            break
    return Sitemap(urls=tuple(urls.values()))


def _text(item: lxml.etree._Element, name: str) -> str:
    found = item.find(f"{_SITEMAP}{name}")
    if found is None:
        found = item.find(name)
    return (found.text or "").strip() if found is not None else ""


def _date(value: str | None) -> str | None:
    """A W3C datetime (2024-05-01, 2024-05-01T12:00:00+02:00) as stored UTC, if sane."""
    stored = utc_from_iso(value.strip()) if value else None
    when = parse_iso(stored)
    return stored if when is not None and sane_published(when) else None
