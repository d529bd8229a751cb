"""Dates, authors and language from a page's signals (pipeline/metadata.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import lxml.html
import pytest

from pipeline import metadata
from pipeline.extract import extract_article
from pipeline.messages import ExtractJob
from tests.conftest import story

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def tree(head: str = "", body: str = "") -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(
        f"<html><head>{head}</head><body>{body}</body></html>")


def ld(data: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def date_of(page: lxml.html.HtmlElement, url: str = "https://news.example/a") -> str | None:
    objects = metadata.json_ld(page)
    window = metadata.headline_window(page)
    return metadata.page_date(page, url, objects, window, heuristics=False, now=NOW)[0]


def author_and_source(page: lxml.html.HtmlElement, sitename: str | None = None,
                      url: str = "https://news.example/a") -> tuple[str | None, str | None]:
    objects = metadata.json_ld(page)
    window = metadata.headline_window(page)
    return metadata.page_author(page, url, objects, window, sitename)


def authors_of(page: lxml.html.HtmlElement, sitename: str | None = None,
               url: str = "https://news.example/a") -> str | None:
    return author_and_source(page, sitename, url)[0]


# --- dates ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("2024-05-10T22:00:00-05:00", "2024-05-10T22:00:00-05:00"),  # the zone is kept
    ("2024-05-10T22:00:00+0530", "2024-05-10T22:00:00+05:30"),
    ("2024-05-10T22:00:00.123Z", "2024-05-10T22:00:00Z"),
    ("2024-05-10T22:00:00+00:00", "2024-05-10T22:00:00Z"),
    ("2024-05-10 08:15", "2024-05-10T08:15:00"),  # no zone given: local, none invented
    ("2024-05-10", "2024-05-10"),  # a day alone stays a day, no midnight invented
    ("20240510", "2024-05-10"),
    (1715378400, "2024-05-10T22:00:00Z"),  # a Unix timestamp
    ("1715378400000", "2024-05-10T22:00:00Z"),  # ... in milliseconds
    ("1970-01-01T00:00:00Z", None),  # a zero timestamp: absurd
    ("1899-12-31", None),
    ("2031-01-01", None),  # in the future
    ("2024-02-30", None),  # no such day
    ("next Tuesday", None),
    ("4/24/2000 12:00:00 AM", "2000-04-24"),  # a US-locale template's datetime attribute
    ("5/3/2024", "2024-05-03"),  # month first, as those templates write it
    ("24/4/2000", "2000-04-24"),  # ... unless the first number cannot be a month
    ("13/13/2000", None),
    (None, None),
])
def test_parse_date(value: object, expected: str | None) -> None:
    assert metadata.parse_date(value, now=NOW) == expected


def test_json_ld_graph_published_over_modified() -> None:
    graph = {"@context": "https://schema.org", "@graph": [
        {"@type": "WebSite", "@id": "https://news.example/#site", "name": "News"},
        {"@type": ["NewsArticle"], "headline": "Harbour",
         "dateModified": "2025-03-05T09:00:00+01:00",
         "datePublished": "2025-03-04T18:30:00+01:00"}]}
    page = tree(ld(graph) + '<meta property="article:published_time" content="2025-01-01">')
    assert date_of(page) == "2025-03-04T18:30:00+01:00"  # JSON-LD before meta, zone kept


def test_json_ld_list_and_broken_json() -> None:
    page = tree('<script type="application/ld+json">{"@type": "Article", broken</script>'
                + ld([{"@type": "Organization", "name": "News"},
                      {"@type": "BlogPosting", "datePublished": "2024-11-02"}]))
    assert date_of(page) == "2024-11-02"


def test_absurd_json_ld_date_falls_through_to_meta() -> None:
    page = tree(ld({"@type": "Article", "datePublished": "0001-01-01T00:00:00Z"})
                + '<meta property="article:published_time" content="2025-02-03T04:05:06Z">')
    assert date_of(page) == "2025-02-03T04:05:06Z"


def test_meta_tags_ranked_publication_first() -> None:
    page = tree('<meta name="date" content="2025-01-09">'
                '<meta property="article:modified_time" content="2025-05-01T00:00:00Z">'
                '<meta name="parsely-pub-date" content="2025-01-08T10:00:00Z">')
    assert date_of(page) == "2025-01-08T10:00:00Z"  # never the modification time


def test_time_element_in_article_skips_updates() -> None:
    page = tree(body='<article><h1>Harbour</h1><p class="updated">'
                     '<time datetime="2025-05-02">May 2</time></p>'
                     '<p><time datetime="2025-04-30T07:00:00-04:00">April 30</time></p>'
                     '<p>Text.</p></article>')
    assert date_of(page) == "2025-04-30T07:00:00-04:00"


@pytest.mark.parametrize(("url", "expected"), [
    ("https://news.example/2024/05/10/harbour-story", "2024-05-10"),
    ("https://news.example/world/20240510/harbour", "2024-05-10"),
    ("https://news.example/2024-05-10-harbour.html", "2024-05-10"),
    ("https://news.example/2024/05/harbour", None),  # a month is not a day
    ("https://news.example/story/12345678", None),
    ("https://news.example/2024/13/45/x", None),
])
def test_url_dates(url: str, expected: str | None) -> None:
    assert metadata.url_date(url, now=NOW) == expected
    assert date_of(tree(), url) == expected


def test_written_date_beside_the_headline() -> None:
    page = tree(body="<nav>Home</nav><h1>Harbour story</h1><p>By Ana Writer · "
                     "Updated May 20, 2025 · Published 3rd March 2025</p><p>Text.</p>")
    assert date_of(page) == "2025-03-03"  # the publication, not the update


def test_shown_date_confirmed_by_a_field_wins_over_the_first_field() -> None:
    # The CMS's JSON-LD says one day, the page shows another that its <time> confirms.
    page = tree(ld({"@type": "Article", "datePublished": "2024-11-22T10:00:00Z"}),
                '<article><h1>Harbour</h1><p>Published <time datetime="2025-04-08T06:00:00Z">'
                "April 8, 2025</time></p><p>Text.</p></article>")
    assert date_of(page) == "2025-04-08T06:00:00Z"


def test_an_updated_date_is_not_confirmed_by_its_own_time_element() -> None:
    # The page shows only "Updated ...", and the <time> beside it is that update: the
    # JSON-LD publication stays.
    page = tree(ld({"@type": "NewsArticle", "datePublished": "2024-10-15T18:50:03Z"}),
                '<article><h1>Harbour</h1><p>By Ana Writer <span class="date">Updated on '
                '<time datetime="2025-04-08T06:00:00Z">April 8, 2025</time></span></p>'
                "<p>Text.</p></article>")
    assert date_of(page) == "2024-10-15T18:50:03Z"
    # Not labelled as an update: the <time> confirms the date shown, which wins as before.
    shown = tree(ld({"@type": "NewsArticle", "datePublished": "2024-10-15T18:50:03Z"}),
                 '<article><h1>Harbour</h1><p>By Ana Writer <time datetime="2025-04-08T'
                 '06:00:00Z">April 8, 2025</time></p><p>Text.</p></article>')
    assert date_of(shown) == "2025-04-08T06:00:00Z"


def test_an_ambiguous_numeric_date_is_confirmed_in_either_reading() -> None:
    # 09.10.2024 is 9 October day first and September 10 month first: the field decides.
    body = "<h1>Harbour</h1><p>By Ana Writer</p><p>{}</p><p>Text.</p>"
    field = ld({"@type": "Article", "datePublished": "2024-09-10T16:07:00Z"})
    assert date_of(tree(field, body.format("09.10.2024"))) == "2024-09-10T16:07:00Z"
    assert metadata.shown_date("Harbour\n09.10.2024") == metadata.ShownDate(
        "2024-10-09", "2024-09-10")
    assert metadata.shown_date("Harbour\n25.10.2024") == metadata.ShownDate("2024-10-25")
    # A shown date confirmed only by htmldate's search comes back in the reading it matched.
    shown = metadata.ShownDate("2024-10-09", "2024-09-10")
    assert metadata.choose_date({"meta": "2020-01-01"}, lambda: "2024-09-10", shown) == (
        "2024-09-10", "header")


def test_choose_date_uses_htmldate_only_when_asked() -> None:
    calls: list[int] = []

    def search() -> str:
        calls.append(1)
        return "2025-01-02"

    assert metadata.choose_date({"meta": "2025-01-01T00:00:00Z"}, search) == (
        "2025-01-01T00:00:00Z", "meta")
    assert calls == []
    assert metadata.choose_date({"meta": None, "header": None}, search) == (
        "2025-01-02", "htmldate")
    assert metadata.choose_date({"meta": None}, None) == (None, None)


def test_headline_window_is_the_visible_text_around_the_first_headline() -> None:
    page = tree("<title>Harbour | News</title>",
                "<nav>Home World</nav><script>var x = 'May 1, 2020';</script>"
                "<div>Section</div><h1></h1><h1>Harbour <em>fees</em></h1>"
                "<p>By Ana Lopez</p><p>March 3, 2025</p>" + "<p>Body text.</p>" * 200)
    window = metadata.headline_window(page)
    assert window is not None  # no <title>, no script, an empty <h1> skipped:
    assert window.startswith("Home World\nSection\nHarbour fees\nBy Ana Lopez\nMarch 3, 2025\n")
    assert len(window) <= metadata.HEADER_BEFORE + metadata.HEADER_AFTER + 1
    assert metadata.headline_window(tree(body="<p>No headline.</p>")) is None


# --- authors -------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("By Ana Lopez and Ben Wu", "Ana Lopez, Ben Wu"),
    ("BY ANA LOPEZ", "Ana Lopez"),
    ("Ana Lopez, Staff Writer", "Ana Lopez"),
    ("Reporting by Ana Lopez; Editing by Ben Wu", "Ana Lopez"),
    ("Written by: Ana Lopez | Updated 10:42", "Ana Lopez"),
    ("Ana Lopez (ana.lopez@news.example) @analopez", "Ana Lopez"),
    ("Dylan Bailey, MS, RD", "Dylan Bailey"),
    ("Lopez, Ana", "Ana Lopez"),
    ("Ana Lopez &amp; Ben Wu", "Ana Lopez, Ben Wu"),
    ("admin", None),
    ("Updated January 5", None),
    ("https://news.example/authors/ana", None),
    ("ana lopez", "Ana Lopez"),  # written in lower case: the name as written, capitalised
    ("leave a reply", None),
    ("Andrew Gerrand 4 August 2010", "Andrew Gerrand"),  # a day-first date ends the byline
    ("Posted by Ana Lopez on May 5, 2024", "Ana Lopez"),  # ... and "on" a date
    ("BeauHD on Friday December 19, 2025 @09:00PM", "BeauHD"),
    ("Trial Attorney at Smith", None),  # a role "at" a firm is no name
    ("Tom May", "Tom May"),  # month names that are also names, beside another name
    ("June Li and April Ross", "June Li, April Ross"),
    ("May", None),
    ("Updated May 4", None),
])
def test_normalise_authors(value: str, expected: str | None) -> None:
    assert metadata.normalise_authors(value) == expected


def test_json_ld_person_over_organization() -> None:
    page = tree(ld({"@type": "NewsArticle", "author": [
        {"@type": "Organization", "name": "Harbour Wire"},
        {"@type": "Person", "name": "Ana Lopez"},
        {"@type": "Person", "name": "Ben Wu"}]}))
    assert authors_of(page) == "Ana Lopez, Ben Wu"


def test_json_ld_organization_when_nobody_else_is_named() -> None:
    page = tree(ld({"@type": "Article", "author": {"@type": "Organization",
                                                   "name": "Harbour Wire"}}))
    assert authors_of(page) == "Harbour Wire"


def test_a_byline_person_beats_a_json_ld_organisation() -> None:
    page = tree(ld({"@type": "Article", "author": {"@type": "Organization",
                                                   "name": "Harbour Wire"}}),
                '<h1>Harbour</h1><p class="byline">By Ana Lopez</p><p>Text.</p>')
    assert authors_of(page) == "Ana Lopez"


@pytest.mark.parametrize("login", ["andrew.keaveney", "page.head.extra.author", "ana_lopez"])
def test_logins_and_template_keys_are_not_names(login: str) -> None:
    assert metadata.normalise_authors(login, strict=False) is None
    page = tree(f'<meta name="author" content="{login}">',
                '<h1>Harbour</h1><p class="byline">By Ana Lopez</p><p>Text.</p>')
    assert authors_of(page) == "Ana Lopez"


def test_json_ld_author_by_id_reference_in_graph() -> None:
    graph = {"@graph": [
        {"@type": "Article", "author": {"@id": "https://news.example/#/person/1"}},
        {"@type": "Person", "@id": "https://news.example/#/person/1", "name": "Ana Lopez"}]}
    assert authors_of(tree(ld(graph))) == "Ana Lopez"


def test_site_name_is_not_an_author_when_a_person_is_named() -> None:
    page = tree('<meta name="author" content="Example News">',
                '<h1>Harbour</h1><p class="byline">By Ana Lopez</p><p>Text.</p>')
    assert authors_of(page, sitename="Example News") == "Ana Lopez"
    page = tree('<meta name="author" content="Newsexample">')
    assert authors_of(page, url="https://www.newsexample.com/a") == "Newsexample"  # alone


def test_meta_and_byline_sources() -> None:
    assert authors_of(tree('<meta property="article:author" content="https://fb.com/x">'
                           '<meta name="author" content="Ana Lopez">')) == "Ana Lopez"
    assert authors_of(tree('<meta name="twitter:label1" content="Written by">'
                           '<meta name="twitter:data1" content="Ana Lopez">')) == "Ana Lopez"
    page = tree(body='<h1>Harbour</h1><div class="article-byline"><span>By</span> '
                     '<a href="/ana">Ana Lopez</a> and <a href="/ben">Ben Wu</a></div>')
    assert authors_of(page) == "Ana Lopez, Ben Wu"
    page = tree(body="<h1>Harbour</h1><p>Written by Ana Lopez</p><p>Text of the story.</p>")
    assert authors_of(page) == "Ana Lopez"


LONG = "<h1>Harbour</h1>" + "<p>Text of the story, long enough to be one.</p>" * 200


def source_of(body: str) -> tuple[str | None, str | None]:
    """(authors, the signal that named them) on a page whose headline's window (where 'By
    Name' is looked for) ends before `body`."""
    return author_and_source(tree(body=LONG + body))


