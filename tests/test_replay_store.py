"""bench/replay_store.py: stored sets replayed through the store on a fixed clock."""

from __future__ import annotations

import json
from pathlib import Path

from bench import replay_store
from pipeline import times
from pipeline.store import database
from tests.conftest import story
from tests.test_neardup import WIRE, Corpus


def test_a_replay_is_repeatable_and_its_window_matters(tmp_path: Path) -> None:
    real_clock = times.utcnow
    source = Corpus(tmp_path / "source.db")
    source.add("a", WIRE, site="One")
    source.add("b", WIRE[:6], site="Two")  # a near copy
    source.add("c", WIRE, site="Three")  # an exact copy
    source.add("d", story("harbour plan", 6), site="Four")
    source.store.close()

    def run(name: str, *options: str) -> dict:
        out = tmp_path / f"{name}.jsonl"
        assert replay_store.main([str(out), str(tmp_path / "source.db"), *options]) == 0
        [line] = out.read_text().splitlines()
        return json.loads(line)

    first, again = run("first"), run("again")
    assert first == again and first["articles"] == 4
    assert first["edges"] >= 2  # the near and the exact copy's evidence
    # Two days between articles and a one-day window: the copies no longer find the story.
    apart = run("apart", "--step-seconds", "172800", "--prune-every", "1", "--window-days", "1")
    assert apart["articles"] == 4 and apart["digest"] != first["digest"]
    assert apart["edges"] < first["edges"]
    # The real clock is back.
    assert times.utcnow is real_clock and database.utcnow is real_clock
