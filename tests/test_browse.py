"""Browsing: `newswire serve` runs Datasette over a live corpus, read-only, with the shipped
metadata; a headless Chromium searches, reads an article and checks feed health."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.browse import ASSETS, metadata_for, serve_command
from pipeline.datasette.plugins import newswire_limits
from pipeline.datasette.plugins.newswire_limits import count_within
from tests.conftest import (
    REPO,
    fill_site,
    free_port,
    run_cli,
    serving,
    story,
    wait_until_serving,
    write_config,
)
from tests.newssite import NewsSite

ARTIFACTS = REPO / "test-artifacts" / "browser"
HOSTILE_TITLE = '<script>alert("x")</script> Rates & "wire" copy'
HOSTILE_ID = "0123456789abcdef"
# A direct opener: a proxy from the environment must not sit between the test and 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))




@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT/DBNAME
    root: str  # http://127.0.0.1:PORT
    config: Path
    db: Path
    gazette: NewsSite
    refused_feed: str

    def get(self, path: str, status: int = 200) -> str:
        try:
            with _OPENER.open(self.root + path, timeout=30) as response:
                code, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            code, body = error.code, error.read()
        assert code == status, body[:500]
        return body.decode("utf-8")

    def json(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode({**params, "_shape": "objects"})
        return json.loads(self.get(f"{path}.json?{query}"))

    def rows(self, path: str, **params: str) -> list[dict]:
        return self.json(path, **params)["rows"]


def _seed_dir(path: Path, files: dict[str, tuple[str, list[str]]]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, (title, paragraphs) in files.items():
        (path / name).write_text(title + "\n\n" + "\n\n".join(paragraphs) + "\n", "utf-8")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A corpus from two outlets (one story carried by both) and a dead feed, plus an
    imported article with a hostile title, served by `newswire serve` from another cwd."""
    tmp = tmp_path_factory.mktemp("browse")
    with NewsSite() as gazette, NewsSite(site_name="The Other Herald") as herald:
        fill_site(gazette)
        wire = gazette.article("story-0")
        herald.add_article("wire-copy", wire.title, wire.paragraphs, datetime.now(UTC),
                           author=wire.author)
        herald.add_article("local", "Herald local news", story("harbour dredging"),
                           datetime.now(UTC) - timedelta(hours=9))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            refused = f"http://127.0.0.1:{sock.getsockname()[1]}/feed.xml"
        config = write_config(tmp / "corpus.yaml", [gazette.feed_url("rss"),
                                                    herald.feed_url("atom"), refused])
        # Not the default name: the shipped metadata must follow the database's own name.
        config.write_text(config.read_text().replace("newswire.db", "corpus.db"))
        result = run_cli("once", config=config)
        assert result.code == 0, result.stderr
        imported = _seed_dir(tmp / "seed", {f"000_{HOSTILE_ID}.txt": (
            HOSTILE_TITLE, ["First paragraph of the imported story about lighthouses.",
                            "Second paragraph, with <b>markup</b> that stays text."])})
        assert run_cli("import", str(imported), config=config).code == 0

        with serving(config, tmp) as root:
            yield Served(f"{root}/corpus", root, config, tmp / "corpus.db", gazette, refused)


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def test_metadata_is_filed_under_the_database_name() -> None:
    metadata = metadata_for(Path("/srv/data/my-corpus.db"), dead_after=7)
    assert list(metadata["databases"]) == ["my-corpus"]
    tables = metadata["databases"]["my-corpus"]["tables"]
    assert tables["articles"]["fts_table"] == "articles_fts"
    queries = metadata["databases"]["my-corpus"]["queries"]
    assert all(not q.get("write") for q in queries.values())
    health = queries["feed_health"]["sql"]  # the store's rule, with the configured threshold
    assert "HEALTH_EXPRESSION" not in health and "consecutive_failures < 7" in health


