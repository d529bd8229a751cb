"""Tolerant parsers for values read from responses and feeds: one per kind of value.

Everything a server or a feed sends is untrusted text. `str.isdigit()` accepts characters that
`int()` and `float()` refuse ("²", "٣" in some positions), numbers can have hundreds of
digits, and dates can name the year 99999999999. Each parser here accepts only what its
standard allows (ASCII digits, bounded magnitudes), never raises, and returns None (or the
caller's fallback) for anything else, so one odd header or feed hint can never stop a poll.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

# Longest delay any value may ask for (Retry-After, max-age, Expires, <ttl>): ten years.
# Schedules cap it further (schedule.max_interval / max_backoff); this only keeps the
# arithmetic in range.
MAX_SECONDS = 10 * 365 * 86400
_MAX_DIGITS = 12  # more digits than any sane value: refused before int() sees them

_ASCII_INT = re.compile(rf"[0-9]{{1,{_MAX_DIGITS}}}", re.ASCII)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?([0-9]+)\"?\s*(?:$|[,\s])",
                      re.ASCII | re.IGNORECASE)


def parse_int(value: object, maximum: int | None = None) -> int | None:
    """A non-negative integer written in ASCII digits (surrounding spaces allowed), at most
    `maximum`; None for anything else."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _ASCII_INT.fullmatch(text):
        return None
    number = int(text)
    if maximum is not None and number > maximum:
        return None
    return number


def parse_seconds(value: object) -> float | None:
    """A delay in whole seconds (Retry-After's delta-seconds), capped at MAX_SECONDS."""
    number = parse_int(value)
    return None if number is None else float(min(number, MAX_SECONDS))


def parse_http_date(value: object) -> datetime | None:
    """An HTTP date (RFC 9110, with the obsolete forms email.utils reads) as an aware UTC
    datetime; None when it does not parse or is out of datetime's range."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def seconds_until(value: object, now: datetime | None = None) -> float | None:
    """Seconds from now until an HTTP date (0 when past, at most MAX_SECONDS), or None."""
    when = parse_http_date(value)
    if when is None:
        return None
    try:
        delta = (when - (now or datetime.now(UTC))).total_seconds()
    except OverflowError:
        return None
    return min(max(0.0, delta), float(MAX_SECONDS))


def parse_retry_after(value: object, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either form the RFC allows (delta-seconds or an HTTP date)."""
    if not isinstance(value, str) or not value.strip():
        return None
    seconds = parse_seconds(value)
    return seconds if seconds is not None else seconds_until(value, now)


def max_age(cache_control: object) -> float | None:
    """Cache-Control's max-age in seconds (capped), or None."""
    if not isinstance(cache_control, str):
        return None
    match = _MAX_AGE.search(cache_control)
    return parse_seconds(match.group(1)) if match else None


def cache_lifetime(headers: dict[str, str] | None, now: datetime | None = None) -> float | None:
    """Seconds a response says it stays fresh: Cache-Control max-age, else Expires."""
    if not headers:
        return None
    lifetime = max_age(headers.get("cache-control"))
    if lifetime is not None:
        return lifetime
    return seconds_until(headers.get("expires"), now)


def content_length(value: object) -> int | None:
    """Content-Length as bytes, or None when absent or not a plain number."""
    return parse_int(value)


# An HTTP validator is sent back verbatim in If-None-Match / If-Modified-Since: only visible
# ASCII can be (httpx refuses anything else when building the request, every time).
_VALIDATOR = re.compile(r"[\x21-\x7e]([\x20-\x7e]{0,1022}[\x21-\x7e])?")


def validator(value: object) -> str | None:
    """An ETag or Last-Modified value worth storing and sending back, else None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if _VALIDATOR.fullmatch(text) else None


HTTP_SCHEMES = ("http", "https")


def http_url(value: object) -> str | None:
    """The value, stripped, if it is an absolute http(s) URL with a host; else None. The one
    check for every URL newswire fetches, stores or writes out."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises on a port out of range
    except ValueError:
        return None
    if parts.scheme.lower() not in HTTP_SCHEMES or not parts.hostname:
        return None
    return text


def url_scope(url: str) -> str:
    """Where a feed's credentials may go (pipeline.fetch.feed_headers): the URL's host
    without `www.`, and its port when not the scheme's default (`example.org`,
    `127.0.0.1:8080`); "" for a URL without a host."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return ""
    host = host.removeprefix("www.")
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{host}:{port}" if host and port and port != default else host


def check_feed_url(url: object) -> str:
    """`http_url` for a URL a user gave (config, `newswire add`, OPML): the URL, or
    ValueError saying what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("must be a non-empty URL")
    checked = http_url(url)
    if checked is None:
        raise ValueError(f"not an http(s) URL with a host: {url.strip()!r}")
    return checked
