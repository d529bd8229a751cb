"""Times as newswire stores them: ISO 8601 UTC text to the second (`2024-05-01T12:00:00Z`),
which sorts as it reads; and the sane range for a publication date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_FLOOR = 1990  # publication dates before this year are errors (0000-00-00, 1970-01-01)
FUTURE_SLACK = timedelta(days=1)  # ... and so are dates further ahead than this


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime(ISO_FORMAT)


def file_stamp(when: datetime) -> str:
    """A UTC time for a file name (`20240510T221500Z`): sorts as it reads, no colons."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def utcnow() -> str:
    return iso(datetime.now(UTC))


def parse_iso(value: str | None) -> datetime | None:
    """A stored time back as an aware datetime (None for None or empty)."""
    if not value:
        return None
    return datetime.strptime(value[:19], ISO_FORMAT[:-1]).replace(tzinfo=UTC)


def sane_published(when: datetime, now: datetime | None = None) -> bool:
    """Whether a publication time is plausible: not before DATE_FLOOR, not in the future."""
    return when.year >= DATE_FLOOR and when <= (now or datetime.now(UTC)) + FUTURE_SLACK


def utc_from_iso(value: str | None) -> str | None:
    """An ISO 8601 date or time in any offset ('2024-05-10T22:00:00-05:00', '...Z', a local
    '2024-05-10T08:15:00' or a day alone) as a stored UTC time; None when it is not one.

    A time without an offset and a day alone are taken as UTC (a day becomes its midnight):
    nothing better is known about them."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return iso(when)
