"""pipeline.blocks: the blocks that point elsewhere leave the page before the extractor
reads it; the article around them, and pages made of them, stay whole."""

from __future__ import annotations

import lxml.html
import pytest
import trafilatura

from pipeline.blocks import BLOCK_RULES, drop_link_blocks, link_blocks, visible_words
from pipeline.extract import ExtractJob, extract_article, page_visible_words
from tests.conftest import story

PARAS = story("harbour", 6)


def _page(before: str = "", after: str = "", header: str = "") -> str:
    body = "".join(f"<p>{p}</p>" for p in PARAS)
    return (f"<html><head><title>Harbour</title></head><body><main><article>{header}"
            f"{before}{body}{after}</article></main></body></html>")


def _found(html: str, rules: tuple[str, ...] = tuple(BLOCK_RULES)) -> list[str]:
    tree = lxml.html.fromstring(html)
    return [" ".join(" ".join(e.itertext()).split())
            for e in link_blocks(tree, page_visible_words(tree), rules)]


def _text(html: str) -> str:
    return extract_article(ExtractJob(url="https://news.test/harbour", html=html,
                                      entry_title="Harbour dues raised",
                                      entry_content="", entry_published_at=None)).text


def _recall(html: str) -> str:
    return trafilatura.extract(html, favor_recall=True) or ""


# Longer than the 60 characters under which trafilatura's own link-density test looks at a
# paragraph, shorter than the 100 of a single link its recall mode takes for boilerplate.
RELATED = ('<p><a href="/other">Port strike enters its third week as talks between the union '
           'and the port stall</a></p>')
HEADLINE = "Port strike enters its third week as talks between the union and the port stall"
# Teaser cards: a headline link and a blurb, under 100 characters, the link under 80% of them
# (trafilatura's recall mode keeps those).
CARDS = ('<div><h3><a href="/a">Ferry fares frozen for winter</a></h3><p>Ministers agree a '
         'freeze until March</p></div>'
         '<div><h3><a href="/b">Dockers vote on new rota</a></h3><p>The ballot closes on '
         'Friday at noon</p></div>')


def test_a_paragraph_that_is_one_link_leaves_the_page() -> None:
    page = _page(before=RELATED)
    assert _found(page, ("one-link paragraphs",)) == [HEADLINE]
    assert "Port strike" in _recall(page)  # trafilatura alone keeps it
    text = _text(page)
    assert "Port strike" not in text
    assert PARAS[0] in text and PARAS[-1] in text


def test_a_link_in_a_sentence_a_list_item_or_a_short_link_stays() -> None:
    in_sentence = ('<p>The <a href="/port">port authority</a> said the dues would rise again '
                   'next spring.</p>')
    in_item = '<ul><li><p><a href="/x">A resource the article lists for readers</a></p></li></ul>'
    short = '<p><a href="/y">Home page</a></p>'  # ten characters or fewer
    assert _found(_page(after=in_sentence + in_item + short), ("one-link paragraphs",)) == []


def test_short_blocks_of_links_leave_the_page() -> None:
    found = _found(_page(after=CARDS), ("link cards",))
    assert sorted(found) == [
        "Dockers vote on new rota The ballot closes on Friday at noon",
        "Ferry fares frozen for winter Ministers agree a freeze until March"]
    assert "Ferry fares" in _recall(_page(after=CARDS))
    text = _text(_page(after=CARDS))
    assert "Ferry fares" not in text and "Dockers vote" not in text
    assert PARAS[0].split(".")[0] in text


@pytest.mark.parametrize("block", [
    # an image: a figure with its credit link, not a card
    '<div><a href="/p"><img src="/p.jpg"></a><span>Photo: Port of Harbour</span></div>',
    # one element: a lone link wrapped in a div is trafilatura's own concern
    '<div><a href="/z">Ferry fares frozen for winter</a></div>',
    # no link
    '<div><b>Fact box</b><span>Dues rose 4% in 2024</span></div>',
    # 100 characters or more of text, with more after it
    f'<div><a href="/l">{"A long teaser headline " * 5}</a><span>blurb</span></div><p>End.</p>',
])
def test_blocks_that_are_not_short_link_cards_stay(block: str) -> None:
    assert _found(_page(after=block), ("link cards",)) == []


def test_a_last_card_may_be_longer() -> None:
    """The last block of its parent is tested against 200 characters, as trafilatura's
    link-density test does: the closing "more from" box."""
    headline = "Harbour master on the busiest summer the port has had in twenty years"
    card = (f'<div><h4><a href="/m">{headline}</a></h4><span>An interview by our port '
            f'reporter</span></div>')
    found = _found(_page(after=card), ("link cards",))
    assert len(found) == 1 and 100 < len(found[0]) < 200
    assert _found(_page(after=card + "<p>Last words of the article.</p>"), ("link cards",)) == []


def test_the_articles_header_block_leaves_the_page_but_not_a_standfirst() -> None:
    header = ('<header><h1>Harbour dues raised</h1><div class="byline">By <a href="/ana">Ana '
              'Lopez</a> · <a href="/share">Share</a></div></header>')
    assert _found(_page(header=header), ("article headers",)) == [
        "Harbour dues raised By Ana Lopez · Share"]
    standfirst = ('<header><h1>Harbour dues raised</h1><p>The port raises its dues for the '
                  'third year running.</p></header>')
    assert _found(_page(header=standfirst), ("article headers",)) == []
    # The page's own header, outside <article> and <main>, is not the article's.
    page_header = _page().replace("<body>", '<body><header><a href="/">Home</a></header>')
    assert _found(page_header, ("article headers",)) == []


def test_nothing_leaves_a_page_made_of_such_blocks() -> None:
    """A listing of cards: the cards are the page, not noise beside it."""
    cards = "".join(f'<div><h3><a href="/s{i}">Story {i} about the harbour</a></h3>'
                    f'<span>Local news</span></div>' for i in range(20))
    listing = f"<html><body><main>{cards}<p>Twenty stories.</p></main></body></html>"
    tree = lxml.html.fromstring(listing)
    assert len(BLOCK_RULES["link cards"](tree)) == 20
    assert link_blocks(tree, page_visible_words(tree)) == []
    # ... and the same cards beside a long article go.
    tree = lxml.html.fromstring(_page(after=cards[:300]))
    assert link_blocks(tree, page_visible_words(tree))


def test_the_share_is_of_visible_words() -> None:
    """A script counts for nothing, in the page's words or in a block's: a header carrying
    a large JSON-LD script is still the article's header block, not most of the page."""
    script = "<script>" + "var x = 1; " * 5000 + "</script>"
    tree = lxml.html.fromstring(f"<div><p>one two three</p> {script} <style>a b c</style></div>")
    assert visible_words(tree) == 3
    header = f'<header><h1>Harbour dues raised</h1>{script}<a href="/s">Share</a></header>'
    found = _found(_page(header=header), ("article headers",))
    assert len(found) == 1 and found[0].startswith("Harbour dues raised")


def test_drop_link_blocks_keeps_the_text_around_them() -> None:
    tree = lxml.html.fromstring(
        '<html><body><main>' + "".join(f"<p>{p}</p>" for p in PARAS)
        + RELATED[:-4] + "</p>tail words</main></body></html>")
    assert drop_link_blocks(tree, page_visible_words(tree)) == 1
    text = " ".join(tree.text_content().split())
    assert "Port strike" not in text and text.endswith("tail words")
