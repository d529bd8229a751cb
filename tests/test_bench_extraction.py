"""Tests of bench/bench_extraction.py's summaries: what a perfect choice between the two
trafilatura modes would reach, the date misses sorted by what the page offered, and which
of the headline's date and the publication fields the manifest follows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_extraction  # noqa: E402
from bench.scoring import Page  # noqa: E402


def _page(day: str, page_id: str = "p") -> Page:
    return Page(id=page_id, url="https://example.com/a", title="A", html="<p>a</p>", truth="a",
                publish_date=day)


def _evidence(offered: set[str], shown: tuple[str, ...] = (), update: bool = False,
              fields: frozenset[str] = frozenset()) -> dict[str, object]:
    return {"offered": offered | set(shown) | fields, "shown": shown, "update": update,
            "fields": set(fields)}


def test_modes_report_the_better_mode_of_each_page(capsys: pytest.CaptureFixture[str]) -> None:
    truths = ["one two three four", "five six seven eight", "--"]  # the third has no words
    modes = [["one two three four", "one two"],  # default right (F1 1), recall half (2/3)
             ["five", "five six seven eight"],  # default 2/5, recall right (1)
             ["x", "y"]]
    plain = ["one two", "five six seven eight", "x"]  # F1 2/3 and 1: mean 5/6
    bench_extraction._print_modes(modes, plain, truths)
    out = capsys.readouterr().out
    # default (1 + 2/5)/2 = 0.7, recall (2/3 + 1)/2 = 0.8333, best (1 + 1)/2 = 1
    assert "plain trafilatura 0.8333" in out
    assert "default mode 0.7000 (-0.1333)" in out
    assert "recall mode 0.8333 (+0.0000)" in out
    assert "each page 1.0000 (+0.1667;" in out
    assert "better on 1 pages, the recall mode on 1" in out


def test_date_misses_sorted_by_what_the_page_offered(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    day = "2025-08-19"
    dated = [
        (_page(day), "2025-01-29", _evidence({"2025-01-29"})),  # nothing offered the day
        (_page(day), "2025-01-29", _evidence({"2025-01-29"}, (day,), update=True)),
        (_page(day), None, _evidence(set(), (day,))),  # shown, unlabelled, not chosen
        (_page(day), "2025-01-29", _evidence({"2025-01-29", day})),  # htmldate had it
        (_page(day), day + "T10:00:00Z", _evidence({day}, ("2026-01-01",), update=True)),
        (_page(day), day, _evidence({day}, ("2024-01-01",))),
        (_page(day), day, _evidence({day}, (day,))),  # right, and so was the headline
    ]
    bench_extraction._print_date_misses(dated)
    out = capsys.readouterr().out
    assert out.startswith("- 4 pages missed: another signal's day 1, no signal gives "
                          "the day 1, the headline's date (plain) 1, the headline's date "
                          "(update) 1;")
    assert "right while the headline's date was not: 1 labelled as an update, 1 not" in out


def test_date_conventions_counted_by_block_of_page_ids(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    day, other, old = "2025-08-19", "2026-01-01", frozenset({"2025-01-29"})
    dated = [
        (_page(day, "dev-0001"), None, _evidence(set(), (day,), fields=old)),
        (_page(day, "dev-0002"), None, _evidence(set(), (day,), update=True, fields=old)),
        (_page(day, "dev-4001"), day, _evidence(set(), (other,), fields=frozenset({day}))),
        (_page(day, "dev-4002"), day, _evidence(set(), (day,), fields=frozenset({day}))),
        (_page(day, "dev-4003"), None, _evidence(set(), (other,), fields=old)),
        (_page(day, "dev-4004"), day, _evidence(set(), (day,))),  # no field: no contest
    ]
    bench_extraction._print_date_misses(dated)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("- where the headline's date and the publication fields disagree, "
                        "the manifest has: dev-0xxx the headline's 2, a field's 0, neither 0; "
                        "dev-4xxx the headline's 0, a field's 1, neither 1")
    assert bench_extraction._id_block("wcxb-dev-0417") == "wcxb-dev-0xxx"
