"""`newswire export DIR --format parquet`: every article with its cluster labels, read back
with pyarrow (and DuckDB or polars when installed) to the same rows, written a row group at
a time, with a manifest that names and checks the file."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline import __version__, export
from pipeline.export import export_parquet
from pipeline.store import Store
from pipeline.store.schema import SCHEMA_VERSION
from tests.conftest import run_cli, write_config
from tests.test_export import (
    BODY_A,
    BODY_C,
    store,  # noqa: F401 - three articles, one an exact copy
)
from tests.test_store import entry, make_article, poll


def stored(db: Path) -> dict[str, dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return {row["id"]: dict(row) for row in conn.execute("SELECT * FROM articles")}


def test_parquet_reads_back_to_the_same_rows(store: Store, tmp_path: Path,  # noqa: F811
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "PARQUET_ROW_GROUP", 2)  # three articles: two row groups
    report = export_parquet(store, tmp_path / "out")
    path = report.first
    assert path is not None and path.name.startswith("newswire-") and report.written == 3
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 2 and parquet.metadata.num_rows == 3
    rows = {r["id"]: r for r in parquet.read().to_pylist()}
    want = stored(store.path)
    assert set(rows) == set(want)
    for article_id, row in want.items():  # every column of the table, value for value
        assert {k: rows[article_id][k] for k in row} == row
    by_title = {r["title"]: r for r in rows.values()}
    original, copy = by_title["Harbour reopens"], by_title["Harbour reopens (copy)"]
    assert (original["canonical"], copy["canonical"]) == (True, False)
    assert copy["cluster_id"] == original["cluster_id"] == copy["cluster_canonical_id"]
    assert (copy["cluster_size"], copy["duplicate_kind"], copy["duplicate_score"]) == \
        (2, "exact", 1.0)
    assert by_title["Elections called"]["canonical"] is True
    assert copy["feed_url"] == "http://feeds.example/rss" and copy["feed_name"] == "Example feed"
    assert copy["seen_in"] == [{"feed_url": "http://feeds.example/rss", "guid": "b",
                                "link": "http://b.example/copy", "seen_at": copy["fetched_at"]}]

    manifest = json.loads(path.with_name(path.name.replace(".parquet", ".manifest.json"))
                          .read_text())
    assert manifest["file"] == path.name
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (manifest["rows"], manifest["canonical"], manifest["exact_copies"],
            manifest["near_copies"], manifest["clusters"]) == (3, 2, 1, 0, 2)
    assert manifest["schema_version"] == SCHEMA_VERSION == store.schema_version
    assert manifest["newswire_version"] == __version__ and manifest["since"] is None
    assert [c["name"] for c in manifest["columns"]] == parquet.schema_arrow.names
    assert {c["name"]: c["type"] for c in manifest["columns"]}["word_count"] == "int64"

    again = export_parquet(store, tmp_path / "out")  # a second snapshot never overwrites
    assert again.first != path and pq.ParquetFile(path).metadata.num_rows == 3


def test_parquet_since_and_an_empty_export(store: Store, tmp_path: Path) -> None:  # noqa: F811
    store.db.execute("UPDATE articles SET fetched_at = '2020-01-01T00:00:00Z' "
                     "WHERE title != 'Elections called'")
    later = export_parquet(store, tmp_path / "later", since="2021-06-01T00:00:00Z")
    assert [r["title"] for r in pq.read_table(later.first).to_pylist()] == ["Elections called"]
    empty = export_parquet(store, tmp_path / "empty", since="2999-01-01T00:00:00Z")
    table = pq.read_table(empty.first)  # no rows, but every column and its type
    assert table.num_rows == 0 and "seen_in" in table.column_names


def test_cli_exports_parquet_that_duckdb_or_polars_read(tmp_path: Path) -> None:
    config = write_config(tmp_path / "newswire.yaml", ["http://feeds.example/rss"])
    db = tmp_path / "newswire.db"
    with Store.open(db) as s:  # the same three articles as the store fixture
        feed = s.add_feed("http://feeds.example/rss", "Example feed")
        s.record_poll(poll(feed, *(
            entry(key, url, make_article(url, text, title)) for key, url, text, title in (
                ("a", "http://a.example/harbour", BODY_A, "Harbour reopens"),
                ("b", "http://b.example/copy", BODY_A, "Harbour reopens (copy)"),
                ("c", "http://a.example/elections", BODY_C, "Elections called")))))
    result = run_cli("export", str(tmp_path / "out"), "--format", "parquet", config=config)
    assert result.code == 0, result.stderr
    [path] = (tmp_path / "out").glob("*.parquet")
    assert f"exported 3 articles to {path}" in result.stdout
    assert len(list((tmp_path / "out").glob("*.manifest.json"))) == 1
    want = sorted((r["id"], r["cluster_id"], r["duplicate_kind"]) for r in stored(db).values())
    try:
        import duckdb
    except ImportError:
        duckdb = None
    if duckdb is not None:
        got = duckdb.sql(f"SELECT id, cluster_id, duplicate_kind FROM '{path}' ORDER BY id")
        assert sorted(got.fetchall()) == want
    try:
        import polars
    except ImportError:
        polars = None
    if polars is not None:
        frame = polars.read_parquet(path)
        assert sorted(zip(frame["id"], frame["cluster_id"], frame["duplicate_kind"],
                          strict=True)) == want
    table = pq.read_table(path, columns=["id", "cluster_id", "duplicate_kind"])
    assert sorted(tuple(r.values()) for r in table.to_pylist()) == want