def test_a_link_to_the_authors_page_names_the_author() -> None:
    link = '<div class="meta"><a href="/blog/author/ana-lopez/">Ana Lopez</a></div>'
    assert source_of(link) == ("Ana Lopez", "author-link")
    assert source_of(link.replace("/ana-lopez/", "/ana/"))[0] is None  # not the name it spells
    assert source_of('<a href="/autor/jose-garcia-2.html">José García</a>') == (
        "José García", "author-link")  # accents folded, WordPress's "-2" and ".html" aside
    assert source_of('<a href="https://[object Object]/">share</a>') == (None, None)
    for elsewhere in (
            '<p>She met <a href="/author/ben-wu">Ben Wu</a> at the fair last spring, '
            "and they talked for an hour.</p>",  # a link in a sentence
            '<div class="related-posts"><a href="/author/ben-wu/">Ben Wu</a></div>',
            '<ol class="comment-list"><li><a href="/author/ben-wu/">Ben Wu</a> says</li></ol>',
            '<ul class="menu"><li><a href="/authors/ben-wu">Ben Wu</a></li></ul>',
            '<figure><figcaption><a href="/authors/ben-wu">Ben Wu</a></figcaption></figure>',
            '<a href="/author/jdadmin/">jdadmin</a>',  # a login
            '<a href="/people/joe-biden">Joe Biden</a>'):  # whom the story is about
        assert source_of(elsewhere) == (None, None), elsewhere
    both = ('<h1>Harbour</h1><p class="byline">By Ben Wu</p>'
            '<a href="/authors/ana-lopez">Ana Lopez</a>')
    assert authors_of(tree(body=both)) == "Ben Wu"  # the marked byline comes first


