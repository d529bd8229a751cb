"""The worker process pool: feed parsing and page extraction off the event loop.

Workers are started by a fork server that has already imported and warmed up the parsing and
extraction code, so starting one costs a fork rather than a fresh interpreter importing
trafilatura and compiling dateparser's patterns (over a second of CPU) — which matters because
workers are recycled to bound the memory trafilatura and lxml accumulate. The main process never
imports trafilatura itself, and a run that only sees 304 Not Modified starts no process.

Everything crossing the process boundary is a message (pipeline.messages): page bytes go out
undecoded (decoding is worker work) and come back as frozen dataclasses. `WorkerPool` is the
one interface the composition sees: `await pool.run(fn, *args)`.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pipeline.config import ExtractConfig
from pipeline.errors import WorkerCrashed
from pipeline.extract import extract_job
from pipeline.messages import ExtractJob

T = TypeVar("T")

log = logging.getLogger("newswire")
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>

_WARM_UP_PAGE = """<!doctype html><html lang="en"><head><title>Warm-up story - Site</title>
<meta name="author" content="Ana Writer"><meta property="og:site_name" content="Site">
</head><body><nav><a href="/">Home</a></nav><article><h1>Warm-up story</h1>
<p class="byline">By Ana Writer, 4 March 2025</p>""" + "".join(
    f"<p>Paragraph {i} of a story written on 4 March 2025 so that the extractors, the date "
    f"search and their lazily compiled expressions all run once before real work.</p>"
    for i in range(8)) + "</article><footer>All rights reserved.</footer></body></html>"


def die_with_parent() -> None:
    """Have Linux kill this process when its parent dies.

    Without it a SIGKILLed `newswire once` leaves its fork server and workers behind for
    good: CPython hands every worker a descriptor that keeps the fork server waiting, and
    the workers wait on a queue that can no longer close. Run in the fork server (whose
    parent is newswire) and in every worker (whose parent is the fork server).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl: orphans are possible, nothing else changes
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def warm_up() -> None:
    """Run one small extraction so lazy imports and compiled patterns live in the fork server
    and every worker forked from it starts warm.

    The costly parts are dateparser (htmldate's last resort on free-text dates): the first
    string no locale accepts compiles every locale's patterns, and py3langid's model (loaded
    on first use, ~0.6 s): about a second of CPU each that every new worker would otherwise
    pay again after every recycling. The warm-up page is long enough to be language-detected.
    """
    extract_job(ExtractJob(url="https://warm-up.example/2025/03/04/story", html=_WARM_UP_PAGE,
                           entry_title="", entry_content="", entry_published_at=None))
    try:
        from htmldate.extractors import get_external_parser

        get_external_parser().get_date_data("zzz 12 qqq")
    except Exception:  # noqa: BLE001 - only an optimisation: never fail a worker over it
        log.debug("dateparser warm-up failed", exc_info=True)


def start_workers(pool: ProcessPoolExecutor) -> None:
    """Start a pool's first worker and wait until it answers (blocking: call it in a
    thread). The first worker of a run also starts the fork server."""
    pool.submit(os.getpid).result()


def pool_size(workers: int) -> int:
    """Worker processes for the `extract.workers` setting (0: one per CPU)."""
    return workers or os.cpu_count() or 1


def make_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` processes forked from a warm fork server.

    No max_tasks_per_child: on Python 3.11 replacing a retired worker can hang the pool for
    good (seen here on long runs). WorkerPool recycles whole pools instead.
    """
    context = multiprocessing.get_context("forkserver")
    # The fork server imports this module (and so trafilatura) once, then warms it up.
    context.set_forkserver_preload(["pipeline.pool_preload"])
    return ProcessPoolExecutor(max_workers=pool_size(workers), mp_context=context,
                               initializer=die_with_parent)


class WorkerPool:
    """The worker processes of a run, behind one call: `await pool.run(fn, *args)`.

    - Its processes start with the first job (a run of 304s never starts any), in a thread:
      the first worker starts the fork server, which imports and warms the extractor for a
      second or two, and fetches in flight keep their deadlines meanwhile.
    - Recycled in generations: after `max_tasks_per_worker` jobs per worker the pool is
      replaced once its jobs have returned, so memory stays that of one pool.
    - A worker that dies (killed, out of memory) breaks the whole pool: every job in it
      fails, not only the one that killed it. The pool is replaced, and each of those jobs
      runs again alone, in a one-process pool of its own (at most a pool's size at once):
      the others succeed there, and the job that kills its worker again raises
      WorkerCrashed, harming no other.
    """

    def __init__(self, config: ExtractConfig) -> None:
        self.config = config
        self.pool: ProcessPoolExecutor | None = None
        self._jobs = 0  # jobs given to the current pool
        self._started = False  # the fork server is up
        self.pending: set[asyncio.Future[Any]] = set()  # jobs not yet returned
        self._lock = asyncio.Lock()
        self._alone = asyncio.Semaphore(pool_size(config.workers))  # jobs run again alone

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        pool = await self._current()
        job: asyncio.Future[T] | None = None
        try:
            job = loop.run_in_executor(pool, fn, *args)  # raises too if it broke meanwhile
            self.pending.add(job)
            return await job
        except BrokenProcessPool:
            if self.pool is pool:  # the first caller to notice replaces it for everyone
                log.error("a worker process died; starting a new pool")
                pool.shutdown(wait=False, cancel_futures=True)
                self.pool = make_pool(self.config.workers)
                self._jobs = 0
        finally:
            if job is not None:
                self.pending.discard(job)
        return await self._run_alone(fn, *args)

    async def _run_alone(self, fn: Callable[..., T], *args: Any) -> T:
        """A job of a pool that broke, run again in a process of its own."""
        async with self._alone:
            alone = make_pool(1)
            job = asyncio.get_running_loop().run_in_executor(alone, fn, *args)
            self.pending.add(job)
            try:
                return await job
            except BrokenProcessPool as exc:
                raise WorkerCrashed(f"worker process died: {exc}") from None
            finally:
                self.pending.discard(job)
                alone.shutdown(wait=False, cancel_futures=True)

    async def _current(self) -> ProcessPoolExecutor:
        async with self._lock:
            limit = self.config.max_tasks_per_worker * pool_size(self.config.workers)
            if self.pool is not None and limit and self._jobs >= limit:
                old, self.pool = self.pool, None
                await asyncio.gather(*self.pending, return_exceptions=True)
                old.shutdown(wait=False)
            if self.pool is None:
                self.pool = make_pool(self.config.workers)
                self._jobs = 0
            if not self._started:
                # Started here, not in the thread below: the fork server's parent-death
                # signal follows the thread that starts it, and that thread may end first.
                multiprocessing.forkserver.ensure_running()
                await asyncio.to_thread(start_workers, self.pool)
                self._started = True
            self._jobs += 1
            return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
