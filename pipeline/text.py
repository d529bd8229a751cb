"""Small text helpers shared by the stages: cleaning, HTML to text, normalisation."""

from __future__ import annotations

import html
import re
import unicodedata

import lxml.etree
import lxml.html

# C0 controls except tab, newline and carriage return; DEL; C1 controls.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
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


def one_line(text: str | None, max_chars: int = 1000) -> str:
    """Clean text folded onto one line with single spaces (titles, names)."""
    return " ".join(clean(text).split())[:max_chars]


def plain_title(text: str | None, max_chars: int = 1000, is_html: bool = False) -> str:
    """A title as plain text: tags stripped and, for an HTML title, entities decoded once."""
    text = clean(text)
    if is_html and "&" in text and not _MARKUP.search(text):
        text = html.unescape(text)
    elif _MARKUP.search(text):
        text = html_to_text(text)
    return one_line(text, max_chars)


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