def test_written_by_anywhere_in_the_article() -> None:
    for box, expected in (
            ('<p>Written by <!-- author --><a href="/team/ana">Ana Lopez</a></p>', "Ana Lopez"),
            ('<p>Written by <a href="/a">Ana Lopez</a> and <a href="/b">Ben Wu</a></p>',
             "Ana Lopez, Ben Wu"),
            ("<div><h3>Author</h3><!-- .widget-title --><p>Ana Lopez</p></div>", "Ana Lopez"),
            ("<div><strong>Contributors:</strong> Ana Lopez</div>", "Ana Lopez"),
            ('<div><img src="a.png"> Written by <span>Ana Lopez</span></div>', "Ana Lopez"),
            ("<div><h4>Authors</h4><ul><li>Ana Lopez</li><li>Ben Wu</li></ul></div>",
             "Ana Lopez, Ben Wu"),
            ("<article><p>Text.</p><footer>Written by Ana Lopez</footer></article>",
             "Ana Lopez")):  # the article's own footer
        assert source_of(box) == (expected, "written-by"), box
    for elsewhere in (
            '<div class="comments-list"><span>Posted by: <a href="mailto:j@x.example">'
            "John Smith</a> at 5:48 PM</span></div>",  # a reader, not the author
            '<p>Python has a regex library written by <a href="/mb">Matthew Barnett</a> '
            "in C.</p>",  # a phrase inside a sentence
            "<dl><dt>Title:</dt><dd>Emma</dd><dt>Author:</dt><dd>Jane Austen</dd></dl>",
            "<ul><li>Publisher: Penguin</li><li>Author: Jane Austen</li></ul>",  # a fact box
            "<ul><li>Directed by Greta Gerwig</li><li>Written by Noah Baumbach</li></ul>",
            '<aside class="widget"><span>Posted by Ben Wu</span></aside>',
            "<footer><p>Written by Ben Wu</p></footer>",  # the site's footer
            "<table><tr><th>Title</th><th>Author</th><th>Date</th></tr></table>"):
        assert source_of(elsewhere) == (None, None), elsewhere