def test_serve_command_is_live_and_read_only() -> None:
    command = serve_command(Path("/srv/x.db"), "127.0.0.1", 8001, Path("/tmp/m.json"))
    assert "-i" not in command and "--immutable" not in command and "--create" not in command
    assert command[command.index("serve") + 1] == "/srv/x.db"
    for option in ("--metadata", "--template-dir", "--plugins-dir"):
        assert Path(command[command.index(option) + 1]).parent.exists()


def test_served_database_is_mutable_file_opened_read_only(served: Served) -> None:
    databases = json.loads(served.get("/-/databases.json"))
    assert [(d["name"], d["is_mutable"]) for d in databases] == [("corpus", True)]
    refused = served.get("/corpus?" + urllib.parse.urlencode(
        {"sql": "insert into feeds (url) values ('http://x.example/')"}), status=400)
    assert "Statement must be a SELECT" in refused
    assert query(served.db, "SELECT count(*) FROM feeds WHERE url = 'http://x.example/'"
                 ) == [(0,)]


def test_articles_table_metadata_sort_facets_and_search(served: Served) -> None:
    data = served.json("/corpus/articles", _search="raises")  # porter: matches "raised"
    assert data["human_description_en"] == \
        'where search matches "raises" sorted by published_at descending'
    # Facets are on demand: counting a big table on every page view does not fit the limit.
    assert data["facet_results"] == {}
    facets = ("feed_id", "sitename", "language", "duplicate_kind")
    data = json.loads(served.get("/corpus/articles.json?" + urllib.parse.urlencode(
        [("_search", "raises"), ("_shape", "objects"), *(("_facet", f) for f in facets)])))
    assert set(data["facet_results"]) == set(facets)
    sitenames = {r["value"] for r in data["facet_results"]["sitename"]["results"]}
    assert sitenames == {"The Example Gazette", "The Other Herald"}
    assert len(data["rows"]) == 7  # every fetched article mentions the raised rate
    published = [r["published_at"] for r in data["rows"]]
    assert published == sorted(published, reverse=True)
    page = served.get("/corpus/articles")
    assert "<h1" in page and "Articles</h1>" in page
    assert 'data-column-description="Body text; paragraphs are separated by blank lines."' \
        in page


def test_article_page_shows_paragraphs_escaped(served: Served) -> None:
    page = served.get(f"/corpus/articles/{HOSTILE_ID}")
    assert '<script>alert("x")' not in page and "<b>markup</b>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Rates &amp;" in page
    assert "<p>First paragraph of the imported story about lighthouses.</p>" in page
    assert "<p>Second paragraph, with &lt;b&gt;markup&lt;/b&gt; that stays text.</p>" in page


def test_canned_latest_and_search_queries(served: Served) -> None:
    latest = [r["article"] for r in served.rows("/corpus/latest_articles")]
    stored = query(served.db, "SELECT id FROM articles ORDER BY fetched_at DESC, rowid DESC")
    assert latest == [row[0] for row in stored] and HOSTILE_ID in latest
    found = served.rows("/corpus/search", q="harbour dredging")
    assert [r["title"] for r in found] == ["Herald local news"]
    assert "\x02Harbour\x03 \x02dredging\x03 report" in found[0]["snippet"]
    html = served.get("/corpus/search?q=lighthouses")
    assert "<mark>lighthouses</mark>" in html
    assert f'<a href="/corpus/articles/{HOSTILE_ID}">{HOSTILE_ID}</a>' in html
    assert served.rows("/corpus/search", q="") == []  # an empty query is no error
    assert served.rows("/corpus/search", q='"unbalanced') == []


def test_canned_query_stories_carried_by_several_outlets(served: Served) -> None:
    rows = served.rows("/corpus/several_outlets")
    wire = served.gazette.article("story-0")
    assert len(rows) == 1
    assert rows[0]["title"] == wire.title
    assert rows[0]["outlets"] == 2 and rows[0]["copies"] == 2
    assert rows[0]["outlet_names"] == "The Example Gazette · The Other Herald"
    assert rows[0]["first_seen_at"] <= rows[0]["last_seen_at"]


