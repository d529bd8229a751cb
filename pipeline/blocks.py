"""Blocks of a page that point elsewhere, taken out of its tree before the extractor reads it.

trafilatura's recall mode, the pipeline's (see `pipeline.extract`), keeps small blocks made
of links beside the article: a paragraph that is one link to another story (the headline
"How the vote was won", linked), a teaser card (a headline link and a line of blurb), a row
of tags or share buttons, and the article's own header block (headline, byline, date, share
links; the headline and the dateline come back as lines the line rules of
`pipeline.boilerplate` must then recognise). Its precision mode drops them, and much more
with them (-0.02 word F1 on wcxb-dev). These rules take only those blocks, each measured on
both extraction sets (bench/bench_extraction.py prints what each buys):

- a paragraph whose text is one link (over 10 characters and over 90% of the paragraph),
  unless it is the content of a list item or a table cell;
- a block of two or more elements with a link in it, no image, and under 100 characters of
  text (200 when it is the last of its siblings): the sizes trafilatura's own link-density
  test calls short;
- a `<header>` with no paragraph inside an `<article>` or `<main>`: the article's heading
  block (a page's own header, outside them, holds its menus, which trafilatura already
  drops; a `<header>` with paragraphs is a standfirst or, on some templates, the text).

When what they would take adds up to more than MAX_SHARE of the page's visible words, the
page is made of such blocks (a listing, a landing page of cards, a link collection): they
are its content, and nothing is taken.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import lxml.etree
from lxml.etree import XPath

from pipeline.text import INVISIBLE

MAX_SHARE = 0.3

_VISIBLE = f"*[not({' or '.join(f'self::{tag}' for tag in INVISIBLE)})]"
_LENGTH = "string-length(normalize-space(.))"
BLOCK_RULES: dict[str, Any] = {
    "one-link paragraphs": XPath(
        "//p[count(.//a) = 1][not(.//img)][not(parent::li or parent::td or parent::th)]"
        "[string-length(normalize-space(.//a)) > 10]"
        f"[string-length(normalize-space(.//a)) > 0.9 * {_LENGTH}]"),
    "link cards": XPath(
        f"//div[count({_VISIBLE}) >= 2][not(.//img)][.//a[normalize-space()]]"
        f"[{_LENGTH} < 100 or ({_LENGTH} < 200 and not(following-sibling::{_VISIBLE}))]"),
    "article headers": XPath("//header[not(.//p)][ancestor::article or ancestor::main]"),
}


def visible_words(element: Any) -> int:
    """Words of `element`'s visible text (scripts and styles excluded); cheap: one C call."""
    count = len(lxml.etree.tostring(element, method="text", encoding="unicode",
                                    with_tail=False).split())
    for invisible in element.iter(*INVISIBLE):
        if invisible.text:
            count -= len(invisible.text.split())
    return max(count, 0)


def link_blocks(tree: Any, page_words: int, rules: Collection[str] = tuple(BLOCK_RULES)
                ) -> list[Any]:
    """The outermost elements of `tree` the named `rules` take, none when they hold more than
    MAX_SHARE of the page's `page_words` visible words."""
    found = {element for name in rules for element in BLOCK_RULES[name](tree)}
    outer = [element for element in found
             if not any(ancestor in found for ancestor in element.iterancestors())]
    words = sum(visible_words(element) for element in outer)
    return outer if words <= MAX_SHARE * page_words else []


def drop_link_blocks(tree: Any, page_words: int,
                     rules: Collection[str] = tuple(BLOCK_RULES)) -> int:
    """Take `link_blocks` out of `tree` (in place; their tail text stays): how many."""
    blocks = link_blocks(tree, page_words, rules)
    for element in blocks:
        element.drop_tree()
    return len(blocks)
