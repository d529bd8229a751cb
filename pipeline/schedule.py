"""When to poll each feed, and how: the schedule policy, pure functions on plain data.

The schedule lives in the database (`feeds.next_poll_at`), so a restart loses nothing; the
daemon (pipeline.daemon) and `newswire once` poll whatever is due.

The policy, in order of precedence:
- 410 Gone: stop polling (the data stays).
- 429/503 with Retry-After: wait as asked (capped), and it is not a failure.
- failure: exponential backoff with jitter from the feed's interval, capped at `max_backoff`;
  a dead feed keeps being probed at the cap, never disabled for good.
- success: a cron expression or fixed interval from the config wins; otherwise the interval
  adapts to how much of each poll is new, within [min_interval, max_interval], and never
  polls sooner than the feed's `<ttl>`/`sy:updatePeriod`, `Cache-Control: max-age` or
  `Expires` ask.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from apscheduler.triggers.cron import CronTrigger

from pipeline.config import ScheduleConfig
from pipeline.messages import FeedRequest, FeedSettings, FeedState
from pipeline.times import iso, parse_iso
from pipeline.values import cache_lifetime

log = logging.getLogger("newswire")

# Statuses with which a server asks us to slow down: with a Retry-After they are a wait,
# not a failure of the feed.
THROTTLING = frozenset({429, 503})


class Health(StrEnum):
    """A feed's health, as `status`, the feed-health query, the dashboards and the metrics
    name it (pipeline.store.queries.health_sql decides it from the feed's row)."""

    OK = "ok"
    THROTTLED = "throttled"  # waiting as a 429/503 with Retry-After asked
    FAILING = "failing"
    DEAD = "dead"  # schedule.dead_after failures in a row; still probed
    NEW = "new"  # never polled
    GONE = "gone"  # 410: polling stopped
    INACTIVE = "inactive"  # no longer in the config
    MISCONFIGURED = "misconfigured"  # its config line does not read: not polled


def polled_ok(status: int | None, error: str | None) -> bool:
    """A poll that reached the feed: 200 or 304, no error."""
    return error is None and status in (200, 304)


def throttled(status: int | None, retry_after: float | None) -> bool:
    return status in THROTTLING and retry_after is not None


def plan_request(feed: FeedState, config: ScheduleConfig, now: datetime,
                 settings: FeedSettings | None = None) -> FeedRequest:
    """The fetch for a poll: with the stored validators, unless an unconditional fetch is
    due (some servers send stale ETags) or the last one lies in the future (a clock jump);
    and with the feed's own settings (pipeline.config.FeedConfig.settings)."""
    settings = settings or FeedSettings()
    last = parse_iso(feed.last_unconditional_at)
    age = (now - last).total_seconds() if last else None
    if age is None or age < 0 or age >= config.unconditional_every:
        return FeedRequest(feed.id, feed.url, started_at=iso(now), settings=settings)
    return FeedRequest(feed.id, feed.url, feed.etag, feed.last_modified, started_at=iso(now),
                       settings=settings)


@dataclass(frozen=True)
class PollOutcome:
    """What the scheduler needs to know about one poll."""

    status: int | None
    failed: bool
    retry_after: float | None = None
    headers: dict[str, str] | None = None
    ttl_seconds: float | None = None
    new_entries: int = 0
    total_entries: int = 0


@dataclass(frozen=True)
class NextPoll:
    at: datetime | None  # None: never again (410)
    consecutive_failures: int
    interval: float | None
    gone: bool = False


def adapt_interval(previous: float, new: int, total: int, config: ScheduleConfig) -> float:
    """Poll faster when most of a poll is new, slower when nothing is (Media Cloud's rule)."""
    if total <= 0:
        interval = previous
    elif new == 0:
        interval = previous * 1.5
    elif new / total > 0.67:
        interval = previous / 2
    elif new / total < 0.33:
        interval = previous * 1.2
    else:
        interval = previous
    return min(config.max_interval, max(config.min_interval, interval))


def next_poll(feed: FeedState, outcome: PollOutcome, config: ScheduleConfig,
              now: datetime | None = None, rng: random.Random | None = None) -> NextPoll:
    """The feed's next poll time and counters after `outcome`."""
    now = now or datetime.now(UTC)
    rng = rng or random.Random()
    base = feed.interval_seconds or feed.current_interval or config.interval
    if outcome.status == 410:
        return NextPoll(None, 0, base, gone=True)
    if outcome.retry_after is not None and throttled(outcome.status, outcome.retry_after):
        wait = min(config.max_backoff, max(outcome.retry_after, 1.0))
        return NextPoll(now + timedelta(seconds=wait), feed.consecutive_failures, base)
    if outcome.failed:
        failures = feed.consecutive_failures + 1
        delay = min(config.max_backoff, base * 2 ** min(failures, 20))
        delay *= rng.uniform(0.75, 1.25)  # jitter, so failed feeds don't retry in lockstep
        return NextPoll(now + timedelta(seconds=min(delay, config.max_backoff)), failures, base)
    if feed.cron:
        trigger = CronTrigger.from_crontab(feed.cron, timezone=UTC)
        fire = trigger.get_next_fire_time(None, now + timedelta(seconds=1))
        return NextPoll(fire, 0, None)
    if feed.interval_seconds:
        interval = feed.interval_seconds
    else:
        interval = adapt_interval(feed.current_interval or config.interval,
                                  outcome.new_entries, outcome.total_entries, config)
    floor = max(outcome.ttl_seconds or 0.0, cache_lifetime(outcome.headers, now) or 0.0)
    wait = min(config.max_interval, max(interval, floor))
    return NextPoll(now + timedelta(seconds=wait), 0, interval)


# --- which feeds are due ---------------------------------------------------------------------

# Every next-poll time the schedule sets is capped (max_interval, max_backoff), so one
# further ahead than the caps, with this margin, was set while the wall clock was wrong.
CLOCK_SLACK = 3600.0


def clock_error_after(config: ScheduleConfig, now: datetime) -> datetime:
    """A next-poll time later than this cannot have come from the schedule."""
    return now + timedelta(seconds=max(config.max_interval, config.max_backoff) + CLOCK_SLACK)


def stranded(feed: FeedState, config: ScheduleConfig, now: datetime) -> bool:
    """Whether the feed's next poll lies beyond anything its schedule could have set (the
    clock jumped forward, then back): then it is polled now and rescheduled."""
    when = parse_iso(feed.next_poll_at)
    if when is None or when <= clock_error_after(config, now):
        return False
    if feed.cron:  # a cron schedule may legitimately fire far ahead (say, yearly)
        fire = CronTrigger.from_crontab(feed.cron, timezone=UTC).get_next_fire_time(None, now)
        return fire is None or when > fire + timedelta(seconds=CLOCK_SLACK)
    return True


def due(feed: FeedState, config: ScheduleConfig, now: datetime) -> bool:
    """Whether to poll the feed now: its time has come, or a clock jump stranded it."""
    when = parse_iso(feed.next_poll_at)
    if when is None or when <= now:
        return True
    if stranded(feed, config, now):
        log.warning("next poll of %s was set for %s, beyond any schedule: the clock was "
                    "wrong; polling it now", feed.url, feed.next_poll_at)
        return True
    return False
