"""The worker pool (pipeline/pool.py): lazy start, crash replacement, recycling."""

from __future__ import annotations

import asyncio
import os

import pytest

from pipeline.config import ExtractConfig
from pipeline.errors import WorkerCrashed
from pipeline.messages import FetchResult, ParseOutcome
from pipeline.parse import parse_response
from pipeline.pool import WorkerPool

RSS = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
       b"<item><title>One</title><link>http://a.example/1</link></item></channel></rss>")


def _die(marker: str) -> str:
    """Kill the worker process (a segfaulting parser, say)."""
    os._exit(3)


def test_a_crashed_worker_gets_a_new_pool() -> None:
    pool = WorkerPool(ExtractConfig(workers=1))

    async def go() -> ParseOutcome:
        assert pool.pool is None  # nothing starts before the first job
        assert await pool.run(os.getpid) != os.getpid()
        first = pool.pool
        with pytest.raises(WorkerCrashed):
            await pool.run(_die, "died")
        assert pool.pool is not None and pool.pool is not first
        return await pool.run(parse_response, FetchResult("u", "u", 200, body=RSS), 10)

    try:
        outcome = asyncio.run(go())
    finally:
        pool.close()
    assert outcome.feed is not None and outcome.feed.entries[0].link == "http://a.example/1"


def _slow_square(number: int) -> int:
    import time

    time.sleep(0.3)
    return number * number


def test_a_job_that_kills_its_worker_harms_no_other_job() -> None:
    """The dying job breaks the pool, and with it every job in it: those run again alone
    and return; only the one that kills its worker again fails."""
    pool = WorkerPool(ExtractConfig(workers=2))

    async def go() -> list[int | BaseException]:
        await pool.run(os.getpid)  # the pool is up
        first = asyncio.ensure_future(pool.run(_slow_square, 0))
        dying = asyncio.ensure_future(pool.run(_die, "died"))  # beside it: breaks the pool
        queued = [asyncio.ensure_future(pool.run(_slow_square, n)) for n in range(1, 6)]
        return await asyncio.gather(first, *queued, dying, return_exceptions=True)

    try:
        results = asyncio.run(go())
    finally:
        pool.close()
    *squares, died = results
    assert squares == [n * n for n in range(6)]
    assert isinstance(died, WorkerCrashed)


def test_pools_are_recycled_after_their_jobs() -> None:
    pool = WorkerPool(ExtractConfig(workers=1, max_tasks_per_worker=3))

    async def go() -> list[int]:
        return [await pool.run(os.getpid) for _ in range(7)]

    try:
        pids = asyncio.run(go())
    finally:
        pool.close()
    assert len(set(pids[:3])) == 1 and len(set(pids)) == 3  # three generations of one worker