def test_canned_query_a_cluster_by_id_follows_merges(tmp_path: Path) -> None:
    from tests.test_neardup import WIRE, Corpus

    corpus = Corpus(tmp_path / "c.db")
    head = corpus.add("head", WIRE[:4], site="One")
    tail = corpus.add("tail", WIRE[4:], site="Two")
    full = corpus.add("full", WIRE, site="Three")
    live = corpus.article(full)["cluster_id"]
    (gone,) = {head, tail} - {live}
    sql = metadata_for(tmp_path / "c.db", 5)["databases"]["c"]["queries"]["cluster"]["sql"]
    for asked in (live, gone):  # the merged id leads to the live cluster
        rows = corpus.store.db.execute(sql, {"cluster_id": asked}).fetchall()
        assert {r[0] for r in rows} == {live} and {r[1] for r in rows} == {head, tail, full}
        assert rows[0][-1] == 1 and sum(r[-1] for r in rows) == 1  # canonical first
    assert corpus.store.db.execute(sql, {"cluster_id": "nothing"}).fetchall() == []
    corpus.store.close()


BIG_START = datetime(2026, 3, 1, tzinfo=UTC)


def stamp(minutes: int) -> str:
    """A time that many minutes after BIG_START, as the store writes times."""
    return (BIG_START + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def store_big_cluster(path: Path, copies: list[tuple[str, str | None, str | None]],
                      canonical: str | None = None, feed_name: str | None = None) -> None:
    """A cluster `big` of these copies (id, published_at, else only the time it was stored),
    written straight into a new store's tables: what a query over one story reads."""
    from pipeline.config import FeedConfig
    from pipeline.store import Store

    with Store.open(path) as store:
        store.sync_feeds([FeedConfig(url="http://a.example/feed", name=feed_name)])
        store.db["clusters"].insert({"id": "big", "size": len(copies), "outlets": 1,
                                     "canonical_article_id": canonical})
        store.db["articles"].insert_all(
            {"id": id_, "url": f"http://a.example/{id_}", "title": f"t{id_}", "text": "x",
             "feed_id": 1, "cluster_id": "big", "published_at": published,
             "fetched_at": stored or published} for id_, published, stored in copies)


def test_canned_query_a_big_cluster_gives_its_canonical_and_first_copies(
        tmp_path: Path) -> None:
    """1,300 copies, dated or only stored, the canonical the latest of all: it comes first,
    then the earliest copies in time, COPIES_SHOWN rows in all."""
    from pipeline.browse import COPIES_SHOWN

    copies = [(f"{i:016x}", stamp(2 * i), None) for i in range(800)]
    copies += [(f"{800 + i:016x}", None, stamp(2 * i + 1)) for i in range(500)]
    store_big_cluster(tmp_path / "nw.db", [("c" * 16, stamp(5000), None), *copies],
                      canonical="c" * 16)
    sql = metadata_for(tmp_path / "nw.db", 5)["databases"]["nw"]["queries"]["cluster"]["sql"]
    with sqlite3.connect(tmp_path / "nw.db") as conn:
        rows = conn.execute(sql, {"cluster_id": "big"}).fetchall()
    assert rows[0][1] == "c" * 16 and rows[0][-1] == 1
    assert len(rows) == COPIES_SHOWN
    earliest = sorted(copies, key=lambda c: c[1] or c[2])[:COPIES_SHOWN - 1]
    assert [r[1] for r in rows[1:]] == [id_ for id_, _, _ in earliest]
    assert [r[4] for r in rows[1:]] == [published or stored for _, published, stored in earliest]
    assert sum(r[-1] for r in rows) == 1


def test_canned_query_feed_health(served: Served) -> None:
    rows = {r["url"]: r for r in served.rows("/corpus/feed_health")}
    assert len(rows) == 3  # the import source is not a polled feed
    dead = rows[served.refused_feed]
    assert (dead["health"], dead["failures"], dead["failed_polls_7d"]) == ("failing", 1, 1)
    assert "Connect" in dead["last_error"] and dead["next_poll_at"]
    gazette = rows[served.gazette.feed_url("rss")]
    assert (gazette["health"], gazette["last_status"], gazette["articles"]) == ("ok", 200, 5)
    assert gazette["articles_per_day"] == 5.0 and gazette["polls_7d"] == 1
    assert list(rows)[0] == served.refused_feed  # failing feeds first


def test_served_view_is_live_while_another_process_writes(served: Served, tmp_path: Path
                                                          ) -> None:
    assert served.rows("/corpus/search", q="zeppelin") == []
    more = _seed_dir(tmp_path / "more", {"000_fedcba9876543210.txt": (
        "Zeppelin returns", ["An airship flew over the harbour on Sunday, a zeppelin."])})
    assert run_cli("import", str(more), config=served.config).code == 0
    assert [r["article"] for r in served.rows("/corpus/search", q="zeppelin")] == \
        ["fedcba9876543210"]


# --- the browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromedriver are not installed (.ci/run installs them)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download drivers
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    with tempfile.TemporaryDirectory(prefix="newswire-chromium-") as profile:
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-proxy-server",
                     f"--user-data-dir={profile}", "--window-size=1280,1400"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def screenshot(driver: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_browser_search_read_article_and_feed_health(served: Served, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    wait = WebDriverWait(driver, 30)
    driver.get(served.base + "/articles")
    box = driver.find_element(By.ID, "_search")
    box.send_keys("unanimous", Keys.ENTER)
    wait.until(expected_conditions.url_contains("_search=unanimous"))
    results = driver.find_element(By.CSS_SELECTOR, "table.rows-and-columns")
    driver.execute_script("arguments[0].scrollIntoView()", results)
    screenshot(driver, "1-search")
    body = driver.find_element(By.TAG_NAME, "body").text
    assert '7 rows where search matches "unanimous"' in body

    wire = served.gazette.article("story-0")
    link = driver.find_element(By.XPATH, f"//tr[td[normalize-space()='{wire.title}']]"
                                         "//td[contains(@class, 'type-pk')]/a")
    link.click()
    wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, ".newswire-article .body p")))
    screenshot(driver, "2-article")
    assert driver.find_element(By.CSS_SELECTOR, ".newswire-article .headline").text == \
        wire.title
    shown = [p.text for p in driver.find_elements(By.CSS_SELECTOR, ".newswire-article .body p")]
    article_id = driver.current_url.rsplit("/", 1)[1]
    stored = query(served.db, "SELECT text FROM articles WHERE id = ?", (article_id,))[0][0]
    assert shown == stored.split("\n\n")
    assert shown == list(wire.paragraphs)  # the headline is shown once, above the body

    driver.get(served.base + "/feed_health")
    wait.until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "table.rows-and-columns")))
    screenshot(driver, "3-feed-health")
    cells = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "table.rows-and-columns tbody tr"):
        values = {td.get_attribute("class").split()[0].removeprefix("col-"): td.text
                  for td in row.find_elements(By.TAG_NAME, "td")}
        cells[values["url"]] = values
    assert cells[served.refused_feed]["health"] == "failing"
    assert "Connect" in cells[served.refused_feed]["last_error"]
    gazette = cells[served.gazette.feed_url("rss")]
    assert (gazette["health"], gazette["last_status"], gazette["feed"]) == \
        ("ok", "200", "The Example Gazette")


