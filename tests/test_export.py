"""Corpus export (seed text format, JSONL) and import: numbering, no overwrites, file names
never from feed data, one file per cluster, dedupe on import, and round trips."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import pytest
import yaml

from pipeline.export import (
    SEED_NAME,
    _create,
    export_jsonl,
    export_text,
    format_seed,
    import_text,
    parse_seed,
)
from pipeline.store import Store
from tests.conftest import needs_corpus, run_cli, story, write_config
from tests.newssite import NewsSite
from tests.test_store import entry, make_article, poll

SEED_ID = "ad7cd0aa738c0655"
BODY_A = "\n\n".join(story("harbour"))
BODY_C = "\n\n".join(story("elections"))


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Three articles from one feed: A, B (an exact copy of A under another URL) and C."""
    s = Store.open(tmp_path / "corpus.db")
    feed = s.add_feed("http://feeds.example/rss", "Example feed")
    s.record_poll(poll(feed, *(
        entry(key, url, make_article(url, text, title)) for key, url, text, title in (
            ("a", "http://a.example/harbour", BODY_A, "Harbour reopens"),
            ("b", "http://b.example/copy", BODY_A, "Harbour reopens (copy)"),
            ("c", "http://a.example/elections", BODY_C, "Elections called")))))
    yield s
    s.close()


def ids(store: Store) -> dict[str, str]:
    return {row[0]: row[1] for row in store.db.execute("SELECT title, id FROM articles")}


def test_seed_format_and_parsing() -> None:
    text = format_seed("  A title\nsplit ", "First   paragraph.\n\n\n\nSecond.")
    assert text == "A title split\n\nFirst paragraph.\n\nSecond.\n"
    assert parse_seed(text) == ("A title split", "First paragraph.\n\nSecond.")
    assert parse_seed("\ufeff Title\r\n\r\nBody one.\r\n\r\nBody two.\u00a0\r\n") == \
        ("Title", "Body one.\n\nBody two.")
    for bad, reason in (("\n\nBody", "title"), ("Title only\n\n", "no body")):
        with pytest.raises(ValueError, match=reason):
            parse_seed(bad)


