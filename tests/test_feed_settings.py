"""Per-feed settings (issue 14): basic auth, extra headers, user agent, proxy, fetch_pages,
and `add`, `import-opml` and `export-opml` with them.

Every server is on 127.0.0.1 (the only network the test configs allow); what must never be
reached listens on 127.0.0.2 and must see no connection.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from pipeline.config import load_config
from pipeline.fetch import feed_headers
from pipeline.messages import FeedSettings
from pipeline.run import RunReport, run_once
from pipeline.store import Store
from tests.conftest import run_cli, write_config
from tests.newssite import NewsSite
from tests.test_fetch import Trap, trap_fixture  # noqa: F401 (the `trap` fixture)

PASSWORD = "s3cret-Pa55word"  # a value that must appear nowhere but in the request
AGENT = "ExampleReader/2.0 (+https://reader.example/bot)"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def ingest(tmp_path: Path, feeds: list[Any], **sections: Any) -> tuple[Store, RunReport]:
    """One pass over the feeds with the real Runner; the caller closes the store."""
    sections.setdefault("extract", {"workers": 1})
    config = load_config(write_config(tmp_path / "newswire.yaml", feeds, **sections))
    store = Store.open(config.database)
    return store, asyncio.run(run_once(config, store))


def feed_row(store: Store, url: str) -> dict[str, Any]:
    return dict(next(store.db.query("SELECT * FROM feeds WHERE config_url = ?", [url])))


def dump(store: Store) -> str:
    return "\n".join(store.db.conn.iterdump())


@pytest.fixture
def site() -> Iterator[NewsSite]:
    from tests.conftest import fill_site

    with NewsSite() as news:
        fill_site(news, 3)
        yield news


# --------------------------------------------------------------------------- basic auth


def protect(site: NewsSite) -> None:
    site.require_header("/feeds/", "Authorization", basic("alice", PASSWORD), status=401,
                        headers={"WWW-Authenticate": 'Basic realm="feeds"'})


def auth_feed(site: NewsSite, variable: str = "NW_TEST_FEED_PASSWORD") -> dict[str, Any]:
    return {"url": site.feed_url("rss"), "name": "Members",
            "auth": {"username": "alice", "password_env": variable}}


def test_basic_auth_with_the_right_password(site: NewsSite, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    protect(site)
    monkeypatch.setenv("NW_TEST_FEED_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)
    store, report = ingest(tmp_path, [auth_feed(site)])
    with store:
        assert report.ok == 1, report.errors
        assert store.db.execute("SELECT count(*) FROM articles").fetchone()[0] == 3
        assert PASSWORD not in dump(store)
    (request,) = site.requests_for("/feeds/rss.xml")
    assert request.status == 200
    assert request.headers["Authorization"] == basic("alice", PASSWORD)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in (tmp_path / "newswire.yaml").read_text()


def test_basic_auth_with_a_wrong_password(site: NewsSite, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    protect(site)
    monkeypatch.setenv("NW_TEST_FEED_PASSWORD", "not-" + PASSWORD)
    caplog.set_level(logging.DEBUG)
    store, report = ingest(tmp_path, [auth_feed(site)])
    with store:
        assert report.failed == 1
        row = feed_row(store, site.feed_url("rss"))
        assert (row["last_status"], row["consecutive_failures"]) == (401, 1)
        assert store.db.execute("SELECT count(*) FROM articles").fetchone()[0] == 0
        assert PASSWORD not in dump(store)
    (request,) = site.requests_for("/feeds/rss.xml")
    assert request.status == 401
    assert PASSWORD not in caplog.text


def test_basic_auth_missing(site: NewsSite, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    protect(site)
    # No auth configured: the server refuses, the feed records it.
    store, report = ingest(tmp_path, [site.feed_url("rss")])
    with store:
        assert report.failed == 1
        assert feed_row(store, site.feed_url("rss"))["last_status"] == 401
    assert "Authorization" not in site.requests_for("/feeds/rss.xml")[0].headers

    # Auth configured, its variable unset: nothing is sent, the error names the variable.
    monkeypatch.delenv("NW_TEST_UNSET_PASSWORD", raising=False)
    site.clear_log()
    (tmp_path / "unset").mkdir()
    store, report = ingest(tmp_path / "unset", [auth_feed(site, "NW_TEST_UNSET_PASSWORD")])
    with store:
        assert report.failed == 1
        row = feed_row(store, site.feed_url("rss"))
        assert "NW_TEST_UNSET_PASSWORD" in row["last_error"]
        assert "is not set" in row["last_error"]
    assert site.requests_for("/feeds/") == []


def test_auth_and_headers_stay_on_the_feeds_own_host(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = FeedSettings(user_agent=AGENT, headers=(("Cookie", "consent=yes"),),
                            auth_username="alice", auth_password_env="NW_TEST_FEED_PASSWORD",
                            scope="news.example")
    monkeypatch.setenv("NW_TEST_FEED_PASSWORD", PASSWORD)
    own = feed_headers("https://www.news.example/feed.xml", settings)
    other = feed_headers("https://cdn.other.example/page.html", settings)
    port = feed_headers("https://news.example:8443/page.html", settings)
    assert own == {"User-Agent": AGENT, "Cookie": "consent=yes",
                   "Authorization": basic("alice", PASSWORD)}
    assert other == port == {"User-Agent": AGENT}  # the user agent goes everywhere


# --------------------------------------------------------------------------- headers


def test_a_header_the_server_requires_goes_to_that_feed_only(site: NewsSite,
                                                             tmp_path: Path) -> None:
    site.require_header("/feeds/rss.xml", "Cookie", "consent=yes")
    feeds = [{"url": site.feed_url("rss"), "headers": {"Cookie": "consent=yes"}},
             site.feed_url("atom")]  # the same host, no headers of its own
    store, report = ingest(tmp_path, feeds)
    with store:
        assert report.ok == 2, report.errors
        assert "consent=yes" not in dump(store)
    assert [r.status for r in site.requests_for("/feeds/rss.xml")] == [200]
    assert site.requests_for("/feeds/rss.xml")[0].headers["Cookie"] == "consent=yes"
    for request in site.requests_for("/feeds/atom.xml"):
        assert "Cookie" not in request.headers
    # The feed's own pages (same host) carry it; the other feed's requests never do.
    with_cookie = [r for r in site.requests_for("/news/") if "Cookie" in r.headers]
    assert with_cookie and all(r.headers["Cookie"] == "consent=yes" for r in with_cookie)


def test_headers_and_auth_are_not_sent_across_a_redirect_to_another_host(
        site: NewsSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NW_TEST_FEED_PASSWORD", PASSWORD)
    with NewsSite() as elsewhere:  # another port: another host as far as credentials go
        elsewhere.add_article("moved", "Moved story", ["A paragraph."] * 3,
                              site.articles[0].published)
        site.set_fault("/feeds/rss.xml", "redirect", location=elsewhere.feed_url("rss"))
        feed = {**auth_feed(site), "headers": {"Cookie": "consent=yes"}, "user_agent": AGENT}
        store, report = ingest(tmp_path, [feed])
        store.close()
        assert report.ok == 1, report.errors
        first = site.requests_for("/feeds/rss.xml")[0]
        assert first.headers["Cookie"] == "consent=yes" and "Authorization" in first.headers
        assert elsewhere.requests_for("/feeds/rss.xml")
        for request in elsewhere.log:
            assert "Cookie" not in request.headers and "Authorization" not in request.headers
            if request.path != "/robots.txt":  # robots.txt: one per host, for every feed
                assert request.headers["User-Agent"] == AGENT  # the feed's identity travels


# --------------------------------------------------------------------------- user agent


def test_per_feed_user_agent_in_the_server_log(site: NewsSite, tmp_path: Path) -> None:
    feeds = [{"url": site.feed_url("rss"), "user_agent": AGENT}, site.feed_url("atom")]
    store, report = ingest(tmp_path, feeds)
    store.close()
    assert report.ok == 2, report.errors
    assert {r.headers["User-Agent"] for r in site.requests_for("/feeds/rss.xml")} == {AGENT}
    assert {r.headers["User-Agent"] for r in site.requests_for("/feeds/atom.xml")} == {
        "newswire/0.1 (+https://example.org/newswire)"}
    # The feed's pages are fetched as the feed (its own fetch, not shared with the other).
    agents = {r.headers["User-Agent"] for r in site.requests_for("/news/")}
    assert AGENT in agents


def test_fetch_pages_false_keeps_the_feeds_own_content(site: NewsSite, tmp_path: Path) -> None:
    store, report = ingest(tmp_path, [{"url": site.feed_url("rss"), "fetch_pages": False}])
    with store:
        assert report.ok == 1, report.errors
        rows = store.db.execute("SELECT text_source, text FROM articles").fetchall()
        assert len(rows) == 3 and {r[0] for r in rows} == {"feed"}
        assert all("report, part 1." in r[1] for r in rows)
    assert site.requests_for("/news/") == []
    assert site.requests_for("/robots.txt") == []


# --------------------------------------------------------------------------- proxy


class ForwardProxy:
    """A plain HTTP forward proxy on `host` that records the absolute URLs asked of it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.urls: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy.urls.append(self.path)
                target = urlsplit(self.path)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("proxy-connection", "connection", "host")}
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
                conn.request("GET", target.path + (f"?{target.query}" if target.query else ""),
                             headers=headers)
                response = conn.getresponse()
                body = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection",
                                            "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                conn.close()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    p = ForwardProxy()
    try:
        yield p
    finally:
        p.close()


