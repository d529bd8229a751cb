"""OPML 2.0, the feed-list format every feed reader imports and exports.

Reading is defensive: an OPML file comes from another program or another person, so entity
declarations are refused outright (OPML never needs them; they are how billion-laughs and
external-entity attacks arrive), nothing is fetched while parsing, and outlines whose feed URL
is not an absolute http(s) URL are set aside with the reason instead of failing the whole file.

A feed's settings travel as namespaced attributes (OPML 2.0 allows them): newswire's own
(`newswire:userAgent`, `newswire:fetchPages`, `newswire:bodySelector`,
`newswire:removeSelectors`, `newswire:filters`) and FreshRSS's for the same things
(`frss:cssFullContent`, `frss:cssContentFilter`, `frss:CURLOPT_USERAGENT`, and on import
`frss:CURLOPT_COOKIE`). They are read into `Outline.settings` in the config's shape, for
pipeline.config.read_feed to validate. Credentials, extra headers and proxies are never
written: an OPML file is for sharing; a proxy is never read from one either (routing a feed
through a proxy is a decision for the config file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import lxml.etree

from pipeline.text import one_line
from pipeline.values import check_feed_url, http_url

MAX_OPML_BYTES = 10_000_000
NEWSWIRE_NS = "urn:newswire:opml:1"
FRESHRSS_NS = "https://freshrss.org/opml"


@dataclass(frozen=True)
class Outline:
    """One feed of an OPML file."""

    url: str
    title: str | None = None
    html_url: str | None = None
    category: str | None = None  # the enclosing outline's text, if the feed sits in a folder
    # the feed's settings in the config's shape (user_agent, fetch_pages, rules, filters...)
    settings: dict[str, Any] = field(default_factory=dict, compare=False)


def _namespaced(element: lxml.etree._Element, namespace: str, name: str) -> str | None:
    value = element.get(f"{{{namespace}}}{name}")
    return value.strip() if isinstance(value, str) and value.strip() else None


def _json(value: str | None) -> Any:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return value  # kept as it is: the config reader says what is wrong with it


def read_settings(element: lxml.etree._Element) -> dict[str, Any]:
    """The settings an outline carries in newswire's and FreshRSS's attributes, in the
    config's shape (not validated here)."""
    ours = {name: _namespaced(element, NEWSWIRE_NS, name) for name in
            ("userAgent", "fetchPages", "bodySelector", "removeSelectors", "filters")}
    theirs = {name: _namespaced(element, FRESHRSS_NS, name) for name in
              ("cssFullContent", "cssContentFilter", "CURLOPT_USERAGENT", "CURLOPT_COOKIE")}
    settings: dict[str, Any] = {}
    agent = ours["userAgent"] or theirs["CURLOPT_USERAGENT"]
    if agent:
        settings["user_agent"] = agent
    if theirs["CURLOPT_COOKIE"]:
        settings["headers"] = {"Cookie": theirs["CURLOPT_COOKIE"]}
    if ours["fetchPages"]:
        settings["fetch_pages"] = {"true": True, "false": False}.get(
            ours["fetchPages"].lower(), ours["fetchPages"])
    rules: dict[str, Any] = {}
    body = ours["bodySelector"] or theirs["cssFullContent"]
    if body:
        rules["body"] = body
    if ours["removeSelectors"]:
        rules["remove"] = _json(ours["removeSelectors"])
    elif theirs["cssContentFilter"]:
        rules["remove"] = [theirs["cssContentFilter"]]
    if rules:
        settings["rules"] = rules
    if ours["filters"]:
        settings["filters"] = _json(ours["filters"])
    return settings


def _settings_attributes(settings: dict[str, Any]) -> dict[str, str]:
    """The attributes that carry a feed's shareable settings (never headers, auth, proxy)."""
    attributes: dict[str, str] = {}
    ours, theirs = f"{{{NEWSWIRE_NS}}}", f"{{{FRESHRSS_NS}}}"
    if settings.get("user_agent"):
        attributes[ours + "userAgent"] = str(settings["user_agent"])
        attributes[theirs + "CURLOPT_USERAGENT"] = str(settings["user_agent"])
    if settings.get("fetch_pages") is False:
        attributes[ours + "fetchPages"] = "false"
    rules = settings.get("rules") or {}
    if rules.get("body"):
        attributes[ours + "bodySelector"] = str(rules["body"])
        attributes[theirs + "cssFullContent"] = str(rules["body"])
    if rules.get("remove"):
        attributes[ours + "removeSelectors"] = json.dumps(list(rules["remove"]))
        attributes[theirs + "cssContentFilter"] = ", ".join(rules["remove"])
    if settings.get("filters"):
        attributes[ours + "filters"] = json.dumps(settings["filters"], ensure_ascii=False)
    return attributes


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
                                    html_url=http_url(html_url),
                                    settings=read_settings(element)))

    walk(body, None)
    return OpmlDocument(title=title or None, outlines=tuple(outlines), skipped=tuple(skipped))


def read_opml(data: bytes) -> list[Outline]:
    """The usable feeds of an OPML document (see `parse_opml` for what is set aside)."""
    return list(parse_opml(data).outlines)


def write_opml(outlines: Iterable[Outline], title: str = "newswire feeds",
               now: datetime | None = None) -> bytes:
    """An OPML 2.0 document listing the feeds, grouped by category when they have one, with
    their shareable settings (see the module's docstring)."""
    outlines = list(outlines)
    namespaces = {"newswire": NEWSWIRE_NS, "frss": FRESHRSS_NS} \
        if any(o.settings for o in outlines) else None
    root = lxml.etree.Element("opml", version="2.0", nsmap=namespaces)
    head = lxml.etree.SubElement(root, "head")
    lxml.etree.SubElement(head, "title").text = title
    lxml.etree.SubElement(head, "dateCreated").text = format_datetime(
        (now or datetime.now(UTC)).astimezone(UTC), usegmt=True)
    body = lxml.etree.SubElement(root, "body")
    folders: dict[str, lxml.etree._Element] = {}
    for outline in outlines:
        parent = body
        # Names come from the feeds themselves (a title stored before it was cleaned can
        # hold what XML refuses): cleaned again here, so one feed cannot stop the export.
        category = one_line(outline.category)
        if category:
            if category not in folders:
                folders[category] = lxml.etree.SubElement(
                    body, "outline", text=category, title=category)
            parent = folders[category]
        name = one_line(outline.title) or outline.url
        attributes = {"type": "rss", "text": name, "title": name, "xmlUrl": outline.url}
        if outline.html_url:
            attributes["htmlUrl"] = outline.html_url
        attributes.update(_settings_attributes(outline.settings))
        lxml.etree.SubElement(parent, "outline", attributes)
    return lxml.etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