def test_feed_author_kept_when_the_page_has_none() -> None:
    page = "<html><body><article>" + "".join(
        f"<p>{p}</p>" for p in story("harbour", 4)) + "</article></body></html>"
    job = ExtractJob(url="https://news.example/a", html=page, entry_title="Harbour",
                     entry_content="", entry_published_at="2025-03-04T10:00:00Z",
                     entry_authors=("ana@news.example (Ana Lopez)",))
    article = extract_article(job)
    assert article.author == "Ana Lopez"
    assert article.published_at == article.feed_published_at == "2025-03-04T10:00:00Z"
    assert article.page_published_at is None


def test_page_date_and_feed_date_kept_apart() -> None:
    page = ("<html><head>" + ld({"@type": "NewsArticle", "datePublished":
                                 "2025-03-03T23:30:00-05:00",
                                 "author": {"@type": "Person", "name": "Ben Wu"}})
            + "</head><body><article>" + "".join(f"<p>{p}</p>" for p in story("harbour", 4))
            + "</article></body></html>")
    job = ExtractJob(url="https://news.example/a", html=page, entry_title="Harbour",
                     entry_content="", entry_published_at="2025-03-04T04:31:00Z",
                     entry_authors=("Ana Lopez",))
    article = extract_article(job)
    assert article.page_published_at == "2025-03-03T23:30:00-05:00"
    assert article.feed_published_at == article.published_at == "2025-03-04T04:31:00Z"
    assert article.author == "Ben Wu"  # the page's author wins over the feed's
    bare = extract_article(replace(job, entry_published_at=None, entry_authors=()))
    assert bare.page_published_at == "2025-03-03T23:30:00-05:00"  # as the page wrote it
    assert bare.published_at == "2025-03-04T04:30:00Z"  # stored in UTC
    assert bare.feed_published_at is None


