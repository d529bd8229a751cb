"""The front page and the charts (datasette-dashboards over pipeline/datasette/dashboards.yaml)
served by `newswire serve` over a small real corpus: each chart's SQL, sent as the plugin
sends it, returns the numbers the corpus holds; a headless Chromium draws every dashboard
with data and saves screenshots (test-artifacts/browser/dash-*.png)."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import urllib.error
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.browse import COPIES_SHOWN, FRONT_PAGE, dashboards_for
from pipeline.datasette.plugins.newswire_cells import html_text
from pipeline.store.summaries import OUTLET_JOINED
from tests.conftest import fill_site, run_cli, serving, story, write_config
from tests.newssite import NewsSite
from tests.test_browse import (
    _OPENER,
    _seed_dir,
    browser,  # noqa: F401 - the headless Chromium fixture
    query,
    screenshot,
    stamp,
    store_big_cluster,
)

HOSTILE_SITE = 'The <img src=x onerror="alert(1)"> Courier & Co'


@dataclass
class Corpus:
    root: str  # http://127.0.0.1:PORT
    db: Path
    gazette: NewsSite
    refused_feed: str
    copy_published: datetime  # the Herald's copy of the Gazette's story-0

    def get(self, path: str, status: int = 200) -> str:
        try:
            with _OPENER.open(self.root + path, timeout=30) as response:
                code, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            code, body = error.code, error.read()
        assert code == status, body[:500]
        return body.decode("utf-8")

    def chart(self, dashboard: str, chart: str, **filters: str) -> list[dict[str, Any]]:
        """The chart's rows, asked for as datasette-dashboards asks (its SQL, the filters)."""
        sql = dashboards_for(self.db, dead_after=10)[dashboard]["charts"][chart]["query"]
        params = urllib.parse.urlencode({"sql": sql, **filters, "_shape": "objects"})
        data = json.loads(self.get(f"/corpus.json?{params}"))
        assert not data.get("truncated")
        return data["rows"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """Three outlets: the Gazette (five stories), the Herald (a copy of the Gazette's first
    story an hour later, and a story of its own) and a Courier whose site name is hostile
    HTML (a copy of the same story); a feed that refuses connections; an imported article."""
    tmp = tmp_path_factory.mktemp("dashboards")
    now = datetime.now(UTC).replace(microsecond=0)
    with NewsSite() as gazette, NewsSite(site_name="The Other Herald") as herald, \
            NewsSite(site_name=HOSTILE_SITE) as courier:
        fill_site(gazette)  # story-i published i + 1 hours ago
        wire = gazette.article("story-0")
        herald.add_article("wire-copy", wire.title, wire.paragraphs, now, author=wire.author)
        herald.add_article("local", "Herald local news", story("harbour dredging"),
                           now - timedelta(hours=9))
        courier.add_article("wire", wire.title, wire.paragraphs, now - timedelta(minutes=30))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            refused = f"http://127.0.0.1:{sock.getsockname()[1]}/feed.xml"
        config = write_config(tmp / "corpus.yaml", [gazette.feed_url("rss"),
                                                    herald.feed_url("atom"),
                                                    courier.feed_url("rss"), refused],
                              schedule={"dead_after": 10})
        config.write_text(config.read_text().replace("newswire.db", "corpus.db"))
        assert run_cli("once", config=config).code == 0
        seed = _seed_dir(tmp / "seed", {"000_0123456789abcdef.txt": (
            "Lighthouse keepers meet", ["The keepers of the coast met on Sunday."])})
        assert run_cli("import", str(seed), config=config).code == 0

        with serving(config, tmp) as root:
            yield Corpus(root, tmp / "corpus.db", gazette, refused, now)


def test_home_links_the_front_page_first(corpus: Corpus) -> None:
    home = corpus.get("/")
    assert home.index(f'href="{FRONT_PAGE}"') < home.index('href="/corpus"')
    assert "datasette-dashboards" in corpus.get("/-/plugins.json")
    page = corpus.get(FRONT_PAGE)
    assert "newswire at a glance" in page and "Biggest stories of the last 24 hours" in page


def test_front_page_figures(corpus: Corpus) -> None:
    def metric(chart: str) -> Any:
        rows = corpus.chart("corpus", chart)
        assert len(rows) == 1
        return next(iter(rows[0].values()))

    stored = query(corpus.db, "SELECT count(*), count(duplicate_kind) FROM articles")[0]
    assert stored == (9, 2)  # 5 + 2 + 1 fetched, 1 imported; the two copies of story-0
    assert metric("articles-today") == metric("articles-7d") == 9
    assert metric("copies-7d") == round(100 * 2 / 9, 1)
    assert (metric("feeds-ok"), metric("feeds-failing"), metric("feeds-dead")) == (3, 1, 0)
    [biggest] = corpus.chart("corpus", "biggest-stories")
    wire = corpus.gazette.article("story-0")
    cluster = query(corpus.db, "SELECT cluster_id FROM articles WHERE title = ? "
                               "AND duplicate_kind IS NULL", (wire.title,))[0][0]
    assert biggest["story"] == f'<a href="/-/dashboards/story?cluster={cluster}">' \
                               f"{wire.title}</a>"
    assert (biggest["outlets"], biggest["copies"]) == (3, 3)
    # Table cells are shown as HTML: the hostile site name arrives as text.
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; Courier &amp; Co" in \
        biggest["carried_by"] and "<img" not in biggest["carried_by"]
    [today] = corpus.chart("corpus", "articles-per-day")
    assert today == {"day": datetime.now(UTC).strftime("%Y-%m-%d"), "articles": 9,
                     "copies": 2}


def test_articles_per_day_per_feed_and_per_site(corpus: Corpus) -> None:
    per_feed = {r["feed"]: r["articles"] for r in corpus.chart("volume", "per-feed")}
    # The Courier's feed title comes sanitised by the feed parser; its pages' site name not.
    assert per_feed == {"The Example Gazette": 5, "The Other Herald": 2,
                        "The Courier & Co": 1, "import: seed": 1}
    per_site = {r["site"]: r["articles"] for r in corpus.chart("volume", "per-site")}
    assert per_site == {"The Example Gazette": 5, "The Other Herald": 2, HOSTILE_SITE: 1,
                        "import: seed": 1}  # the import has no site: its feed stands in
    by_feed = dict(query(corpus.db, "SELECT coalesce(f.name, f.title), count(*) FROM "
                                    "articles a JOIN feeds f ON f.id = a.feed_id GROUP BY 1"))
    assert by_feed == per_feed


def test_feed_health_over_time(corpus: Corpus) -> None:
    [today] = corpus.chart("health", "polls-per-day")
    assert today == {"day": datetime.now(UTC).strftime("%Y-%m-%d"), "ok": 4,
                     "not_modified": 0, "failed": 1}  # four feeds and the import batch
    [failing] = corpus.chart("health", "unhealthy")
    assert (failing["feed"], failing["health"], failing["failures"]) == \
        (corpus.refused_feed, "failing", 1)
    assert "Connect" in failing["last_error"]


def test_a_storys_spread(corpus: Corpus) -> None:
    spread = corpus.chart("story", "timeline")  # no cluster asked: the biggest of the day
    published = corpus.copy_published
    assert [r["outlet"] for r in spread] == ["The Example Gazette", HOSTILE_SITE,
                                             "The Other Herald"]  # in order of publication
    # The original is the copy stored first: the feeds are polled at once, so any of them.
    assert sorted(r["kind"] for r in spread) == ["exact", "exact", "original"]
    lags = [r["lag_minutes"] for r in spread]
    assert lags[0] == 0.0 and 29 <= lags[1] <= 31 and 59 <= lags[2] <= 61
    assert spread[2]["at"] == published.strftime("%Y-%m-%dT%H:%M:%SZ")
    by_lag = corpus.chart("story", "lags")
    assert sorted(r["lag_minutes"] for r in by_lag) == [r["lag_minutes"] for r in by_lag]
    table = corpus.chart("story", "copies")
    assert table[1]["outlet"].startswith("The &lt;img") and "<img" not in table[1]["outlet"]
    assert table[0]["article"].startswith('<a href="/corpus/articles/')
    # A cluster merged into this one (its id bookmarked before the merge) leads here.
    wire_cluster = query(corpus.db, "SELECT DISTINCT cluster_id FROM articles WHERE title = ?",
                         (corpus.gazette.article("story-0").title,))[0][0]
    with sqlite3.connect(corpus.db) as conn:
        conn.execute("INSERT INTO clusters (id, size, merged_into) VALUES (?, 0, ?)",
                     ("feedfacefeedface", wire_cluster))
    assert corpus.chart("story", "timeline", cluster="feedfacefeedface") == spread
    lone = query(corpus.db, "SELECT cluster_id FROM articles WHERE id = '0123456789abcdef'")
    [imported] = corpus.chart("story", "timeline", cluster=lone[0][0])
    assert (imported["outlet"], imported["kind"], imported["lag_minutes"]) == \
        ("import: seed", "original", 0.0)


def test_a_big_storys_spread_shows_its_first_copies(tmp_path: Path) -> None:
    """A story of 1,300 copies (some dated by their outlet, some only by when they were
    stored): the chart shows the COPIES_SHOWN earliest in time, lags behind the very first."""
    copies = [(f"{i:016x}", stamp(3 * i), None) for i in range(900)]  # dated: 0, 3, 6 ...
    copies += [(f"{900 + i:016x}", None, stamp(3 * i + 1)) for i in range(400)]  # 1, 4 ...
    copies.append(("f" * 16, None, stamp(-5)))  # the first of all, stored before any
    store_big_cluster(tmp_path / "nw.db", copies, feed_name="Wire")
    sql = dashboards_for(tmp_path / "nw.db", dead_after=10)["story"]["charts"]["timeline"][
        "query"]
    with sqlite3.connect(tmp_path / "nw.db") as conn:
        rows = conn.execute(sql, {"cluster": "big"}).fetchall()
    assert COPIES_SHOWN == 1000  # the figures below
    earliest = sorted(published or stored for _, published, stored in copies)[:COPIES_SHOWN]
    assert [at for _, at, _, _ in rows] == earliest
    # The first copy at -5 min, then dated and undated ones interleaved up to 1,794 min.
    assert [lag for _, _, _, lag in rows][:3] == [0.0, 5.0, 6.0] and rows[-1][3] == 1799.0
    assert [kind for _, _, kind, _ in rows] == ["original"] * COPIES_SHOWN
    assert {outlet for outlet, _, _, _ in rows} == {"Wire"}


def test_outlets_compared(corpus: Corpus) -> None:
    rows = {r["outlet"]: r for r in corpus.chart("outlets", "median-lag")}
    gazette, herald = rows["The Example Gazette"], rows["The Other Herald"]
    courier = rows[HOSTILE_SITE]
    assert (gazette["articles"], gazette["shared_copies"], gazette["median_lag_minutes"],
            gazette["wire_share"]) == (5, 1, 0.0, 0.0)  # first with the story
    assert (herald["articles"], herald["shared_copies"], herald["wire_share"]) == (2, 1, 50.0)
    assert 59 <= herald["median_lag_minutes"] <= 61
    assert (courier["articles"], courier["wire_share"]) == (1, 100.0)
    assert 29 <= courier["median_lag_minutes"] <= 31
    assert rows["import: seed"]["median_lag_minutes"] is None  # nothing shared
    assert corpus.chart("outlets", "table")[0]["outlet"] == "The Example Gazette"


# What the charts over the writer's summaries (outlet_days, copy_lags) stand for: the
# queries that counted and ranked the articles at read time (issue 15's first version, the
# window of "outlets compared" widened to 30 days).
READ_TIME_PER_SITE = f"""
    with recent as (
      select substr(a.fetched_at, 1, 10) as day, {OUTLET_JOINED} as site
      from articles a left join feeds f on f.id = a.feed_id
      where a.fetched_at >= date('now', '-29 days')),
    top as (select site from recent group by site order by count(*) desc, site limit 10)
    select day, case when site in (select site from top) then site
                     else '(other sites)' end as site, count(*) as articles
    from recent group by day, 2 order by day, 2"""
READ_TIME_OUTLETS_COMPARED = f"""
    with stories as materialized (
      select id from clusters where outlets > 1 and last_seen_at >= date('now', '-29 days')),
    copies as (
      select a.cluster_id, {OUTLET_JOINED} as outlet,
             coalesce(a.published_at, a.fetched_at) as at,
             a.fetched_at >= date('now', '-29 days') as recent
      from stories s cross join articles a on a.cluster_id = s.id
      left join feeds f on f.id = a.feed_id),
    lags as (
      select outlet, recent,
             (julianday(at) - julianday(first_value(at) over story)) * 1440 as lag,
             outlet != first_value(outlet) over story as wire
      from copies window story as (partition by cluster_id order by at, outlet)),
    ranked as (
      select outlet, lag, wire, row_number() over (partition by outlet order by lag) as n,
             count(*) over (partition by outlet) as total
      from lags where recent),
    shared as (
      select outlet, count(*) as copies, sum(wire) as wire_copies,
             avg(case when n in ((total + 1) / 2, (total + 2) / 2) then lag end) as median
      from ranked group by outlet),
    top as (
      select {OUTLET_JOINED} as outlet, count(*) as articles
      from articles a left join feeds f on f.id = a.feed_id
      where a.fetched_at >= date('now', '-29 days')
      group by outlet order by articles desc, outlet limit 30)
    select t.outlet, t.articles, coalesce(s.copies, 0) as shared_copies,
           round(s.median, 1) as median_lag_minutes,
           round(100.0 * coalesce(s.wire_copies, 0) / t.articles, 1) as wire_share
    from top t left join shared s on s.outlet = t.outlet order by 2 desc, 1"""


def test_charts_over_the_summaries_say_what_counting_at_read_time_says(
        corpus: Corpus) -> None:
    with sqlite3.connect(corpus.db) as conn:
        conn.row_factory = sqlite3.Row
        per_site = [dict(r) for r in conn.execute(READ_TIME_PER_SITE)]
        outlets = [dict(r) for r in conn.execute(READ_TIME_OUTLETS_COMPARED)]
    assert corpus.chart("volume", "per-site") == per_site != []
    assert corpus.chart("outlets", "median-lag") == outlets
    assert sum(r["shared_copies"] for r in outlets) == 3  # the story's three copies


def test_chart_queries_read_indexes_not_the_articles_table(corpus: Corpus) -> None:
    """No chart scans the articles table (its rows hold the texts): each reads a window of
    an index, or the writer's daily totals."""
    checked = 0
    for slug, dashboard in dashboards_for(corpus.db, dead_after=10).items():
        for name, chart in dashboard["charts"].items():
            if "query" not in chart:
                continue
            checked += 1
            with sqlite3.connect(corpus.db) as conn:
                conn.create_function("html_text", 1, html_text)
                details = [row[3] for row in conn.execute(
                    "EXPLAIN QUERY PLAN " + chart["query"], {"cluster": ""})]
            assert not [d for d in details if d.startswith("SCAN a ") or d == "SCAN a"
                        or d.startswith("SCAN articles")], (slug, name, details)
    assert checked >= 15  # every dashboard's charts, not a vacuous pass


# --- the browser ------------------------------------------------------------------------------

DASHBOARDS = ("corpus", "volume", "health", "story", "outlets")


def test_browser_draws_every_dashboard_with_data(corpus: Corpus,
                                                 browser: object) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    config = dashboards_for(corpus.db, dead_after=10)
    for number, slug in enumerate(DASHBOARDS, 1):
        driver.get(f"{corpus.root}/-/dashboards/{slug}")
        charts = {name: chart["library"] for name, chart in config[slug]["charts"].items()}

        def drawn(driver: Any, charts: dict[str, str] = charts) -> bool:
            for name, library in charts.items():
                card = driver.find_element(By.ID, f"chart-{name}")
                if library == "vega-lite" and not card.find_elements(
                        By.CSS_SELECTOR, "svg g.mark-rect path, svg g.mark-symbol path"):
                    return False
                if library == "table" and not card.find_elements(By.CSS_SELECTOR,
                                                                 "tbody tr"):
                    return False
                if library == "metric" and not card.text.strip():
                    return False
            return True

        WebDriverWait(driver, 30).until(drawn)
        screenshot(driver, f"dash-{number}-{slug}")
        for name, library in charts.items():  # a metric of an empty or failed query
            if library == "metric":
                text = driver.find_element(By.ID, f"chart-{name}").text
                assert text.replace(".", "").replace(" %", "").isdigit(), (name, text)
        errors = [entry for entry in driver.get_log("browser")
                  if entry["level"] == "SEVERE"] if hasattr(driver, "get_log") else []
        assert not errors, errors
    driver.get(f"{corpus.root}/-/dashboards/corpus")
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, "#chart-biggest-stories tbody tr"))
    assert not driver.find_elements(By.CSS_SELECTOR, "#chart-biggest-stories img")
    assert "<img src=x" in driver.find_element(By.ID, "chart-biggest-stories").text

    # A reader in New York sees the story's times in UTC, as the axis title says.
    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    try:
        driver.get(f"{corpus.root}/-/dashboards/story")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(
            By.CSS_SELECTOR, "#chart-timeline svg g.mark-symbol path"))
        labels = [t.text for t in driver.find_elements(
            By.CSS_SELECTOR, "#chart-timeline svg g.role-axis-label text")]
    finally:  # the browser is the module's: back to the machine's zone
        driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})
    label = re.compile(r"[A-Z][a-z]{2} \d{2} \d{2}:\d{2}")
    year = corpus.copy_published.year

    def tick(text: str) -> datetime:  # labels have no year: the one nearest the copy
        return min((datetime.strptime(f"{y} {text}", "%Y %b %d %H:%M").replace(tzinfo=UTC)
                    for y in (year - 1, year, year + 1)),
                   key=lambda t: abs(t - corpus.copy_published))

    ticks = [tick(text) for text in labels if label.fullmatch(text)]
    first = corpus.copy_published - timedelta(hours=1)  # the Gazette's, an hour earlier
    assert ticks and all(first - timedelta(hours=1) <= t <= corpus.copy_published
                         + timedelta(hours=1) for t in ticks), ticks
