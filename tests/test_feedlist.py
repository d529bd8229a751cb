"""Feed management: `newswire add` finds a page's feed and appends it to the config file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from pipeline.config import FeedConfig, load_config
from pipeline.feedlist import (
    ConfigEditError,
    append_feed_items,
    append_to_config,
    common_feed_urls,
    feed_links,
)
from tests.conftest import REPO, run_cli, write_config
from tests.newssite import NewsSite

PLAIN_PAGE = b"<!doctype html><html><head><title>No feed here</title></head><body><p>Hi</p>" \
    b"</body></html>"


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_feed_links_from_a_page() -> None:
    html = b"""<html><head><base href="https://cdn.example/base/">
    <link rel="alternate" type="application/rss+xml; charset=utf-8" href="rss.xml">
    <link rel="ALTERNATE home" type="application/atom+xml" href="/atom.xml">
    <link rel="alternate" type="application/feed+json" href="https://other.example/f.json">
    <link rel="alternate" type="text/html" hreflang="de" href="/de/">
    <link rel="stylesheet" type="text/css" href="/site.css">
    <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
    <link rel="alternate" type="application/rss+xml" href="rss.xml">
    </head><body></body></html>"""
    assert feed_links(html, "https://news.example/world/story.html") == [
        "https://cdn.example/base/rss.xml", "https://cdn.example/atom.xml",
        "https://other.example/f.json"]
    assert feed_links(b"", "https://news.example/") == []
    assert feed_links(b"\x00\xff not html", "https://news.example/") == []


def test_common_feed_paths() -> None:
    urls = common_feed_urls("https://news.example/blog/2024/post.html")
    assert urls[:3] == ["https://news.example/feed", "https://news.example/rss",
                        "https://news.example/feed.xml"]
    assert "https://news.example/blog/2024/feed" in urls
    assert common_feed_urls("https://news.example/") == [
        u for u in urls if not u.startswith("https://news.example/blog")]


@pytest.fixture
def config(site: NewsSite, tmp_path: Path) -> Path:
    return write_config(tmp_path / "newswire.yaml", [site.feed_url("atom")])


def test_add_a_web_page_finds_its_feed_appends_it_and_polls_it(
        site: NewsSite, config: Path) -> None:
    before = config.read_text()
    result = run_cli("add", site.url("/news/story-1.html"), config=config)
    assert result.code == 0, result.stderr
    assert f"found {site.feed_url('rss')} (The Example Gazette) via <link rel=alternate>" \
        in result.stdout
    assert config.read_text() == before + (f"- url: {site.feed_url('rss')}\n"
                                           "  name: The Example Gazette\n")
    assert [(f.url, f.name) for f in load_config(config).feeds][-1] == \
        (site.feed_url("rss"), "The Example Gazette")
    db = config.parent / "newswire.db"
    assert query(db, "SELECT url, config_url, active FROM feeds ORDER BY id")[-1] == \
        (site.feed_url("rss"), site.feed_url("rss"), 1)

    again = run_cli("add", site.url("/"), config=config)
    assert again.code == 0 and "already listed" in again.stdout
    assert config.read_text().count(site.feed_url("rss")) == 1

    polled = run_cli("once", config=config)
    assert polled.code == 0 and "2 feeds polled: 2 updated" in polled.stdout


def test_add_a_feed_url_directly(site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("atom")])
    result = run_cli("add", site.feed_url("json"), "--name", "Gazette JSON", config=config)
    assert result.code == 0, result.stderr
    assert "via the URL itself" in result.stdout
    assert load_config(config).feeds[-1] == FeedConfig(site.feed_url("json"), "Gazette JSON")
    assert [r.path for r in site.log] == ["/feeds/feed.json"]


def test_add_takes_a_feed_titled_with_noncharacters(site: NewsSite, tmp_path: Path) -> None:
    """A JSON Feed titled with U+FFFE: `add` died on yaml's ReaderError, with nothing added
    (the review's reproduction). The title is cleaned as every title is."""
    feed = site.route("/odd.json", json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "Weird \ufffe News\uffff",
        "home_page_url": site.url("/"), "items": [
            {"id": "1", "url": site.url("/news/a.html"), "content_text": "Hello"}]}),
        "application/feed+json")
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("rss")])
    result = run_cli("add", feed, config=config)
    assert result.code == 0, result.stderr
    assert load_config(config).feeds[-1] == FeedConfig(feed, "Weird News")


@pytest.mark.parametrize("name", ["A \ufffe title", "del\x7f", "line\u2028break", "nel\x85",
                                  "nul\x00", "quote: \"x\" # not a comment", "ok é 中"])
def test_a_name_yaml_cannot_print_is_appended_escaped_and_reads_back(
        tmp_path: Path, name: str) -> None:
    path = write_config(tmp_path / "newswire.yaml", ["https://a.example/feed"])
    config = append_to_config(path, [FeedConfig("https://b.example/feed", name)])
    assert config.feeds[-1] == FeedConfig("https://b.example/feed", name)