def test_a_feed_through_its_proxy(site: NewsSite, tmp_path: Path,
                                  proxy: ForwardProxy) -> None:
    feeds = [{"url": site.feed_url("rss"), "proxy": proxy.url}, site.feed_url("atom")]
    store, report = ingest(tmp_path, feeds)
    store.close()
    assert report.ok == 2, report.errors
    assert site.feed_url("rss") in proxy.urls  # the feed, and its pages, via the proxy
    assert any("/news/" in url for url in proxy.urls)
    assert site.feed_url("atom") not in proxy.urls  # the other feed goes direct
    assert "Proxy-Authorization" not in site.requests_for("/feeds/rss.xml")[0].headers


def test_a_proxy_on_a_refused_address_is_never_connected(site: NewsSite, tmp_path: Path,
                                                         trap: Trap) -> None:
    store, report = ingest(tmp_path, [{"url": site.feed_url("rss"), "proxy": trap.base_url}])
    with store:
        assert report.failed == 1
        assert "non-public address" in feed_row(store, site.feed_url("rss"))["last_error"]
    assert trap.hits == 0
    assert site.requests_for("/") == []


def test_a_proxy_is_not_a_way_around_the_address_guard(tmp_path: Path, trap: Trap,
                                                       proxy: ForwardProxy) -> None:
    feed = trap.base_url + "/feed.xml"  # the target, not the proxy, is refused
    store, report = ingest(tmp_path, [{"url": feed, "proxy": proxy.url}])
    with store:
        assert report.failed == 1
        assert "checked before asking the proxy" in feed_row(store, feed)["last_error"]
    assert proxy.urls == []
    assert trap.hits == 0


