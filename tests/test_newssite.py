"""Tests for the local news-site test server (urllib only)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime

import pytest

from tests.newssite import FEED_PATHS, NewsSite, http_date

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rss1": "http://purl.org/rss/1.0/",
}


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as s:
        s.add_article(
            "alpha",
            "Alpha & omega",
            ["First paragraph of alpha.", "Second <b>paragraph</b> of alpha."],
            T0,
            author="Ann Author",
            summary="Alpha summary",
        )
        s.add_article("beta", "Beta", ["Only paragraph of beta."], T0 + timedelta(hours=1))
        s.add_article("gamma", "Gamma", ["Gamma text."], T0 - timedelta(days=1), author="Gus")
        yield s


def fetch(
    url: str, headers: Mapping[str, str] | None = None, method: str = "GET", timeout: float = 5
) -> tuple[int, Message, bytes]:
    """GET ``url``; return status, headers and body (also for error statuses)."""
    req = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


# --------------------------------------------------------------------------- pages


def test_article_page(site: NewsSite) -> None:
    art = site.article("alpha")
    assert art.url == f"{site.base_url}/news/alpha.html"
    status, headers, body = fetch(art.url)
    page = body.decode()
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert '<html lang="en">' in page
    assert "<title>Alpha &amp; omega | The Example Gazette</title>" in page
    assert f'<link rel="canonical" href="{art.url}">' in page
    assert '<meta name="author" content="Ann Author">' in page
    assert f'<meta property="article:published_time" content="{T0.isoformat()}">' in page
    assert '<meta property="og:title" content="Alpha &amp; omega">' in page
    assert '<meta property="og:site_name" content="The Example Gazette">' in page
    assert "<h1>Alpha &amp; omega</h1>" in page
    assert "<p>Second &lt;b&gt;paragraph&lt;/b&gt; of alpha.</p>" in page
    assert "Most read" in page and "<footer" in page and "<nav" in page

    etag = headers["ETag"]
    status, _, body = fetch(art.url, {"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert fetch(site.url("/news/nope.html"))[0] == 404


# --------------------------------------------------------------------------- feeds


@pytest.mark.parametrize("name", sorted(FEED_PATHS))
def test_conditional_get(site: NewsSite, name: str) -> None:
    url = site.feed_url(name)
    status, headers, body = fetch(url)
    assert status == 200 and body
    etag, last_modified = headers["ETag"], headers["Last-Modified"]
    assert last_modified == http_date(T0 + timedelta(hours=1))

    assert fetch(url, {"If-None-Match": etag})[::2] == (304, b"")
    assert fetch(url, {"If-None-Match": f'"x", W/{etag}'})[0] == 304
    assert fetch(url, {"If-Modified-Since": last_modified})[::2] == (304, b"")
    assert fetch(url, {"If-None-Match": '"stale"'})[0] == 200
    assert fetch(url, {"If-Modified-Since": http_date(T0)})[0] == 200

    site.add_article("delta", "Delta", ["New."], T0 + timedelta(days=1))
    status, headers, _ = fetch(url, {"If-None-Match": etag, "If-Modified-Since": last_modified})
    assert status == 200
    assert headers["ETag"] != etag
    assert headers["Last-Modified"] == http_date(T0 + timedelta(days=1))


def test_head_request(site: NewsSite) -> None:
    status, headers, body = fetch(site.feed_url("rss"), method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == len(fetch(site.feed_url("rss"))[2])


def test_rss_feed(site: NewsSite) -> None:
    status, headers, body = fetch(site.feed_url("rss"))
    assert headers["Content-Type"].startswith("application/rss+xml")
    root = ET.fromstring(body)
    assert root.tag == "rss" and root.get("version") == "2.0"
    items = root.findall("channel/item")
    assert [i.findtext("title") for i in items] == ["Beta", "Alpha & omega", "Gamma"]
    alpha = items[1]
    assert alpha.findtext("link") == alpha.findtext("guid") == site.article("alpha").url
    assert alpha.findtext("description") == "Alpha summary"
    assert parsedate_to_datetime(alpha.findtext("pubDate", "")) == T0
    assert alpha.findtext("dc:creator", namespaces=NS) == "Ann Author"
    content = alpha.findtext("content:encoded", namespaces=NS)
    assert content == site.article("alpha").content_html
    assert "<p>First paragraph of alpha.</p>" in content

    site.full_content = False
    root = ET.fromstring(fetch(site.feed_url("rss"))[2])
    assert root.find("channel/item/content:encoded", NS) is None


def test_atom_feed(site: NewsSite) -> None:
    _, headers, body = fetch(site.feed_url("atom"))
    assert headers["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(body)
    assert root.tag == f"{{{NS['atom']}}}feed"
    assert root.findtext("atom:id", namespaces=NS) and root.findtext("atom:updated", namespaces=NS)
    entries = root.findall("atom:entry", NS)
    assert len(entries) == 3
    alpha = entries[1]
    link = alpha.find("atom:link[@rel='alternate']", NS)
    assert link is not None and link.get("href") == site.article("alpha").url
    assert alpha.findtext("atom:id", namespaces=NS) == site.article("alpha").guid
    assert datetime.fromisoformat(alpha.findtext("atom:published", "", NS)) == T0
    assert datetime.fromisoformat(alpha.findtext("atom:updated", "", NS)) == T0
    assert alpha.findtext("atom:summary", namespaces=NS) == "Alpha summary"
    assert alpha.findtext("atom:author/atom:name", namespaces=NS) == "Ann Author"
    content = alpha.find("atom:content", NS)
    assert content is not None and content.get("type") == "html"
    assert content.text == site.article("alpha").content_html


def test_rdf_feed(site: NewsSite) -> None:
    _, headers, body = fetch(site.feed_url("rdf"))
    assert headers["Content-Type"].startswith("application/rdf+xml")
    root = ET.fromstring(body)
    assert root.tag == f"{{{NS['rdf']}}}RDF"
    seq = root.findall("rss1:channel/rss1:items/rdf:Seq/rdf:li", NS)
    items = root.findall("rss1:item", NS)
    assert len(seq) == len(items) == 3
    assert [li.get(f"{{{NS['rdf']}}}resource") for li in seq] == [
        i.findtext("rss1:link", namespaces=NS) for i in items
    ]
    assert datetime.fromisoformat(items[1].findtext("dc:date", "", NS)) == T0
    assert items[1].findtext("dc:creator", namespaces=NS) == "Ann Author"


def test_json_feed(site: NewsSite) -> None:
    _, headers, body = fetch(site.feed_url("json"))
    assert headers["Content-Type"].startswith("application/feed+json")
    feed = json.loads(body)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == site.feed_url("json")
    alpha = feed["items"][1]
    art = site.article("alpha")
    assert (alpha["id"], alpha["url"], alpha["title"]) == (art.guid, art.url, art.title)
    assert alpha["content_html"] == art.content_html
    assert alpha["summary"] == "Alpha summary"
    assert datetime.fromisoformat(alpha["date_published"]) == T0
    assert alpha["authors"] == [{"name": "Ann Author"}]


def test_feed_subset(site: NewsSite) -> None:
    site.set_feed_items("rss", ["gamma", "alpha", "unknown"])
    _, headers, body = fetch(site.feed_url("rss"))
    titles = [i.findtext("title") for i in ET.fromstring(body).findall("channel/item")]
    assert titles == ["Alpha & omega", "Gamma"]
    assert headers["Last-Modified"] == http_date(T0)
    assert len(json.loads(fetch(site.feed_url("json"))[2])["items"]) == 3
    site.set_feed_items("rss", None)
    assert len(ET.fromstring(fetch(site.feed_url("rss"))[2]).findall("channel/item")) == 3
    with pytest.raises(KeyError):
        site.set_feed_items("nope", [])


# --------------------------------------------------------------------------- faults


def test_status_fault_with_times(site: NewsSite) -> None:
    path = FEED_PATHS["rss"]
    site.set_fault(path, "status", code=503, headers={"Retry-After": "7"}, body="busy", times=1)
    status, headers, body = fetch(site.url(path))
    assert (status, headers["Retry-After"], body) == (503, "7", b"busy")
    assert fetch(site.url(path))[0] == 200
    assert [r.status for r in site.requests_for(path)] == [503, 200]
    assert [r.fault for r in site.requests_for(path)] == ["status", None]


def test_redirect_fault(site: NewsSite) -> None:
    site.set_fault("/old.xml", "redirect", location=site.feed_url("atom"), code=301)
    req = urllib.request.Request(site.url("/old.xml"))
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.url == site.feed_url("atom")
    assert [(r.path, r.status) for r in site.log] == [("/old.xml", 301), ("/feeds/atom.xml", 200)]
    with pytest.raises(ValueError):
        site.set_fault("/x", "redirect", location="/", code=200)


def test_body_and_route(site: NewsSite) -> None:
    site.set_fault(FEED_PATHS["rss"], "body", body=b"<rss><oops", content_type="text/xml")
    status, headers, body = fetch(site.feed_url("rss"))
    assert (status, headers["Content-Type"], body) == (200, "text/xml", b"<rss><oops")
    site.clear_fault(FEED_PATHS["rss"])
    assert fetch(site.feed_url("rss"))[2].startswith(b"<?xml")

    url = site.route("/robots.txt", b"User-agent: *\nDisallow:\n", headers={"X-Extra": "1"})
    status, headers, body = fetch(url)
    assert (status, headers["X-Extra"], body) == (200, "1", b"User-agent: *\nDisallow:\n")


def test_close_fault(site: NewsSite) -> None:
    site.set_fault("/gone", "close")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        fetch(site.url("/gone"))
    assert site.requests_for("/gone")[0].status is None


@pytest.mark.parametrize("double", [False, True])
def test_gzip_bomb(site: NewsSite, double: bool) -> None:
    size = 3 << 20
    site.set_fault("/bomb.xml", "gzip_bomb", size=size, double=double)
    status, headers, body = fetch(site.url("/bomb.xml"))
    assert status == 200
    assert headers["Content-Encoding"] == ("gzip, gzip" if double else "gzip")
    assert len(body) < 64 << 10
    if double:
        body = zlib.decompress(body, 31)
    assert zlib.decompress(body, 31) == bytes(size)


def test_delay_fault(site: NewsSite) -> None:
    site.set_fault(FEED_PATHS["json"], "delay", seconds=0.3)
    start = time.monotonic()
    status, _, body = fetch(site.feed_url("json"))
    assert time.monotonic() - start >= 0.3
    assert status == 200 and json.loads(body)["items"]


def test_trickle_fault(site: NewsSite) -> None:
    site.set_fault("/slow", "trickle", interval=0.05, count=4)
    start = time.monotonic()
    assert fetch(site.url("/slow"))[2] == b"    "
    assert time.monotonic() - start >= 0.15

    site.set_fault("/slower", "trickle", interval=0.05, byte=b"<")
    req = urllib.request.Request(site.url("/slower"))
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Length"] is None
        assert resp.read(3) == b"<<<"
    with pytest.raises(TimeoutError):  # one byte per 10 s never satisfies a 0.3 s read timeout
        site.set_fault("/slowest", "trickle", interval=10)
        with urllib.request.urlopen(site.url("/slowest"), timeout=0.3) as resp:
            resp.read(2)
    assert fetch(site.feed_url("rss"))[0] == 200  # still responsive


@pytest.mark.parametrize("chunked", [True, False])
def test_endless_fault(site: NewsSite, chunked: bool) -> None:
    site.set_fault("/big", "endless", chunked=chunked)
    with urllib.request.urlopen(site.url("/big"), timeout=5) as resp:
        assert resp.headers["Content-Length"] is None
        assert (resp.headers["Transfer-Encoding"] == "chunked") is chunked
        assert len(resp.read(4 << 20)) == 4 << 20
    assert fetch(site.feed_url("rss"))[0] == 200


def test_fault_validation(site: NewsSite) -> None:
    with pytest.raises(ValueError):
        site.set_fault("/x", "explode")
    with pytest.raises(TypeError):
        site.set_fault("/x", "status", cod=500)


def test_stop_aborts_streaming_responses() -> None:
    site = NewsSite().start()
    site.set_fault("/slow", "trickle", interval=30)
    with socket.create_connection((site.host, site.port), timeout=5) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(1024)
        start = time.monotonic()
        site.stop()
        while sock.recv(1024):
            pass
        assert time.monotonic() - start < 3


# --------------------------------------------------------------------------- log


def test_request_log(site: NewsSite, capfd: pytest.CaptureFixture[str]) -> None:
    fetch(site.feed_url("rss"), {"X-Probe": "one", "User-Agent": "newswire-test/1.0"})
    fetch(site.feed_url("atom"), method="HEAD")
    fetch(site.url("/news/alpha.html?utm=x"))

    (rss,) = site.requests_for("/feeds/rss")
    assert (rss.method, rss.path, rss.status) == ("GET", "/feeds/rss.xml", 200)
    assert rss.headers["x-probe"] == "one"
    assert rss.headers["USER-AGENT"] == "newswire-test/1.0"
    assert "x-PROBE" in rss.headers
    assert [r.method for r in site.requests_for("/feeds/")] == ["GET", "HEAD"]
    page = site.requests_for("/news/")[0]
    assert (page.path, page.target) == ("/news/alpha.html", "/news/alpha.html?utm=x")
    assert len(site.wait_for_requests("/", count=3, timeout=1)) == 3

    site.clear_log()
    assert site.log == []
    assert capfd.readouterr().err == ""