def test_add_finds_a_feed_at_a_common_path(site: NewsSite, config: Path) -> None:
    site.route("/about/team.html", PLAIN_PAGE, "text/html")
    site.route("/feed.xml", site.feed_url("rss").encode(), "text/plain", status=404)
    site.set_fault("/rss.xml", "redirect", location=site.feed_url("rss"))
    result = run_cli("add", site.url("/about/team.html"), config=config)
    assert result.code == 0, result.stderr
    assert f"found {site.url('/rss.xml')} (The Example Gazette) via a common path" \
        in result.stdout
    tried = [r.path for r in site.log]
    assert tried[:5] == ["/about/team.html", "/feed", "/rss", "/feed.xml", "/rss.xml"]


def test_add_a_page_without_a_feed_fails_and_changes_nothing(
        site: NewsSite, config: Path) -> None:
    site.route("/plain.html", PLAIN_PAGE, "text/html")
    before = config.read_text()
    result = run_cli("add", site.url("/plain.html"), config=config)
    assert result.code == 1
    assert f"no feed found for {site.url('/plain.html')} (none announced" in result.stderr
    assert config.read_text() == before
    assert not (config.parent / "newswire.db").exists()
    assert len(site.log) <= 21  # the page and a bounded number of guesses


def test_add_never_follows_a_page_to_a_private_address(site: NewsSite, config: Path) -> None:
    with NewsSite(host="127.0.0.2") as private:
        page = (f'<html><head><link rel="alternate" type="application/rss+xml" '
                f'href="{private.feed_url("rss")}"></head><body></body></html>')
        site.route("/lure.html", page, "text/html")
        result = run_cli("add", site.url("/lure.html"), config=config)
        assert result.code == 1 and "no feed found" in result.stderr
        assert "1 announced in the page" in result.stderr
        assert private.log == []
        direct = run_cli("add", private.feed_url("rss"), config=config)
        assert direct.code == 1 and "non-public address" in direct.stderr
        assert private.log == []


def test_add_no_config_adds_to_the_database_only(site: NewsSite, config: Path) -> None:
    before = config.read_text()
    result = run_cli("add", site.feed_url("rss"), "--no-config", config=config)
    assert result.code == 0, result.stderr
    assert "added to the database" in result.stdout
    assert config.read_text() == before
    rows = query(config.parent / "newswire.db", "SELECT url, config_url, active FROM feeds")
    assert (site.feed_url("rss"), None, 1) in rows


def test_add_refuses_a_config_it_cannot_edit_safely(site: NewsSite, tmp_path: Path) -> None:
    config = tmp_path / "newswire.yaml"
    text = ("database: newswire.db\nfetch: {allow_networks: ['127.0.0.1/32']}\n"
            f"feeds: [{{url: '{site.feed_url('atom')}'}}]\n")
    config.write_text(text)
    result = run_cli("add", site.feed_url("rss"), config=config)
    assert result.code == 1 and "not a block list" in result.stderr
    assert "--no-config" in result.stderr
    assert config.read_text() == text
    assert query(tmp_path / "newswire.db", "SELECT count(*) FROM feeds") == [(0,)]


def test_append_keeps_everything_else_byte_for_byte(tmp_path: Path) -> None:
    original = (REPO / "config" / "newswire.yaml").read_text()
    feeds = [FeedConfig("https://x.example/rss?a=1&b=2", "Name: with # and \"quotes\""),
             FeedConfig("https://y.example/atom", "Le Monde — À la une")]
    updated = append_feed_items(original, feeds)
    assert updated.startswith(original)
    added = yaml.safe_load(updated)["feeds"][-2:]
    assert added == [{"url": f.url, "name": f.name} for f in feeds]

    no_feeds = "database: x.db\nopml: feeds.opml  # the reader's export\n"
    assert append_feed_items(no_feeds, feeds[1:]) == \
        no_feeds + "\nfeeds:\n  - url: https://y.example/atom\n    name: Le Monde — À la une\n"

    config = tmp_path / "newswire.yaml"
    config.write_text("database: x.db\nfeeds:\n  - https://a.example/feed\n")
    config.chmod(0o640)
    assert [f.url for f in append_to_config(config, feeds).feeds] == \
        ["https://a.example/feed", feeds[0].url, feeds[1].url]
    assert config.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["newswire.yaml"]  # no temporary left


def test_append_refuses_what_would_not_load(tmp_path: Path) -> None:
    config = tmp_path / "newswire.yaml"
    text = "database: x.db\nfeeds:\n  - url: https://a.example/feed\n"
    config.write_text(text)
    with pytest.raises(ConfigEditError, match="duplicate feed"):
        append_to_config(config, [FeedConfig("https://a.example/feed")])
    assert config.read_text() == text
