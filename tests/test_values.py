"""The tolerant parsers for values read from responses and feeds (pipeline/values.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.values import (
    MAX_SECONDS,
    cache_lifetime,
    content_length,
    max_age,
    parse_http_date,
    parse_int,
    parse_retry_after,
    validator,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# str.isdigit() accepts all of these; int() refuses the first two, and none is ASCII.
ODD_DIGITS = ("\u00b2", "\u00b9\u00b2", "\u0663", "\uff11", "1\u00b2")


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 7 ", NOW) == 7.0
    assert parse_retry_after("0", NOW) == 0.0
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 GMT", NOW) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", NOW) == 0.0  # past: no wait
    for bad in (None, "", "soon", "-5", "1.5e3", "Wed, 99 Foo 2024", *ODD_DIGITS):
        assert parse_retry_after(bad, NOW) is None, bad


@pytest.mark.parametrize("value", ODD_DIGITS)
def test_only_ascii_digits_are_numbers(value: str) -> None:
    assert parse_int(value) is None
    assert content_length(value) is None
    assert max_age(f"public, max-age={value}") is None


def test_magnitudes_are_bounded() -> None:
    assert parse_int("9" * 400) is None
    assert parse_int("12", maximum=10) is None and parse_int("10", maximum=10) == 10
    assert parse_retry_after("999999999999", NOW) == MAX_SECONDS  # capped, not refused
    assert cache_lifetime({"expires": "Fri, 31 Dec 9999 23:59:59 GMT"}, NOW) == MAX_SECONDS


@pytest.mark.parametrize("value", [
    "Thu, 01 Jan 99999999999999999999 00:00:00 GMT",  # OverflowError inside email.utils
    "Sun, 06 Nov 1994 08:49:37 +2500", "Mon, 32 Foo 2024 99:99:99 +9999", "x" * 1000, "",
])
def test_absurd_http_dates_are_no_dates(value: str) -> None:
    assert parse_http_date(value) is None
    assert cache_lifetime({"expires": value}, NOW) is None


def test_cache_lifetime_prefers_max_age_and_reads_expires() -> None:
    assert cache_lifetime({"cache-control": "public, max-age=600",
                           "expires": "Wed, 01 May 2024 14:00:00 GMT"}, NOW) == 600
    assert cache_lifetime({"cache-control": "no-cache",
                           "expires": "Wed, 01 May 2024 14:00:00 GMT"}, NOW) == 7200
    assert cache_lifetime({"cache-control": 'max-age="60"'}, NOW) == 60
    assert cache_lifetime({"cache-control": "s-maxage=60"}, NOW) is None
    assert cache_lifetime(None, NOW) is None


def test_validators_are_sent_back_only_when_they_can_be() -> None:
    assert validator(' "abc-123" ') == '"abc-123"'
    assert validator('W/"x"') == 'W/"x"'
    assert validator("Wed, 01 May 2024 11:00:00 GMT") == "Wed, 01 May 2024 11:00:00 GMT"
    for bad in (None, "", "   ", "\u00e9tag", "a\x00b", "x" * 2000):
        assert validator(bad) is None, bad
