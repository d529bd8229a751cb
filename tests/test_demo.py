"""`make demo`: the offline demonstration ingests its own local site, then gets 304s."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeline.demo import STORIES, run
from pipeline.store import Store


def test_demo_ingests_its_site_and_repolls_conditionally(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a free port, used for both runs
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert run(tmp_path, port) == 0
    first = capsys.readouterr().out
    assert "3 new articles" in first
    with Store.open(tmp_path / "demo.db") as store:
        rows = store.latest_articles()
    assert sorted(r["title"] for r in rows) == sorted(t for t, _ in STORIES.values())
    assert all(r["text_source"] == "page" and "All rights reserved" not in r["text"]
               for r in rows)
    assert run(tmp_path, port) == 0
    second = capsys.readouterr().out
    assert "1 not modified" in second and "0 new articles" in second
