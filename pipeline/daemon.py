"""The long-running daemon: APScheduler wakes it every `schedule.tick` seconds and it polls
whatever the database says is due (pipeline.schedule), until SIGTERM or SIGINT.

The config is read again when its files change (`newswire add`, an edit) or on SIGHUP,
at the next tick: feeds added, removed or fixed, their settings, filters, sites' rules and
the schedule apply from then on; what the daemon was built with (pipeline.config.
RESTART_TO_APPLY) waits for a restart, and a file that does not read leaves the running
config in place.

APScheduler runs one coalesced, never-overlapping tick job, which queues the feeds fallen
due for the runner's pollers (each feed is polled as soon as a poller is free, whatever the
other polls take), and a six-hourly maintenance job. On a signal no new poll starts and the
in-flight ones finish and are written, within `schedule.stop_grace`. A damaged database
stops the daemon (exit 3); anything else a tick raises is logged and the next tick tries
again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from pipeline.config import Config, ConfigWatch, load_config, reloaded
from pipeline.errors import ConfigError, EngineError, StoreError
from pipeline.fetch import Resolver, system_resolver
from pipeline.metrics import Metrics
from pipeline.run import Runner
from pipeline.store import Store

log = logging.getLogger("newswire")


async def run_daemon(config: Config, store: Store, resolver: Resolver = system_resolver,
                     stop: asyncio.Event | None = None) -> None:
    """Poll due feeds every `schedule.tick` seconds until SIGTERM/SIGINT (or `stop` is set).

    Each tick reads what is due from the database and queues it for the pollers. On a
    signal no new poll starts, in-flight polls finish and are written, and the function
    returns.
    """
    stop = stop or asyncio.Event()
    hangup = asyncio.Event()  # SIGHUP: read the config again at the next tick
    loop = asyncio.get_running_loop()
    for sig, event in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, hangup)):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, event.set)
    store.sync_config(config)
    metrics = None
    if config.metrics is not None:
        metrics = Metrics()
        port = metrics.serve(config.metrics.host, config.metrics.port)
        log.info("metrics endpoint", extra={"fields": {
            "url": f"http://{config.metrics.host}:{port}/metrics"}})

    try:
        await _serve(config, store, resolver, stop, metrics, hangup)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload while closing: nothing
        if metrics is not None:
            metrics.close()
    log.info("daemon stopped")


class _SkippedTicks(logging.Filter):
    """A tick outlasting its interval (a slow due-feeds query, workers slow to answer) is
    skipped by design: APScheduler's warning about it on every tick would bury the log."""

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


async def _reload(runner: Runner, store: Store, watch: ConfigWatch, scheduler: Any,
                  refused: str | None = None) -> str | None:
    """Read the runner's config files again and run on what they say (see the module).
    Returns why the files do not read (logged unless it is `refused`, the reason the last
    reload gave: the daemon looks again at each tick until they read), else None. The
    files are read off the event loop (5,000 feeds: about 0.17 s), so polls go on."""
    running = runner.config
    try:
        new, waiting = reloaded(running, await asyncio.to_thread(load_config, running.path))
    except ConfigError as exc:
        if str(exc) != refused:
            log.error("config not reloaded, the daemon goes on with the one it had: %s", exc)
        if runner.metrics is not None:
            runner.metrics.observe_reload(False)
        return str(exc)
    watch.follow(new)
    store.sync_config(new)
    runner.config = new
    if runner.metrics is not None:
        runner.metrics.observe_reload(True)
    before, after = {f.url for f in running.feeds}, {f.url for f in new.feeds}
    log.info("config reloaded", extra={"fields": {
        "feeds": len(new.feeds), "added": len(after - before), "removed": len(before - after),
        "misconfigured": len(new.refused_feeds)}})
    if waiting:
        log.warning("config: %s changed; restart the daemon to apply", ", ".join(waiting))
    if new.schedule.tick != running.schedule.tick:
        scheduler.reschedule_job("poll-due", trigger=FromNow(new.schedule.tick))
    return None


async def _serve(config: Config, store: Store, resolver: Resolver, stop: asyncio.Event,
                 metrics: Metrics | None, hangup: asyncio.Event) -> None:
    """Run the poll and maintenance jobs until `stop`, then wind down within
    `schedule.stop_grace`: no new poll starts, in-flight polls finish and are written; a
    poll still running at the end of the grace period is cancelled (each poll is written
    whole or not at all, so its feed simply stays due).

    Each tick queues the feeds that have fallen due; the runner's pollers take them as
    they come free, so a slow poll never holds up the feeds due meanwhile."""
    loop = asyncio.get_running_loop()
    files = ConfigWatch(config)
    refused: str | None = None  # why the config's files did not read at the last reload
    async with Runner(config, store, resolver, metrics=metrics) as runner:
        async def tick() -> None:
            nonlocal refused
            if runner.stopping:
                return
            me = asyncio.current_task()
            assert me is not None
            ticks.add(me)
            try:
                # A config that did not read is looked at again each tick: it may name an
                # OPML file not written yet, which no watched file's change would announce.
                if files.changed() or hangup.is_set() or refused:
                    hangup.clear()
                    try:
                        refused = await _reload(runner, store, files, scheduler, refused)
                    except Exception:
                        hangup.set()  # not applied: the next tick tries again
                        raise
                await runner.queue_due()
            except StoreError as exc:  # the database is unusable: stop
                fatal.append(exc)
                stop.set()
            except EngineError as exc:  # workers or broker away: the next tick asks again
                log.warning("poll pass skipped: %s", exc)
            except Exception:  # noqa: BLE001 - the next tick tries again
                log.exception("looking for due feeds failed")
            finally:
                ticks.discard(me)

        async def maintain() -> None:
            try:
                store.maintenance(runner.config)
            except Exception:  # noqa: BLE001
                log.exception("maintenance failed")

        fatal: list[BaseException] = []
        ticks: set[asyncio.Task[Any]] = set()  # the scheduler's tick jobs in flight
        runner.on_fatal = stop.set  # a poll found the database unusable: stop
        polling = asyncio.ensure_future(runner.keep_polling())
        polling.add_done_callback(lambda _task: stop.set())  # it ends only on a fatal error
        every = config.schedule.tick
        scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
        scheduler.add_job(tick, FromNow(every), id="poll-due", coalesce=True,
                          max_instances=1, next_run_time=datetime.now(UTC),
                          misfire_grace_time=None)
        scheduler.add_job(maintain, FromNow(Store.MAINTENANCE_EVERY), id="maintenance",
                          coalesce=True, max_instances=1, next_run_time=datetime.now(UTC),
                          misfire_grace_time=None)
        scheduler.start()
        clock = asyncio.ensure_future(_watch_clock(scheduler, stop, every))
        log.info("daemon started: %d feeds, tick %.1fs", len(config.feeds),
                 config.schedule.tick)
        await stop.wait()
        runner.stop_polling()
        scheduler.pause()
        await clock
        if ticks:
            await asyncio.wait(set(ticks))
        grace = runner.config.schedule.stop_grace
        if runner.in_flight:
            log.info("stopping: finishing in-flight polls (at most %gs)", grace)
            _done, late = await asyncio.wait({polling}, timeout=grace)
            if late:
                log.warning("stop grace of %gs over: in-flight polls cancelled; their feeds "
                            "stay due and are polled at the next start", grace)
                polling.cancel()
        await asyncio.wait({polling})
        scheduler.shutdown(wait=False)
        if not polling.cancelled() and polling.exception() is not None:
            fatal.append(polling.exception())  # type: ignore[arg-type]
    if fatal:
        raise fatal[0]
