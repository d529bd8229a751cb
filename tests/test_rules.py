"""Extraction rules (issue 14, items 8 and 12): a CSS selector for the body and selectors to
remove, per feed or per site, applied before the general extraction; a rule that matches
nothing falls back and is reported; `newswire try` shows what a rule does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.extract import extract_article
from pipeline.messages import ExtractJob, ExtractRules
from pipeline.run import run_once
from pipeline.store import Store
from tests.conftest import run_cli, story, write_config
from tests.newssite import NewsSite
from tests.test_fetch import Trap

PARAGRAPHS = story("rules")
RELATED = "Also in this section: the harvest festival and its prize-winning pumpkins."


def page_html(paragraphs: list[str] = PARAGRAPHS) -> str:
    """A page whose story body sits in `.story-body`, with an inserted box inside it and
    a lot of navigation around it."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs[:2]) + \
        f'<div class="insert-box"><p>{RELATED}</p></div>' + \
        "".join(f"<p>{p}</p>" for p in paragraphs[2:])
    nav = "".join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(30))
    return (f'<!DOCTYPE html><html lang="en"><head><title>Rules page</title>'
            f'<meta name="author" content="Rita Rule"></head><body><nav><ul>{nav}</ul></nav>'
            f'<div class="wrapper"><h1>Rules page</h1><div class="story-body">{body}</div>'
            f'<aside class="ad">Advertisement: buy the thing now.</aside></div>'
            f"<footer>Copyright the site</footer></body></html>")


def job(rules: ExtractRules | None, html: str | None = None) -> ExtractJob:
    return ExtractJob(url="https://rules.example/story.html", html=html or page_html(),
                      entry_title="Rules page", entry_content="",
                      entry_published_at="2025-01-02T03:04:05Z", rules=rules)


def test_a_body_rule_that_matches_is_the_body() -> None:
    article = extract_article(job(ExtractRules(body=".story-body", remove=(".insert-box",),
                                               origin="feed Example")))
    assert article.text == "\n\n".join(PARAGRAPHS)
    assert article.rules_note == ("feed Example: body '.story-body' matched 1 element; "
                                  "removed 1 element (.insert-box)")
    assert "rule_missed" not in (article.quality or "")


def test_remove_rules_apply_before_the_general_extraction() -> None:
    plain = extract_article(job(None))
    assert RELATED in plain.text  # the general extraction keeps the box
    ruled = extract_article(job(ExtractRules(remove=(".insert-box", ".ad"))))
    assert RELATED not in ruled.text and PARAGRAPHS[0] in ruled.text
    assert ruled.rules_note == "removed 2 elements (.insert-box, .ad)"


def test_a_body_rule_that_matches_nothing_falls_back_and_says_so() -> None:
    article = extract_article(job(ExtractRules(body="article .story-text", origin="site x")))
    assert PARAGRAPHS[0] in article.text  # the general extraction's text
    assert article.quality is not None and "rule_missed" in article.quality.split(",")
    assert article.rules_note == ("site x: body 'article .story-text' matched nothing: "
                                  "general extraction used")
    assert article.text_source == "page"


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as news:
        news.route("/news/ruled.html", page_html(), "text/html; charset=utf-8")
        now = datetime.now(UTC)
        news.route("/feeds/ruled.xml", (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Ruled</title><item>'
            f"<title>Rules page</title><link>{news.url('/news/ruled.html')}</link>"
            f"<guid>ruled</guid><pubDate>{now:%a, %d %b %Y %H:%M:%S +0000}</pubDate>"
            "</item></channel></rss>"), "application/rss+xml")
        yield news


def ingest(tmp_path: Path, site: NewsSite, feed: dict, **sections: object) -> Store:
    config = load_config(write_config(tmp_path / "newswire.yaml",
                                      [{"url": site.url("/feeds/ruled.xml"), **feed}],
                                      extract={"workers": 1}, **sections))
    store = Store.open(config.database)
    report = asyncio.run(run_once(config, store))
    assert report.ok == 1, report.errors
    return store


def test_a_feed_rule_that_matches_end_to_end(site: NewsSite, tmp_path: Path) -> None:
    with ingest(tmp_path, site, {"name": "Ruled", "rules": {
            "body": ".story-body", "remove": [".insert-box"]}}) as store:
        text, note, quality = store.db.execute(
            "SELECT text, extract_rules, quality FROM articles").fetchone()
    assert text == "\n\n".join(PARAGRAPHS)
    assert note == "feed Ruled: body '.story-body' matched 1 element; removed 1 element " \
        "(.insert-box)"
    assert quality is None


def test_a_site_rule_that_matches_nothing_end_to_end(site: NewsSite, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="newswire")
    with ingest(tmp_path, site, {}, sites={
            "127.0.0.1": {"rules": {"body": "#no-such-body"}}}) as store:
        text, note, quality = store.db.execute(
            "SELECT text, extract_rules, quality FROM articles").fetchone()
    assert PARAGRAPHS[0] in text
    assert note == "site 127.0.0.1: body '#no-such-body' matched nothing: general " \
        "extraction used"
    assert quality == "rule_missed"
    assert "extraction rule matched nothing" in caplog.text


def test_try_shows_what_a_feeds_rule_does(site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [{
        "url": site.url("/feeds/ruled.xml"), "name": "Ruled",
        "rules": {"body": ".story-body", "remove": [".insert-box"]},
        "filters": {"block": [{"field": "author", "pattern": "rita"}]}}])
    result = run_cli("try", site.url("/news/ruled.html"), "--feed", "ruled", config=config)
    assert result.code == 0, result.stderr
    out = result.stdout
    assert "feed:     Ruled" in out
    assert "applied:  feed Ruled: body '.story-body' matched 1 element; removed 1 element" \
        in out
    for line in ("title:    Rules page", "author:   Rita Rule", "language: en",
                 "filters:  filtered: feed block: author ~ rita (any case)"):
        assert line in out, out
    assert out.rstrip().endswith(PARAGRAPHS[-1])
    assert RELATED not in out
    assert not (tmp_path / "newswire.db").exists()  # nothing written


def test_try_without_a_feed_uses_the_sites_rules_and_reports_a_miss(
        site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.url("/feeds/ruled.xml")],
                          sites={"127.0.0.1": {"rules": {"body": ".nothing-here"}}})
    result = run_cli("try", site.url("/news/ruled.html"), config=config)
    assert result.code == 0, result.stderr
    assert "rules:    site 127.0.0.1" in result.stdout
    assert "matched nothing: general extraction used" in result.stdout
    assert "(rule_missed)" in result.stdout
    assert "filters:  kept" in result.stdout


def test_try_refuses_an_unknown_feed_and_a_blocked_address(site: NewsSite, tmp_path: Path,
                                                          ) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.url("/feeds/ruled.xml")])
    unknown = run_cli("try", site.url("/news/ruled.html"), "--feed", "Nope", config=config)
    assert unknown.code == 2 and "no feed named 'Nope'" in unknown.stderr
    trap = Trap()
    try:
        blocked = run_cli("try", trap.base_url + "/news/x.html", config=config)
    finally:
        trap.close()
    assert blocked.code == 1
    assert "non-public address" in blocked.stdout
    assert trap.hits == 0
