"""Robustness run: every file of feedparser's test corpus served on 127.0.0.1 and polled by
the real pipeline (fetch, parse in the pool, page fetches, extraction, store).

Nothing may crash; every feed gets exactly one fetch-log row and either its entries, each
with an article, or a recorded error. Page links point at example.org and the like: the
resolver refuses every name, so the run never leaves 127.0.0.0/8 nor asks DNS anything.
`bench/bench_feed_corpus.py` prints the same run's outcome table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.parse import FeedParseError, parse_feed
from pipeline.run import RunReport, run_once
from pipeline.store import Store
from tests.conftest import needs_corpus, write_config
from tests.feedcorpus import (
    CorpusServer,
    Outcome,
    error_class,
    loopback_resolver,
    outcome_table,
    outcomes,
)

pytestmark = pytest.mark.corpus

# The only ways a corpus file may fail, each a clear, recorded reason: CDF channels and an
# empty document are no feeds, and a DOCTYPE naming an external entity is refused (XXE).
EXPECTED_FAILURES = {"parse: not a recognisable feed", "parse: not a feed",
                     "parse: external entity refused"}


@dataclass
class CorpusRun:
    server: CorpusServer
    store: Store
    report: RunReport
    results: list[Outcome]


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusRun]:
    root = needs_corpus("feeds", "feedparser")
    workdir = tmp_path_factory.mktemp("feed-corpus")
    with CorpusServer(root) as server:
        urls = [served.url for served in server]
        config = load_config(write_config(workdir / "newswire.yaml", urls,
                                          fetch={"per_host_concurrency": 16}))
        store = Store.open(config.database)
        report = asyncio.run(run_once(config, store, resolver=loopback_resolver))
        yield CorpusRun(server, store, report, outcomes(store, server))
        store.close()


def test_every_file_is_polled_once_and_nothing_crashes(corpus_run: CorpusRun) -> None:
    run = corpus_run
    files = len(run.server.files)
    assert files > 2000
    assert run.report.feeds == files and len(run.results) == files
    assert all(r.fetches == 1 for r in run.results)
    assert sum(run.server.requests.values()) >= files
    assert all(n == 1 for n in run.server.requests.values())  # no retries, no loops
    print("\n" + "\n".join(f"{status:>6} {kind:<40} {n:>5}"
                           for status, kind, n in outcome_table(run.results)))


def test_every_outcome_is_entries_with_articles_or_a_recorded_error(
        corpus_run: CorpusRun) -> None:
    failures = [r for r in corpus_run.results if r.error]
    for r in corpus_run.results:
        if r.error is None:
            assert r.status == 200, r
            assert r.entries_with_article == r.entries, r  # every entry has its article
    logged = dict(corpus_run.store.db.execute(
        "SELECT feed_id, error FROM fetches WHERE error IS NOT NULL").fetchall())
    assert len(logged) == len(failures)
    assert {error_class(r.error) for r in failures} <= EXPECTED_FAILURES, \
        sorted({(r.path, r.error) for r in failures})
    assert len(failures) <= len(corpus_run.results) // 100  # 9 of 2,107 when written
    assert sum(r.entries for r in corpus_run.results) > 1000


def test_utf16_and_utf32_feeds_served_as_plain_text_xml_are_read(corpus_run: CorpusRun) -> None:
    wide = [r for r in corpus_run.results
            if r.path.startswith("encoding/") and ("16" in r.path or "32" in r.path)]
    assert len(wide) >= 16
    assert [r for r in wide if r.error] == []


def test_header_lines_reach_the_parser(corpus_run: CorpusRun) -> None:
    """For files whose `Header:` lines name a Content-Type, the stored result is what
    feedparser makes of the body *with those headers*, and without them it would differ."""
    stored = {r[0]: r[1:] for r in corpus_run.store.db.execute(
        "SELECT config_url, title, last_warning FROM feeds")}
    compared = differs = 0
    for served in corpus_run.server:
        headers = {k.lower(): v for k, v in served.headers}
        if served.path.parent.name != "encoding" or "charset" not in headers["content-type"]:
            continue
        title, warning = stored[served.url]
        with_headers = _title_and_warning(served.body, headers, served.url)
        assert (title or "", warning) == with_headers, served.path
        compared += 1
        differs += _title_and_warning(served.body, {}, served.url) != with_headers
    assert compared >= 20 and differs >= 20


def test_no_page_fetch_left_loopback(corpus_run: CorpusRun) -> None:
    errors = [r[0] for r in corpus_run.store.db.execute(
        "SELECT extract_error FROM articles WHERE extract_error IS NOT NULL")]
    refused = [e for e in errors if "name lookups are off" in e or "outside 127.0.0.0/8" in e]
    assert refused  # the feeds' links were tried, and refused by the resolver
    assert corpus_run.store.db.execute(  # no text came from any page
        "SELECT count(*) FROM articles WHERE text_source = 'page' AND text != ''"
    ).fetchone()[0] == 0


def _title_and_warning(body: bytes, headers: dict[str, str], url: str
                       ) -> tuple[str, str | None]:
    try:
        parsed = parse_feed(body, dict(headers), url)
    except FeedParseError as exc:
        return "error", str(exc)
    return parsed.title, parsed.warning


def test_corpus_server_parses_header_lines_like_feedparser(tmp_path: Path) -> None:
    from tests.feedcorpus import served_headers

    feed = tmp_path / "x.xml"
    text = ('<?xml version="1.0" encoding="utf-16"?>\n<!--\nHeader:   Content-type: text/xml;'
            ' charset="utf-16"\nHeader:      X-Foo: bar\nDescription: d\nExpect: e\n-->\n<rss/>')
    data = "\ufeff".encode("utf-16-le") + text.encode("utf-16-le")
    assert served_headers(feed, data) == [("Content-type", 'text/xml; charset="utf-16"'),
                                          ("X-Foo", "bar")]
    assert served_headers(tmp_path / "y.json", b"{}") == [("Content-Type", "application/json")]
    assert served_headers(feed, b"<rss/>") == [("Content-Type", "text/xml")]
