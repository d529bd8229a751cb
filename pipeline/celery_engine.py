"""The coordinator's side of the Celery engine: tasks out, results in (`engine.kind: celery`).

The coordinator (`newswire once` / `daemon`) decides what is due, plans pages, runs the
near-duplicate lookup and writes, as the single writer of the SQLite file; workers
(pipeline.worker) fetch, parse, extract and fingerprint. Nothing of a run lives only in Redis:
a feed stays due in the database until its poll is written, so a coordinator killed mid-run
simply polls it again after a restart, and the tasks it had sent expire unread.

- A result that does not come within `engine.task_timeout` (a worker killed before it could
  requeue, Redis restarted and its queue lost) is asked for again, `engine.task_retries`
  times; a broker that cannot be reached is retried the same way. Then the run stops with
  EngineError and nothing is recorded against the feeds.
- A task that raised on its worker (a bug, not a feed's fault: stages return errors as
  data) is that poll's failure, recorded like any other by the Runner's failure boundary.
- Results are collected for all tasks in flight at once: one Redis MGET per tick.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from types import TracebackType
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from celery.states import READY_STATES, SUCCESS
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from pipeline.config import Config
from pipeline.errors import EngineError
from pipeline.messages import (
    ExtractJob,
    ExtractResult,
    FeedPolled,
    FeedRequest,
    PageDone,
    PageTask,
)
from pipeline.worker import EXTRACT_TASK, FEED_TASK, PAGE_TASK, make_app

log = logging.getLogger("newswire")

COLLECT_EVERY = 0.02  # seconds between looks for finished results
READY_FOR = 60.0  # seconds a successful worker check stays good
_INFRASTRUCTURE = (OperationalError, RedisError, OSError, CeleryTimeout)


class _Lost(Exception):
    """No result within the task timeout."""


class CeleryEngine:
    """pipeline.engine.Engine on Celery workers."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine = config.engine
        self.app = make_app(config)
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._collector: asyncio.Task[None] | None = None
        self._in_flight = asyncio.Semaphore(self.engine.max_in_flight)
        self._ready_at = -READY_FOR
        self.sent = 0  # tasks published, for the benchmark's overhead figures
        self.bytes = 0  # JSON bytes of their arguments and results

    async def __aenter__(self) -> CeleryEngine:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._collector is not None:
            self._collector.cancel()
        for future in self._pending.values():
            future.cancel()

    async def ready(self) -> None:
        """Raise EngineError unless the broker answers and a worker replies to a ping
        within `engine.worker_wait` (checked at most once a minute)."""
        if time.monotonic() - self._ready_at < READY_FOR:
            return
        try:
            replies = await asyncio.to_thread(self.app.control.ping,
                                              timeout=self.engine.worker_wait)
        except _INFRASTRUCTURE as exc:
            raise EngineError(f"cannot reach the broker at {self.engine.broker}: {exc}") \
                from None
        if not replies:
            raise EngineError(
                f"no worker answered within {self.engine.worker_wait:g}s on "
                f"{self.engine.broker}: start one with `newswire worker` (same config)")
        self._ready_at = time.monotonic()

    async def poll_feed(self, request: FeedRequest, max_entries: int) -> FeedPolled:
        data = await self._call(FEED_TASK, [request.to_dict(), max_entries],
                                self.engine.feed_queue)
        return FeedPolled.from_dict(data)

    async def process_page(self, task: PageTask) -> PageDone:
        async with self._in_flight:
            data = await self._call(PAGE_TASK, [task.to_dict()], self.engine.page_queue)
        return PageDone.from_dict(data)

    async def extract(self, job: ExtractJob) -> ExtractResult:
        async with self._in_flight:
            data = await self._call(EXTRACT_TASK, [job.to_dict()], self.engine.page_queue)
        return ExtractResult.from_dict(data)

    # -- sending and collecting

    async def _call(self, name: str, args: list[Any], queue: str) -> Any:
        tries = self.engine.task_retries + 1
        for attempt in range(1, tries + 1):
            try:
                return await self._once(name, args, queue)
            except (_Lost, *_INFRASTRUCTURE) as exc:
                log.warning("%s task: %s (try %d of %d)", name,
                            str(exc) or type(exc).__name__, attempt, tries)
                self._ready_at = -READY_FOR  # check the workers again before the next pass
                if attempt < tries:
                    await asyncio.sleep(min(2.0 ** attempt, 30.0))
        raise EngineError(f"no worker finished a {name} task in {tries} tries of "
                          f"{self.engine.task_timeout:g}s: are workers running (`newswire "
                          f"worker`) and the broker at {self.engine.broker} up?")

    async def _once(self, name: str, args: list[Any], queue: str) -> Any:
        task_id = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[task_id] = future
        self._start_collector()
        try:
            await asyncio.to_thread(self.app.send_task, name, args=args, queue=queue,
                                    task_id=task_id, expires=self.engine.task_timeout)
            self.sent += 1
            self.bytes += _size(args)
            try:
                async with asyncio.timeout(self.engine.task_timeout):
                    return await future
            except TimeoutError:
                raise _Lost(f"no result within {self.engine.task_timeout:g}s") from None
        finally:
            self._pending.pop(task_id, None)

    def _start_collector(self) -> None:
        if self._collector is None or self._collector.done():
            self._collector = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        """Hand finished results to their waiters: one MGET of every pending key per tick."""
        backend = self.app.backend
        while self._pending:
            await asyncio.sleep(COLLECT_EVERY)
            ids = list(self._pending)
            keys = [backend.get_key_for_task(task_id) for task_id in ids]
            try:
                values = await asyncio.to_thread(backend.client.mget, keys)
            except _INFRASTRUCTURE:
                continue  # the waiters time out and send again if it stays down
            done = [(i, k, v) for i, k, v in zip(ids, keys, values, strict=True) if v]
            for task_id, _key, value in done:
                meta = backend.decode_result(value)
                future = self._pending.get(task_id)
                if meta["status"] not in READY_STATES or future is None or future.done():
                    continue
                self.bytes += len(value)
                if meta["status"] == SUCCESS:
                    future.set_result(meta["result"])
                else:
                    future.set_exception(backend.exception_to_python(meta["result"]))
            if done:
                await asyncio.to_thread(backend.client.delete, *[k for _, k, _ in done])


def _size(args: list[Any]) -> int:
    return len(json.dumps(args))