# --------------------------------------------------------------------------- the commands


def test_add_takes_the_settings_and_discovers_with_them(
        site: NewsSite, tmp_path: Path) -> None:
    site.require_header("/feeds/", "Authorization", basic("alice", PASSWORD), status=401)
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("atom")])
    result = run_cli(
        "add", site.feed_url("rss"), "--name", "Members", "--user-agent", AGENT,
        "--header", "Cookie: consent=yes", "--auth-user", "alice",
        "--password-env", "NW_TEST_FEED_PASSWORD", "--no-fetch-pages",
        "--body", "article .story-body", "--remove", ".related", "--remove", ".ad",
        "--keep", "language=^(en|de)$", "--block", "url=/live/",
        config=config, env={"NW_TEST_FEED_PASSWORD": PASSWORD})
    assert result.code == 0, result.stderr
    text = config.read_text()
    assert PASSWORD not in text
    assert yaml.safe_load(text)["feeds"][-1] == {
        "url": site.feed_url("rss"), "name": "Members", "user_agent": AGENT,
        "headers": {"Cookie": "consent=yes"},
        "auth": {"username": "alice", "password_env": "NW_TEST_FEED_PASSWORD"},
        "fetch_pages": False,
        "rules": {"body": "article .story-body", "remove": [".related", ".ad"]},
        "filters": {"keep": [{"field": "language", "pattern": "^(en|de)$"}],
                    "block": [{"field": "url", "pattern": "/live/"}]}}
    feed = load_config(config).feeds[-1]
    assert feed.settings().auth_password_env == "NW_TEST_FEED_PASSWORD"
    (request,) = site.requests_for("/feeds/rss.xml")  # discovery, with the feed's settings
    assert request.status == 200 and request.headers["User-Agent"] == AGENT
    assert request.headers["Cookie"] == "consent=yes"
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize(("options", "message"), [
    (["--header", "Host: evil.example"], "--header"),
    (["--header", "no colon"], "--header"),
    (["--auth-user", "alice"], "--password-env"),
    (["--proxy", "socks5://127.0.0.1:1080"], "--proxy"),
    (["--body", "div[["], "--body/--remove"),
    (["--block", "headline=x"], "--keep/--block"),
    (["--keep", "title=(unclosed"], "--keep/--block"),
])
def test_add_refuses_bad_settings_naming_the_option(site: NewsSite, tmp_path: Path,
                                                    options: list[str], message: str) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("atom")])
    before = config.read_text()
    result = run_cli("add", site.feed_url("rss"), *options, config=config)
    assert result.code == 2, result.stdout
    assert message in result.stderr
    assert config.read_text() == before
    assert site.requests_for("/feeds/rss.xml") == []


