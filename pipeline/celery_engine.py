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
- Results arrive by subscription: a worker's Redis result backend publishes each result
  on its key's channel, and one pattern subscription (this coordinator's task ids share a
  prefix) hands them to their waiters as they come, on a thread of its own. Once a
  second, one MGET looks for the results a subscription cannot have seen (sent while it
  was reconnecting after Redis went away) and one DEL drops the results already read.
- Every other call to the broker runs on one thread of its own, off the event loop (a
  broker that does not answer must not stall the loop), and one thread means one
  connection and one result backend: Celery keeps them per thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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

SWEEP_EVERY = 1.0  # seconds between looks for results the subscription missed
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
        self._prefix = uuid.uuid4().hex[:12]  # every task id of this coordinator starts so
        self._pending: dict[str, tuple[asyncio.Future[Any], float]] = {}  # id: waiter, sent
        self._read: list[bytes] = []  # result keys read, to delete at the next sweep
        self._backend: Any = None  # Celery's result backend (made on the broker thread)
        self._subscription: _Subscription | None = None
        self._subscribing = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._in_flight = asyncio.Semaphore(self.engine.max_in_flight)
        self._ready_at = -READY_FOR
        self._broker = ThreadPoolExecutor(1, thread_name_prefix="newswire-broker")
        self.sent = 0  # tasks published, for the benchmark's overhead figures
        self.bytes = 0  # JSON bytes of their arguments and results

    async def __aenter__(self) -> CeleryEngine:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for future, _sent in self._pending.values():
            future.cancel()
        if self._read and self._backend is not None:
            with contextlib.suppress(*_INFRASTRUCTURE):  # else they expire (result_expires)
                await self._on_broker(self._backend.client.delete, *self._read)
        if self._subscription is not None:
            await asyncio.to_thread(self._subscription.stop)
        self._broker.shutdown(wait=False, cancel_futures=True)

    async def _on_broker(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking Celery or Redis call on the broker thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self._broker, lambda: call(*args, **kwargs))

    async def ready(self) -> None:
        """Raise EngineError unless the broker answers and a worker replies to a ping
        within `engine.worker_wait` (checked at most once a minute)."""
        if time.monotonic() - self._ready_at < READY_FOR:
            return
        try:
            # limit=1: the first reply will do; without it ping waits out the whole timeout.
            # Not on the broker thread: with no worker it blocks for worker_wait.
            replies = await asyncio.to_thread(self.app.control.ping, limit=1,
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
        await self._start_collecting()
        task_id = f"{self._prefix}-{uuid.uuid4().hex}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[task_id] = (future, time.monotonic())
        try:
            await self._on_broker(self.app.send_task, name, args=args, queue=queue,
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

    async def _start_collecting(self) -> None:
        """Subscribe to this coordinator's results (once) and start the sweeps."""
        async with self._subscribing:  # one subscription, however many tasks start at once
            if self._subscription is None:
                await self._subscribe()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def _subscribe(self) -> None:
        """Subscribe to the results of this coordinator's tasks."""
        loop = asyncio.get_running_loop()
        self._backend = backend = await self._on_broker(lambda: self.app.backend)

        def arrived(key: bytes, value: bytes) -> None:  # on the subscription's thread
            meta = backend.decode_result(value)
            loop.call_soon_threadsafe(self._settle, key, meta, len(value))

        pattern = backend.get_key_for_task(f"{self._prefix}-*")
        self._subscription = await self._on_broker(_Subscription, backend.client,
                                                   pattern, arrived)

    def _settle(self, key: bytes, meta: dict[str, Any], size: int) -> None:
        """Hand a result to its waiter (once: the subscription and a sweep may both see it)."""
        task_id = key.decode()[len(self._backend.task_keyprefix):]
        waiter = self._pending.get(task_id)
        if meta["status"] not in READY_STATES or waiter is None or waiter[0].done():
            return
        self._read.append(key)
        self.bytes += size
        if meta["status"] == SUCCESS:
            waiter[0].set_result(meta["result"])
        else:
            waiter[0].set_exception(self._backend.exception_to_python(meta["result"]))

    async def _sweep(self) -> None:
        """Once a second: delete the results read, and look up those of tasks sent before
        the last sweep (one MGET), in case their message was missed."""
        backend = self._backend
        while self._pending or self._read:
            await asyncio.sleep(SWEEP_EVERY)
            read, self._read = self._read, []
            before = time.monotonic() - SWEEP_EVERY
            keys = [backend.get_key_for_task(task_id)
                    for task_id, (_future, sent) in self._pending.items() if sent < before]
            try:
                if read:
                    await self._on_broker(backend.client.delete, *read)
                values = await self._on_broker(backend.client.mget, keys) if keys else []
            except _INFRASTRUCTURE:
                continue  # the waiters time out and send again if it stays down
            for key, value in zip(keys, values, strict=True):
                if value:
                    self._settle(key, backend.decode_result(value), len(value))


class _Subscription:
    """A pattern subscription read on a thread of its own: `arrived(channel, message)` for
    each message. redis-py subscribes again when it reconnects; while Redis is away the
    thread waits and retries (the sweeps find what was published meanwhile)."""

    def __init__(self, client: Any, pattern: bytes,
                 arrived: Callable[[bytes, bytes], None]) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(pattern)
        self.arrived = arrived
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, name="newswire-results",
                                       daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stopping.is_set():
            try:
                message = self.pubsub.get_message(timeout=SWEEP_EVERY)
            except _INFRASTRUCTURE:
                self.stopping.wait(SWEEP_EVERY)
                continue
            if message is not None and message["type"] == "pmessage":
                try:
                    self.arrived(message["channel"], message["data"])
                except (ValueError, RuntimeError) as exc:  # undecodable, or the loop closed
                    log.debug("result message dropped: %s", exc)
        self.pubsub.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(2 * SWEEP_EVERY)


def _size(args: list[Any]) -> int:
    return len(json.dumps(args))