def test_every_article_column_has_a_description(tmp_path: Path) -> None:
    from pipeline.store import Store

    with Store.open(tmp_path / "nw.db") as store:
        columns = set(store.db["articles"].columns_dict)
    described = metadata_for(tmp_path / "nw.db", dead_after=5)["databases"]["nw"]["tables"][
        "articles"]["columns"]
    assert columns - set(described) == set()


def test_canned_query_dates_feed_vs_page(tmp_path: Path) -> None:
    from dataclasses import replace

    from pipeline.config import FeedConfig
    from pipeline.store import Store
    from tests.test_store import entry as new_entry
    from tests.test_store import make_article, poll

    dates = [("2025-03-03T23:30:00-05:00", "2025-03-04T04:31:00Z"),  # same moment
             ("2025-03-04", "2025-03-04T09:00:00Z"),  # same day
             ("2024-11-02T10:00:00Z", "2025-03-04T09:00:00Z"),  # the page's is older
             (None, "2025-03-04T09:00:00Z")]  # the page has none
    with Store.open(tmp_path / "nw.db") as store:
        store.sync_feeds([FeedConfig(url="http://a.example/feed", name="A")])
        entries = []
        for i, (page, feed) in enumerate(dates):
            url = f"http://a.example/{i}"
            article = replace(make_article(url, text=f"Story {i} " * 40),
                              page_published_at=page, feed_published_at=feed)
            entries.append(new_entry(str(i), url, article))
        # One more, dated by both but stored 40 days ago: outside the query's window.
        old = replace(make_article("http://a.example/old", text="Old story " * 40),
                      page_published_at="2024-01-01", feed_published_at="2025-03-04")
        entries.append(new_entry("old", "http://a.example/old", old))
        store.record_poll(poll(1, *entries))
        store.db.execute("UPDATE articles SET fetched_at = strftime('%Y-%m-%dT%H:%M:%SZ', "
                         "'now', '-40 days') WHERE url = 'http://a.example/old'")
        sql = metadata_for(tmp_path / "nw.db", dead_after=5)["databases"]["nw"]["queries"][
            "dates_feed_vs_page"]["sql"]
        rows = store.db.execute(sql).fetchall()
        plan = " ".join(r[3] for r in store.db.execute("EXPLAIN QUERY PLAN " + sql))
    assert rows == [(1, "A", 3, 1, 2, 1, 0)]
    assert "COVERING INDEX articles_dated_twice" in plan  # a window of the index, no rows


