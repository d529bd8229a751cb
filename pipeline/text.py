"""Small text helpers shared by the stages: cleaning, HTML to text, normalisation."""

from __future__ import annotations

import html
import re
import unicodedata

import lxml.etree
import lxml.html

# C0 controls except tab, newline and carriage return; DEL; C1 controls; the noncharacters
# U+FFFE and U+FFFF (no text holds them, and XML refuses them: an OPML export of a title).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
# Elements whose text a browser never shows: words on a page are counted without them.
INVISIBLE = ("script", "style", "noscript", "template")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANKS = re.compile(r"\n\s*\n+")
_MARKUP = re.compile(r"<[a-zA-Z/!?]")
_BLOCK_TAGS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
               "tr", "pre", "section", "article", "figure", "figcaption", "ul", "ol", "table"}


def clean(text: str | None, max_chars: int | None = None) -> str:
    """Remove NUL, control characters and lone surrogates; the result is strict UTF-8."""
    if not text:
        return ""
    text = _SURROGATES.sub("", _CONTROLS.sub("", text))
    return text[:max_chars] if max_chars else text


def unreadable_share(text: str) -> float:
    """The share of `text`'s characters that no written text holds: U+FFFD (bytes its
    charset could not decode) and control characters. Next to nothing on a real page, even
    one in an undeclared legacy charset; over half for binary data read as text."""
    if not text:
        return 0.0
    return (text.count("\ufffd") + len(_CONTROLS.findall(text))) / len(text)


MAX_TITLE = 1_000  # characters of a stored title, whichever source gave it


def one_line(text: str | None, max_chars: int = MAX_TITLE) -> str:
    """Clean text folded onto one line with single spaces (titles, names)."""
    return " ".join(clean(text).split())[:max_chars]


# Elements whose tags in a title show it is HTML (when they come in pairs, or are void).
_HTML_ELEMENTS = frozenset({
    "a", "abbr", "acronym", "audio", "b", "bdi", "bdo", "big", "blink", "blockquote", "body",
    "br", "button", "canvas", "center", "cite", "code", "dd", "del", "dfn", "div", "dl", "dt",
    "em", "embed", "figcaption", "figure", "font", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "head", "hr", "html", "i", "iframe", "img", "input", "ins", "kbd", "li", "link", "mark",
    "marquee", "meta", "nobr", "noscript", "object", "ol", "p", "picture", "pre", "q", "rp",
    "rt", "ruby", "s", "samp", "script", "section", "small", "source", "span", "strike",
    "strong", "style", "sub", "sup", "svg", "table", "tbody", "td", "th", "thead", "time",
    "title", "tr", "tt", "u", "ul", "var", "video", "wbr"})
_VOID_IN_TITLES = frozenset({"br", "hr", "img", "wbr"})
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)(?:\s[^<>]*)?/?>")
_ENTITY_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def evidently_html(text: str) -> bool:
    """Whether an undeclared title is HTML: an HTML element opened and closed in it, or a
    `<br>`/`<img>`-like void tag. `Use the <canvas> element`, `</example>` or `Vector<T>`
    are text that happens to contain angle brackets."""
    opened: set[str] = set()
    closed: set[str] = set()
    for match in _TAG.finditer(text):
        name = match.group(2).lower()
        if name not in _HTML_ELEMENTS:
            continue
        if name in _VOID_IN_TITLES:
            return True
        (closed if match.group(1) else opened).add(name)
    return bool(opened & closed)


def plain_title(text: str | None, max_chars: int = MAX_TITLE, declared: str | None = None
                ) -> str:
    """A title as plain text.

    `declared` is what the feed says the title is: "text" (Atom's text type: every
    character is kept, `<canvas>` included), "html" (tags stripped, entities decoded once),
    or None (RSS, RDF, JSON Feed: HTML only when it evidently is, see `evidently_html`;
    otherwise the characters are kept, an escaped entity decoded once).
    """
    text = clean(text)
    if declared == "text":
        return one_line(text, max_chars)
    if declared == "html" or evidently_html(text):
        if _MARKUP.search(text):
            text = html_to_text(text)
        elif "&" in text:
            text = html.unescape(text)
    elif _ENTITY_REF.search(text):  # escaped twice by the feed: `AT&amp;T` for AT&T
        text = html.unescape(text)
    return one_line(clean(text), max_chars)


def html_to_text(html: str | None) -> str:
    """Readable text from an HTML fragment: blocks become paragraphs separated by blank lines.

    Scripts and styles are dropped. Used for feed content, the fallback when a page fails.
    """
    html = clean(html)
    if not html.strip():
        return ""
    if not _MARKUP.search(html):
        return normalise_paragraphs(html)
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return normalise_paragraphs(html)
    for bad in root.xpath("//script|//style|//noscript"):
        bad.drop_tree()
    parts: list[str] = []

    def walk(node: lxml.html.HtmlElement) -> None:
        tag = node.tag if isinstance(node.tag, str) else ""
        if tag in _BLOCK_TAGS:
            parts.append("\n\n")
        if node.text and tag:
            parts.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                parts.append(child.tail)
        if tag in _BLOCK_TAGS:
            parts.append("\n\n")

    walk(root)
    return normalise_paragraphs("".join(parts))


def normalise_paragraphs(text: str) -> str:
    """Collapse spaces within lines and runs of blank lines; paragraphs split by one blank."""
    text = clean(text).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = []
    for block in _BLANKS.split(text):
        lines = [_SPACES.sub(" ", line).strip() for line in block.split("\n")]
        joined = "\n".join(line for line in lines if line)
        if joined:
            paragraphs.append(joined)
    return "\n\n".join(paragraphs)


def normalise_for_hash(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the key for exact-text dedupe."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def word_count(text: str) -> int:
    return len(text.split())
