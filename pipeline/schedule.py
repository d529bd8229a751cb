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
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from pipeline.config import ScheduleConfig
from pipeline.store import FeedState, StoreError, iso, parse_iso
from pipeline.values import cache_lifetime

log = logging.getLogger("newswire")


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


def due_feeds(store: Any, config: ScheduleConfig, include_all: bool = False,
              now: datetime | None = None) -> list[FeedState]:
    """The feeds to poll now: those due, and those a wall-clock jump left stranded."""
    now = now or datetime.now(UTC)
    feeds = store.feeds(due_at=iso(now), include_all=include_all,
                        beyond=iso(clock_error_after(config, now)))
    due = []
    for feed in feeds:
        when = parse_iso(feed.next_poll_at)
        if include_all or when is None or when <= now:
            due.append(feed)
        elif stranded(feed, config, now):
            log.warning("next poll of %s was set for %s, beyond any schedule: the clock was "
                        "wrong; polling it now", feed.url, feed.next_poll_at)
            due.append(feed)
    return due


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


class _SkippedTicks(logging.Filter):
    """A pass outlasting the tick is expected (the next tick is skipped, by design):
    APScheduler's warning about it on every tick would bury the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_SkippedTicks())


class FromNow(BaseTrigger):
    """Fires `seconds` after the wall-clock time it is asked at.

    APScheduler's IntervalTrigger counts from the previous fire time, so after the clock
    jumps forward it lists every missed run first (ten years of 5-second ticks: 63 million
    datetimes). Counting from now, a jump costs one run."""

    def __init__(self, seconds: float) -> None:
        self.interval = timedelta(seconds=seconds)

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime:
        return now + self.interval


async def _watch_clock(scheduler: Any, stop: asyncio.Event, every: float) -> None:
    """Bring forward a job whose next run the wall clock put out of reach.

    APScheduler waits for wall-clock times; after the clock goes back, a job would wait as
    long as the clock went back. This loop runs on the event loop's monotonic clock."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        now = datetime.now(UTC)
        for job in scheduler.get_jobs():
            interval = getattr(job.trigger, "interval", timedelta(0))
            if job.next_run_time and job.next_run_time > now + interval + timedelta(
                    seconds=every):
                log.warning("the wall clock went back: job %s was due at %s; running it now",
                            job.id, job.next_run_time.isoformat())
                job.modify(next_run_time=now)


async def _serve(config: Any, store: Any, resolver: Any, stop: asyncio.Event,
                 metrics: Any) -> None:
    """Run the poll and maintenance jobs until `stop`, then wind down within
    `schedule.stop_grace`: no new poll starts, in-flight polls finish and are written; a
    pass still running at the end of the grace period is cancelled (each poll is written
    whole or not at all, so its feeds simply stay due)."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from pipeline.run import Runner

    loop = asyncio.get_running_loop()
    ticks: set[asyncio.Task[Any]] = set()  # the scheduler's tick jobs in flight
    passes: set[asyncio.Task[Any]] = set()  # the poll passes they run
    fatal: list[BaseException] = []
    async with Runner(config, store, resolver, metrics=metrics) as runner:
        async def tick() -> None:
            me = asyncio.current_task()
            assert me is not None
            ticks.add(me)
            try:
                if runner.stopping:
                    return
                one_pass = asyncio.ensure_future(runner.run_due())
                passes.add(one_pass)
                await asyncio.wait({one_pass})  # never raises: shutdown decides its fate
                passes.discard(one_pass)
                if one_pass.cancelled():
                    return
                error = one_pass.exception()
                if isinstance(error, StoreError):  # the database is unusable: stop
                    fatal.append(error)
                    stop.set()
                elif error is not None:
                    log.error("poll pass failed", exc_info=error)
            finally:
                ticks.discard(me)

        async def maintain() -> None:
            try:
                store.maintenance(config)
            except Exception:  # noqa: BLE001
                log.exception("maintenance failed")

        every = max(config.schedule.tick, 0.5)
        scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
        scheduler.add_job(tick, FromNow(every), id="poll-due", coalesce=True,
                          max_instances=1, next_run_time=datetime.now(UTC),
                          misfire_grace_time=None)
        scheduler.add_job(maintain, FromNow(6 * 3600), id="maintenance", coalesce=True,
                          max_instances=1, next_run_time=datetime.now(UTC),
                          misfire_grace_time=None)
        scheduler.start()
        watch = asyncio.ensure_future(_watch_clock(scheduler, stop, every))
        log.info("daemon started: %d feeds, tick %.1fs", len(config.feeds),
                 config.schedule.tick)
        await stop.wait()
        runner.stopping = True
        scheduler.pause()
        await watch
        grace = config.schedule.stop_grace
        if passes:
            log.info("stopping: finishing in-flight polls (at most %gs)", grace)
            _done, late = await asyncio.wait(set(passes), timeout=grace)
            if late:
                log.warning("stop grace of %gs over: in-flight polls cancelled; their feeds "
                            "stay due and are polled at the next start", grace)
                for one_pass in late:
                    one_pass.cancel()
                await asyncio.wait(late)
        if ticks:
            await asyncio.wait(set(ticks))
        scheduler.shutdown(wait=False)
    if fatal:
        raise fatal[0]