# --- a big corpus: pages that never write, bounded counts, quiet time-outs -------------------

def digest(db: Path) -> tuple[str, ...]:
    """The database and its WAL, byte for byte (the -shm file is readers' shared memory)."""
    return tuple(hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-"
                 for p in (db, Path(f"{db}-wal")))


def test_reading_commands_and_pages_never_write(tmp_path: Path) -> None:
    with NewsSite() as gazette, NewsSite(site_name="The Other Herald") as herald:
        for i in range(3):
            gazette.add_article(f"s{i}", f"Story {i}", story(f"topic {i}"),
                                datetime.now(UTC) - timedelta(hours=i + 1))
        wire = gazette.article("s0")
        herald.add_article("copy", wire.title, wire.paragraphs, datetime.now(UTC))
        config = write_config(tmp_path / "newswire.yaml",
                              [gazette.feed_url("rss"), herald.feed_url("atom")])
        assert run_cli("once", config=config).code == 0
    db = tmp_path / "newswire.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = digest(db), db.stat().st_mtime_ns
    status = run_cli("status", config=config)
    assert status.code == 0 and " 3 " in status.stdout, status.stdout
    assert run_cli("export", str(tmp_path / "out"), config=config).code == 0
    assert run_cli("export-opml", config=config).code == 0
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "--config", str(config),
                               "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}")
        for path in ("/", "/newswire", "/newswire/feed_health", "/newswire/several_outlets",
                     "/newswire/stories_by_outlets", "/newswire/feed_stats",
                     "/newswire/feed_days", "/newswire/cluster_outlets", "/newswire/fetches",
                     "/newswire/outlet_days", "/newswire/copy_lags",
                     "/newswire/articles?_facet=feed_id", "/newswire/search?q=topic"):
            with opener.open(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
                assert response.status == 200, path
        with opener.open(f"http://127.0.0.1:{port}/newswire/several_outlets.json"
                         "?_shape=array", timeout=30) as response:
            assert b"The Other Herald" in response.read()
    finally:
        server.terminate()
        server.wait(30)
    assert (digest(db), db.stat().st_mtime_ns) == before


def test_a_query_over_the_time_limit_is_one_line_in_the_log(tmp_path: Path) -> None:
    db = tmp_path / "slow.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(db), "--port", str(port),
         "--plugins-dir", str(ASSETS / "plugins"), "--setting", "sql_time_limit_ms", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    slow = ("/slow?sql=" + urllib.request.quote(
        "with recursive c(x) as (select 1 union all select x + 1 from c where x < 1e9) "
        "select count(*) from c"))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}")
        for _ in range(2):
            with pytest.raises(urllib.error.HTTPError) as error:
                opener.open(f"http://127.0.0.1:{port}{slow}", timeout=30)
            assert error.value.code == 400
            assert b"SQL query took too long" in error.value.read()
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    warnings = [line for line in log.splitlines() if "query over the time limit" in line]
    assert len(warnings) == 2 and "limit_ms=50" in warnings[0], log
    assert "Traceback" not in log and "Locals" not in log, log


