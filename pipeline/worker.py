"""Celery workers: the same stages as the local engine, as tasks (`engine: {kind: celery}`).

    newswire.poll_feed     FeedRequest ─► FeedPolled     (fetch, parse)
    newswire.process_page  PageTask    ─► PageDone       (fetch, extract, fingerprint)
    newswire.extract       ExtractJob  ─► ExtractResult  (a page the coordinator gave lines)

Arguments and results are messages in their JSON form (pipeline.messages). A worker needs
the broker and the `fetch` / `extract` settings only: it never opens, creates or needs the
SQLite file. Tasks are acknowledged late and requeued when their worker dies
(`acks_late`, `reject_on_worker_lost`), and every task is idempotent: it only reads the web
and computes; the coordinator writes. Per-host politeness holds across all workers
(pipeline.politeness).

Monitoring with Celery's own tools, on the same config:
    NEWSWIRE_CONFIG=config/newswire.yaml celery -A pipeline.worker inspect active
    NEWSWIRE_CONFIG=config/newswire.yaml celery -A pipeline.worker flower   # pip install flower
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from celery import Celery, current_app
from celery.backends.redis import RedisBackend
from celery.signals import worker_process_init

from pipeline.config import Config, EngineConfig, load_config
from pipeline.engine import poll_feed, process_page
from pipeline.extract import extract_and_fingerprint
from pipeline.fetch import Fetcher
from pipeline.messages import (
    ExtractJob,
    ExtractResult,
    FeedRequest,
    FetchResult,
    PageTask,
    ParseOutcome,
)
from pipeline.parse import parse_response
from pipeline.politeness import RedisHostLimiter
from pipeline.pool import pool_size, warm_up

log = logging.getLogger("newswire")

FEED_TASK = "newswire.poll_feed"
PAGE_TASK = "newswire.process_page"
EXTRACT_TASK = "newswire.extract"
LEASE_MARGIN = 30.0  # seconds a host lease outlives the longest request (fetch.timeout)


def make_app(config: Config) -> Celery:
    """The Celery app of a newswire config: its broker, queues and the three tasks."""
    engine: EngineConfig = config.engine
    app = Celery("newswire", broker=engine.broker,
                 backend=f"{__name__}:ResultStore+{engine.result_backend or engine.broker}")
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True,  # a task is done when its result is stored, not when taken
        task_reject_on_worker_lost=True,  # a killed worker's task goes back to the queue
        worker_prefetch_multiplier=1,  # a worker takes one task per process at a time
        broker_transport_options={"visibility_timeout": engine.visibility_timeout},
        result_expires=engine.result_expires,
        task_time_limit=engine.task_timeout,
        task_routes={FEED_TASK: {"queue": engine.feed_queue},
                     PAGE_TASK: {"queue": engine.page_queue},
                     EXTRACT_TASK: {"queue": engine.page_queue}},
        worker_max_tasks_per_child=config.extract.max_tasks_per_worker or None,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    app.conf.newswire = config  # the tasks' settings, in every worker process
    app.task(name=FEED_TASK)(_poll_feed)
    app.task(name=PAGE_TASK)(_process_page)
    app.task(name=EXTRACT_TASK)(_extract)
    return app


class ResultStore(RedisBackend):
    """Celery's Redis result backend (a result is stored under its key and published on the
    key's channel), without Celery's subscription per task sent: the coordinator subscribes
    once, to a pattern covering all of its tasks (pipeline.celery_engine)."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        pass


# --- inside a worker process ---------------------------------------------------------------

class _Process:
    """One worker process's event loop and fetcher (made after the fork, kept across tasks
    so connections and robots.txt are reused)."""

    config: Config | None = None
    loop: asyncio.AbstractEventLoop | None = None
    fetcher: Fetcher | None = None


def _state() -> tuple[asyncio.AbstractEventLoop, Fetcher, Config]:
    config = _current_config()
    if _Process.loop is None or _Process.fetcher is None:
        _Process.loop = asyncio.new_event_loop()
        limiter = RedisHostLimiter(config.engine.broker, config.fetch.per_host_concurrency,
                                   config.fetch.per_host_delay,
                                   config.fetch.timeout + LEASE_MARGIN)
        _Process.fetcher = Fetcher(config.fetch, limiter=limiter)
    return _Process.loop, _Process.fetcher, config


def _current_config() -> Config:
    config = current_app.conf.newswire
    assert isinstance(config, Config)
    return config


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """Each forked worker process makes its own loop and connections."""
    _Process.loop = None
    _Process.fetcher = None


def _poll_feed(request: dict[str, Any], max_entries: int) -> dict[str, Any]:
    loop, fetcher, config = _state()

    async def parse(response: FetchResult) -> ParseOutcome:
        return parse_response(response, max_entries, config.extract.timeout)

    return loop.run_until_complete(
        poll_feed(fetcher, FeedRequest.from_dict(request), parse)).to_dict()


def _process_page(task: dict[str, Any]) -> dict[str, Any]:
    loop, fetcher, _config = _state()

    async def extract(job: ExtractJob) -> ExtractResult:
        return extract_and_fingerprint(job)

    return loop.run_until_complete(
        process_page(fetcher, PageTask.from_dict(task), extract)).to_dict()


def _extract(job: dict[str, Any]) -> dict[str, Any]:
    return extract_and_fingerprint(ExtractJob.from_dict(job)).to_dict()


# --- `newswire worker` -----------------------------------------------------------------------

def run_worker(config: Config, concurrency: int | None = None,
               queues: list[str] | None = None, loglevel: str = "INFO") -> int:
    """Run a Celery worker until it is stopped (SIGTERM: warm shutdown, tasks in hand
    finished). The extractor is imported and warmed before the processes fork."""
    warm_up()
    app = make_app(config)
    argv = ["worker", f"--loglevel={loglevel}",
            f"--queues={','.join(queues or [config.engine.feed_queue, config.engine.page_queue])}",
            f"--concurrency={concurrency or pool_size(config.extract.workers)}",
            "--without-gossip", "--without-mingle"]
    app.worker_main(argv)
    return 0


def __getattr__(name: str) -> Any:
    """`celery -A pipeline.worker ...` (inspect, flower) finds the app of $NEWSWIRE_CONFIG."""
    if name in ("app", "celery"):
        return make_app(load_config())
    raise AttributeError(name)