# --- language ------------------------------------------------------------------------------

GERMAN = ("Die Bundesregierung hat am Dienstag in Berlin neue Maßnahmen für den Klimaschutz "
          "beschlossen. Die Ministerin sagte, dass die Pläne bis zum Ende des Jahres umgesetzt "
          "werden sollen, und sprach von einem wichtigen Schritt für das ganze Land.")
FRENCH = ("Le gouvernement a présenté mardi à Paris un nouveau plan pour le climat. La "
          "ministre a déclaré que les mesures seront appliquées avant la fin de l'année et "
          "qu'elles concernent tous les secteurs de l'économie du pays.")


def test_detect_language() -> None:
    assert metadata.detect_language(GERMAN) == "de"
    assert metadata.detect_language(FRENCH) == "fr"
    assert metadata.detect_language(" ".join(story("harbour", 2))) == "en"
    assert metadata.detect_language("Kurzer Text.") is None  # too short to tell


def test_detected_language_stored_beside_the_declared_one() -> None:
    page = ('<html lang="en-GB"><body><article><h1>Klima</h1>'
            + f"<p>{GERMAN}</p><p>{GERMAN}</p></article></body></html>")
    article = extract_article(ExtractJob(url="https://news.example/de/a", html=page,
                                         entry_title="Klima", entry_content="",
                                         entry_published_at=None))
    assert article.language == "de"
    assert article.declared_language == "en"
    short = extract_article(ExtractJob(url="https://news.example/b", html=(
        '<html lang="fr"><body><article><p>Oui.</p></article></body></html>'),
        entry_title="", entry_content="", entry_published_at=None))
    assert short.language == short.declared_language == "fr"  # too short: the declared one
