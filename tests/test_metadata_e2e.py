"""Issue 12 end to end: `newswire once` against pages served from 127.0.0.1 through a bare
RSS feed (title and link only, as a sitemap or a backfill gives them) and a full one (with a
pubDate and a dc:creator): what lands in the articles table, in real SQLite."""

from __future__ import annotations

import html
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.store import Store, summaries
from tests.conftest import run_cli, story, write_config

GERMAN = ("Die Bundesregierung hat am Dienstag in Berlin neue Maßnahmen für den Klimaschutz "
          "beschlossen. Die Ministerin sagte, dass die Pläne bis zum Ende des Jahres umgesetzt "
          "werden sollen, und sprach von einem wichtigen Schritt für das ganze Land.")
FRENCH = ("Le gouvernement a présenté mardi à Paris un nouveau plan pour le climat. La "
          "ministre a déclaré que les mesures seront appliquées avant la fin de l'année et "
          "qu'elles concernent tous les secteurs de l'économie du pays.")


def page(title: str, paragraphs: list[str], lang: str, head: str = "", top: str = "") -> str:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (f'<!doctype html><html lang="{lang}"><head><title>{html.escape(title)}</title>'
            f'{head}</head><body><nav><a href="/">Home</a></nav><article>'
            f"<h1>{html.escape(title)}</h1>{top}{body}</article>"
            "<footer><p>© Example News</p></footer></body></html>")


def ld(data: dict[str, object]) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


# path -> (title, page HTML, the feed item's extra elements)
PAGES = {
    # A bare item: the page alone dates and credits the story, in its own time zone.
    "/de/klima.html": ("Klimaschutz", page("Klimaschutz", [GERMAN] * 4, "de", head=ld({
        "@context": "https://schema.org", "@type": "NewsArticle",
        "datePublished": "2025-03-03T23:30:00-05:00", "dateModified": "2025-03-06T08:00:00Z",
        "author": [{"@type": "Person", "name": "Ben Wu"},
                   {"@type": "Organization", "name": "Example News"}]})), ""),
    # A full item: the feed's date wins, the page's is kept beside it; the page names nobody,
    # so the feed's author stays; the page declares English but is written in French.
    "/fr/climat.html": ("Climat", page(
        "Climat", [FRENCH] * 4, "en",
        head='<meta property="article:published_time" content="2025-03-01T09:00:00+01:00">'),
        "<pubDate>Tue, 04 Mar 2025 10:00:00 GMT</pubDate>"
        "<dc:creator>ana@example.news (Ana Lopez)</dc:creator>"),
    # Absurd dates are rejected and the next signal answers; a byline gives the authors.
    "/en/harbour.html": ("Harbour", page(
        "Harbour", story("harbour", 4), "en-GB",
        head=ld({"@type": "Article", "datePublished": "1970-01-01T00:00:00Z"})
        + '<meta property="article:published_time" content="2999-01-01T00:00:00Z">',
        top='<div class="byline">By Cleo Park and Dan Moss, Staff Writers</div>'
            '<time datetime="2024-06-01T12:00:00+02:00">1 June 2024</time>'), ""),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path == "/feed.xml":
            items = "".join(
                f"<item><title>{html.escape(title)}</title><link>{base}{path}</link>{extra}"
                "</item>" for path, (title, _, extra) in PAGES.items())
            body = ('<?xml version="1.0"?><rss version="2.0" '
                    'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Example</title>'
                    f"<link>{base}/</link>{items}</channel></rss>").encode()
            kind = "application/rss+xml"
        elif self.path in PAGES:
            body, kind = PAGES[self.path][1].encode(), "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_dates_authors_and_languages_stored_from_page_and_feed(server: str,
                                                               tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [f"{server}/feed.xml"])
    result = run_cli("once", config=config)
    assert result.code == 0, result.stderr
    with sqlite3.connect(tmp_path / "newswire.db") as conn:
        rows = {url.removeprefix(server): rest for url, *rest in conn.execute(
            "SELECT url, published_at, page_published_at, feed_published_at, author, "
            "language, declared_language, text_source FROM articles")}
    assert set(rows) == set(PAGES)
    assert rows["/de/klima.html"] == [
        "2025-03-04T04:30:00Z", "2025-03-03T23:30:00-05:00", None, "Ben Wu", "de", "de",
        "page"]
    assert rows["/fr/climat.html"] == [
        "2025-03-04T10:00:00Z", "2025-03-01T09:00:00+01:00", "2025-03-04T10:00:00Z",
        "Ana Lopez", "fr", "en", "page"]
    assert rows["/en/harbour.html"] == [
        "2024-06-01T10:00:00Z", "2024-06-01T12:00:00+02:00", None, "Cleo Park, Dan Moss",
        "en", "en", "page"]


def test_reextract_fills_the_issue_12_columns_of_older_articles(server: str,
                                                                 tmp_path: Path) -> None:
    """Articles stored before migration 10 have no page date or declared language: `newswire
    reextract` reads them from the archived pages; the feed's date stays the chosen one, an
    empty published_at is filled. Run again, it changes nothing."""
    config = write_config(tmp_path / "newswire.yaml", [f"{server}/feed.xml"])
    assert run_cli("once", config=config).code == 0
    db = tmp_path / "newswire.db"
    columns = ("published_at, page_published_at, feed_published_at, author, language, "
               "declared_language")
    with sqlite3.connect(db) as conn:
        before = sorted(conn.execute(f"SELECT url, {columns} FROM articles"))
        conn.execute("UPDATE articles SET page_published_at = NULL, language = NULL, "
                     "declared_language = NULL, author = NULL, published_at = CASE "
                     "WHEN feed_published_at IS NULL THEN NULL ELSE published_at END")
    first = run_cli("reextract", config=config)
    assert first.code == 0, first.stderr
    assert "3 unchanged (3 with new authors, dates or language)" in first.stdout, first.stdout
    with sqlite3.connect(db) as conn:
        after = sorted(conn.execute(f"SELECT url, {columns} FROM articles"))
        assert conn.execute("SELECT count(*) FROM article_versions").fetchone() == (0,)
    fed = f"{server}/fr/climat.html"  # its author was the feed's: the page names nobody
    assert after == [row if row[0] != fed else (*row[:4], None, *row[5:]) for row in before]
    again = run_cli("reextract", config=config)
    assert "(0 with new authors, dates or language)" in again.stdout, again.stdout
    with Store.open(db) as store:  # dates filled in: the writer's summaries follow
        assert set(summaries.mismatches(store.db).values()) == {0}
