"""OPML 2.0, the feed-list format every feed reader imports and exports.

Reading is defensive: an OPML file comes from another program or another person, so entity
declarations are refused outright (OPML never needs them; they are how billion-laughs and
external-entity attacks arrive), nothing is fetched while parsing, and outlines whose feed URL
is not an absolute http(s) URL are set aside with the reason instead of failing the whole file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import lxml.etree

from pipeline.text import one_line
from pipeline.values import check_feed_url, http_url

MAX_OPML_BYTES = 10_000_000


@dataclass(frozen=True)
class Outline:
    """One feed of an OPML file."""

    url: str
    title: str | None = None
    html_url: str | None = None
    category: str | None = None  # the enclosing outline's text, if the feed sits in a folder


@dataclass(frozen=True)
class OpmlDocument:
    title: str | None
    outlines: tuple[Outline, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (what the outline said, why it was skipped)


def _attribute(element: lxml.etree._Element, name: str) -> str | None:
    """An attribute looked up case-insensitively (exporters spell `xmlUrl` several ways)."""
    wanted = name.lower()
    for key, value in element.attrib.items():
        if isinstance(key, str) and key.lower() == wanted:
            text = one_line(value)
            return text or None
    return None


def parse_opml(data: bytes) -> OpmlDocument:
    """Parse OPML bytes; raise ValueError when they are not a usable OPML document."""
    if len(data) > MAX_OPML_BYTES:
        raise ValueError(f"OPML file larger than {MAX_OPML_BYTES} bytes")
    # Refused before parsing, whatever the encoding: a parser never sees an entity to expand.
    if any("<!ENTITY".encode(codec) in data for codec in ("utf-8", "utf-16-le", "utf-16-be")):
        raise ValueError("entity declarations are not allowed in OPML")
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                  huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = lxml.etree.fromstring(data, parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise ValueError("entity declarations are not allowed in OPML")
    if not isinstance(root.tag, str) or lxml.etree.QName(root).localname.lower() != "opml":
        raise ValueError("the root element is not <opml>")
    title_element = root.find("head/title")
    title = one_line(title_element.text) if title_element is not None else None
    body = root.find("body")
    if body is None:
        raise ValueError("no <body> element")

    outlines: list[Outline] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()

    def walk(parent: lxml.etree._Element, category: str | None) -> None:
        for element in parent:
            if not isinstance(element.tag, str) or element.tag.lower() != "outline":
                continue
            text = _attribute(element, "title") or _attribute(element, "text")
            xml_url = _attribute(element, "xmlUrl")
            if xml_url is None:  # a folder (or a plain note): its children may be feeds
                walk(element, text or category)
                continue
            try:
                url = check_feed_url(xml_url)
            except ValueError as exc:
                skipped.append((text or xml_url, str(exc)))
                continue
            if url in seen:
                skipped.append((text or url, "listed twice"))
                continue
            seen.add(url)
            html_url = _attribute(element, "htmlUrl")
            outlines.append(Outline(url=url, title=text, category=category,
                                    html_url=http_url(html_url)))

    walk(body, None)
    return OpmlDocument(title=title or None, outlines=tuple(outlines), skipped=tuple(skipped))


def read_opml(data: bytes) -> list[Outline]:
    """The usable feeds of an OPML document (see `parse_opml` for what is set aside)."""
    return list(parse_opml(data).outlines)


def write_opml(outlines: Iterable[Outline], title: str = "newswire feeds",
               now: datetime | None = None) -> bytes:
    """An OPML 2.0 document listing the feeds, grouped by category when they have one."""
    root = lxml.etree.Element("opml", version="2.0")
    head = lxml.etree.SubElement(root, "head")
    lxml.etree.SubElement(head, "title").text = title
    lxml.etree.SubElement(head, "dateCreated").text = format_datetime(
        (now or datetime.now(UTC)).astimezone(UTC), usegmt=True)
    body = lxml.etree.SubElement(root, "body")
    folders: dict[str, lxml.etree._Element] = {}
    for outline in outlines:
        parent = body
        if outline.category:
            if outline.category not in folders:
                folders[outline.category] = lxml.etree.SubElement(
                    body, "outline", text=outline.category, title=outline.category)
            parent = folders[outline.category]
        name = outline.title or outline.url
        attributes = {"type": "rss", "text": name, "title": name, "xmlUrl": outline.url}
        if outline.html_url:
            attributes["htmlUrl"] = outline.html_url
        lxml.etree.SubElement(parent, "outline", attributes)
    return lxml.etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
