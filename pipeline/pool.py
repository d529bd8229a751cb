"""The worker process pool: feed parsing and page extraction off the event loop.

Workers are started by a fork server that has already imported and warmed up the parsing and
extraction code, so starting one costs a fork rather than a fresh interpreter importing
trafilatura and compiling dateparser's patterns (over a second of CPU) — which matters because
workers are recycled to bound the memory trafilatura and lxml accumulate. The main process never
imports trafilatura itself, and a run that only sees 304 Not Modified starts no process.

Everything crossing the process boundary is plain data: page bytes go out undecoded (decoding
is worker work) and come back as frozen dataclasses.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from pipeline import neardup
from pipeline.extract import Article, ExtractJob, extract_job
from pipeline.parse import FeedParseError, ParsedFeed, parse_feed

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

    The costly part is dateparser (htmldate's last resort on free-text dates): the first
    string no locale accepts compiles every locale's patterns, about a second of CPU that
    each new worker would otherwise pay again after every recycling.
    """
    extract_job(ExtractJob(url="https://warm-up.example/2025/03/04/story", html=_WARM_UP_PAGE,
                           entry_title="", entry_content="", entry_published_at=None))
    try:
        from htmldate.extractors import get_external_parser

        get_external_parser().get_date_data("zzz 12 qqq")
    except Exception:  # noqa: BLE001 - only an optimisation: never fail a worker over it
        log.debug("dateparser warm-up failed", exc_info=True)


def parse_in_worker(body: bytes, headers: dict[str, str], url: str,
                    max_entries: int) -> ParsedFeed | str:
    """Worker entry point for parsing: an error comes back as its message."""
    try:
        return parse_feed(body, headers, url, max_entries=max_entries)
    except FeedParseError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - never let one feed break the pool
        return f"parser crashed: {type(exc).__name__}: {exc}"


def process_page(job: ExtractJob) -> tuple[Article, Any]:
    """Worker entry point for a page: the article, and its near-duplicate fingerprint."""
    article = extract_job(job)
    if article.text:
        return article, neardup.fingerprint(article.text, article.title)
    return article, None


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
    good (seen here on long runs). The runner recycles whole pools instead (Runner._pool).
    """
    context = multiprocessing.get_context("forkserver")
    # The fork server imports this module (and so trafilatura) once, then warms it up.
    context.set_forkserver_preload(["pipeline.pool_preload"])
    return ProcessPoolExecutor(max_workers=pool_size(workers), mp_context=context,
                               initializer=die_with_parent)
