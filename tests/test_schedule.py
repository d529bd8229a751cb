"""Next-poll policy: backoff, Retry-After, 410, ttl/cache hints, adaptation, cron."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pipeline.config import ScheduleConfig
from pipeline.messages import FeedState
from pipeline.schedule import PollOutcome, adapt_interval, next_poll
from pipeline.values import cache_lifetime

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
CONFIG = ScheduleConfig(interval=900, min_interval=300, max_interval=86400, max_backoff=86400)
FEED = FeedState(id=1, url="http://a.example/f", name=None, etag=None, last_modified=None,
                 next_poll_at=None, last_polled_at=None, consecutive_failures=0,
                 interval_seconds=None, cron=None, current_interval=None,
                 last_unconditional_at=None, gone=False)


def wait(result_at: datetime | None) -> float:
    assert result_at is not None
    return (result_at - NOW).total_seconds()


def test_success_uses_the_default_interval_when_nothing_is_known() -> None:
    result = next_poll(FEED, PollOutcome(status=200, failed=False, new_entries=5,
                                         total_entries=10), CONFIG, NOW)
    assert wait(result.at) == 900 and result.consecutive_failures == 0


def test_failures_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    waits = []
    feed = FEED
    for _ in range(12):
        result = next_poll(feed, PollOutcome(status=500, failed=True), CONFIG, NOW, rng)
        waits.append(wait(result.at))
        feed = replace(feed, consecutive_failures=result.consecutive_failures)
    assert feed.consecutive_failures == 12
    assert 900 * 2 * 0.75 <= waits[0] <= 900 * 2 * 1.25
    assert waits[3] > waits[0] * 4
    assert max(waits) <= CONFIG.max_backoff
    assert waits[-1] >= CONFIG.max_backoff * 0.75  # dead feeds are still probed, at the cap


def test_retry_after_is_honoured_and_not_a_failure() -> None:
    feed = replace(FEED, consecutive_failures=2)
    result = next_poll(feed, PollOutcome(status=429, failed=True, retry_after=7200),
                       CONFIG, NOW)
    assert wait(result.at) == 7200 and result.consecutive_failures == 2


def test_gone_stops_polling() -> None:
    result = next_poll(FEED, PollOutcome(status=410, failed=True), CONFIG, NOW)
    assert result.at is None and result.gone


def test_ttl_and_cache_headers_set_a_floor() -> None:
    ttl = next_poll(FEED, PollOutcome(status=200, failed=False, ttl_seconds=3600),
                    CONFIG, NOW)
    assert wait(ttl.at) == 3600
    cached = next_poll(FEED, PollOutcome(status=200, failed=False,
                                         headers={"cache-control": "public, max-age=5400"}),
                       CONFIG, NOW)
    assert wait(cached.at) == 5400
    expires = (NOW + timedelta(hours=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert cache_lifetime({"expires": expires}, NOW) == 7200
    assert cache_lifetime({"expires": "garbage"}, NOW) is None


def test_adaptation_within_bounds() -> None:
    assert adapt_interval(900, 0, 10, CONFIG) == 1350  # nothing new: slower
    assert adapt_interval(900, 9, 10, CONFIG) == 450  # mostly new: faster
    assert adapt_interval(400, 9, 10, CONFIG) == 300  # but not below min_interval
    assert adapt_interval(80000, 0, 10, CONFIG) == 86400  # nor above max_interval


def test_fixed_interval_and_cron_override_adaptation() -> None:
    fixed = next_poll(replace(FEED, interval_seconds=600),
                      PollOutcome(status=200, failed=False, total_entries=10), CONFIG, NOW)
    assert wait(fixed.at) == 600
    cron = next_poll(replace(FEED, cron="0 */6 * * *"),
                     PollOutcome(status=200, failed=False), CONFIG, NOW)
    assert cron.at == datetime(2026, 1, 10, 18, 0, tzinfo=UTC)
