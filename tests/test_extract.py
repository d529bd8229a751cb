"""Extraction with real trafilatura, the feed-content fallback and quality flags."""

from __future__ import annotations

import random

import trafilatura

from pipeline.boilerplate import line_key
from pipeline.dedupe import article_id
from pipeline.extract import (
    MAX_UNREADABLE_SHARE,
    MIN_PAGE_SHARE,
    ExtractJob,
    decode_html,
    extract_article,
    extract_body,
    extract_job,
    page_visible_words,
)
from pipeline.text import unreadable_share
from tests.conftest import needs_corpus, story

PARAS = story("harbour", 5)


def page(paragraphs: list[str], canonical: str = "https://news.example/a/story") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><title>Harbour story - News</title>
    <link rel="canonical" href="{canonical}">
    <meta name="author" content="Ana Writer">
    <meta property="article:published_time" content="2025-03-04T10:00:00Z">
    <meta property="og:site_name" content="Example News"></head><body>
    <nav><a href="/">Home</a> <a href="/world">World</a></nav>
    <article><h1>Harbour story</h1>{body}</article>
    <aside><h2>Most read</h2><ul><li>Another thing</li></ul></aside>
    <footer>Copyright Example News. All rights reserved.</footer></body></html>"""


def job(html: str | bytes | None, content: str = "", **kw: object) -> ExtractJob:
    fields: dict[str, object] = dict(entry_title="Harbour story", entry_published_at=None)
    fields.update(kw)
    return ExtractJob(url="https://news.example/a/story?utm_source=rss", html=html,
                      entry_content=content, **fields)


def test_page_text_and_metadata() -> None:
    article = extract_article(job(page(PARAS)))
    assert article.text_source == "page" and article.extract_error is None
    for paragraph in PARAS:
        assert paragraph in article.text
    assert "All rights reserved" not in article.text and "Most read" not in article.text
    assert article.text.count("\n\n") >= len(PARAS) - 1
    assert article.author == "Ana Writer"
    assert article.sitename == "Example News"
    assert article.language == article.declared_language == "en"
    assert article.published_at == article.page_published_at == "2025-03-04T10:00:00Z"
    assert article.feed_published_at is None
    assert article.canonical_url == "https://news.example/a/story"
    assert article.id == article_id("https://news.example/a/story")


def test_canonical_on_another_site_is_ignored() -> None:
    article = extract_article(job(page(PARAS, canonical="https://evil.example/x")))
    assert article.canonical_url == "https://news.example/a/story"


def test_failed_page_falls_back_to_feed_content() -> None:
    content = "".join(f"<p>{p}</p>" for p in PARAS) + "<script>alert(1)</script>"
    article = extract_article(job(None, content, page_error="HTTP 500"))
    assert article.text_source == "feed"
    assert article.extract_error == "HTTP 500"
    assert "alert" not in article.text
    assert article.text.split("\n\n") == PARAS


def test_teaser_page_loses_to_fuller_feed_content() -> None:
    teaser = page([PARAS[0][:120] + " Subscribe to continue reading."])
    content = "".join(f"<p>{p}</p>" for p in PARAS)
    article = extract_article(job(teaser, content))
    assert article.text_source == "feed"
    assert article.quality is not None and "short" in article.quality


def test_page_without_text_and_no_feed_content_is_flagged_empty() -> None:
    article = extract_article(job("<html><body><div></div></body></html>"))
    assert article.text == ""
    assert article.quality == "empty"
    assert article.extract_error == "extractor found no main text"


def test_binary_garbage_never_raises() -> None:
    article = extract_job(job("\x00\x01\x02" * 1000 + "<html><p>"))
    assert article.text == ""


def test_binary_data_sent_as_html_is_not_taken_for_text() -> None:
    """Random bytes between paragraph tags would give paragraphs of U+FFFD and controls,
    long enough to beat the feed's text: the page is refused and the feed's text stands in.
    A page in an undeclared legacy charset, with a few undecodable letters, is still read."""
    rng = random.Random(26)
    noise = bytes(b for b in rng.randbytes(60_000) if b not in b"<>&")
    paragraphs = b"".join(b"<p>" + noise[i:i + 600] + b"</p>" for i in range(0, len(noise), 600))
    content = "".join(f"<p>{p}</p>" for p in PARAS)
    article = extract_article(job(b"<html><body><article>" + paragraphs, content))
    assert article.text_source == "feed" and article.text.split("\n\n") == PARAS
    assert article.extract_error is not None
    assert article.extract_error.startswith("page is not text: ")
    assert unreadable_share(decode_html(paragraphs)) > 0.5 > MAX_UNREADABLE_SHARE
    french = "Les élèves ont été très étonnés à la fête du château, déjà célèbre. " * 8
    legacy = page([french, *PARAS]).encode("latin-1")  # no charset anywhere
    assert 0 < unreadable_share(decode_html(legacy)) < MAX_UNREADABLE_SHARE
    article = extract_article(job(legacy, content))
    assert article.text_source == "page" and article.extract_error is None
    assert unreadable_share("") == 0.0


def test_page_bytes_are_decoded_by_http_then_meta_charset() -> None:
    text = "Café owners in the harbour district said trade had recovered " * 5
    html = page([text, *PARAS])
    latin = html.replace('<head>', '<head><meta charset="windows-1252">').encode("cp1252")
    assert text.strip() in extract_article(job(latin)).text  # meta charset
    assert text.strip() in extract_article(job(html.encode("cp1252"),
                                               content_type="text/html; charset=cp1252")).text
    assert text.strip() in extract_article(job(html.encode("utf-8"))).text  # UTF-8 default
    # The HTTP header wins over a stale meta tag that says otherwise.
    stale = html.replace('<head>', '<head><meta charset="utf-8">').encode("cp1252")
    assert text.strip() in extract_article(job(stale, content_type="text/html; "
                                               "charset=windows-1252")).text
    assert decode_html(b"\xef\xbb\xbfcaf\xc3\xa9", "text/html; charset=latin-1") == "café"
    assert decode_html(b"caf\xe9", "text/html; charset=no-such-charset") == "caf\ufffd"


def test_a_repeated_headline_is_dropped_from_the_text() -> None:
    article = extract_article(job(page(PARAS)))
    assert not article.text.startswith("Harbour story")
    assert article.text.startswith(PARAS[0])


def test_the_sites_repeated_lines_are_dropped_and_every_line_is_reported() -> None:
    footer = "The Example News is an independent newspaper founded in 1901 by printers."
    plain = extract_article(job(page([*PARAS, footer])))
    assert footer in plain.text
    assert line_key(footer) in plain.line_keys and line_key(PARAS[0]) in plain.line_keys
    filtered = extract_article(job(page([*PARAS, footer]), site_lines=frozenset(
        {line_key(footer)})))
    assert footer not in filtered.text and PARAS[-1] in filtered.text
    assert filtered.line_keys == plain.line_keys  # counted before filtering


def test_the_feed_date_and_authors_make_the_page_searches_unnecessary() -> None:
    article = extract_article(job(page(PARAS), entry_published_at="2025-01-02T03:04:05Z",
                                  entry_authors=("Feed Writer",)))
    assert article.published_at == "2025-01-02T03:04:05Z"
    assert article.author == "Ana Writer"  # the page's meta tag still wins: it is cheap


def test_low_coverage_recall_text_falls_back_to_the_default_mode() -> None:
    """A listing-like page of the corpus where recall mode keeps 3% of the page's words."""
    import gzip

    root = needs_corpus("extraction", "wcxb-dev")
    with gzip.open(root / "html" / "dev-0030.html.gz", "rb") as fh:
        body = fh.read()
    url = "https://www.timeout.com/newyork/things-to-do/best-certificate-programs-certifications-nyc"
    tree = trafilatura.load_html(decode_html(body))
    recall = trafilatura.bare_extraction(tree, url=url, favor_recall=True,
                                         include_comments=False).text
    assert len(recall.split()) < MIN_PAGE_SHARE * page_visible_words(tree)
    text = extract_body(tree, url)
    assert len(text) > 5 * len(recall)