def test_table_counts_give_up_at_their_limit(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db", check_same_thread=False)
    conn.execute("CREATE TABLE big (x)")
    conn.execute("INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                 "FROM c WHERE x < 5000000) SELECT x FROM c")
    conn.execute("CREATE TABLE small (x)")
    conn.execute("INSERT INTO small VALUES (1), (2)")
    conn.commit()
    assert count_within(conn, "small", 1000) == 2
    # One instruction, yet interrupted (the timer thread may come late on a busy machine).
    assert None in {count_within(conn, "big", 1) for _ in range(10)}
    assert count_within(conn, "big", 60_000) == 5_000_000
    assert count_within(conn, "small", 5) == 2  # the interrupt does not linger


def test_table_pages_give_up_counting_a_big_table(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A table page's whole-table count gets COUNT_LIMIT_MS, then the page goes without its
    total; filtered counts and small tables are counted as ever."""
    from datasette.app import Datasette
    from datasette.plugins import pm

    db = tmp_path / "c.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE big (x INTEGER)")
        conn.execute("INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                     "FROM c WHERE x < 5000000) SELECT x FROM c")
        conn.execute("CREATE INDEX big_x ON big (x)")
        conn.execute("CREATE TABLE small (x)")
        conn.execute("INSERT INTO small VALUES (1), (2)")
    monkeypatch.setattr(newswire_limits, "COUNT_LIMIT_MS", 1)
    pm.register(newswire_limits, name="newswire_limits_under_test")
    try:
        async def pages() -> list[dict]:
            datasette = Datasette([str(db)])
            await datasette.invoke_startup()
            found = []
            for path in ("/c/small.json", "/c/big.json?x=2"):
                response = await datasette.client.get(path)
                assert response.status_code == 200, response.text
                found.append(response.json())
            # Interrupted (a timer thread on a busy machine may come late: a few tries).
            for _ in range(10):
                big = (await datasette.client.get("/c/big.json")).json()
                database = (await datasette.client.get("/c.json")).json()
                counts = {t["name"]: t["count"] for t in database["tables"]}
                if big["filtered_table_rows_count"] is None and counts["big"] is None:
                    break
            return [big, *found, counts]

        big, small, filtered, counts = asyncio.run(pages())
    finally:
        pm.unregister(name="newswire_limits_under_test")
    assert big["filtered_table_rows_count"] is None and len(big["rows"]) == 100
    assert small["filtered_table_rows_count"] == 2
    assert filtered["filtered_table_rows_count"] == 1
    assert counts == {"big": None, "small": 2}  # the database page: "Many rows"


def test_a_table_searched_for_a_common_word_walks_its_order(tmp_path: Path) -> None:
    """`?_search=` on a table page: the same rows, newest first, read by walking the
    order's index and keeping the matches (never every matching row read and sorted)."""
    from datasette.app import Datasette
    from datasette.plugins import pm

    db = tmp_path / "s.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE articles (title TEXT, text TEXT, published_at TEXT)")
        conn.execute("CREATE INDEX articles_published ON articles (published_at)")
        conn.execute("CREATE VIRTUAL TABLE articles_fts USING fts5(title, text, "
                     "content='articles')")
        conn.executemany("INSERT INTO articles VALUES (?, ?, ?)", [
            (f"Story {i}", "officials said" if i % 3 else "a quiet day",
             f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z") for i in range(3000)])
        conn.execute("INSERT INTO articles_fts (articles_fts) VALUES ('rebuild')")
        expected = [r[0] for r in conn.execute(
            "SELECT rowid FROM articles WHERE text LIKE '%said%' "
            "ORDER BY published_at DESC, rowid DESC LIMIT 100")]
    metadata = {"databases": {"s": {"tables": {"articles": {
        "sort_desc": "published_at", "fts_table": "articles_fts", "fts_pk": "rowid"}}}}}
    seen: list[str] = []
    pm.register(newswire_limits, name="newswire_limits_under_test")
    try:
        async def page() -> dict:
            datasette = Datasette([str(db)], metadata=metadata)
            await datasette.invoke_startup()
            database = datasette.get_database("s")
            execute = database.execute

            async def spy(sql: str, *args: object, **kwargs: object) -> object:
                seen.append(sql)
                return await execute(sql, *args, **kwargs)

            database.execute = spy  # what reaches the plugin's wrapper, and what it runs
            response = await datasette.client.get("/s/articles.json?_search=said&_shape=objects")
            assert response.status_code == 200, response.text
            return dict(response.json())

        data = asyncio.run(page())
    finally:
        pm.unregister(name="newswire_limits_under_test")
    assert [r["rowid"] for r in data["rows"]] == expected
    assert data["filtered_table_rows_count"] == 2000
    rows_sql = [s for s in seen if "match" in s and " order by " in s]
    assert rows_sql, seen
    with sqlite3.connect(db) as conn:
        for sql in rows_sql:
            rewritten = newswire_limits.search_in_order(sql)  # what the plugin runs
            assert "+rowid in (select rowid from" in rewritten
            plan = " ".join(r[3] for r in conn.execute(
                "EXPLAIN QUERY PLAN " + rewritten.replace("escape_fts(:search)", "'said'")
                .replace(":search", "'said'").replace(":p0", "100").replace(":p1", "100")))
            assert "USING INDEX articles_published" in plan and "TEMP B-TREE" not in plan
    # The count of the matches (2000, above) comes from the search index alone.
    (count_sql,) = [s for s in seen if s.startswith("select count(*)") and "match" in s]
    counted = newswire_limits.search_count(count_sql)
    assert counted.startswith("select count(*) from [articles_fts] where"), counted
    with sqlite3.connect(db) as conn:
        steps = [r[3] for r in conn.execute(
            "EXPLAIN QUERY PLAN " + counted.replace("escape_fts(:search)", "'said'"))]
        assert len(steps) == 1 and steps[0].startswith("SCAN articles_fts VIRTUAL"), steps
    # Another filter with the search, or another index: the count as Datasette asks it.
    filtered = count_sql.rstrip() + " and feed_id = :p0"
    assert newswire_limits.search_count(filtered) == filtered
    other = count_sql.replace("articles_fts", "other_fts")
    assert newswire_limits.search_count(other) == other