def test_add_no_config_refuses_settings(site: NewsSite, tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", [site.feed_url("atom")])
    result = run_cli("add", site.feed_url("rss"), "--user-agent", AGENT, "--no-config",
                     config=config)
    assert result.code == 2 and "drop --no-config" in result.stderr


OPML = f"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0" xmlns:frss="https://freshrss.org/opml"
      xmlns:newswire="urn:newswire:opml:1">
<head><title>Reader export</title></head>
<body>
  <outline text="Full content" type="rss" xmlUrl="https://full.example/feed.xml"
           newswire:fetchPages="false" newswire:userAgent="{AGENT}"
           newswire:filters='{{"block": [{{"field": "title", "pattern": "sponsored"}}]}}'/>
  <outline text="Scraped" type="rss" xmlUrl="https://scraped.example/feed.xml"
           frss:cssFullContent="div.main" frss:cssContentFilter=".footer, .aside"
           frss:CURLOPT_USERAGENT="FreshRSS-compatible" frss:CURLOPT_COOKIE="a=b"
           frss:CURLOPT_PROXY="http://proxy.example:3128"/>
  <outline text="Broken rule" type="rss" xmlUrl="https://broken.example/feed.xml"
           frss:cssFullContent="div[["/>
</body></opml>"""


def test_import_opml_takes_settings_and_export_opml_writes_what_opml_holds(
        tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", ["https://first.example/feed.xml"])
    opml = tmp_path / "reader.opml"
    opml.write_text(OPML, encoding="utf-8")
    result = run_cli("import-opml", str(opml), "--proxy", "http://127.0.0.1:3128",
                     config=config)
    assert result.code == 0, result.stderr
    assert "skipped: Broken rule: outline https://broken.example/feed.xml.rules.body" \
        in result.stdout
    feeds = {f.url: f for f in load_config(config).feeds}
    full, scraped = feeds["https://full.example/feed.xml"], feeds["https://scraped.example/feed.xml"]
    assert (full.fetch_pages, full.user_agent) == (False, AGENT)
    assert [(r.field, r.pattern) for r in full.filters.block] == [("title", "sponsored")]
    assert scraped.rules is not None and scraped.rules.body == "div.main"
    assert scraped.rules.remove == (".footer, .aside",)
    assert scraped.user_agent == "FreshRSS-compatible"
    assert scraped.headers == (("Cookie", "a=b"),)
    # A proxy comes from the command line (every imported feed), never from the file.
    assert full.proxy == scraped.proxy == "http://127.0.0.1:3128"

    # Add a secret to one feed by hand: export never writes headers, auth or proxies.
    data = yaml.safe_load(config.read_text())
    data["feeds"][1]["auth"] = {"username": "alice", "password_env": "NW_TEST_FEED_PASSWORD"}
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    exported = run_cli("export-opml", config=config)
    assert exported.code == 0, exported.stderr
    out = exported.stdout
    for secret in ("a=b", "alice", "NW_TEST_FEED_PASSWORD", "3128", "Cookie"):
        assert secret not in out
    assert 'newswire:fetchPages="false"' in out and 'frss:cssFullContent="div.main"' in out
    # ... and reads back into the same shareable settings.
    again = tmp_path / "again.yaml"
    write_config(again, ["https://first.example/feed.xml"])
    (tmp_path / "out.opml").write_text(out, encoding="utf-8")
    assert run_cli("import-opml", str(tmp_path / "out.opml"), config=again).code == 0
    round_trip = {f.url: f for f in load_config(again).feeds}
    assert round_trip["https://full.example/feed.xml"].filters == full.filters
    assert round_trip["https://full.example/feed.xml"].fetch_pages is False
    assert round_trip["https://scraped.example/feed.xml"].rules == scraped.rules
    assert round_trip["https://scraped.example/feed.xml"].headers == ()
