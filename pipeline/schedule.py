"""When to poll each feed next, and the long-running daemon.

The schedule lives in the database (`feeds.next_poll_at`), so a restart loses nothing: the
daemon is an APScheduler job that wakes every few seconds and polls whatever is due.

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

import asyncio
import contextlib
import logging
import random
import re
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from pipeline.config import ScheduleConfig
from pipeline.fetch import seconds_until
from pipeline.store import FeedState

log = logging.getLogger("newswire")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)")


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


def cache_lifetime(headers: dict[str, str] | None, now: datetime) -> float | None:
    """Seconds the response says it stays fresh (Cache-Control max-age, else Expires)."""
    if not headers:
        return None
    match = _MAX_AGE.search(headers.get("cache-control", "").lower())
    if match:
        return float(match.group(1))
    expires = headers.get("expires")
    return seconds_until(expires, now) if expires else None


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
    if outcome.retry_after is not None and outcome.status in (429, 503):
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


# --- the daemon -------------------------------------------------------------------------------

async def run_daemon(config: Any, store: Any, resolver: Any = None,
                     stop: asyncio.Event | None = None) -> None:
    """Poll due feeds every `schedule.tick` seconds until SIGTERM/SIGINT (or `stop` is set).

    APScheduler runs one coalesced, never-overlapping job; what is due is read from the
    database each time. On a signal no new poll starts, in-flight polls finish and are
    written, and the function returns.
    """
    from pipeline.fetch import system_resolver

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    store.sync_feeds(config.feeds)
    metrics = None
    if getattr(config, "metrics", None) is not None:
        from pipeline.metrics import Metrics

        metrics = Metrics()
        port = metrics.serve(config.metrics.host, config.metrics.port)
        log.info("metrics endpoint", extra={"fields": {
            "url": f"http://{config.metrics.host}:{port}/metrics"}})

    try:
        await _serve(config, store, resolver or system_resolver, stop, metrics)
    finally:
        if metrics is not None:
            metrics.close()
    log.info("daemon stopped")


async def _serve(config: Any, store: Any, resolver: Any, stop: asyncio.Event,
                 metrics: Any) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    from pipeline.run import Runner

    loop = asyncio.get_running_loop()
    inflight: set[asyncio.Task[Any]] = set()
    async with Runner(config, store, resolver, metrics=metrics) as runner:
        async def tick() -> None:
            task = asyncio.current_task()
            assert task is not None
            inflight.add(task)
            try:
                if not runner.stopping:
                    await runner.run_due()
            except Exception:  # noqa: BLE001 - a bad tick must not kill the daemon
                log.exception("poll pass failed")
            finally:
                inflight.discard(task)

        async def maintain() -> None:
            try:
                store.maintenance(config)
            except Exception:  # noqa: BLE001
                log.exception("maintenance failed")

        scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
        scheduler.add_job(tick, IntervalTrigger(seconds=max(config.schedule.tick, 0.5)),
                          id="poll-due", coalesce=True, max_instances=1,
                          next_run_time=datetime.now(UTC), misfire_grace_time=None)
        scheduler.add_job(maintain, IntervalTrigger(hours=6), id="maintenance",
                          coalesce=True, max_instances=1, next_run_time=datetime.now(UTC))
        scheduler.start()
        log.info("daemon started: %d feeds, tick %.1fs", len(config.feeds),
                 config.schedule.tick)
        await stop.wait()
        log.info("stopping: finishing in-flight polls")
        runner.stopping = True
        scheduler.shutdown(wait=False)
        if inflight:
            await asyncio.wait(set(inflight))
