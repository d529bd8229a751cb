"""Times as stored: ISO 8601 UTC text (pipeline/times.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.times import iso, parse_iso, sane_published, utc_from_iso


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-05-10T22:00:00-05:00", "2024-05-11T03:00:00Z"),  # the page's evening, in UTC
    ("2024-05-10T08:15:00+05:30", "2024-05-10T02:45:00Z"),
    ("2024-05-10T22:00:00Z", "2024-05-10T22:00:00Z"),
    ("2024-05-10T08:15:00", "2024-05-10T08:15:00Z"),  # no offset known: taken as UTC
    ("2024-05-10", "2024-05-10T00:00:00Z"),  # a day alone: its midnight
    ("", None),
    (None, None),
    ("next Tuesday", None),
])
def test_utc_from_iso(value: str | None, expected: str | None) -> None:
    assert utc_from_iso(value) == expected


def test_stored_times_round_trip_and_sort_as_they_read() -> None:
    when = datetime(2024, 5, 10, 22, 0, 5, tzinfo=UTC)
    assert parse_iso(iso(when)) == when
    assert iso(when) < utc_from_iso("2024-05-10T18:00:06-04:00")  # type: ignore[operator]


def test_sane_published() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert sane_published(datetime(2025, 6, 1, 20, tzinfo=UTC), now)  # hours ahead: a zone slip
    assert not sane_published(datetime(2025, 6, 3, tzinfo=UTC), now)
    assert not sane_published(datetime(1970, 1, 1, tzinfo=UTC), now)