def test_export_continues_numbering_skips_present_ids_and_never_overwrites(
        store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a, c = ids(store)["Harbour reopens"], ids(store)["Elections called"]
    (out / f"003_{a}.txt").write_text("already exported\n\nkept as it is\n")
    (out / "007_ffffffffffffffff.txt").write_text("another corpus\n\nbody\n")
    (out / "notes.txt").write_text("not part of the corpus")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    report = export_text(store, out)
    assert (report.written, report.already_present) == (1, 1)  # B is a copy: not by default
    assert report.first == report.last == out.resolve() / f"008_{c}.txt"
    assert (out / f"008_{c}.txt").read_text() == f"Elections called\n\n{BODY_C}\n"
    for name, data in before.items():
        assert (out / name).read_bytes() == data

    again = export_text(store, out, include_duplicates=True)
    assert again.written == 1 and again.already_present == 2
    assert again.first.name.startswith("009_")
    assert export_text(store, out, include_duplicates=True).written == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files


def test_create_never_overwrites_or_follows_a_link_out(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    outside.write_text("precious")
    (out / "000_aaaaaaaaaaaaaaaa.txt").symlink_to(outside)
    (out / "001_bbbbbbbbbbbbbbbb.txt").write_text("first")
    with pytest.raises(ValueError, match="outside"):
        _create(out.resolve(), "000_aaaaaaaaaaaaaaaa.txt", b"overwrite?")
    assert _create(out.resolve(), "001_bbbbbbbbbbbbbbbb.txt", b"second") is False
    with pytest.raises(ValueError, match="outside"):
        _create(out.resolve(), "../escape.txt", b"x")
    assert outside.read_text() == "precious"
    assert (out / "001_bbbbbbbbbbbbbbbb.txt").read_text() == "first"
    assert not (tmp_path / "escape.txt").exists()


def test_file_names_never_come_from_feed_data(tmp_path: Path) -> None:
    with Store.open(tmp_path / "c.db") as store:
        feed = store.add_feed("http://feeds.example/rss")
        hostile = ["../../escaped", "/etc/passwd", "x/../../y.txt", "NUL\x00name", "😀 " * 50]
        store.record_poll(poll(feed, *(
            entry(str(i), f"http://a.example/{i}",
                  make_article(f"http://a.example/{i}", f"{BODY_A}\n\nVariant {i}.", title))
            for i, title in enumerate(hostile))))
        report = export_text(store, tmp_path / "out")
    names = sorted(os.listdir(tmp_path / "out"))
    assert report.written == len(hostile) == len(names)
    assert all(SEED_NAME.match(name) for name in names)
    assert {name for name in os.listdir(tmp_path) if not name.startswith("c.db")} == {"out"}


def test_export_since_keeps_later_articles(store: Store, tmp_path: Path) -> None:
    a = ids(store)["Harbour reopens"]
    store.db.execute("UPDATE articles SET fetched_at = '2020-01-01T00:00:00Z' WHERE id = ?",
                     [a])
    report = export_text(store, tmp_path / "out", since="2021-06-01T00:00:00Z")
    assert report.written == 1
    assert report.first.name == f"000_{ids(store)['Elections called']}.txt"


def test_jsonl_carries_all_metadata_and_cluster_ids(store: Store, tmp_path: Path) -> None:
    report = export_jsonl(store, tmp_path / "out", include_duplicates=True)
    assert report.written == 3 and report.first.name.startswith("newswire-")
    records = {r["title"]: r for r in map(json.loads, report.first.read_text().splitlines())}
    original, copy = records["Harbour reopens"], records["Harbour reopens (copy)"]
    assert copy["duplicate_of"] == original["id"] and copy["duplicate_kind"] == "exact"
    assert copy["cluster_id"] == original["cluster_id"] == copy["cluster_canonical_id"] \
        == original["id"]
    assert original["cluster_size"] == 2
    assert copy["text"] == BODY_A and copy["url"] == "http://b.example/copy"
    assert copy["feed_url"] == "http://feeds.example/rss" and copy["feed_name"] == "Example feed"
    assert copy["seen_in"] == [{"feed_url": "http://feeds.example/rss", "guid": "b",
                                "link": "http://b.example/copy", "seen_at": copy["fetched_at"]}]
    for column in ("published_at", "author", "language", "sitename", "text_source",
                   "word_count", "quality", "description", "page_published_at",
                   "feed_published_at", "declared_language"):
        assert column in copy
    second = export_jsonl(store, tmp_path / "out")  # default: canonical articles only
    assert second.written == 2 and second.first != report.first
    assert len(report.first.read_text().splitlines()) == 3  # the first file is untouched


def write_seed(directory: Path, name: str, content: str | bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = content.encode("utf-8") if isinstance(content, str) else content
    (directory / name).write_bytes(data)


def test_import_applies_dedupe_keeps_ids_and_reports_bad_files(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    write_seed(seed, "000_aaaaaaaaaaaaaaaa.txt", f"Harbour reopens\n\n{BODY_A}\n")
    write_seed(seed, "001_bbbbbbbbbbbbbbbb.txt", f"Same text, new headline\n\n{BODY_A}\n")
    write_seed(seed, "002_cccccccccccccccc.txt", b"Latin-1 \xe9t\xe9\n\nbody\n")
    write_seed(seed, "003_dddddddddddddddd.txt", "A title and nothing else\n")
    write_seed(seed, "004_aaaaaaaaaaaaaaaa.txt", f"Harbour again\n\n{BODY_A}\n")
    write_seed(seed, "1_eeeeeeeeeeeeeeee.txt", "too short a number\n\nbody\n")
    write_seed(seed, "README.md", "ignored: not a text file")
    (tmp_path / "secret.txt").write_text("Private\n\nnot for the corpus\n")
    (seed / "005_ffffffffffffffff.txt").symlink_to(tmp_path / "secret.txt")
    with Store.open(tmp_path / "c.db") as store:
        report = asyncio.run(import_text(store, seed))
        rows = {r[0]: r[1:] for r in store.db.execute(
            "SELECT id, title, duplicate_of, duplicate_kind, text_source, cluster_id "
            "FROM articles")}
        again = asyncio.run(import_text(store, seed))
        sources = list(store.db.execute("SELECT url, active, next_poll_at FROM feeds"))
        entries = store.db.execute("SELECT count(*) FROM entries").fetchone()[0]
    assert (report.files, report.new_articles, report.exact_duplicates) == (6, 2, 1)
    assert report.already_stored == 1  # 004 carries an id already imported
    assert sorted(name for name, _ in report.errors) == [
        "002_cccccccccccccccc.txt", "003_dddddddddddddddd.txt", "005_ffffffffffffffff.txt",
        "1_eeeeeeeeeeeeeeee.txt"]
    assert "UTF-8" in dict(report.errors)["002_cccccccccccccccc.txt"]
    assert dict(report.errors)["005_ffffffffffffffff.txt"] == "not a regular file"
    assert rows["aaaaaaaaaaaaaaaa"] == ("Harbour reopens", None, None, "import",
                                        "aaaaaaaaaaaaaaaa")
    assert rows["bbbbbbbbbbbbbbbb"] == ("Same text, new headline", "aaaaaaaaaaaaaaaa", "exact",
                                        "import", "aaaaaaaaaaaaaaaa")
    assert again.new_articles == 0 and again.already_stored == 3  # readable files: no change
    assert sources == [(seed.resolve().as_uri(), 0, None)]  # never polled
    assert entries == 3


def test_files_that_claim_one_id_with_other_texts_are_all_imported(tmp_path: Path) -> None:
    """Three files named with one id and three texts: the first keeps the id, the others
    were keyed by their empty page URL, so the second took a constant id and the third
    was "already stored" and lost (the review's reproduction). Now each other text gets an
    id from the claimed one and its text, and importing again adds nothing."""
    seed = tmp_path / "seed"
    for n, subject in enumerate(("harbour", "ferry", "bridge")):
        write_seed(seed, f"00{n}_aaaaaaaaaaaaaaaa.txt",
                   f"The {subject}\n\n{' '.join(story(subject))}\n")
    with Store.open(tmp_path / "c.db") as store:
        report = asyncio.run(import_text(store, seed))
        again = asyncio.run(import_text(store, seed))
        rows = store.db.execute("SELECT id, title, claimed_canonical_url FROM articles "
                                "ORDER BY title").fetchall()
    assert (report.new_articles, report.already_stored) == (3, 0)
    assert (again.new_articles, again.already_stored) == (0, 3)
    assert [title for _, title, _ in rows] == ["The bridge", "The ferry", "The harbour"]
    assert len({article for article, _, _ in rows}) == 3
    assert dict((t, a) for a, t, _ in rows)["The harbour"] == "aaaaaaaaaaaaaaaa"


def test_seed_article_imports_and_exports_unchanged(tmp_path: Path) -> None:
    seed = needs_corpus("seed")
    original = (seed / f"000_{SEED_ID}.txt").read_text(encoding="utf-8")
    config = write_config(tmp_path / "newswire.yaml", ["http://feeds.example/rss"])
    result = run_cli("import", str(seed), config=config)
    assert result.code == 0, result.stderr
    assert "1 new articles" in result.stdout
    title, text, source = query(tmp_path / "newswire.db",
                                "SELECT title, text, text_source FROM articles WHERE id = ?",
                                (SEED_ID,))[0]
    assert title == "Turkey to buy Russian S-400 missiles, undeterred by US sanction threat"
    assert text.startswith("News\n\nTurkey to buy Russian S-400 missiles") and source == "import"
    assert text.endswith("ls/sms (AFP, dpa)")
    assert len(text.split("\n\n")) == len([p for p in original.split("\n\n")[1:] if p.strip()])
    assert "\u00a0" not in text

    out = tmp_path / "out"
    assert run_cli("export", str(out), config=config).code == 0
    exported = (out / f"000_{SEED_ID}.txt").read_text(encoding="utf-8")
    assert parse_seed(exported) == parse_seed(original)
    again = run_cli("export", str(out), config=config)
    assert "exported 0 articles" in again.stdout and os.listdir(out) == [f"000_{SEED_ID}.txt"]


def test_round_trip_export_then_import_into_a_fresh_database(tmp_path: Path) -> None:
    with NewsSite() as site:
        for i in range(4):
            site.add_article(f"s{i}", f"Story {i} with “quotes” & <angle> brackets",
                             story(f"round trip {i}"), published=site_now(i))
        config = write_config(tmp_path / "a.yaml", [site.feed_url("rss")])
        assert run_cli("once", config=config).code == 0
    fresh = tmp_path / "b.yaml"
    fresh.write_text(yaml.safe_dump({"database": "fresh.db",
                                     "feeds": ["http://feeds.example/rss"]}))
    out = tmp_path / "corpus"
    exported = run_cli("export", str(out), config=config)
    assert exported.code == 0 and "exported 4 articles" in exported.stdout
    imported = run_cli("import", str(out), config=fresh)
    assert imported.code == 0 and "4 new articles" in imported.stdout

    sql = "SELECT id, title, text FROM articles ORDER BY id"
    old, new = query(tmp_path / "newswire.db", sql), query(tmp_path / "fresh.db", sql)
    assert new == old and len(new) == 4


def site_now(hours_ago: int):  # noqa: ANN201 - a datetime
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(hours=hours_ago)


def test_round_trip_keeps_duplicates_as_duplicates(store: Store, tmp_path: Path) -> None:
    export_text(store, tmp_path / "out", include_duplicates=True)
    with Store.open(tmp_path / "fresh.db") as fresh:
        report = asyncio.run(import_text(fresh, tmp_path / "out"))
        sql = "SELECT id, title, text, duplicate_of, duplicate_kind FROM articles ORDER BY id"
        assert list(fresh.db.execute(sql)) == list(store.db.execute(sql))
    assert (report.new_articles, report.exact_duplicates) == (3, 1)


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "last tuesday"], "not a date"),
    (["--format", "csv"], "invalid choice"),
])
def test_export_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    config = write_config(tmp_path / "newswire.yaml", ["http://feeds.example/rss"])
    result = run_cli("export", str(tmp_path / "out"), *args, config=config)
    assert result.code == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_export_into_a_file_and_import_from_nowhere_fail_clearly(tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", ["http://feeds.example/rss"])
    result = run_cli("export", str(tmp_path / "out"), config=config)
    assert result.code == 3 and "no database" in result.stderr  # export never creates one
    assert not (tmp_path / "newswire.db").exists()
    Store.open(tmp_path / "newswire.db").close()
    (tmp_path / "file").write_text("x")
    result = run_cli("export", str(tmp_path / "file"), config=config)
    assert result.code == 1 and "not a directory" in result.stderr
    result = run_cli("import", str(tmp_path / "missing"), config=config)
    assert result.code == 1 and "not a directory" in result.stderr


def test_an_import_heals_clusters_and_the_export_follows_the_merge(tmp_path: Path) -> None:
    """A backfill where two parts of a story come before the whole: the whole joins one
    part's cluster and merges the other's; the export then writes the story once."""
    from tests.test_neardup import WIRE

    seed = tmp_path / "seed"
    write_seed(seed, "000_1111111111111111.txt", "Quake, part one\n\n" + "\n\n".join(WIRE[:4]))
    write_seed(seed, "001_2222222222222222.txt", "Quake, part two\n\n" + "\n\n".join(WIRE[4:]))
    write_seed(seed, "002_3333333333333333.txt", "Quake\n\n" + "\n\n".join(WIRE))
    with Store.open(tmp_path / "c.db") as store:
        report = asyncio.run(import_text(store, seed))
        assert (report.new_articles, report.near_duplicates) == (3, 1)
        (cluster,) = {r[0] for r in store.db.execute("SELECT cluster_id FROM articles")}
        assert store.db.execute("SELECT count(*) FROM cluster_merges").fetchone()[0] == 1
        text = export_text(store, tmp_path / "out")
        jsonl = export_jsonl(store, tmp_path / "jsonl", include_duplicates=True)
    # One file: the cluster's canonical article (undated, so the longest text).
    assert text.written == 1 and text.first.name == "000_3333333333333333.txt"
    records = [json.loads(line) for line in jsonl.first.read_text().splitlines()]
    assert {(r["cluster_id"], r["cluster_canonical_id"], r["cluster_size"])
            for r in records} == {(cluster, "3333333333333333", 3)}
