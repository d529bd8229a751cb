"""Extraction with real trafilatura, the feed-content fallback and quality flags."""

from __future__ import annotations

import time

from pipeline.dedupe import article_id
from pipeline.extract import ExtractJob, extract_article, extract_job, time_limit
from tests.conftest import story

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


def job(html: str | None, content: str = "", **kw: object) -> ExtractJob:
    return ExtractJob(url="https://news.example/a/story?utm_source=rss", html=html,
                      entry_title="Harbour story", entry_content=content,
                      entry_published_at=None, **kw)


def test_page_text_and_metadata() -> None:
    article = extract_article(job(page(PARAS)))
    assert article.text_source == "page" and article.extract_error is None
    for paragraph in PARAS:
        assert paragraph in article.text
    assert "All rights reserved" not in article.text and "Most read" not in article.text
    assert article.text.count("\n\n") >= len(PARAS) - 1
    assert article.author == "Ana Writer"
    assert article.sitename == "Example News"
    assert article.language == "en"  # from <html lang>, trafilatura's detector is optional
    assert article.published_at == "2025-03-04T00:00:00Z"
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


def test_time_limit_interrupts_long_work() -> None:
    started = time.monotonic()
    try:
        with time_limit(0.2):
            while True:
                time.sleep(0.01)
    except Exception as exc:  # noqa: BLE001
        assert type(exc).__name__ == "ExtractionTimeout"
    assert time.monotonic() - started < 2
